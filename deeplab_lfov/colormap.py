"""PASCAL VOC class names and colour map; label maps to colour images and palette PNGs."""

from __future__ import annotations

import numpy as np
from PIL import Image

from .images import save_png
from .settings import IGNORE_LABEL

__all__ = ["VOC_CLASSES", "VOC_COLORS", "IGNORE_COLOR", "palette", "decode_labels", "save_mask"]

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


def _voc_color(index: int):
    """The devkit's bit-interleaving colour of a class index (0 -> black, 1 -> (128, 0, 0), ...)."""
    r = g = b = 0
    for shift in range(7, -1, -1):
        r |= ((index >> 0) & 1) << shift
        g |= ((index >> 1) & 1) << shift
        b |= ((index >> 2) & 1) << shift
        index >>= 3
    return r, g, b


VOC_COLORS = np.array([_voc_color(i) for i in range(256)], dtype=np.uint8)
IGNORE_COLOR = (224, 224, 192)
VOC_COLORS[IGNORE_LABEL] = IGNORE_COLOR


def palette() -> list:
    """The 768-entry palette of VOC's label PNGs (index 255, void, in cream)."""
    return VOC_COLORS.reshape(-1).tolist()


def decode_labels(labels: np.ndarray) -> np.ndarray:
    """Colour image (..., 3) uint8 of a label map: VOC colours, 255 (ignore) in cream."""
    return VOC_COLORS[np.asarray(labels, dtype=np.int64) & 0xFF]


def save_mask(path: str, labels: np.ndarray) -> None:
    """Write a label map as a VOC palette PNG (index values kept, colours for viewing).

    Written atomically (``images.save_png``), so an interrupted run leaves no partial PNG.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.min(initial=0) < 0 or labels.max(initial=0) > 255:
        raise ValueError(f"a label map is 2-D with values 0..255, got shape {labels.shape}")
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(palette())
    save_png(path, image)
