"""``util/extract_params.py`` / ``deeplab-lfov-extract-params``: convert a .caffemodel into a TensorFlow
checkpoint, without Caffe.

    python util/extract_params.py CAFFEMODEL [--output_dir ./]

Writes ``deeplab_lfov.ckpt`` (name-based checkpoint: conv1_1/w ... fc8_voc12/b, HWIO filters;
the default ``--restore_from`` of train.py) and ``net_skeleton.json`` (names and shapes).
PyCaffe is used only if ``--pycaffe_path`` is given.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import os
import sys
from typing import Optional, Sequence

from ..settings import ExtractParamsConfig
from . import run

CHECKOUT_PROTOTXT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                 "util", "deploy.prototxt")


def get_args_parser() -> argparse.ArgumentParser:
    return ExtractParamsConfig.parser("Convert a DeepLab-LargeFOV .caffemodel into a TensorFlow checkpoint, "
                                      "without Caffe.")


def _read_with_pycaffe(caffemodel: str, prototxt: str, pycaffe_path: str):
    from ..caffe_import import caffe_to_tf_weights
    from ..errors import DeepLabError
    if not os.path.isfile(prototxt):
        raise DeepLabError(f"{prototxt or 'util/deploy.prototxt'}: net definition not found; pass --prototxt")
    try:  # the user's own PyCaffe build from that folder, never a pip package
        spec = importlib.machinery.PathFinder.find_spec("caffe", [pycaffe_path])
        if spec is None:
            raise ImportError(f"no 'caffe' package in {pycaffe_path}")
        caffe = importlib.util.module_from_spec(spec)
        sys.modules["caffe"] = caffe
        spec.loader.exec_module(caffe)
        net = caffe.Net(prototxt, caffemodel, caffe.TEST)
    except Exception as e:
        raise DeepLabError(f"{caffemodel}: PyCaffe from {pycaffe_path} failed: {e}") from None
    return caffe_to_tf_weights({name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()})


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = ExtractParamsConfig.from_args(get_args_parser().parse_args(argv))
    from ..caffe_import import caffe_to_tf_weights, read_caffemodel
    from ..errors import DeepLabError
    from ..weights import build_model, save_weights, write_skeleton

    if config.pycaffe_path:
        weights = _read_with_pycaffe(config.caffemodel, config.prototxt or CHECKOUT_PROTOTXT, config.pycaffe_path)
    else:
        weights = caffe_to_tf_weights(read_caffemodel(config.caffemodel)[1])
    has_fc8 = any(k.startswith("fc8") for k in weights)
    model = build_model(weights, skip_last=not has_fc8, source=config.caffemodel)
    converted = {k: v.numpy() for k, v in model.named_variables().items() if has_fc8 or not k.startswith("fc8")}
    try:
        os.makedirs(config.output_dir, exist_ok=True)
        prefix = save_weights(os.path.join(config.output_dir, "deeplab_lfov.ckpt"), converted)
        write_skeleton(os.path.join(config.output_dir, "net_skeleton.json"), converted)
    except OSError as e:
        raise DeepLabError(f"{config.output_dir}: cannot write the checkpoint ({e.strerror or e})") from None
    print(f"Converted {len(converted) // 2} layers ({model.count_params() if has_fc8 else 'fc8 absent'} "
          f"parameters) from {config.caffemodel} to {prefix}")
    if not has_fc8:
        print("No fc8 layer in this caffemodel: train with --not_restore_last to initialise it.")
    return 0


def entry() -> None:
    run(main)
