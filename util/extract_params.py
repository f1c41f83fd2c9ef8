#!/usr/bin/env python
"""Convert a .caffemodel into a TensorFlow checkpoint without Caffe (``deeplab-lfov-extract-params``).

    python util/extract_params.py CAFFEMODEL [--output_dir ./]

The program lives in ``deeplab_lfov/cli/extract_params.py``; ``python util/extract_params.py --help`` lists its flags.
"""

import _checkout  # noqa: F401  (makes the checkout's package importable when it is not installed)

from deeplab_lfov.cli import run
from deeplab_lfov.cli.extract_params import get_args_parser, main  # noqa: F401  (get_args_parser: for tools and tests)

if __name__ == "__main__":
    run(main)
