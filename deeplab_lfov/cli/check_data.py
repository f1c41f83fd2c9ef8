"""``util/check_data.py`` / ``deeplab-lfov-check-data``: check a segmentation list before training.

    python util/check_data.py --data_dir /home/VOCdevkit --data_list dataset/train.txt

Every file exists and decodes, sizes match, label values are valid and labels are index PNGs,
not colour images.  Every problem is reported (the first 20 on the terminal, all in a file).
"""

from __future__ import annotations

import argparse
import time
from typing import Optional, Sequence

from ..cli import run
from ..settings import CheckDataConfig


def get_args_parser() -> argparse.ArgumentParser:
    return CheckDataConfig.parser("Check a segmentation list: every problem, with its list line, in one pass.")


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = CheckDataConfig.from_args(get_args_parser().parse_args(argv))
    config.require_default_files("data_list")
    config.require_dirs("label_dir")
    from ..core.progress import Progress
    from ..core.text import every
    from ..data.checks import check_data_dir, check_entries, default_report_path, raise_for_problems
    from ..data.reader import read_list
    entries = read_list(config.data_dir, config.data_list, config.label_dir)
    check_data_dir(config.data_dir, entries)
    started = time.time()
    bar = Progress(len(entries), "checked")
    problems = check_entries(entries, config.num_classes, config.ignore_label, workers=config.workers,
                             progress=lambda done, total: bar.update(done - bar.done))
    bar.close()
    raise_for_problems(problems, len(entries), f"entries of {config.data_list} are unusable",
                       default_report_path(config.data_list))
    usable = every(len(entries), "entry", "entries").capitalize()
    print(f"{usable} of {config.data_list} {'is' if len(entries) == 1 else 'are'} usable "
          f"({time.time() - started:.1f} s).")
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":  # python -m deeplab_lfov.cli.check_data
    entry()
