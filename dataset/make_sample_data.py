#!/usr/bin/env python
"""Make the bundled sample dataset: a few dozen synthetic images in the PASCAL VOC layout.

    python dataset/make_sample_data.py [--out dataset/sample] [--num_train 32 --num_val 8]

Each image is a textured background with one to three objects of four VOC classes (aeroplane,
cat, dog, person), each class with its own colour and texture, so that a small net learns
them in minutes on a CPU.  Labels are VOC palette PNGs with a 255 (void) border around each
object, like VOC's own.  Output is deterministic for a given seed; list files use the classic
format (``/JPEGImages/x.jpg /SegmentationClassAug/x.png``).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from deeplab_lfov.colormap import palette  # noqa: E402

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
        label[ring & ~inside] = 255
        label[inside] = cls
    return np.clip(image, 0, 255).astype(np.uint8), label


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample"))
    p.add_argument("--num_train", type=int, default=32)
    p.add_argument("--num_val", type=int, default=8)
    p.add_argument("--seed", type=int, default=2016)
    args = p.parse_args(argv)
    rng = np.random.RandomState(args.seed)
    os.makedirs(os.path.join(args.out, "JPEGImages"), exist_ok=True)
    os.makedirs(os.path.join(args.out, "SegmentationClassAug"), exist_ok=True)
    lists = {"train.txt": [], "val.txt": []}
    for i in range(args.num_train + args.num_val):
        name = f"sample_{i:03d}"
        image, label = make_pair(rng)
        Image.fromarray(image).save(os.path.join(args.out, "JPEGImages", name + ".jpg"), quality=90)
        png = Image.fromarray(label, mode="P")
        png.putpalette(palette())
        png.save(os.path.join(args.out, "SegmentationClassAug", name + ".png"))
        split = "train.txt" if i < args.num_train else "val.txt"
        lists[split].append(f"/JPEGImages/{name}.jpg /SegmentationClassAug/{name}.png\n")
    for split, lines in lists.items():
        with open(os.path.join(args.out, split), "w") as f:
            f.writelines(lines)
    print(f"Wrote {args.num_train} training and {args.num_val} validation pairs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
