"""``util/crf_refine.py``: refine a folder of labels (pseudo labels) or probabilities with the dense CRF.

    python util/crf_refine.py pseudo_labels/ --image_dir VOC2012/JPEGImages --output_dir pseudo_crf/
    python util/crf_refine.py output/probs/ --image_dir photos/ --output_dir refined/

Parallel over the CPU cores, resumable with ``--skip_existing``; a file that fails is reported and
counted, the rest is refined, and the run exits with code 2 if any failed.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Optional, Sequence

from ..cli import log, run
from ..settings import CRFRefineConfig


def get_args_parser() -> argparse.ArgumentParser:
    return CRFRefineConfig.parser("Refine label PNGs or probabilities with the dense CRF, image by image.")


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = CRFRefineConfig.from_args(get_args_parser().parse_args(argv))
    config.require_dirs("input_dir", "image_dir")
    from ..core.files import check_writable
    from ..core.text import every
    from ..crf.refine import refine_all, refine_sources
    from ..data.checks import raise_for_problems

    sources = refine_sources(config.input_dir, config.image_dir, config.output_dir)
    todo = [s for s in sources if not (config.skip_existing and os.path.exists(s[2]))]
    skipped = len(sources) - len(todo)
    if not todo:
        log(f"Nothing to do: {every(skipped, 'output')} "
            f"{'exists' if skipped == 1 else 'exist'} in {config.output_dir}")
        return 0
    check_writable(config.output_dir, "--output_dir")
    started = time.time()
    problems = refine_all(todo, config.crf_params(), config.num_classes, config.gt_prob, config.ignore_label,
                          config.class_list.colors, config.workers or os.cpu_count() or 1, config.crf_backend)
    seconds = time.time() - started
    done = len(todo) - len(problems)
    log(f"Refined {done:,} of {len(sources):,} in {seconds:.1f} s ({done / max(seconds, 1e-9):.2f} images/s); "
        f"{len(problems):,} failed, {skipped:,} skipped (outputs exist); labels in {config.output_dir}")
    raise_for_problems(problems, len(todo), "inputs failed", os.path.join(config.output_dir, "failed.txt"))
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":  # python -m deeplab_lfov.cli.crf_refine
    entry()
