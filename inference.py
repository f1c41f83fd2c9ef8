#!/usr/bin/env python
"""Segment an image with DeepLab-LargeFOV (the classic script; ``deeplab-lfov-infer``).

    python inference.py IMAGE MODEL_WEIGHTS [--save_dir ./output/]

The program lives in ``deeplab_lfov/cli/infer.py``; ``python inference.py --help`` lists its flags.
"""

from deeplab_lfov.cli.infer import entry, get_args_parser, main  # noqa: F401  (get_args_parser, main: for tools and tests)

if __name__ == "__main__":
    entry()  # an inference-only process: oneDNN keeps its filters (core.runtime.frozen_weights_process)
