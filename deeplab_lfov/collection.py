"""Segmenting collections: what ``inference.py`` does with a folder, a glob or a list of images.

* ``gather`` turns ``IMG_PATH`` into sorted items: one image, every image under a folder
  (recursively), a quoted glob, or a ``.txt`` list of image paths (relative paths are taken from
  the list's folder).  Each item knows its path relative to the folder it came from (for a glob or
  a list: the images' deepest common folder), so outputs mirror the input tree:
  ``SAVE_DIR/<relative path>.png`` (masks), ``SAVE_DIR/overlay/...png``, ``SAVE_DIR/probs/...npy``.
  One image keeps the classic ``SAVE_DIR/mask.png`` (``overlay.png``, ``probs.npy``).
* ``segment`` builds nothing: it takes a ``Predictor``.  Images are decoded in background threads
  while the net runs, consecutive images of one size go through the net as one batch, large
  images can run downscaled (``max_size``) with their probabilities upsampled back in row chunks,
  and every output is written atomically.  A file that cannot be read or written is recorded and
  the rest goes on.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import glob
import os
import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .checks import Problem
from .colormap import overlay, save_mask
from .errors import DeepLabError
from .images import atomic_path, read_image, save_png
from .progress import Progress

__all__ = ["IMAGE_EXTENSIONS", "Item", "gather", "shard", "output_paths", "segment",
           "Summary", "upsample_rows", "float16_keeping_argmax"]

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


def output_paths(item: Item, save_dir: str, outputs: Sequence[str], single: bool) -> Dict[str, str]:
    """Where each requested output of ``item`` goes."""
    if single:
        names = {"mask": "mask.png", "overlay": "overlay.png", "probs": "probs.npy"}
        return {kind: os.path.join(save_dir, names[kind]) for kind in outputs}
    out = {}
    for kind in outputs:
        folder = save_dir if kind == "mask" else os.path.join(save_dir, kind)
        out[kind] = os.path.join(folder, item.name + (".npy" if kind == "probs" else ".png"))
    return out


def upsample_rows(probs: np.ndarray, height: int, width: int, rows: int = 256) -> Iterator[Tuple[int, np.ndarray]]:
    """Aligned-corner bilinear upsampling of (h, w, C) probabilities to (height, width, C), as
    (first row, block) pairs of at most ``rows`` rows, so a 4000x3000 result never exists at once."""
    h, w = probs.shape[:2]

    def grid(full, small):
        pos = np.arange(full, dtype=np.float64) * ((small - 1) / (full - 1) if full > 1 else 0.0)
        low = np.clip(np.floor(pos).astype(np.int64), 0, small - 1)
        return low, np.minimum(low + 1, small - 1), (pos - low).astype(np.float32)

    y0, y1, fy = grid(height, h)
    x0, x1, fx = grid(width, w)
    fx = fx[None, :, None]
    for start in range(0, height, rows):
        sl = slice(start, min(start + rows, height))
        top = probs[y0[sl]] * (1 - fy[sl, None, None]) + probs[y1[sl]] * fy[sl, None, None]
        yield start, top[:, x0] * (1 - fx) + top[:, x1] * fx


def float16_keeping_argmax(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``probs`` as float16 whose argmax is still ``labels``: where rounding made a near-tie flip, the
    label's probability is raised by one float16 step (below float16's own precision)."""
    out = probs.astype(np.float16)
    flipped = np.argmax(out, axis=-1) != labels
    if flipped.any():
        rows = out[flipped]
        rows[np.arange(len(rows)), labels[flipped]] = np.nextafter(rows.max(axis=-1), np.float16(np.inf))
        out[flipped] = rows
    return out


