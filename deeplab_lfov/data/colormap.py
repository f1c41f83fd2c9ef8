"""PASCAL VOC class names and colour map; label maps to colour images, overlays with a legend, mask PNGs.

* ``save_mask`` writes a palette PNG (8-bit, the class colours as its palette) whenever the class ids fit
  in 0..255, and a 16-bit grayscale PNG for models of more classes: a class id is never wrapped.
* ``overlay`` blends the image with its classes' colours and draws the legend outside the image, in a
  strip below it: the classes present, largest share first, each with its colour and its share of the
  image, in a font that grows with the image (readable on a 160x120 thumbnail and on a 12 MP photo).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..core.constants import IGNORE_COLOR, IGNORE_LABEL, VOC_CLASSES
from ..core.errors import DeepLabError
from .images import count_values, save_png

__all__ = ["VOC_CLASSES", "VOC_COLORS", "IGNORE_COLOR", "palette", "colour_table", "decode_labels", "save_mask",
           "overlay", "legend_entries", "MAX_MASK_VALUE"]

MAX_MASK_VALUE = 65535  # the largest class id a mask PNG holds (16-bit)


def _voc_colors(indices: np.ndarray) -> np.ndarray:
    """The devkit's bit-interleaving colours of class indices (0 -> black, 1 -> (128, 0, 0), ...): (N, 3) uint8."""
    index = np.asarray(indices, np.int64).copy()
    rgb = np.zeros(index.shape + (3,), np.int64)
    for shift in range(7, -1, -1):
        for channel in range(3):
            rgb[..., channel] |= ((index >> channel) & 1) << shift
        index >>= 3
    return rgb.astype(np.uint8)


VOC_COLORS = _voc_colors(np.arange(256))
VOC_COLORS[IGNORE_LABEL] = IGNORE_COLOR


def palette() -> list:
    """The 768-entry palette of VOC's label PNGs (index 255, void, in cream)."""
    return VOC_COLORS.reshape(-1).tolist()


def colour_table(colors: Optional[np.ndarray], size: int) -> np.ndarray:
    """A (max(size, len(colors)), 3) uint8 table: ``colors`` (VOC's by default), extended past its end with
    VOC's bit-interleaved colours, so that class 280 has its own colour and not class 24's."""
    table = np.asarray(VOC_COLORS if colors is None else colors, np.uint8).reshape(-1, 3)
    if size <= len(table):
        return table
    return np.concatenate([table, _voc_colors(np.arange(len(table), size))])


