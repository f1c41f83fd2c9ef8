"""Segmenting collections: what ``inference.py`` does with a folder, a glob or a list of images.

* ``output_paths``: outputs mirror the input tree of ``data.inputs.collect``:
  ``SAVE_DIR/<relative path>.png`` (masks), ``SAVE_DIR/overlay/...png``, ``SAVE_DIR/probs/...npy``.
  One image keeps the classic ``SAVE_DIR/mask.png`` (``overlay.png``, ``probs.npy``).
* ``output_clashes``: masks live at the top of ``SAVE_DIR``, so an input sub-folder named ``overlay``
  (or ``probs``) puts its masks beside the overlays.  Where two outputs would be written to one file
  (the mask of ``overlay/a.jpg`` and the overlay of ``a.jpg``: ``SAVE_DIR/overlay/a.png``), both images
  are reported (``outputs would clash``) and neither is written; the rest of the collection is.
  Checked over the whole collection before it is sharded, so shards cannot overwrite each other.
* ``segment`` builds nothing: it takes a ``Predictor``.  Images are decoded in background threads
  while the net runs, consecutive images of one size go through the net as one batch, large
  images run downscaled (above ``max_pixels`` pixels or ``max_size`` on a side) with their
  probabilities upsampled back in row chunks, and every output is written atomically.  A file that
  cannot be read or written, or that the net runs out of memory on, is recorded and the rest goes on.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
import time
from typing import Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..core._tf import tf
from ..core.errors import DeepLabError
from ..core.files import atomic_path
from ..core.progress import Progress
from ..data.checks import Problem
from ..data.colormap import overlay, save_mask
from ..data.images import header_size, read_image, save_png
from ..data.inputs import Item

__all__ = ["output_paths", "output_clashes", "segment", "Summary", "upsample_rows", "float16_keeping_argmax",
           "DEFAULT_MAX_PIXELS"]

# Images of more pixels run downscaled to this many (``--max_pixels``): the full-width LargeFOV needs about
# 0.65 GB per million pixels (3.3 GB peak at 4 MP, measured), so a 9000 x 9000 scan cannot exhaust memory.
DEFAULT_MAX_PIXELS = 4_000_000
# Images decoded ahead of the net hold at most about this many pixels together (one image at least), and
# full-size probabilities are upsampled in row blocks of about ``BLOCK_BYTES``: a folder of 81 MP scans needs
# the memory of one or two of them, not of ``window``.
DECODE_AHEAD_PIXELS = 64_000_000
BLOCK_BYTES = 32 << 20


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


def output_clashes(items: Sequence[Item], save_dir: str, outputs: Sequence[str]) -> Tuple[List[Item], List[Problem]]:
    """(the items whose outputs no other output shares, a problem for each of the others); see the module
    docstring."""
    claims: Dict[str, List[Tuple[Item, str]]] = collections.defaultdict(list)
    for item in items:
        for kind, path in output_paths(item, save_dir, outputs, single=False).items():
            claims[os.path.normpath(path)].append((item, kind))
    problems, clashing = [], set()
    for path, claimants in claims.items():
        if len(claimants) < 2:
            continue
        for item, kind in claimants:
            others = ", ".join(f"the {k} of {i.path}" for i, k in claimants if (i, k) != (item, kind))
            if id(item) in clashing:
                continue
            clashing.add(id(item))
            problems.append(Problem(item, f"{item.path}: its {kind} and {others} would both be written to {path} "
                                          f"(an input folder named like an output kind puts its masks beside those "
                                          f"outputs); rename the folder, or write the other outputs with another "
                                          f"--save_dir", "outputs would clash"))
    return [item for item in items if id(item) not in clashing], problems


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
    downscaled: int = 0  # images above ``max_pixels`` that ran downscaled


def segment(predictor, items: Sequence[Item], save_dir: str, *, outputs: Sequence[str] = ("mask",),
            single: bool = False, batch_size: int = 1, skip_existing: bool = False, max_size: Optional[int] = None,
            max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, crf: Optional[Callable] = None, names: Sequence[str] = (),
            colors: Optional[np.ndarray] = None, workers: int = 2, progress: bool = True) -> Summary:
    """Segment ``items`` with ``predictor`` and write their ``outputs``; see the module docstring.

    The steps: the work left (``skip_existing``), images decoded ahead in ``workers`` threads (downscaled
    above ``max_pixels`` pixels or ``max_size`` on a side; 0 or None: never), consecutive images of one
    size batched, each batch run through the net, each image's outputs written.
    """
    summary = Summary()
    started = time.time()
    todo = _work_left(items, save_dir, outputs, single, skip_existing, summary)
    bar = Progress(len(todo), "segmented") if progress and not single and todo else None
    decoded = _decoded_ahead(todo, (max_size, max_pixels), workers, window=max(2 * batch_size, 4), summary=summary,
                             bar=bar)
    for batch in _equal_size_batches(decoded, batch_size):
        _run_batch(predictor, batch, summary, bar, crf=crf, names=names, colors=colors)
    if bar:
        bar.close()
    summary.seconds = time.time() - started
    return summary


class _Decoded(NamedTuple):
    """One image ready for the net: where its outputs go, the image, and what the net sees."""

    item: Item
    paths: Dict[str, str]
    rgb: np.ndarray
    small: np.ndarray  # ``rgb`` itself, or downscaled to ``max_size`` / ``max_pixels``
    over_limit: bool = False  # downscaled because it has more than ``max_pixels`` pixels


def _work_left(items: Sequence[Item], save_dir: str, outputs: Sequence[str], single: bool, skip_existing: bool,
               summary: Summary) -> List[Tuple[Item, Dict[str, str]]]:
    """The items still to do, with their output paths; with ``skip_existing`` those done are counted."""
    todo = []
    for item in items:
        paths = output_paths(item, save_dir, outputs, single)
        if skip_existing and all(os.path.exists(p) for p in paths.values()):
            summary.skipped += 1
        else:
            todo.append((item, paths))
    return todo


def _decode(item: Item, limits: Tuple[Optional[int], Optional[int]]) -> Tuple[np.ndarray, np.ndarray, bool]:
    """(the image, the image the net runs on, whether it has more than ``max_pixels`` pixels): downscaled
    (aspect ratio kept) if its longer side exceeds ``max_size`` or its pixels ``max_pixels``."""
    max_size, max_pixels = limits
    rgb = read_image(item.path)
    height, width = rgb.shape[:2]
    scale, rounding = 1.0, round
    if max_size and max(height, width) > max_size:
        scale = max_size / max(height, width)
    over = bool(max_pixels) and height * width > max_pixels
    if over and (max_pixels / (height * width)) ** 0.5 < scale:
        scale, rounding = (max_pixels / (height * width)) ** 0.5, int  # rounded down: within the limit
    small = rgb
    if scale < 1.0:
        size = (max(1, rounding(width * scale)), max(1, rounding(height * scale)))
        small = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
    return rgb, small, over


def _declared_pixels(item: Item) -> int:
    """The pixels ``item``'s header declares (0 if it cannot be read: decoding it will say why)."""
    try:
        width, height = header_size(item.path)
    except DeepLabError:
        return 0
    return width * height


