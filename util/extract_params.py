#!/usr/bin/env python
"""Convert a DeepLab-LargeFOV .caffemodel into a TensorFlow checkpoint, without Caffe.

    python util/extract_params.py CAFFEMODEL [--output_dir ./]

Writes ``deeplab_lfov.ckpt`` (name-based checkpoint: conv1_1/w ... fc8_voc12/b, HWIO filters;
the default ``--restore_from`` of train.py) and ``net_skeleton.json`` (names and shapes).
PyCaffe is used only if ``--pycaffe_path`` is given.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from deeplab_lfov import cli  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("caffemodel", help="the .caffemodel to convert")
    p.add_argument("--output_dir", default="./", help="where the checkpoint and skeleton go")
    p.add_argument("--pycaffe_path", default="",
                   help="read the weights with PyCaffe found at this path instead (optional)")
    p.add_argument("--prototxt", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "deploy.prototxt"),
                   help="net definition, used only with --pycaffe_path")
    return p


def _read_with_pycaffe(caffemodel: str, prototxt: str, pycaffe_path: str):
    from deeplab_lfov.caffe_import import caffe_to_tf_weights
    from deeplab_lfov.errors import DeepLabError
    sys.path.insert(0, pycaffe_path)
    try:
        import caffe  # noqa: F401  (only the user's own PyCaffe build, never a pip package)
        net = caffe.Net(prototxt, caffemodel, caffe.TEST)
    except Exception as e:
        raise DeepLabError(f"{caffemodel}: PyCaffe from {pycaffe_path} failed: {e}") from None
    return caffe_to_tf_weights({name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()})


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from deeplab_lfov.errors import DeepLabError
    from deeplab_lfov.caffe_import import caffe_to_tf_weights, read_caffemodel
    from deeplab_lfov.weights import build_model, save_weights, write_skeleton

    if args.pycaffe_path:
        weights = _read_with_pycaffe(args.caffemodel, args.prototxt, args.pycaffe_path)
    else:
        weights = caffe_to_tf_weights(read_caffemodel(args.caffemodel)[1])
    has_fc8 = any(k.startswith("fc8") for k in weights)
    model = build_model(weights, skip_last=not has_fc8, source=args.caffemodel)
    converted = {k: v.numpy() for k, v in model.named_variables().items()
                 if has_fc8 or not k.startswith("fc8")}
    try:
        os.makedirs(args.output_dir, exist_ok=True)
        prefix = save_weights(os.path.join(args.output_dir, "deeplab_lfov.ckpt"), converted)
        write_skeleton(os.path.join(args.output_dir, "net_skeleton.json"), converted)
    except OSError as e:
        raise DeepLabError(f"{args.output_dir}: cannot write the checkpoint ({e.strerror or e})") from None
    print(f"Converted {len(converted) // 2} layers ({model.count_params() if has_fc8 else 'fc8 absent'} "
          f"parameters) from {args.caffemodel} to {prefix}")
    if not has_fc8:
        print("No fc8 layer in this caffemodel: train with --not_restore_last to initialise it.")
    return 0


if __name__ == "__main__":
    cli.run(main)
