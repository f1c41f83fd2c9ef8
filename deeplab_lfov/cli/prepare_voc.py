"""``util/prepare_voc.py``: build SegmentationClassAug (index PNGs for the 10,582 + 1,449 lists) from VOC2012 and SBD.

    python util/prepare_voc.py --voc_dir VOCdevkit/VOC2012 --sbd_dir benchmark_RELEASE/dataset

Labels come from VOC's own ``SegmentationClass`` where it has the image (palette PNGs, or RGB
colour PNGs mapped back through the VOC colour map), else from SBD's ``cls/NAME.mat``
(``GTcls.Segmentation``).  Output: grayscale index PNGs in ``<voc_dir>/SegmentationClassAug``.
Then every list line is checked, and missing images or labels are reported.
"""

from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

from ..cli import run
from ..settings import PrepareVOCConfig


def get_args_parser() -> argparse.ArgumentParser:
    return PrepareVOCConfig.parser("Build SegmentationClassAug from VOC2012 and SBD.")


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = PrepareVOCConfig.from_args(get_args_parser().parse_args(argv))
    from ..data.voc import check_lists, convert_labels
    output = config.output_dir or os.path.join(config.voc_dir, "SegmentationClassAug")
    counts = convert_labels(config.voc_dir, config.sbd_dir, output, overwrite=config.overwrite)
    print(f"Wrote {counts['voc']} labels from SegmentationClass and {counts['sbd']} from SBD to {output} "
          f"({counts['kept']} already there)")
    missing = check_lists(config.voc_dir, output, config.data_lists)
    for line in missing[:50]:
        print(f"missing: {line}")
    if missing:
        from ..core.errors import DeepLabError
        raise DeepLabError(f"{len(missing)} list entries have a missing image or label" +
                           (" (first 50 shown above)" if len(missing) > 50 else " (shown above)"))
    print("Every list entry has its image and label.")
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":  # python -m deeplab_lfov.cli.prepare_voc
    entry()
