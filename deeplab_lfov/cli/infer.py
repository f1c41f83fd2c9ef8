"""``inference.py`` / ``deeplab-lfov-infer``: segment an image and write the mask as a VOC palette PNG.

    python inference.py IMAGE MODEL_WEIGHTS [--save_dir ./output/]

MODEL_WEIGHTS is any checkpoint form ``deeplab_lfov.weights.load_weights`` reads (a TensorFlow
checkpoint prefix or directory, a .caffemodel, or the classic net_weights pickle).
"""

from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

from ..settings import InferConfig
from . import run


def get_args_parser() -> argparse.ArgumentParser:
    return InferConfig.parser("Segment an image with DeepLab-LargeFOV and write the mask as a VOC palette PNG.")


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = InferConfig.from_args(get_args_parser().parse_args(argv))
    from ..crf import DenseCRF
    crf_params = config.crf_params()
    crf = DenseCRF(crf_params) if crf_params else None  # fails now, before any work, if the package is missing
    import numpy as np

    from ..colormap import save_mask
    from ..images import read_image
    from ..predict import predictor_for

    rgb = read_image(config.img_path)
    probs = predictor_for(config, config.model_weights, config.num_classes).probabilities(rgb)
    if crf is not None:
        probs = crf(rgb, probs)
    out = os.path.join(config.save_dir, "mask.png")
    save_mask(out, np.argmax(probs, axis=-1))
    print(f"The output file has been saved to {out}")
    return 0


def entry() -> None:
    run(main)
