#!/usr/bin/env python
"""Grid-search the dense CRF's parameters on a subset of a list.

    python util/crf_search.py --data_dir /home/VOCdevkit --restore_from ./snapshots/ --num_images 100

The program lives in ``deeplab_lfov/cli/crf_search.py``; ``python util/crf_search.py --help`` lists its flags.
"""

import _checkout  # noqa: F401  (makes the checkout's package importable when it is not installed)

from deeplab_lfov.cli import run
from deeplab_lfov.cli.crf_search import get_args_parser, main  # noqa: F401  (get_args_parser: for tools and tests)

if __name__ == "__main__":
    run(main)
