"""Label images in any form to index PNGs: what ``util/convert_labels.py`` runs.

* index and palette PNGs pass through, their values checked;
* RGB colour masks are mapped through the ``--classes`` colours (VOC's void cream becomes 255);
  a colour not in the palette is never mapped silently: the file is refused, naming the colours;
* ``binary``: 0/255 or 0/1 masks (grayscale or grey RGB) become background 0 / foreground 1;
* ``colour_survey`` lists the colours of RGB masks with their pixel and image counts, so that a
  user without a classes file can write one.

No TensorFlow here: conversion runs in threads over thousands of files.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..core.constants import IGNORE_LABEL
from ..core.errors import DeepLabError
from ..core.progress import Progress
from .checks import Problem
from .classes import ClassList
from .colormap import IGNORE_COLOR, save_mask
from .images import check_label_values, open_image

__all__ = ["convert_label", "colour_survey", "convert_all", "label_sources"]


def _codes(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]


def _rgb(image: Image.Image) -> Optional[np.ndarray]:
    """The (H, W, 3) colours of an RGB(A) label, or None for an index label."""
    if image.mode in ("RGB", "RGBA"):
        return np.asarray(image.convert("RGB"))
    return None


def _index_values(path: str, image: Image.Image) -> np.ndarray:
    if image.mode in ("P", "L"):
        return np.asarray(image, np.uint8)
    if image.mode in ("I", "I;16", "I;16B", "1"):
        values = np.asarray(image).astype(np.int64)
        if values.max(initial=0) > 255:
            raise DeepLabError(f"{path}: 16-bit label with values above 255", "label values out of range")
        return values.astype(np.uint8)
    raise DeepLabError(f"{path}: label has unsupported mode {image.mode}", "label mode unsupported")


def convert_label(path: str, classes: ClassList, num_classes: int, ignore_label: int = IGNORE_LABEL,
                  binary: bool = False) -> np.ndarray:
    """(H, W) uint8 class indices of one label image, or a ``DeepLabError`` saying why not."""
    image = open_image(path, "label")
    rgb = _rgb(image)
    if binary:
        if rgb is not None:
            if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
                raise DeepLabError(f"{path}: --binary needs black-and-white masks; this one has colours",
                                   "not a binary mask")
            values = rgb[..., 0]
        else:
            values = _index_values(path, image)
        present = set(np.unique(values).tolist())
        if present <= {0, 1}:
            return values.astype(np.uint8)
        if present <= {0, 255}:
            return (values == 255).astype(np.uint8)
        shown = ", ".join(str(v) for v in sorted(present - {0, 1, 255})[:8]) or "both 1 and 255"
        raise DeepLabError(f"{path}: --binary masks hold 0/1 or 0/255; this one has {shown}", "not a binary mask")
    if rgb is None:
        values = _index_values(path, image)
        check_label_values(values, num_classes, ignore_label, path)
        return values
    lookup = {int(c): i for i, c in enumerate(_codes(classes.colors[:num_classes][None])[0])}
    lookup.setdefault(int(_codes(np.array([[IGNORE_COLOR]], np.uint8))[0, 0]), ignore_label)
    codes = _codes(rgb)
    found, counts = np.unique(codes, return_counts=True)
    unknown = [(int(c), int(n)) for c, n in zip(found, counts) if int(c) not in lookup]
    if unknown:
        shown = "; ".join(f"colour ({c >> 16}, {(c >> 8) & 255}, {c & 255}): {n:,} pixels"
                          for c, n in sorted(unknown, key=lambda x: -x[1])[:5])
        more = f" and {len(unknown) - 5} more colours" if len(unknown) > 5 else ""
        raise DeepLabError(f"{path}: colours not in the --classes palette: {shown}{more}", "unknown colour")
    table = np.zeros(len(found), np.uint8)
    for i, code in enumerate(found):
        table[i] = lookup[int(code)]
    return table[np.searchsorted(found, codes)]


def label_sources(input_path: str, data_dir: str = "") -> List[Tuple[str, str]]:
    """(label file, output name) pairs of a folder (recursively) or of a list file's label column."""
    from .inputs import IMAGE_EXTENSIONS, gather
    if os.path.isdir(input_path):
        return [(item.path, item.name) for item in gather(input_path)[0]]
    if os.path.isfile(input_path):
        from .reader import read_list
        entries = read_list(data_dir, input_path)
        return [(e.label, os.path.splitext(os.path.basename(e.label))[0]) for e in entries]
    raise DeepLabError(f"{input_path}: no such folder or list file (labels: {', '.join(IMAGE_EXTENSIONS[:4])} ...)")


def colour_survey(paths: Sequence[str], workers: Optional[int] = None) -> Dict[Tuple[int, int, int], List[int]]:
    """{colour: [pixels, images]} over the RGB label images among ``paths`` (index images skipped)."""
    totals: Dict[int, List[int]] = collections.defaultdict(lambda: [0, 0])

    def colours(path: str):
        rgb = _rgb(open_image(path, "label"))
        return None if rgb is None else np.unique(_codes(rgb), return_counts=True)

    with concurrent.futures.ThreadPoolExecutor(workers or min(32, (os.cpu_count() or 1) * 2)) as pool:
        for result in pool.map(lambda p: _safe(colours, p), paths):
            if result is None or isinstance(result, DeepLabError):
                continue
            for code, count in zip(*result):
                totals[int(code)][0] += int(count)
                totals[int(code)][1] += 1
    return {(c >> 16, (c >> 8) & 255, c & 255): v for c, v in sorted(totals.items(), key=lambda kv: -kv[1][0])}


def _safe(fn, *args):
    try:
        return fn(*args)
    except DeepLabError as e:
        return e


def convert_all(sources: Sequence[Tuple[str, str]], output_dir: str, classes: ClassList, num_classes: int,
                ignore_label: int = IGNORE_LABEL, binary: bool = False, workers: Optional[int] = None):
    """Convert every source into ``output_dir/NAME.png`` (atomically); returns (written paths, problems)."""
    written, problems = [], []
    bar = Progress(len(sources), "converted")

    def one(source):
        path, name = source
        labels = convert_label(path, classes, num_classes, ignore_label, binary)
        out = os.path.join(output_dir, name + ".png")
        try:
            save_mask(out, labels, classes.colors)
        except OSError as e:
            raise DeepLabError(f"{out}: cannot write ({e.strerror or e})", "cannot write output") from None
        return out

    with concurrent.futures.ThreadPoolExecutor(workers or min(32, (os.cpu_count() or 1) * 2)) as pool:
        for source, result in zip(sources, pool.map(lambda s: _safe(one, s), sources)):
            if isinstance(result, DeepLabError):
                problems.append(Problem(source[0], str(result), result.kind or "unusable"))
            else:
                written.append(result)
            bar.update()
    bar.close()
    return written, problems
