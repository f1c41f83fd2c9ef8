"""``util/convert_labels.py`` / ``deeplab-lfov-convert-labels``: label images in any form to index PNGs.

    python util/convert_labels.py masks/ --output_dir labels/ --classes classes.txt   # RGB colour masks
    python util/convert_labels.py masks/ --output_dir labels/ --binary                 # 0/255 masks
    python util/convert_labels.py masks/ --output_dir labels/                          # lists the colours

Every file with colours outside the palette is reported (file, colour, pixel count) and gets no
output; JPEG-compressed masks are told apart ("looks JPEG-compressed") with the ``--tolerance`` that
would map them.  The run ends with per-class statistics (the numbers class weights are made from) and
exits with code 2 if any file was refused.  Without ``--classes`` (and ``--binary``) it lists the colours
of the masks instead, near-identical ones grouped, at most ``SURVEY_LINES`` lines, and writes every colour
to ``OUTPUT_DIR/colours.txt`` (converting runs write none: their palette is the classes file).
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from ..cli import log, run
from ..settings import ConvertLabelsConfig

SURVEY_LINES = 30  # colour groups printed by the survey; the full list goes to a file


def get_args_parser() -> argparse.ArgumentParser:
    return ConvertLabelsConfig.parser("Convert label images (index, palette, RGB colour or binary masks) to index "
                                      "PNGs.")


def _survey(config, paths: Sequence[str]) -> bool:
    """Print the colours of the RGB masks among ``paths`` (grouped); False if there are none."""
    import os

    from ..core.files import check_writable, write_text_atomic
    from ..data.convert import JPEG_NEAR, colour_survey, group_colours
    survey = colour_survey(paths, config.workers)
    if not survey:
        return False
    groups = group_colours(survey, JPEG_NEAR)
    total = sum(pixels for pixels, _ in survey.values())
    log(f"RGB colour masks need --classes FILE (one class per line: name R G B, background first). "
        f"Colours in the {len(paths):,} labels of {config.input} ({len(survey):,} distinct; those within "
        f"{JPEG_NEAR} of a more frequent one grouped under it):")
    log(f"  {'R':>3} {'G':>3} {'B':>3}  {'pixels':>14}  {'share':>7}  {'images':>8}  near colours")
    for group in groups[:SURVEY_LINES]:
        r, g, b = group.colour
        near = f"+{group.merged:,}" if group.merged else ""
        log(f"  {r:>3} {g:>3} {b:>3}  {group.pixels:>14,}  {100 * group.pixels / total:>6.2f}%  {group.images:>8,}  "
            f"{near}")
    # The full table is always written (the start of a classes file), whether or not the screen shows it all.
    path = os.path.join(config.output_dir, "colours.txt")
    check_writable(config.output_dir, "--output_dir")
    write_text_atomic(path, "# R G B pixels images\n" + "".join(
        f"{r} {g} {b} {pixels} {images}\n" for (r, g, b), (pixels, images) in survey.items()))
    rest = groups[SURVEY_LINES:]
    more = (f"... and {len(rest):,} more groups ({100 * sum(g.pixels for g in rest) / total:.2f}% of the pixels); "
            if rest else "")
    log(f"{more}every colour with its pixels and images: {path}")
    main = [g for g in groups if g.pixels >= 0.01 * total]
    if len(survey) >= 64 and len(survey) > 8 * len(main):
        near = 100 * sum(g.pixels for g in main) / total
        log(f"The masks look JPEG-compressed: {len(survey):,} colours, {near:.1f}% of the pixels in the groups of "
            f"{len(main)} main colours (1% of the pixels or more each). Save them as PNG, or write the main colours to "
            f"a classes file and pass --tolerance {JPEG_NEAR} (each pixel takes the nearest class colour within it, "
            f"the others --ignore_label).")
    log("Nothing converted. Write a classes file from these colours and run again with --classes.")
    return True


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = ConvertLabelsConfig.from_args(get_args_parser().parse_args(argv))
    import os

    from ..core.errors import DeepLabError
    from ..core.files import check_writable
    from ..core.text import counted
    from ..data.checks import report_problems
    from ..data.classes import ClassList, read_classes
    from ..data.colormap import VOC_COLORS
    from ..data.convert import convert_all, find_labels
    from ..data.images import read_label
    from ..data.inputs import not_images_phrase
    from ..data.statistics import label_statistics

    sources, problems, not_images = find_labels(config.input, config.data_dir)
    if config.classes:
        classes = read_classes(config.classes)
    elif config.binary:
        classes = ClassList(("background", "foreground"), VOC_COLORS, source="--binary")
    else:
        if _survey(config, [path for path, _ in sources]):
            return 0
        classes = read_classes(None)
    check_writable(config.output_dir, "--output_dir")
    done = convert_all(sources, config.output_dir, classes, config.num_classes, config.ignore_label, config.binary,
                       config.workers, tolerance=config.tolerance)
    problems = problems + done.problems
    names = classes.names_for(config.num_classes)
    if done.written:
        stats = label_statistics(done.written, config.num_classes, config.ignore_label, config.workers,
                                 read=read_label)
        print(f"Wrote {counted(len(done.written), 'index PNG')} to {config.output_dir}. Per class:")
        print(stats.table(names))
    if done.unmatched:
        worst = sorted(done.unmatched, key=lambda u: -u[1] / u[2])
        shown = ", ".join(f"{os.path.basename(p)} {n:,} ({100 * n / t:.2f}%)" for p, n, t in worst[:5])
        print(f"--tolerance {config.tolerance:g}: {sum(n for _, n, _ in done.unmatched):,} pixels of "
              f"{len(done.unmatched):,} masks were farther than {config.tolerance:g} from every class colour and became "
              f"{config.ignore_label}: {shown}{' ...' if len(worst) > 5 else ''}")
    if not_images:
        skipped = not_images_phrase(not_images)
        print(skipped[0].upper() + skipped[1:])
    if problems:
        def err(line):
            print(line, file=sys.stderr, flush=True)
        phrase = report_problems(problems, err, report_path=os.path.join(config.output_dir, "refused.txt"))
        jpeg = sum(p.kind == "looks JPEG-compressed" for p in problems)
        if jpeg:
            err(f"{jpeg:,} of {len(sources):,} masks look JPEG-compressed: save them as PNG, or pass --tolerance T "
                f"to map each pixel to the nearest palette colour within T (the others become the ignore label "
                f"{config.ignore_label}, counted per file)")
        raise DeepLabError(f"{len(problems):,} of {len(sources) + len(problems) - len(done.problems):,} label images "
                           f"were not converted ({phrase})")
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":  # python -m deeplab_lfov.cli.convert_labels
    entry()