def _rows(width: int, channels: int) -> int:
    """Rows of an upsampled block of about ``BLOCK_BYTES``."""
    return max(8, BLOCK_BYTES // max(1, width * channels * 4))


def _decoded_ahead(todo: Sequence[Tuple[Item, Dict[str, str]]], limits: Tuple[Optional[int], Optional[int]],
                   workers: int, window: int, summary: Summary, bar: Optional[Progress]) -> Iterator[_Decoded]:
    """The images of ``todo`` in order, decoded up to ``window`` ahead in background threads; one that
    cannot be read is recorded in ``summary`` and passed over."""
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        pending: collections.deque = collections.deque()
        queue = iter(todo)
        ahead = 0  # pixels the pending images declare
        while True:
            while len(pending) < window and (not pending or ahead < DECODE_AHEAD_PIXELS):
                nxt = next(queue, None)
                if nxt is None:
                    break
                pixels = _declared_pixels(nxt[0])
                ahead += pixels
                pending.append((nxt, pixels, pool.submit(_decode, nxt[0], limits)))
            if not pending:
                return
            (item, paths), pixels, future = pending.popleft()
            ahead -= pixels
            try:
                rgb, small, over = future.result()
            except (DeepLabError, MemoryError) as e:
                _record_failure(summary, item, e)
                if bar:
                    bar.update()
                continue
            yield _Decoded(item, paths, rgb, small, over)


def _equal_size_batches(decoded: Iterable[_Decoded], batch_size: int) -> Iterator[List[_Decoded]]:
    """Consecutive images of one (network input) size, ``batch_size`` at most per batch."""
    batch: List[_Decoded] = []
    for one in decoded:
        if batch and (len(batch) >= batch_size or batch[0].small.shape != one.small.shape):
            yield batch
            batch = []
        batch.append(one)
    if batch:
        yield batch


def _run_batch(predictor, batch: Sequence[_Decoded], summary: Summary, bar: Optional[Progress], *,
               crf: Optional[Callable], names: Sequence[str], colors: Optional[np.ndarray]) -> None:
    """One batch through the net, then every image's outputs; failures are recorded per image.

    A batch the net runs out of memory on is run again one image at a time, so an image fails alone.
    """
    # Only masks and overlays of images run at their own size, without the CRF: the labels come out of the
    # graph (argmax of the same probabilities, Predictor.labels_batch), the probabilities never leave it.
    labels_only = (crf is None and predictor.model.num_classes <= 256
                   and all(one.small is one.rgb and one.rgb.dtype == np.uint8 and "probs" not in one.paths
                           for one in batch))
    try:
        if labels_only:
            all_labels = predictor.labels_batch([one.small for one in batch])
            all_probs = [None] * len(batch)
        else:
            all_probs = predictor.probabilities_batch([one.small for one in batch])
            all_labels = [None] * len(batch)
    except (tf.errors.ResourceExhaustedError, MemoryError) as e:
        if len(batch) > 1:
            for one in batch:
                _run_batch(predictor, [one], summary, bar, crf=crf, names=names, colors=colors)
            return
        one = batch[0]
        height, width = one.small.shape[:2]
        _record_failure(summary, one.item, DeepLabError(
            f"{one.item.path}: out of memory running the net on {width}x{height} pixels ({_first_line(e)}); pass a "
            f"smaller --max_pixels (or --max_size) to run large images downscaled", "out of memory"))
        if bar:
            bar.update()
        return
    except DeepLabError as e:
        for one in batch:
            _record_failure(summary, one.item, e)
        return
    for one, probs, labels in zip(batch, all_probs, all_labels):
        try:
            _write_outputs(one, probs, labels, crf=crf, names=names, colors=colors)
            summary.done += 1
            summary.downscaled += one.over_limit
        except (DeepLabError, OSError) as e:
            _record_failure(summary, one.item, e)
        except MemoryError:
            height, width = one.rgb.shape[:2]
            _record_failure(summary, one.item, DeepLabError(
                f"{one.item.path}: out of memory writing the outputs of {width}x{height} pixels (--outputs probs "
                f"holds every class's probability at full size)", "out of memory"))
    if bar:
        bar.update(len(batch))


def _first_line(error: Exception) -> str:
    lines = str(getattr(error, "message", "") or error or type(error).__name__).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__


def _write_outputs(one: _Decoded, probs: Optional[np.ndarray], labels: Optional[np.ndarray], *,
                   crf: Optional[Callable], names: Sequence[str], colors: Optional[np.ndarray]) -> None:
    """The mask, overlay and probabilities of one image, at its full size (CRF-refined if asked); ``labels``:
    the net's labels at full size already (then ``probs`` is ``None`` and neither the CRF nor probs asked)."""
    rgb, paths = one.rgb, one.paths
    height, width = rgb.shape[:2]
    full: Optional[np.ndarray] = probs
    if labels is None:
        if one.small is not rgb:  # ran downscaled: back to the image's size
            full = None
            if crf is not None or "probs" in paths:
                full = np.empty((height, width, probs.shape[-1]), np.float32)
                for start, block in upsample_rows(probs, height, width, _rows(width, probs.shape[-1])):
                    full[start:start + len(block)] = block
        if crf is not None:
            full = crf(rgb, full)
        if full is not None:
            labels = np.argmax(full, axis=-1).astype(np.uint8 if full.shape[-1] <= 256 else np.uint16)
        else:  # only the mask of a large image: row blocks, never the full probabilities
            labels = np.empty((height, width), np.uint8 if probs.shape[-1] <= 256 else np.uint16)
            for start, block in upsample_rows(probs, height, width, _rows(width, probs.shape[-1])):
                labels[start:start + len(block)] = np.argmax(block, axis=-1)
    if "mask" in paths:
        save_mask(paths["mask"], labels, colors)
    if "overlay" in paths:
        save_png(paths["overlay"], Image.fromarray(overlay(rgb, labels, names, colors)))
    if "probs" in paths:
        _save_npy(paths["probs"], float16_keeping_argmax(full, labels))


def _record_failure(summary: Summary, item: Item, error: Exception) -> None:
    """``error`` as one problem of the summary, with its kind and a one-line message naming the file."""
    kind = getattr(error, "kind", "") or ("cannot write output" if isinstance(error, OSError) else "failed")
    if isinstance(error, DeepLabError):
        message = str(error)
    elif isinstance(error, OSError):
        message = f"{item.path}: {error.strerror or error}"
    else:
        message = f"{item.path}: {type(error).__name__}: {error}"
    summary.problems.append(Problem(item, message, kind))
