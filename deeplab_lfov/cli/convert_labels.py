"""``util/convert_labels.py`` / ``deeplab-lfov-convert-labels``: label images in any form to index PNGs.

    python util/convert_labels.py masks/ --output_dir labels/ --classes classes.txt   # RGB colour masks
    python util/convert_labels.py masks/ --output_dir labels/ --binary                 # 0/255 masks
    python util/convert_labels.py masks/ --output_dir labels/                          # lists the colours

Every file with colours outside the palette is reported (file, colour, pixel count) and gets no
output; the run ends with per-class statistics (the numbers class weights are made from) and
exits with code 2 if any file was refused.
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from ..cli import log, run
from ..settings import ConvertLabelsConfig


def get_args_parser() -> argparse.ArgumentParser:
    return ConvertLabelsConfig.parser("Convert label images (index, palette, RGB colour or binary masks) to index "
                                      "PNGs.")


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = ConvertLabelsConfig.from_args(get_args_parser().parse_args(argv))
    import os

    from ..core.files import check_writable
    from ..data.checks import raise_for_problems
    from ..data.classes import ClassList, read_classes
    from ..data.colormap import VOC_COLORS
    from ..data.convert import colour_survey, convert_all, label_sources
    from ..data.images import read_label
    from ..data.statistics import label_statistics

    sources = label_sources(config.input, config.data_dir)
    if config.classes:
        classes = read_classes(config.classes)
    elif config.binary:
        classes = ClassList(("background", "foreground"), VOC_COLORS, source="--binary")
    else:
        survey = colour_survey([path for path, _ in sources], config.workers)
        if survey:
            log(f"RGB colour masks need --classes FILE (one class per line: name R G B, background first). "
                f"Colours in the {len(sources):,} labels of {config.input}:")
            log(f"  {'R':>3} {'G':>3} {'B':>3}  {'pixels':>14}  {'images':>8}")
            for (r, g, b), (pixels, images) in survey.items():
                log(f"  {r:>3} {g:>3} {b:>3}  {pixels:>14,}  {images:>8,}")
            log("Nothing converted. Write a classes file from these colours and run again with --classes.")
            return 0
        classes = read_classes(None)
    check_writable(config.output_dir, "--output_dir")
    written, problems = convert_all(sources, config.output_dir, classes, config.num_classes, config.ignore_label,
                                    config.binary, config.workers)
    names = classes.names_for(config.num_classes)
    if written:
        stats = label_statistics(written, config.num_classes, config.ignore_label, config.workers, read=read_label)
        print(f"Wrote {len(written):,} index PNGs to {config.output_dir}. Per class:")
        print(stats.table(names))
    raise_for_problems(problems, len(sources), "label images were not converted",
                       os.path.join(config.output_dir, "refused.txt"))
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":  # python -m deeplab_lfov.cli.convert_labels
    entry()
