#!/usr/bin/env python
"""Refine label PNGs (pseudo labels) or probabilities with the dense CRF.

    python util/crf_refine.py pseudo_labels/ --image_dir VOC2012/JPEGImages --output_dir pseudo_crf/

The program lives in ``deeplab_lfov/cli/crf_refine.py``; ``python util/crf_refine.py --help`` lists its flags.
"""

import _checkout  # noqa: F401  (makes the checkout's package importable when it is not installed)

from deeplab_lfov.cli import run
from deeplab_lfov.cli.crf_refine import get_args_parser, main  # noqa: F401  (get_args_parser: for tools and tests)

if __name__ == "__main__":
    run(main)
