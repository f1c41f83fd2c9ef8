#!/usr/bin/env python
"""Build SegmentationClassAug from VOC2012 and SBD.

    python util/prepare_voc.py --voc_dir VOCdevkit/VOC2012 --sbd_dir benchmark_RELEASE/dataset

The program lives in ``deeplab_lfov/cli/prepare_voc.py``; ``python util/prepare_voc.py --help`` lists its flags.
"""

import _checkout  # noqa: F401  (makes the checkout's package importable when it is not installed)

from deeplab_lfov.cli import run
from deeplab_lfov.cli.prepare_voc import get_args_parser, main  # noqa: F401  (get_args_parser: for tools and tests)

if __name__ == "__main__":
    run(main)
