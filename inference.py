#!/usr/bin/env python
"""Segment one image with DeepLab-LargeFOV and write the mask as a VOC palette PNG.

    python inference.py IMAGE MODEL_WEIGHTS [--save_dir ./output/]

MODEL_WEIGHTS is any checkpoint form ``deeplab_lfov.weights.load_weights`` reads (a TensorFlow
checkpoint prefix or directory, a .caffemodel, or the classic net_weights pickle).
"""

from __future__ import annotations

import argparse
import os

from deeplab_lfov import cli
from deeplab_lfov.model import NUM_CLASSES


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("img_path", help="image to segment (JPEG, PNG, ...)")
    p.add_argument("model_weights", help="checkpoint, checkpoint directory or .caffemodel")
    p.add_argument("--save_dir", default="./output/", help="where mask.png is written")
    p.add_argument("--num_classes", type=int, default=None,
                   help=f"classes of the model (default: read from the weights, else {NUM_CLASSES})")
    p.add_argument("--scales", default="1.0", help="comma-separated test scales, e.g. 0.5,0.75,1.0")
    p.add_argument("--flip", action="store_true", help="average with the mirrored image's prediction")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="compute precision: fp32 (default, Caffe-exact) or bf16/fp16 (faster on GPUs and on CPUs with bf16 instructions; see bench/bench.py)")
    p.add_argument("--pad_to", type=int, default=None, help="pad to this size (DeepLab: 513)")
    from deeplab_lfov.crf import add_crf_arguments
    add_crf_arguments(p)
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from deeplab_lfov.crf import crf_from_args
    crf = crf_from_args(args)  # fails now, before any work, if the CRF package is missing
    from deeplab_lfov.errors import DeepLabError
    from deeplab_lfov.images import read_image
    from deeplab_lfov.predict import Predictor, parse_scales
    from deeplab_lfov.model import compute_dtype_for
    from deeplab_lfov.weights import build_model, load_weights
    from deeplab_lfov.colormap import save_mask
    import numpy as np

    try:
        scales = parse_scales(args.scales)
    except ValueError as e:
        raise DeepLabError(f"--scales: {e}") from None
    rgb = read_image(args.img_path)
    model = build_model(load_weights(args.model_weights), args.num_classes, source=args.model_weights,
                        compute_dtype=compute_dtype_for(args.precision))
    probs = Predictor(model, scales=scales, flip=args.flip, pad_to=args.pad_to).probabilities(rgb)
    if crf is not None:
        probs = crf(rgb, probs)
    out = os.path.join(args.save_dir, "mask.png")
    save_mask(out, np.argmax(probs, axis=-1))
    print(f"The output file has been saved to {out}")
    return 0


if __name__ == "__main__":
    cli.run(main)
