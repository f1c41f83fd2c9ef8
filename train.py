#!/usr/bin/env python
"""Train DeepLab-LargeFOV (the classic script; installed as ``deeplab-lfov-train``).

    python train.py --data_dir /home/VOCdevkit --restore_from ./deeplab_lfov.ckpt --not_restore_last

The program lives in ``deeplab_lfov/cli/train.py``; ``python train.py --help`` lists its flags.
"""

from deeplab_lfov.cli import run
from deeplab_lfov.cli.train import get_args_parser, main  # noqa: F401  (get_args_parser: for tools and tests)

if __name__ == "__main__":
    run(main)
