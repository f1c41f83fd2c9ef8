#!/usr/bin/env python
"""Export a verified SavedModel (TF Serving) and TFLite files (``deeplab-lfov-export``).

    python util/export_model.py MODEL_WEIGHTS --output_dir export/ [--formats saved_model,tflite]

The program lives in ``deeplab_lfov/cli/export_model.py``; ``python util/export_model.py --help`` lists its flags.
"""

import _checkout  # noqa: F401  (makes the checkout's package importable when it is not installed)

from deeplab_lfov.cli import run
from deeplab_lfov.cli.export_model import get_args_parser, main  # noqa: F401  (get_args_parser: for tools and tests)

if __name__ == "__main__":
    run(main)
