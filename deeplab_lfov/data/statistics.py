"""Per-class label statistics, and the class weights made from them.

``LabelStats`` counts, over a set of label maps, the pixels of each class, the images containing
each class, and the ignored pixels: what ``util/convert_labels.py`` reports and what
``--class_weights balanced`` is computed from.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from typing import Callable, Iterable, List, Optional, Sequence

import numpy as np

from ..core.constants import IGNORE_LABEL
from ..core.errors import DeepLabError

__all__ = ["LabelStats", "label_statistics", "median_frequency_weights", "read_class_weights", "MAX_CLASS_WEIGHT"]

MAX_CLASS_WEIGHT = 1e6  # a class counted a million times over: beyond it the loss is one class's alone
_MAX_WEIGHTS_FILE_BYTES = 1 << 20


@dataclasses.dataclass
class LabelStats:
    """Counts over label maps of ``num_classes`` classes."""

    num_classes: int
    ignore_label: int = IGNORE_LABEL
    pixels: np.ndarray = None  # (C,) pixels of each class
    images: np.ndarray = None  # (C,) images containing each class
    image_pixels: np.ndarray = None  # (C,) valid pixels of the images containing each class
    ignored: int = 0
    total: int = 0
    count: int = 0

    def __post_init__(self):
        for name in ("pixels", "images", "image_pixels"):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(self.num_classes, np.int64))

    def add(self, label: np.ndarray) -> None:
        from .images import count_values
        counts = count_values(label)
        ignored = int(counts[self.ignore_label])
        per_class = counts[:self.num_classes]
        present = per_class > 0
        self.pixels += per_class
        self.images += present
        self.image_pixels += present * (label.size - ignored)
        self.ignored += ignored
        self.total += label.size
        self.count += 1

    def merge(self, other: LabelStats) -> None:
        self.pixels += other.pixels
        self.images += other.images
        self.image_pixels += other.image_pixels
        self.ignored += other.ignored
        self.total += other.total
        self.count += other.count

    def table(self, names: Sequence[str]) -> str:
        """Pixels, share of labelled pixels and images per class, then the ignored share."""
        width = max(len(n) for n in names)
        labelled = max(int(self.pixels.sum()), 1)
        lines = [f"  {'class':<{width}}  {'pixels':>14}  {'share':>7}  {'images':>8}"]
        for name, pixels, images in zip(names, self.pixels, self.images):
            lines.append(f"  {name:<{width}}  {int(pixels):>14,}  {100 * pixels / labelled:>6.2f}%  {int(images):>8,}")
        lines.append(f"Ignored pixels ({self.ignore_label}): {self.ignored:,} of {self.total:,} "
                     f"({100 * self.ignored / max(self.total, 1):.2f}%) in {self.count:,} label images")
        return "\n".join(lines)


def label_statistics(labels: Iterable[str], num_classes: int, ignore_label: int = IGNORE_LABEL,
                     workers: Optional[int] = None, read: Optional[Callable[[str], np.ndarray]] = None) -> LabelStats:
    """Statistics of the label files ``labels`` (decoded in parallel)."""
    from .images import read_label
    read = read or read_label
    stats = LabelStats(num_classes, ignore_label)
    with concurrent.futures.ThreadPoolExecutor(workers or min(32, (os.cpu_count() or 1) * 2)) as pool:
        for label in pool.map(read, labels, chunksize=16):
            stats.add(label)
    return stats


def median_frequency_weights(stats: LabelStats) -> List[float]:
    """Median-frequency balancing (Eigen & Fergus, 2015): ``w_c = median(f) / f_c``, where ``f_c`` is the
    pixels of class c over the (non-ignored) pixels of the images that contain c.  A class absent from
    every label gets weight 0 (it never reaches the loss anyway)."""
    present = stats.pixels > 0
    if not present.any():
        raise DeepLabError("--class_weights balanced: the training labels hold no labelled pixel")
    freq = np.where(present, stats.pixels / np.maximum(stats.image_pixels, 1), 0.0)
    median = float(np.median(freq[present]))
    return [float(median / f) if f > 0 else 0.0 for f in freq]


def read_class_weights(path: str, names: Sequence[str]) -> List[float]:
    """One weight per class from a file: lines ``weight`` or ``name weight``, in class order.

    The file is UTF-8 text (errors name the byte offset of the first byte that is not); every weight is a
    finite number in (0, ``MAX_CLASS_WEIGHT``].
    """
    from .reading import read_text
    text = read_text(path, "class weights file", _MAX_WEIGHTS_FILE_BYTES)
    lines = [(n, line.split()) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    weights = []
    for number, fields in lines:
        shown = " ".join(fields)
        shown = repr(shown if len(shown) <= 80 else shown[:80] + " ...")
        try:
            value = float(fields[-1])
        except ValueError:
            raise DeepLabError(f"{path}:{number}: expected 'weight' or 'name weight', got {shown}") from None
        if len(fields) > 2:
            raise DeepLabError(f"{path}:{number}: expected 'weight' or 'name weight', got {shown}")
        if not (0 < value <= MAX_CLASS_WEIGHT):  # also false for NaN
            raise DeepLabError(f"{path}:{number}: class weight {fields[-1][:40]!r} must be a number in "
                               f"(0, {MAX_CLASS_WEIGHT:g}]")
        if len(fields) == 2 and len(weights) < len(names) and fields[0] != names[len(weights)]:
            raise DeepLabError(f"{path}:{number}: class {fields[0][:100]!r} where {names[len(weights)]!r} was "
                               f"expected")
        weights.append(value)
    if len(weights) != len(names):
        raise DeepLabError(f"{path}: {len(weights)} class weights for {len(names)} classes")
    return weights
