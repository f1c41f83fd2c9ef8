"""``util/extract_params.py`` / ``deeplab-lfov-extract-params``: convert a .caffemodel into a TensorFlow
checkpoint, without Caffe.

    python util/extract_params.py CAFFEMODEL [--output_dir ./]

Writes ``deeplab_lfov.ckpt`` (name-based checkpoint: conv1_1/w ... fc8_voc12/b, HWIO filters;
the default ``--restore_from`` of train.py) and ``net_skeleton.json`` (names and shapes).
PyCaffe is used only if ``--pycaffe_path`` is given.
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from ..cli import run
from ..settings import ExtractParamsConfig


def get_args_parser() -> argparse.ArgumentParser:
    return ExtractParamsConfig.parser("Convert a DeepLab-LargeFOV .caffemodel into a TensorFlow checkpoint, "
                                      "without Caffe.")


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = ExtractParamsConfig.from_args(get_args_parser().parse_args(argv))
    from ..model.weights import convert_caffemodel

    result = convert_caffemodel(config.caffemodel, config.output_dir, pycaffe_path=config.pycaffe_path or None,
                                prototxt=config.prototxt or None, model=config.model, msc=config.msc)
    print(f"Converted {result.layers} layers of {result.model}{' (MSC)' if result.msc else ''} "
          f"({result.params if result.has_classifier else 'classifier absent'} parameters) from {config.caffemodel} "
          f"to {result.prefix}")
    if not result.has_classifier:
        print("No classifier layer in this caffemodel: train with --not_restore_last to initialise it.")
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":  # python -m deeplab_lfov.cli.extract_params
    entry()
