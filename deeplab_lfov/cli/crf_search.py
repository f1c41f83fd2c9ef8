"""``util/crf_search.py``: grid-search the dense CRF's parameters on a subset of a list, as the paper did.

    python util/crf_search.py --data_dir /home/VOCdevkit --restore_from ./snapshots/ --num_images 100

The network runs once per image; its probabilities are kept in memory (num_images of them) and
every CRF setting is scored on them.  Defaults are the paper's grid: bilateral weight 3..6,
bilateral xy std 30..100, bilateral rgb std 3..6 (Gaussian kernel fixed at w 3, xy std 3).
"""

from __future__ import annotations

import argparse
import itertools
from typing import Optional, Sequence

from ..settings import CRFSearchConfig
from . import log, run


def get_args_parser() -> argparse.ArgumentParser:
    return CRFSearchConfig.parser("Grid-search the dense CRF's parameters on a subset of a list.")


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = CRFSearchConfig.from_args(get_args_parser().parse_args(argv))
    import numpy as np

    from ..checks import check_data_dir
    from ..crf import CRFParams, make_crf
    from ..image_reader import load_pair, read_list
    from ..metrics import confusion_matrix, scores
    from ..predict import Predictor
    from ..weights import build_model, load_weights

    make_crf(CRFParams(), config.crf_backend)  # fail at once without the backend's package
    entries = read_list(config.data_dir, config.data_list, config.label_dir)[:config.num_images]
    check_data_dir(config.data_dir, entries)
    predictor = Predictor(build_model(load_weights(config.restore_from), config.num_classes,
                                      source=config.restore_from))
    n, ignore = config.num_classes, config.ignore_label
    cached = []
    plain = np.zeros((n, n), np.int64)
    for entry in entries:
        rgb, label = load_pair(entry, n, ignore)
        probs = predictor.probabilities(rgb)
        plain += confusion_matrix(label, probs.argmax(-1), n, ignore)
        cached.append((rgb, probs.astype(np.float16), label))
    log(f"Without CRF: mean IoU {scores(plain)['mean_iou']:.4f} on {len(entries)} images")
    best = None
    for bi_w, bi_xy, bi_rgb in itertools.product(config.bi_w, config.bi_xy_std, config.bi_rgb_std):
        crf = make_crf(CRFParams(bi_w=bi_w, bi_xy_std=bi_xy, bi_rgb_std=bi_rgb, pos_w=config.pos_w,
                                 pos_xy_std=config.pos_xy_std, iterations=config.crf_iterations), config.crf_backend)
        confusion = np.zeros_like(plain)
        for rgb, probs, label in cached:
            confusion += confusion_matrix(label, crf(rgb, probs.astype(np.float32)).argmax(-1), n, ignore)
        miou = scores(confusion)["mean_iou"]
        log(f"bi_w {bi_w:g}  bi_xy_std {bi_xy:g}  bi_rgb_std {bi_rgb:g}  mean IoU {miou:.4f}")
        if best is None or miou > best[0]:
            best = (miou, bi_w, bi_xy, bi_rgb)
    miou, bi_w, bi_xy, bi_rgb = best
    log(f"Best: --bi_w {bi_w:g} --bi_xy_std {bi_xy:g} --bi_rgb_std {bi_rgb:g} "
        f"--pos_w {config.pos_w:g} --pos_xy_std {config.pos_xy_std:g}  (mean IoU {miou:.4f})")
    return 0


def entry() -> None:
    run(main)
