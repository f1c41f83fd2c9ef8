"""Hard labels (pseudo labels) as the CRF's unary, with the classes absent from the label map in one channel.

A pseudo label says ``gt_prob`` for its class and spreads the rest evenly over the other classes;
an ignored pixel is flat.  So every class that no pixel is labelled with has the same unary at
every pixel, and mean-field inference with Potts compatibility treats classes alike: those classes
stay equal through every iteration.  The CRF is therefore run on the present classes plus one
shared channel that stands for all the absent ones (a VOC pseudo label has 2-3 classes of 21: 4
channels instead of 21), and the result is the full CRF's, not an approximation:

* the shared channel carries one absent class's probability; its *multiplicity* m (how many classes
  it stands for) enters the normalisation, ``q_c = exp(a_c) / (sum_present exp(a) + m exp(a_shared))``;
* its message is the filter of that one class's probability, as for any class.

Both backends take ``multiplicity`` (``crf.tf_crf.dense_crf`` and ``crf.dense.DenseCRF``).  The
channels are kept in the order of the first class each stands for, so the argmax over channels
breaks ties as the argmax over all classes does.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from ..data.images import check_label_values

__all__ = ["unary_from_labels", "reduce_label_unary", "ReducedUnary", "TIE"]

# Relative difference below which the shared channel and a present class are a tie (float rounding).
TIE = 1e-6


def unary_from_labels(labels: np.ndarray, num_classes: int, gt_prob: float, ignore_label: int) -> np.ndarray:
    """(H, W, C) probabilities of hard labels: ``gt_prob`` on the label, the rest spread; flat where ignored
    (the reduced unary with its shared channel repeated for every absent class)."""
    unary = reduce_label_unary(labels, num_classes, gt_prob, ignore_label)
    return unary.expand(unary.probs)


@dataclasses.dataclass(frozen=True)
class ReducedUnary:
    """The unary of a label map on its present classes and one channel for the absent ones.

    ``probs`` (H, W, K): each channel's per-class probability; ``classes`` (K,): the first class each
    channel stands for, ascending; ``multiplicity`` (K,): how many classes each stands for (1, but
    ``num_classes - present`` for the shared channel); ``shared``: the shared channel's index, or None
    when every class is present.
    """

    probs: np.ndarray
    classes: np.ndarray
    multiplicity: np.ndarray
    shared: Optional[int]
    num_classes: int

    def labels(self, q: np.ndarray) -> np.ndarray:
        """(H, W) labels over all classes from the CRF's (H, W, K) per-class probabilities.

        As the full CRF's argmax in exact arithmetic: the first class of the largest.  Where the CRF
        has no information (unsure pixels out of the labels' reach) the shared channel and the best
        present class tie but for rounding (pydensecrf's shared channel holds m q, then divided by m);
        within ``TIE`` of each other they are a tie, which the smaller class wins.
        """
        dtype = np.uint8 if self.num_classes <= 256 else np.uint16
        if self.shared is None or len(self.classes) == 1:
            return self.classes[np.argmax(q, axis=-1)].astype(dtype)
        present = np.delete(q, self.shared, axis=-1)
        present_classes = np.delete(self.classes, self.shared)
        top = np.argmax(present, axis=-1)
        top_q = np.take_along_axis(present, top[..., None], axis=-1)[..., 0]
        shared_q = q[..., self.shared]
        tie = np.abs(shared_q - top_q) <= TIE * np.maximum(shared_q, top_q)
        shared_wins = np.where(tie, self.classes[self.shared] < present_classes[top], shared_q > top_q)
        return np.where(shared_wins, self.classes[self.shared], present_classes[top]).astype(dtype)

    def expand(self, q: np.ndarray) -> np.ndarray:
        """(H, W, num_classes) probabilities: the shared channel's value for every absent class."""
        full_to_channel = np.full(self.num_classes, -1 if self.shared is None else self.shared, np.int64)
        full_to_channel[self.classes[self.multiplicity == 1]] = np.nonzero(self.multiplicity == 1)[0]
        return q[..., full_to_channel]


def reduce_label_unary(labels: np.ndarray, num_classes: int, gt_prob: float, ignore_label: int,
                       path: str = "label map") -> ReducedUnary:
    """The unary of ``unary_from_labels`` on the present classes plus one shared channel (see the module);
    values other than the classes and ``ignore_label`` are refused, naming ``path``."""
    check_label_values(labels, num_classes, ignore_label, path)
    valid = labels < num_classes
    present = np.unique(labels[valid]).astype(np.int64)
    absent = np.setdiff1d(np.arange(num_classes), present)
    classes = np.sort(np.concatenate([present, absent[:1]]))
    multiplicity = np.ones(len(classes), np.float32)
    shared = None
    if len(absent):
        shared = int(np.searchsorted(classes, absent[0]))
        multiplicity[shared] = len(absent)
    probs = np.full(labels.shape + (len(classes),), (1.0 - gt_prob) / max(num_classes - 1, 1), np.float32)
    rows, cols = np.nonzero(valid)
    probs[rows, cols, np.searchsorted(classes, labels[valid])] = gt_prob
    probs[~valid] = 1.0 / num_classes
    return ReducedUnary(probs, classes, multiplicity, shared, num_classes)
