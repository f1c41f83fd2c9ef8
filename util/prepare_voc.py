#!/usr/bin/env python
"""Build SegmentationClassAug (index PNGs for the 10,582 + 1,449 lists) from VOC2012 and SBD.

    python util/prepare_voc.py --voc_dir VOCdevkit/VOC2012 --sbd_dir benchmark_RELEASE/dataset

Labels come from VOC's own ``SegmentationClass`` where it has the image (palette PNGs, or RGB
colour PNGs mapped back through the VOC colour map), else from SBD's ``cls/NAME.mat``
(``GTcls.Segmentation``).  Output: grayscale index PNGs in ``<voc_dir>/SegmentationClassAug``.
Then every list line is checked, and missing images or labels are reported.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from deeplab_lfov import cli  # noqa: E402

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--voc_dir", required=True, help="VOC2012 folder (JPEGImages, SegmentationClass)")
    p.add_argument("--sbd_dir", default=None, help="SBD 'dataset' folder (cls/*.mat); optional")
    p.add_argument("--output_dir", default=None, help="default: VOC_DIR/SegmentationClassAug")
    p.add_argument("--data_lists", nargs="+", default=[os.path.join(HERE, "dataset", "train.txt"),
                                                       os.path.join(HERE, "dataset", "val.txt")],
                   help="lists to check the result against")
    p.add_argument("--overwrite", action="store_true", help="rewrite labels that already exist")
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from deeplab_lfov.voc import check_lists, convert_labels
    output = args.output_dir or os.path.join(args.voc_dir, "SegmentationClassAug")
    counts = convert_labels(args.voc_dir, args.sbd_dir, output, overwrite=args.overwrite)
    print(f"Wrote {counts['voc']} labels from SegmentationClass and {counts['sbd']} from SBD to {output} "
          f"({counts['kept']} already there)")
    missing = check_lists(args.voc_dir, output, args.data_lists)
    for line in missing[:50]:
        print(f"missing: {line}")
    if missing:
        print(f"{len(missing)} list entries have a missing image or label" +
              (" (first 50 shown)" if len(missing) > 50 else ""))
        return 1
    print("Every list entry has its image and label.")
    return 0


if __name__ == "__main__":
    cli.run(main)
