#!/usr/bin/env python
"""Evaluate DeepLab-LargeFOV on a list: mean IoU (the classic script; ``deeplab-lfov-evaluate``).

    python evaluate.py --data_dir /home/VOCdevkit --restore_from ./snapshots/

The program lives in ``deeplab_lfov/cli/evaluate.py``; ``python evaluate.py --help`` lists its flags.
"""

from deeplab_lfov.cli import run
from deeplab_lfov.cli.evaluate import get_args_parser, main  # noqa: F401  (get_args_parser: for tools and tests)

if __name__ == "__main__":
    run(main)
