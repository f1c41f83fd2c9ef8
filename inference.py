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
    from deeplab_lfov.crf import add_crf_arguments
    from deeplab_lfov.predict import add_test_time_arguments
    add_test_time_arguments(p)
    add_crf_arguments(p)
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from deeplab_lfov.crf import crf_from_args
    crf = crf_from_args(args)  # fails now, before any work, if the CRF package is missing
    import numpy as np
    from deeplab_lfov.colormap import save_mask
    from deeplab_lfov.images import read_image
    from deeplab_lfov.predict import predictor_from_args

    rgb = read_image(args.img_path)
    probs = predictor_from_args(args.model_weights, args.num_classes, args).probabilities(rgb)
    if crf is not None:
        probs = crf(rgb, probs)
    out = os.path.join(args.save_dir, "mask.png")
    save_mask(out, np.argmax(probs, axis=-1))
    print(f"The output file has been saved to {out}")
    return 0


if __name__ == "__main__":
    cli.run(main)
