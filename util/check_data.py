#!/usr/bin/env python
"""Check a segmentation list before training: every file exists and decodes, sizes match, label
values are valid and labels are index PNGs, not colour images.  Every problem is reported.

    python util/check_data.py --data_dir /home/VOCdevkit --data_list dataset/train.txt
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from deeplab_lfov import cli  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default="/home/VOCdevkit")
    p.add_argument("--data_list", default="./dataset/train.txt")
    p.add_argument("--num_classes", type=int, default=21)
    p.add_argument("--ignore_label", type=int, default=255)
    p.add_argument("--workers", type=int, default=None, help="parallel decoders (default: 2 x CPUs)")
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from deeplab_lfov.errors import DeepLabError
    from deeplab_lfov.image_reader import check_entries, read_list
    entries = read_list(args.data_dir, args.data_list)
    started = time.time()
    problems = check_entries(entries, args.num_classes, args.ignore_label, workers=args.workers,
                             progress=lambda done, total: print(f"checked {done}/{total}", file=sys.stderr))
    for _, problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        raise DeepLabError(f"{len(problems)} of {len(entries)} entries of {args.data_list} are unusable")
    print(f"All {len(entries)} entries of {args.data_list} are usable ({time.time() - started:.1f} s).")
    return 0


if __name__ == "__main__":
    cli.run(main)
