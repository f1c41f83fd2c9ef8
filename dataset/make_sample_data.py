#!/usr/bin/env python
"""Make the bundled sample dataset: a few dozen synthetic images in the PASCAL VOC layout.

    python dataset/make_sample_data.py [--out dataset/sample] [--num_train 32 --num_val 8]

The images and labels come from ``deeplab_lfov.sample_data`` (see there what they show).
"""

from __future__ import annotations

import argparse
import os
import sys

try:
    import deeplab_lfov  # noqa: F401
except ImportError:  # a plain checkout, not installed: the package is beside this folder
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    from deeplab_lfov.data.sample_data import write_sample_dataset
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample"))
    p.add_argument("--num_train", type=int, default=32)
    p.add_argument("--num_val", type=int, default=8)
    p.add_argument("--seed", type=int, default=2016)
    args = p.parse_args(argv)
    write_sample_dataset(args.out, args.num_train, args.num_val, args.seed)
    print(f"Wrote {args.num_train} training and {args.num_val} validation pairs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
