"""``util/crf_search.py``: grid-search the dense CRF's parameters on a subset of a list, as the paper did.

    python util/crf_search.py --data_dir /home/VOCdevkit --restore_from ./snapshots/ --num_images 100

The network runs once per image and every CRF setting is scored on its kept probabilities
(``evaluation.crf_search``).  Defaults are the paper's grid: bilateral weight 3..6, bilateral xy std
30..100, bilateral rgb std 3..6 (Gaussian kernel fixed at w 3, xy std 3).
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from ..cli import log, run
from ..settings import CRFSearchConfig


def get_args_parser() -> argparse.ArgumentParser:
    return CRFSearchConfig.parser("Grid-search the dense CRF's parameters on a subset of a list.")


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = CRFSearchConfig.from_args(get_args_parser().parse_args(argv))
    config.require_default_files("data_list")
    config.require_dirs("label_dir")
    from ..data.checks import check_data_dir
    from ..data.reader import read_list
    from ..evaluation.crf_search import crf_grid_search
    from ..evaluation.predict import Predictor
    from ..model.weights import load_model

    entries = read_list(config.data_dir, config.data_list, config.label_dir)[:config.num_images]
    check_data_dir(config.data_dir, entries)
    predictor = Predictor(load_model(config.restore_from, config.num_classes, model=config.model, msc=config.msc))
    result = crf_grid_search(predictor, entries, num_classes=config.num_classes, ignore_label=config.ignore_label,
                             bi_w=config.bi_w, bi_xy_std=config.bi_xy_std, bi_rgb_std=config.bi_rgb_std,
                             pos_w=config.pos_w, pos_xy_std=config.pos_xy_std, iterations=config.crf_iterations,
                             backend=config.crf_backend, log=log)
    best, miou = result.best
    log(f"Best: --bi_w {best.bi_w:g} --bi_xy_std {best.bi_xy_std:g} --bi_rgb_std {best.bi_rgb_std:g} "
        f"--pos_w {best.pos_w:g} --pos_xy_std {best.pos_xy_std:g} --crf_iterations {best.iterations}  "
        f"(mean IoU {miou:.4f})")
    if miou < result.plain_miou:
        log(f"No setting of this grid beats the net without the CRF (mean IoU {result.plain_miou:.4f}): "
            f"evaluate without --crf, or widen the grid")
    return 0


def entry() -> None:
    run(main)


if __name__ == "__main__":  # python -m deeplab_lfov.cli.crf_search
    entry()
