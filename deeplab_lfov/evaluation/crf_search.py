"""Grid search of the dense CRF's parameters on a subset of a list, as the DeepLab paper chose them.

The network runs once per image; its probabilities are kept (as float16, ``len(entries)`` of them)
and every CRF setting of the grid is scored on them through one confusion matrix per setting.  With
the TF backend the bilateral weights of one (bi_xy_std, bi_rgb_std) pair share each image's lattice
(``TFDenseCRF.for_bi_weights``: the same labels as each setting alone but for rounding, about a fifth
less time for four weights).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from ..core.text import counted
from ..crf.dense import make_crf
from ..crf.params import CRFParams
from ..data.reader import Entry, load_pair
from .metrics import confusion_matrix, scores
from .predict import Predictor

__all__ = ["SearchResult", "crf_grid_search"]


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """The mean IoU without the CRF, and every setting tried with its mean IoU (best first)."""

    plain_miou: float
    tried: Tuple[Tuple[CRFParams, float], ...]

    @property
    def best(self) -> Tuple[CRFParams, float]:
        return self.tried[0]


def crf_grid_search(predictor: Predictor, entries: Sequence[Entry], *, num_classes: int, ignore_label: int,
                    bi_w: Sequence[float], bi_xy_std: Sequence[float], bi_rgb_std: Sequence[float],
                    pos_w: float = 3.0, pos_xy_std: float = 3.0, iterations: int = 10, backend: str = "tf",
                    log: Optional[Callable[[str], None]] = None) -> SearchResult:
    """Score every (bi_w, bi_xy_std, bi_rgb_std) of the grid on ``entries``; ``log`` gets a line per setting."""
    log = log or (lambda line: None)
    cached = []
    plain = np.zeros((num_classes, num_classes), np.int64)
    for entry in entries:
        rgb, label = load_pair(entry, num_classes, ignore_label)
        probs = predictor.probabilities(rgb)
        plain += confusion_matrix(label, probs.argmax(-1), num_classes, ignore_label)
        cached.append((rgb, probs.astype(np.float16), label))
    plain_miou = scores(plain)["mean_iou"]
    log(f"Without CRF: mean IoU {plain_miou:.4f} on {counted(len(entries), 'image')}")
    # The TF backend runs every bi_w of a (bi_xy_std, bi_rgb_std) pair on one lattice per image
    # (TFDenseCRF.for_bi_weights); pydensecrf runs each setting on its own.
    weights = tuple(bi_w) if backend == "tf" else None
    tried_of = {}  # (bi_w, bi_xy_std, bi_rgb_std) -> (params, mean IoU)
    for xy, rgb_std in itertools.product(bi_xy_std, bi_rgb_std):
        group = [CRFParams(bi_w=w, bi_xy_std=xy, bi_rgb_std=rgb_std, pos_w=pos_w, pos_xy_std=pos_xy_std,
                           iterations=iterations) for w in bi_w]
        confusions = [np.zeros_like(plain) for _ in group]
        crfs = [make_crf(group[0], backend)] if weights else [make_crf(params, backend) for params in group]
        for rgb, probs, label in cached:
            probs = probs.astype(np.float32)
            refined = crfs[0].for_bi_weights(rgb, probs, weights) if weights else [crf(rgb, probs) for crf in crfs]
            for confusion, q in zip(confusions, refined):
                confusion += confusion_matrix(label, q.argmax(-1), num_classes, ignore_label)
        for params, confusion in zip(group, confusions):
            miou = scores(confusion)["mean_iou"]
            tried_of[params.bi_w, xy, rgb_std] = (params, miou)
            log(f"bi_w {params.bi_w:g}  bi_xy_std {xy:g}  bi_rgb_std {rgb_std:g}  mean IoU {miou:.4f}")
    tried = [tried_of[setting] for setting in itertools.product(bi_w, bi_xy_std, bi_rgb_std)]  # the grid's order
    tried.sort(key=lambda t: -t[1])  # stable: the first of equal settings stays first
    return SearchResult(plain_miou, tuple(tried))