def _save_npy(path: str, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


@dataclasses.dataclass
class Summary:
    """What a collection run did."""

    done: int = 0
    skipped: int = 0
    problems: List[Problem] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


def segment(predictor, items: Sequence[Item], save_dir: str, *, outputs: Sequence[str] = ("mask",),
            single: bool = False, batch_size: int = 1, skip_existing: bool = False, max_size: Optional[int] = None,
            crf: Optional[Callable] = None, names: Sequence[str] = (), colors: Optional[np.ndarray] = None,
            workers: int = 2, progress: bool = True) -> Summary:
    """Segment ``items`` with ``predictor`` and write their ``outputs``; see the module docstring."""
    summary = Summary()
    started = time.time()
    todo = []
    for item in items:
        paths = output_paths(item, save_dir, outputs, single)
        if skip_existing and all(os.path.exists(p) for p in paths.values()):
            summary.skipped += 1
        else:
            todo.append((item, paths))
    bar = Progress(len(todo), "segmented") if progress and not single and todo else None

    def decode(item: Item):
        rgb = read_image(item.path)
        small = rgb
        if max_size and max(rgb.shape[:2]) > max_size:
            scale = max_size / max(rgb.shape[:2])
            size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
            small = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
        return rgb, small

    def fail(item: Item, error: Exception) -> None:
        kind = getattr(error, "kind", "") or ("cannot write output" if isinstance(error, OSError) else "failed")
        message = str(error) if isinstance(error, DeepLabError) else f"{item.path}: {error.strerror or error}" \
            if isinstance(error, OSError) else f"{item.path}: {type(error).__name__}: {error}"
        summary.problems.append(Problem(item, message, kind))

    def write(item: Item, paths: Dict[str, str], rgb: np.ndarray, small: np.ndarray, probs: np.ndarray) -> None:
        height, width = rgb.shape[:2]
        full: Optional[np.ndarray] = probs
        if small is not rgb:  # ran downscaled: back to the image's size
            full = None
            if crf is not None or "probs" in paths:
                full = np.empty((height, width, probs.shape[-1]), np.float32)
                for start, block in upsample_rows(probs, height, width):
                    full[start:start + len(block)] = block
        if crf is not None:
            full = crf(rgb, full)
        if full is not None:
            labels = np.argmax(full, axis=-1).astype(np.uint8)
        else:  # only the mask of a large image: row blocks, never the full probabilities
            labels = np.empty((height, width), np.uint8)
            for start, block in upsample_rows(probs, height, width):
                labels[start:start + len(block)] = np.argmax(block, axis=-1)
        if "mask" in paths:
            save_mask(paths["mask"], labels, colors)
        if "overlay" in paths:
            save_png(paths["overlay"], Image.fromarray(overlay(rgb, labels, names, colors)))
        if "probs" in paths:
            _save_npy(paths["probs"], float16_keeping_argmax(full, labels))

    def run_batch(batch) -> None:
        try:
            all_probs = predictor.probabilities_batch([small for _, _, _, small in batch])
        except DeepLabError as e:
            for item, _, _, _ in batch:
                fail(item, e)
            return
        for (item, paths, rgb, small), probs in zip(batch, all_probs):
            try:
                write(item, paths, rgb, small, probs)
                summary.done += 1
            except (DeepLabError, OSError) as e:
                fail(item, e)
        if bar:
            bar.update(len(batch))

    window = max(2 * batch_size, 4)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        pending: collections.deque = collections.deque()
        queue = iter(todo)
        batch: list = []
        while True:
            while len(pending) < window:
                nxt = next(queue, None)
                if nxt is None:
                    break
                pending.append((nxt, pool.submit(decode, nxt[0])))
            if not pending:
                break
            (item, paths), future = pending.popleft()
            try:
                rgb, small = future.result()
            except DeepLabError as e:
                fail(item, e)
                if bar:
                    bar.update()
                continue
            if batch and (len(batch) >= batch_size or batch[0][3].shape != small.shape):
                run_batch(batch)
                batch = []
            batch.append((item, paths, rgb, small))
        if batch:
            run_batch(batch)
    if bar:
        bar.close()
    summary.seconds = time.time() - started
    return summary
