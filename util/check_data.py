#!/usr/bin/env python
"""Check a segmentation list before training (``deeplab-lfov-check-data``).

    python util/check_data.py --data_dir /home/VOCdevkit --data_list dataset/train.txt

The program lives in ``deeplab_lfov/cli/check_data.py``; ``python util/check_data.py --help`` lists its flags.
"""

import _checkout  # noqa: F401  (makes the checkout's package importable when it is not installed)

from deeplab_lfov.cli import run
from deeplab_lfov.cli.check_data import get_args_parser, main  # noqa: F401  (get_args_parser: for tools and tests)

if __name__ == "__main__":
    run(main)
