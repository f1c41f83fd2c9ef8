"""PASCAL VOC class names and colour map; label maps to colour images and palette PNGs."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..core.constants import IGNORE_LABEL
from .images import save_png

__all__ = ["VOC_CLASSES", "VOC_COLORS", "IGNORE_COLOR", "palette", "decode_labels", "save_mask", "overlay"]

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


def decode_labels(labels: np.ndarray, colors: Optional[np.ndarray] = None) -> np.ndarray:
    """Colour image (..., 3) uint8 of a label map: VOC colours (or ``colors``), 255 (ignore) in cream."""
    return (VOC_COLORS if colors is None else colors)[np.asarray(labels, dtype=np.int64) & 0xFF]


def overlay(rgb: np.ndarray, labels: np.ndarray, names: Sequence[str], colors: Optional[np.ndarray] = None,
            alpha: float = 0.5) -> np.ndarray:
    """The image blended with its classes' colours, with a legend of the classes present (top left).

    Background (class 0) and ignored pixels keep the image as it is, so objects stand out.
    """
    colors = VOC_COLORS if colors is None else colors
    labels = np.asarray(labels)
    tinted = (1 - alpha) * rgb.astype(np.float32) + alpha * colors[labels & 0xFF].astype(np.float32)
    keep = (labels == 0) | (labels == IGNORE_LABEL)
    out = Image.fromarray(np.where(keep[..., None], rgb, np.clip(tinted, 0, 255)).astype(np.uint8))
    present = [int(c) for c in np.unique(labels) if c != IGNORE_LABEL and c < len(names)]
    if present:
        draw = ImageDraw.Draw(out)
        font = ImageFont.load_default()
        line = 12
        width = 18 + max(int(draw.textlength(names[c], font=font)) for c in present)
        draw.rectangle([0, 0, width + 4, 4 + line * len(present)], fill=(0, 0, 0))
        for row, c in enumerate(present):
            top = 3 + row * line
            draw.rectangle([3, top, 12, top + 9], fill=tuple(int(v) for v in colors[c]), outline=(255, 255, 255))
            draw.text((16, top - 1), names[c], fill=(255, 255, 255), font=font)
    return np.asarray(out)


def save_mask(path: str, labels: np.ndarray, colors: Optional[np.ndarray] = None) -> None:
    """Write a label map as a palette PNG (index values kept; VOC colours, or ``colors``, for viewing).

    Written atomically (``images.save_png``), so an interrupted run leaves no partial PNG.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.min(initial=0) < 0 or labels.max(initial=0) > 255:
        raise ValueError(f"a label map is 2-D with values 0..255, got shape {labels.shape}")
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(palette() if colors is None else np.asarray(colors, np.uint8).reshape(-1).tolist())
    save_png(path, image)
