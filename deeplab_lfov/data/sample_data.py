"""Synthetic segmentation data in the PASCAL VOC layout: the demo's sample set and the tests' datasets.

Each image is a textured background with one to three objects of four VOC classes (aeroplane,
cat, dog, person), each class with its own colour and texture, so that a small net learns
them in minutes on a CPU.  Labels are VOC palette PNGs with a 255 (void) border around each
object, like VOC's own.  Output is deterministic for a given seed; list files use the classic
format (``/JPEGImages/x.jpg /SegmentationClassAug/x.png``).
"""

from __future__ import annotations

import os
from typing import List, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..core.constants import IGNORE_LABEL
from .colormap import palette

__all__ = ["CLASSES", "make_pair", "write_pairs", "write_sample_dataset"]

CLASSES = {1: (150, 160, 175), 8: (215, 130, 50), 12: (110, 70, 40), 15: (230, 180, 160)}
HEIGHT, WIDTH = 120, 160


def make_pair(rng: np.random.RandomState):
    """One (RGB image, label map) pair."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = np.array([60, 120, 60]) + rng.randint(-30, 30, size=3)
    image = base + 40 * np.sin(xx[..., None] / rng.uniform(6, 14)) * np.array([0.3, 0.6, 0.2])
    image = image + rng.normal(0, 12, size=(HEIGHT, WIDTH, 3))
    label = np.zeros((HEIGHT, WIDTH), np.uint8)
    for _ in range(rng.randint(1, 4)):
        cls = int(rng.choice(list(CLASSES)))
        mask_img = Image.new("L", (WIDTH, HEIGHT), 0)
        draw = ImageDraw.Draw(mask_img)
        cx, cy = rng.randint(20, WIDTH - 20), rng.randint(20, HEIGHT - 20)
        rx, ry = rng.randint(12, 40), rng.randint(12, 35)
        shape = rng.randint(3)
        if shape == 0:
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
        elif shape == 1:
            draw.rectangle([cx - rx, cy - ry, cx + rx, cy + ry], fill=255)
        else:
            draw.polygon([(cx, cy - ry), (cx - rx, cy + ry), (cx + rx, cy + ry)], fill=255)
        inside = np.asarray(mask_img) > 0
        ring = np.asarray(mask_img.filter(ImageFilter.MaxFilter(5))) > 0
        colour = np.array(CLASSES[cls]) + rng.randint(-15, 15, size=3)
        texture = 18 * np.sin((xx + yy)[..., None] / (2.0 + cls % 5)) if cls in (8, 12) else 0
        image = np.where(inside[..., None], colour + texture + rng.normal(0, 10, (HEIGHT, WIDTH, 3)), image)
        label[ring & ~inside] = IGNORE_LABEL
        label[inside] = cls
    return np.clip(image, 0, 255).astype(np.uint8), label


def write_pairs(root: str, names: Sequence[str], rng: np.random.RandomState, quality: int = 90) -> List[str]:
    """Write ``JPEGImages/NAME.jpg`` and ``SegmentationClassAug/NAME.png`` for each name; the list lines."""
    os.makedirs(os.path.join(root, "JPEGImages"), exist_ok=True)
    os.makedirs(os.path.join(root, "SegmentationClassAug"), exist_ok=True)
    lines = []
    for name in names:
        image, label = make_pair(rng)
        Image.fromarray(image).save(os.path.join(root, "JPEGImages", name + ".jpg"), quality=quality)
        png = Image.fromarray(label, mode="P")
        png.putpalette(palette())
        png.save(os.path.join(root, "SegmentationClassAug", name + ".png"))
        lines.append(f"/JPEGImages/{name}.jpg /SegmentationClassAug/{name}.png\n")
    return lines


def write_sample_dataset(out: str, num_train: int = 32, num_val: int = 8, seed: int = 2016) -> None:
    """The bundled sample set: ``train.txt`` and ``val.txt`` with their images and labels under ``out``."""
    rng = np.random.RandomState(seed)
    names = [f"sample_{i:03d}" for i in range(num_train + num_val)]
    lines = write_pairs(out, names, rng)
    for split, chosen in (("train.txt", lines[:num_train]), ("val.txt", lines[num_train:])):
        with open(os.path.join(out, split), "w") as f:
            f.writelines(chosen)