def _checked_ids(labels: np.ndarray, what: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{what}: a label map is a 2-D array of class ids, got {labels.dtype} of shape {labels.shape}")
    return labels


def decode_labels(labels: np.ndarray, colors: Optional[np.ndarray] = None) -> np.ndarray:
    """Colour image (..., 3) uint8 of a label map: VOC colours (or ``colors``), 255 (ignore) in cream."""
    labels = np.asarray(labels)
    if labels.size and labels.min() < 0:
        raise ValueError(f"class ids are not negative, got {labels.min()}")
    return colour_table(colors, int(labels.max(initial=0)) + 1)[labels]


def legend_entries(labels: np.ndarray, names: Sequence[str],
                   ignore_label: int = IGNORE_LABEL) -> List[Tuple[int, str, float]]:
    """(class, name, share of the image) of the classes present in ``labels``, largest share first.

    ``ignore_label`` is left out when it is not one of the classes (``len(names)`` of them); a class past
    the end of ``names`` is named by its number.
    """
    counts = count_values(np.asarray(labels), minlength=1)
    total = max(int(counts.sum()), 1)
    present = [int(c) for c in np.nonzero(counts)[0] if not (c == ignore_label and c >= len(names))]
    present.sort(key=lambda c: (-counts[c], c))
    return [(c, names[c] if c < len(names) else str(c), counts[c] / total) for c in present]


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except (TypeError, AttributeError, OSError, ImportError):
        return ImageFont.load_default()


def _share(share: float) -> str:
    return "<0.1%" if share < 0.001 else f"{100 * share:.1f}%"


def _short(name: str, limit: int = 40) -> str:
    return name if len(name) <= limit else name[:limit - 3] + "..."


def _legend(entries: List[Tuple[int, str, float]], colors: np.ndarray, width: int, font_size: int,
            max_lines: int = 6) -> Image.Image:
    """The legend strip: swatch, name and share of each entry, flowing left to right over lines of ``width``
    pixels (at least one entry per line); entries past ``max_lines`` lines are summed up as "+N more"."""
    font = _font(font_size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    pad, swatch, gap = max(4, font_size // 2), max(8, round(font_size * 0.9)), max(6, font_size)
    line_height = max(swatch, font_size + font_size // 3) + max(3, font_size // 3)

    def item(name, share):
        return f"{_short(name)} {_share(share)}"

    def layout(items):
        lines, x = [[]], pad
        for c, text in items:
            w = swatch + font_size // 3 + int(measure.textlength(text, font=font)) + gap
            if lines[-1] and x + w - gap > width - pad:
                lines.append([])
                x = pad
            lines[-1].append((c, text, x))
            x += w
        return lines

    items = [(c, item(name, share)) for c, name, share in entries]
    lines = layout(items)
    shown = len(items)
    while len(lines) > max_lines and shown > 1:  # keep the largest classes, sum the rest up
        shown -= 1
        rest = entries[shown:]
        lines = layout(items[:shown] + [(None, f"+{len(rest)} more {_share(sum(s for _, _, s in rest))}")])
    strip = Image.new("RGB", (width, 2 * pad + len(lines) * line_height - max(3, font_size // 3)), (24, 24, 24))
    draw = ImageDraw.Draw(strip)
    for row, line in enumerate(lines):
        top = pad + row * line_height
        for c, text, x in line:
            if c is not None:
                fill = tuple(int(v) for v in colors[c])
                draw.rectangle([x, top, x + swatch - 1, top + swatch - 1], fill=fill, outline=(200, 200, 200))
            tx = x + (swatch + font_size // 3 if c is not None else 0)
            draw.text((tx, top + swatch / 2), text, fill=(255, 255, 255), font=font, anchor="lm")
    return strip


def overlay(rgb: np.ndarray, labels: np.ndarray, names: Sequence[str], colors: Optional[np.ndarray] = None,
            alpha: float = 0.5, legend: bool = True, ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """The image blended with its classes' colours, with a legend strip below it (outside the image).

    Background (class 0) and ignored pixels keep the image as it is, so objects stand out.  The legend
    lists the classes present, largest share of the image first, each with its colour swatch; its font
    grows with the image (about 1/64 of the longer side, at least 11 px).  The result is as wide as the
    image (wider only if one legend entry does not fit) and taller by the strip; the image is its top-left
    ``H x W`` block.  ``legend=False``: the blended image alone.
    """
    labels = np.asarray(labels)
    height, width = labels.shape
    table = colour_table(colors, int(labels.max(initial=0)) + 1)
    blended = np.empty((height, width, 3), np.uint8)
    for start in range(0, height, 512):  # row blocks: a 12 MP photo never needs its float copy at once
        block = slice(start, min(start + 512, height))
        lab, img = labels[block], rgb[block]
        tinted = (1 - alpha) * img.astype(np.float32) + alpha * table[lab].astype(np.float32)
        keep = (lab == 0) | ((lab == ignore_label) & (ignore_label >= len(names)))
        blended[block] = np.where(keep[..., None], img, np.clip(tinted, 0, 255).astype(np.uint8))
    entries = legend_entries(labels, names, ignore_label)
    if not legend or not entries:
        return blended
    font_size = max(11, round(max(height, width) / 64))
    strip = _legend(entries, table, width, font_size)
    if strip.width < width:
        strip = strip.crop((0, 0, width, strip.height))
    canvas = np.full((height + strip.height, max(width, strip.width), 3), 24, np.uint8)
    canvas[:height, :width] = blended
    canvas[height:, :strip.width] = np.asarray(strip)
    return canvas


def save_mask(path: str, labels: np.ndarray, colors: Optional[np.ndarray] = None) -> None:
    """Write a label map as a mask PNG: a palette PNG (index values kept; VOC colours, or ``colors``, for
    viewing) when every class id is in 0..255, else a 16-bit grayscale PNG of the class ids (models of more
    than 255 classes).  A class id is never wrapped: ids outside 0..65535 are refused.

    Written atomically (``images.save_png``), so an interrupted run leaves no partial PNG.
    """
    labels = _checked_ids(labels, path)
    low, high = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    if low < 0 or high > MAX_MASK_VALUE:
        bad = low if low < 0 else high
        raise DeepLabError(f"{path}: class ids outside 0..{MAX_MASK_VALUE} ({bad}): a mask PNG holds 8-bit or 16-bit "
                           f"class ids", "class ids out of range")
    if high > 255:
        save_png(path, Image.fromarray(labels.astype(np.uint16)))
        return
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(palette() if colors is None else colour_table(colors, 256)[:256].reshape(-1).tolist())
    save_png(path, image)
