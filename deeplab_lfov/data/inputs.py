"""The images of a collection: what ``IMG_PATH`` names, in a stable order, with the output names they map to.

``gather`` turns ``IMG_PATH`` into sorted items: one image, every image under a folder
(recursively), a quoted glob, or a ``.txt`` list of image paths (relative paths are taken from the
list's folder).  Each item knows its path relative to the folder it came from (for a glob or a
list: the images' deepest common folder), so outputs can mirror the input tree.  ``shard`` splits a
collection between jobs.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Dict, List, Sequence, Tuple

from ..core.errors import DeepLabError

__all__ = ["IMAGE_EXTENSIONS", "Item", "gather", "shard"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jfif")


@dataclasses.dataclass(frozen=True)
class Item:
    """One image of a collection: its path and the output name it maps to (relative, no extension)."""

    path: str
    name: str


def _relative_items(paths: Sequence[str], base: str) -> List[Item]:
    items = [Item(p, os.path.splitext(os.path.relpath(p, base))[0]) for p in paths]
    seen: Dict[str, str] = {}
    for item in items:
        if item.name in seen:
            raise DeepLabError(f"{item.path} and {seen[item.name]} would write the same outputs ({item.name}.png); "
                               f"rename one of them")
        seen[item.name] = item.path
    return items


def _common_folder(paths: Sequence[str]) -> str:
    return os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])


def gather(img_path: str) -> Tuple[List[Item], bool]:
    """(items in sorted order, whether IMG_PATH is a single image)."""
    if os.path.isdir(img_path):
        paths = [os.path.join(root, f) for root, _, files in os.walk(img_path) for f in files
                 if f.lower().endswith(IMAGE_EXTENSIONS)]
        if not paths:
            raise DeepLabError(f"{img_path}: no images in this folder (looked for {', '.join(IMAGE_EXTENSIONS)})")
        return _relative_items(sorted(paths), img_path), False
    if img_path.lower().endswith(".txt") and os.path.isfile(img_path):
        folder = os.path.dirname(os.path.abspath(img_path))
        with open(img_path) as f:
            lines = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
        if not lines:
            raise DeepLabError(f"{img_path}: the list of images is empty")
        paths = [p if os.path.isabs(p) else os.path.join(folder, p) for p in lines]
        return _relative_items(paths, _common_folder(paths)), False
    if any(c in img_path for c in "*?[") and not os.path.exists(img_path):
        paths = sorted(p for p in glob.glob(img_path, recursive=True) if os.path.isfile(p))
        if not paths:
            raise DeepLabError(f"{img_path}: no file matches this pattern")
        return _relative_items(paths, _common_folder(paths)), False
    return [Item(img_path, os.path.splitext(os.path.basename(img_path))[0])], True


def shard(items: Sequence[Item], k: int, n: int) -> List[Item]:
    """The items whose index in the sorted collection is K mod N."""
    return [item for index, item in enumerate(items) if index % n == k]
