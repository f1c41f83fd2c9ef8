#!/usr/bin/env python
"""Convert label images (index, palette, RGB colour or binary masks) to index PNGs (``deeplab-lfov-convert-labels``).

    python util/convert_labels.py masks/ --output_dir labels/ --classes classes.txt

The program lives in ``deeplab_lfov/cli/convert_labels.py``; ``python util/convert_labels.py --help`` lists its flags.
"""

import _checkout  # noqa: F401  (makes the checkout's package importable when it is not installed)

from deeplab_lfov.cli import run
from deeplab_lfov.cli.convert_labels import get_args_parser, main  # noqa: F401  (get_args_parser: for tools and tests)

if __name__ == "__main__":
    run(main)
