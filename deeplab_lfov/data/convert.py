"""Label images in any form to index PNGs: what ``util/convert_labels.py`` runs.

* index and palette PNGs pass through, their values checked (16/32-bit values outside 0..255 refused);
* RGB colour masks are mapped through the ``--classes`` colours (VOC's void cream, 224 224 192, or the
  file's ``__ignore__ R G B`` colour, becomes the ignore label); a colour not in the palette is never
  mapped silently: the file is refused, naming the colours;
* JPEG-compressed colour masks (many colours, nearly every pixel close to a palette colour) are told
  apart from masks with a missing class: "looks JPEG-compressed", with the ``tolerance`` that would map
  them.  With ``tolerance`` T each pixel takes the class of the nearest palette colour within T (Euclidean
  distance in RGB), the others the ignore label, counted per file;
* ``binary``: 0/255 or 0/1 masks (grayscale or grey RGB) become background 0 / foreground 1 (with
  ``tolerance``, values within T of 0 or of 255);
* ``colour_survey`` lists the colours of RGB masks with their pixel and image counts, and
  ``group_colours`` merges near-identical ones (JPEG noise) so that a user without a classes file sees
  the few colours that matter.

Memory is bounded: a mask is converted in row blocks of ``BLOCK_PIXELS`` straight from the decoded
image (colours packed into uint32, looked up in the sorted palette), so a 9000 x 9000 RGB mask needs
its decoded image, its 1-byte output and a few MB, never an int64 copy of every pixel; the files in
flight together hold at most ``PIXEL_BUDGET`` pixels (a larger file runs alone).  One file that fails is
one reported problem; the rest are converted.  No TensorFlow here: conversion runs in threads.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import os
import threading
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..core.constants import IGNORE_LABEL
from ..core.errors import DeepLabError
from ..core.progress import Progress
from ..core.text import counted
from .checks import Problem
from .classes import ClassList
from .colormap import save_mask
from .images import check_label_values, count_values, header_size, index_values, open_image

__all__ = ["convert_label", "convert_mask", "Converted", "Conversion", "colour_survey", "group_colours",
           "ColourGroup", "convert_all", "label_sources", "find_labels", "LabelSources", "BLOCK_PIXELS",
           "PIXEL_BUDGET", "JPEG_NEAR"]

BLOCK_PIXELS = 1 << 18  # pixels of a mask converted at once (a row block: about 10 MB of temporaries)
PIXEL_BUDGET = 100_000_000  # pixels of all the masks decoded at once (about 6 bytes each while converting)
JPEG_NEAR = 32  # "close to a palette colour": JPEG's error on flat colours at quality 50..95 is mostly below
_JPEG_SHARE = 0.95  # share of the pixels of a mask within JPEG_NEAR of the palette to call it JPEG-compressed
_JPEG_COLOURS = 16  # and at least this many colours outside the palette (a missing class is one or two)
_MAX_TRACKED = 1 << 20  # distinct colours counted exactly per mask and per survey (beyond: summed as "other")


class Converted(NamedTuple):
    """One converted mask: its (H, W) uint8 class indices, and the pixels that were set to the ignore label
    because no palette colour (or binary value) was within ``tolerance`` of theirs (0 without tolerance)."""

    labels: np.ndarray
    unmatched: int


@dataclasses.dataclass
class Conversion:
    """What ``convert_all`` did: the PNGs written, the files refused, and per file the pixels of masks converted
    with a tolerance that matched no palette colour: (path, pixels set to the ignore label, pixels)."""

    written: List[str]
    problems: List[Problem]
    unmatched: List[Tuple[str, int, int]] = dataclasses.field(default_factory=list)


def _pack(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 colours as (...) uint32 codes 0xRRGGBB."""
    codes = rgb[..., 0].astype(np.uint32) << 16
    codes |= rgb[..., 1].astype(np.uint32) << 8
    codes |= rgb[..., 2]
    return codes


def _unpack(code: int) -> Tuple[int, int, int]:
    return code >> 16, (code >> 8) & 255, code & 255


def _nearest(codes: np.ndarray, palette: np.ndarray, chunk: int = 4096) -> Tuple[np.ndarray, np.ndarray]:
    """(index into ``palette``, Euclidean distance) of the nearest palette colour to each of ``codes``."""
    colours = np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255], -1).astype(np.int32)
    pal = np.stack([(palette >> 16) & 255, (palette >> 8) & 255, palette & 255], -1).astype(np.int32)
    index = np.empty(len(codes), np.int64)
    dist2 = np.empty(len(codes), np.int64)
    for start in range(0, len(codes), chunk):
        d2 = ((colours[start:start + chunk, None, :] - pal[None]) ** 2).sum(-1)
        index[start:start + chunk] = d2.argmin(-1)
        dist2[start:start + chunk] = d2.min(-1)
    return index, np.sqrt(dist2)


class _Counts:
    """Distinct values (uint32 codes) with pixel counts, merged block by block in bounded memory: at most
    ``_MAX_TRACKED`` distinct values are kept (the most frequent); the pixels of the rest are ``dropped``."""

    def __init__(self):
        self.codes = np.zeros(0, np.uint32)
        self.counts = np.zeros(0, np.int64)
        self.dropped = 0
        self._pending: List[Tuple[np.ndarray, np.ndarray]] = []
        self._pending_size = 0

    def add(self, codes: np.ndarray, counts: np.ndarray) -> None:
        self._pending.append((codes, counts))
        self._pending_size += len(codes)
        if self._pending_size > 4 * _MAX_TRACKED:
            self.merge()

    def merge(self) -> None:
        if not self._pending:
            return
        codes = np.concatenate([self.codes] + [c for c, _ in self._pending])
        counts = np.concatenate([self.counts] + [n for _, n in self._pending])
        self._pending, self._pending_size = [], 0
        self.codes, inverse = np.unique(codes, return_inverse=True)
        self.counts = np.bincount(inverse.reshape(-1), weights=counts, minlength=len(self.codes)).astype(np.int64)
        if len(self.codes) > _MAX_TRACKED:
            keep = np.sort(np.argsort(-self.counts, kind="stable")[:_MAX_TRACKED])
            self.dropped += int(self.counts.sum() - self.counts[keep].sum())
            self.codes, self.counts = self.codes[keep], self.counts[keep]


class _Palette:
    """The colours of ``classes`` (the first ``num_classes``) and their ignore colour (VOC's void cream unless the
    classes file gave ``__ignore__ R G B``), sorted, with their labels."""

    def __init__(self, classes: ClassList, num_classes: int, ignore_label: int):
        colours = np.asarray(classes.colors, np.uint8)[:num_classes]
        lookup: Dict[int, int] = {}
        for label, code in enumerate(_pack(colours).tolist()):
            lookup.setdefault(code, label)
        lookup.setdefault(int(_pack(np.array(classes.ignore_color, np.uint8))), ignore_label)
        self.codes = np.array(sorted(lookup), np.uint32)
        self.labels = np.array([lookup[c] for c in self.codes.tolist()], np.uint8)

    def exact(self, codes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(labels, is a palette colour) of ``codes``."""
        position = np.minimum(np.searchsorted(self.codes, codes), len(self.codes) - 1)
        return self.labels[position], self.codes[position] == codes


class _Survey(NamedTuple):
    """What the pixels of one RGB mask outside the palette were like."""

    unknown: _Counts  # colours outside the palette, with their pixels
    near: int  # pixels outside the palette within JPEG_NEAR of a palette colour
    histogram: np.ndarray  # pixels outside the palette by distance to the nearest palette colour (rounded up)


def _row_blocks(image: Image.Image):
    """(first row, (rows, W, 3) uint8 RGB) blocks of ``image`` of about ``BLOCK_PIXELS`` pixels each."""
    width, height = image.size
    rows = max(1, BLOCK_PIXELS // max(width, 1))
    for top in range(0, height, rows):
        block = image.crop((0, top, width, min(top + rows, height)))
        yield top, np.asarray(block if block.mode == "RGB" else block.convert("RGB"))


def _map_rgb(path: str, image: Image.Image, palette: _Palette, ignore_label: int,
             tolerance: float) -> Converted:
    """The class indices of an RGB(A) mask, block by block; refused (naming colours) if a colour is not in the
    palette and no ``tolerance`` is given."""
    width, height = image.size
    out = np.empty((height, width), np.uint8)
    unknown = _Counts()
    near = unmatched = outside = 0
    histogram = np.zeros(443, np.int64)
    for top, block in _row_blocks(image):
        codes = _pack(block)
        labels, exact = palette.exact(codes)
        if not exact.all():
            found, inverse, counts = np.unique(codes[~exact], return_inverse=True, return_counts=True)
            index, dist = _nearest(found, palette.codes)
            if tolerance > 0:
                mapped = np.where(dist <= tolerance, palette.labels[index], ignore_label).astype(np.uint8)
                labels[~exact] = mapped[inverse.reshape(-1)]
                unmatched += int(counts[dist > tolerance].sum())
            else:
                unknown.add(found, counts)
                outside += int(counts.sum())
                near += int(counts[dist <= JPEG_NEAR].sum())
                histogram += np.bincount(np.ceil(dist).astype(np.int64), weights=counts, minlength=443).astype(np.int64)
        out[top:top + len(block)] = labels.reshape(block.shape[:2])
    if outside:
        unknown.merge()
        raise _unknown_colours(path, _Survey(unknown, near, histogram), width * height)
    return Converted(out, unmatched)


def _suggested_tolerance(histogram: np.ndarray, exact: int, total: int) -> int:
    """The smallest multiple of 8 (at most 64) within which 99% of the pixels of a mask are."""
    covered = exact + np.cumsum(histogram)
    for tolerance in range(8, 65, 8):
        if covered[min(tolerance, len(covered) - 1)] >= 0.99 * total:
            return tolerance
    return 64


def _unknown_colours(path: str, survey: _Survey, total: int) -> DeepLabError:
    """The refusal of a mask with colours outside the palette: JPEG-compressed, or colours to add."""
    unknown = survey.unknown
    outside = int(unknown.counts.sum()) + unknown.dropped
    distinct = f"{len(unknown.codes):,}" + ("+" if unknown.dropped else "")
    exact = total - outside
    if len(unknown.codes) >= _JPEG_COLOURS and exact + survey.near >= _JPEG_SHARE * total:
        tolerance = _suggested_tolerance(survey.histogram, exact, total)
        return DeepLabError(
            f"{path}: looks JPEG-compressed: {distinct} colours not in the --classes palette, but "
            f"{100 * (exact + survey.near) / total:.1f}% of its pixels are within {JPEG_NEAR} of a palette colour; "
            f"save the masks as PNG, or pass --tolerance {tolerance} (99% of its pixels are within it)",
            "looks JPEG-compressed")
    order = np.argsort(-unknown.counts, kind="stable")[:5]
    shown = "; ".join(f"colour {_unpack(int(unknown.codes[i]))}: {counted(int(unknown.counts[i]), 'pixel')}"
                      for i in order)
    more = f" and {len(unknown.codes) - 5:,} more colours" if len(unknown.codes) > 5 else ""
    return DeepLabError(f"{path}: colours not in the --classes palette: {shown}{more}", "unknown colour")


def _binary(path: str, image: Image.Image, tolerance: float) -> Converted:
    """Background 0 / foreground 1 of a 0/1 or 0/255 mask (grey RGB or an index image)."""
    if image.mode in ("RGB", "RGBA"):
        values = np.empty(image.size[::-1], np.uint8)
        for top, block in _row_blocks(image):
            grey = block[..., 0]
            if not (np.array_equal(grey, block[..., 1]) and np.array_equal(grey, block[..., 2])):
                if tolerance <= 0 or np.abs(block.astype(np.int16) - grey[..., None]).max() > tolerance:
                    raise DeepLabError(f"{path}: --binary needs black-and-white masks; this one has colours",
                                       "not a binary mask")
            values[top:top + len(block)] = grey
    else:
        values = index_values(image, path)
    counts = count_values(values)
    present = set(np.nonzero(counts)[0].tolist())
    if present <= {0, 1}:
        return Converted(values, 0)
    if present <= {0, 255}:
        return Converted((values == 255).astype(np.uint8), 0)
    if tolerance > 0:
        out = np.full(values.shape, IGNORE_LABEL, np.uint8)
        out[values <= tolerance] = 0
        out[values >= 255 - tolerance] = 1
        return Converted(out, int((out == IGNORE_LABEL).sum()))
    near = int(counts[:JPEG_NEAR + 1].sum() + counts[255 - JPEG_NEAR:].sum())
    if len(present) >= _JPEG_COLOURS and near >= _JPEG_SHARE * values.size:
        raise DeepLabError(f"{path}: looks JPEG-compressed: {len(present)} grey levels where --binary masks hold 0 "
                           f"and 255, {100 * near / values.size:.1f}% of them within {JPEG_NEAR} of 0 or 255; save the "
                           f"masks as PNG, or pass --tolerance {JPEG_NEAR}", "looks JPEG-compressed")
    shown = ", ".join(str(v) for v in sorted(present - {0, 1, 255})[:8]) or "both 1 and 255"
    raise DeepLabError(f"{path}: --binary masks hold 0/1 or 0/255; this one has {shown}", "not a binary mask")


def convert_mask(path: str, classes: ClassList, num_classes: int, ignore_label: int = IGNORE_LABEL,
                 binary: bool = False, tolerance: float = 0.0, max_pixels: Optional[int] = None) -> Converted:
    """The class indices of one label image (see the module docstring), or a ``DeepLabError`` saying why not.

    ``tolerance`` > 0: RGB pixels take the class of the nearest palette colour within that distance, the
    others ``ignore_label`` (their count is ``Converted.unmatched``).  ``max_pixels`` as in ``images.open_image``.
    """
    image = open_image(path, "label", max_pixels)
    if binary:
        return _binary(path, image, tolerance)
    if image.mode in ("RGB", "RGBA"):
        return _map_rgb(path, image, _Palette(classes, num_classes, ignore_label), ignore_label, tolerance)
    values = index_values(image, path)
    check_label_values(values, num_classes, ignore_label, path)
    return Converted(values, 0)


def convert_label(path: str, classes: ClassList, num_classes: int, ignore_label: int = IGNORE_LABEL,
                  binary: bool = False, tolerance: float = 0.0) -> np.ndarray:
    """(H, W) uint8 class indices of one label image (``convert_mask``'s labels)."""
    return convert_mask(path, classes, num_classes, ignore_label, binary, tolerance).labels


class LabelSources(NamedTuple):
    """The label files of a folder or list: (file, output name) pairs, the files of a folder that cannot be
    converted (output names that clash, files that are not regular files), and those that are not images."""

    sources: List[Tuple[str, str]]
    problems: List[Problem]
    not_images: List[str]


def find_labels(input_path: str, data_dir: str = "") -> LabelSources:
    """The ``LabelSources`` of a folder (recursively) or of a list file's label column."""
    from .inputs import IMAGE_EXTENSIONS, collect
    if os.path.isdir(input_path):
        found = collect(input_path)
        return LabelSources([(item.path, item.name) for item in found.items], found.problems, found.not_images)
    if os.path.isfile(input_path):
        from .reader import read_list
        entries = read_list(data_dir, input_path)
        return LabelSources([(e.label, os.path.splitext(os.path.basename(e.label))[0]) for e in entries], [], [])
    raise DeepLabError(f"{input_path}: no such folder or list file (labels: {', '.join(IMAGE_EXTENSIONS[:4])} ...)")


def label_sources(input_path: str, data_dir: str = "") -> List[Tuple[str, str]]:
    """(label file, output name) pairs of a folder (recursively) or of a list file's label column."""
    return find_labels(input_path, data_dir).sources


class _PixelBudget:
    """At most ``limit`` pixels decoded at once across threads; a larger image waits to run alone."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, path: str):
        """Wait until the pixels ``path`` declares fit in the budget, and hold them for the block."""
        try:
            width, height = header_size(path, "label")
        except DeepLabError:
            width = height = 0  # the decode that follows reports it
        take = min(width * height, self.limit)
        with self._cond:
            self._cond.wait_for(lambda: self.used + take <= self.limit)
            self.used += take
        try:
            yield
        finally:
            with self._cond:
                self.used -= take
                self._cond.notify_all()


def _workers(workers: Optional[int]) -> int:
    return workers or min(32, (os.cpu_count() or 1) * 2)


def _guarded(fn, path: str, *args):
    """``fn(path, *args)``; a ``DeepLabError`` or running out of memory is returned as the file's problem."""
    try:
        return fn(path, *args)
    except DeepLabError as e:
        return e
    except MemoryError:
        return DeepLabError(f"{path}: not enough memory to convert this label", "out of memory")


def colour_survey(paths: Sequence[str], workers: Optional[int] = None,
                  max_pixels: Optional[int] = None) -> Dict[Tuple[int, int, int], List[int]]:
    """{colour: [pixels, images]} over the RGB label images among ``paths`` (index images and unreadable
    files skipped), most pixels first.  Bounded: masks decoded within ``PIXEL_BUDGET``, counted in row
    blocks; past ``_MAX_TRACKED`` distinct colours only the most frequent are kept."""
    budget = _PixelBudget(PIXEL_BUDGET)

    def colours(path: str) -> Optional[_Counts]:
        with budget.hold(path):
            image = open_image(path, "label", max_pixels)
            if image.mode not in ("RGB", "RGBA"):
                return None
            counts = _Counts()
            for _, block in _row_blocks(image):
                counts.add(*np.unique(_pack(block), return_counts=True))
            counts.merge()
            return counts

    pixels, images = _Counts(), _Counts()
    with concurrent.futures.ThreadPoolExecutor(_workers(workers)) as pool:
        for result in pool.map(lambda p: _guarded(colours, p), paths):
            if isinstance(result, _Counts):
                pixels.add(result.codes, result.counts)
                images.add(result.codes, np.ones(len(result.codes), np.int64))
    pixels.merge()
    images.merge()
    in_images = dict(zip(images.codes.tolist(), images.counts.tolist()))
    order = np.argsort(-pixels.counts, kind="stable")
    return {_unpack(int(pixels.codes[i])): [int(pixels.counts[i]), int(in_images.get(int(pixels.codes[i]), 0))]
            for i in order}


class ColourGroup(NamedTuple):
    """Near-identical colours of a survey: the most frequent one, the pixels of all, the images of the first,
    and how many colours were merged into it."""

    colour: Tuple[int, int, int]
    pixels: int
    images: int
    merged: int


def group_colours(survey: Dict[Tuple[int, int, int], List[int]], distance: float = JPEG_NEAR,
                  max_groups: int = 1000) -> List[ColourGroup]:
    """The colours of ``survey`` grouped: the most frequent colour not yet grouped takes every colour within
    ``distance`` of it (JPEG noise around a mask colour), and so on, most pixels first; past ``max_groups``
    groups the rest are left out (their pixels are in no group)."""
    if not survey:
        return []
    colours = np.array(list(survey), np.int32)
    pixels = np.array([v[0] for v in survey.values()], np.int64)
    images = np.array([v[1] for v in survey.values()], np.int64)
    left = np.argsort(-pixels, kind="stable")
    groups = []
    while len(left) and len(groups) < max_groups:
        head = left[0]
        close = np.sqrt(((colours[left] - colours[head]) ** 2).sum(-1)) <= distance
        members = left[close]
        groups.append(ColourGroup(tuple(int(v) for v in colours[head]), int(pixels[members].sum()), int(images[head]),
                                  len(members) - 1))
        left = left[~close]
    return sorted(groups, key=lambda g: -g.pixels)


def convert_all(sources: Sequence[Tuple[str, str]], output_dir: str, classes: ClassList, num_classes: int,
                ignore_label: int = IGNORE_LABEL, binary: bool = False, workers: Optional[int] = None,
                tolerance: float = 0.0, max_pixels: Optional[int] = None) -> Conversion:
    """Convert every source into ``output_dir/NAME.png`` (atomically), each file on its own: one that cannot
    be read, converted or written is a problem, the rest go on.  The masks decoded at once hold at most
    ``PIXEL_BUDGET`` pixels.  Returns a ``Conversion`` (which unpacks as ``written, problems``)."""
    done = Conversion([], [])
    bar = Progress(len(sources), "converted")
    budget = _PixelBudget(PIXEL_BUDGET)

    def one(path: str, name: str):
        with budget.hold(path):
            converted = convert_mask(path, classes, num_classes, ignore_label, binary, tolerance, max_pixels)
            out = os.path.join(output_dir, name + ".png")
            try:
                save_mask(out, converted.labels, classes.colors)
            except OSError as e:
                raise DeepLabError(f"{out}: cannot write ({e.strerror or e})", "cannot write output") from None
            return out, converted.unmatched, converted.labels.size

    with concurrent.futures.ThreadPoolExecutor(_workers(workers)) as pool:
        for (path, _), result in zip(sources, pool.map(lambda s: _guarded(one, *s), sources)):
            if isinstance(result, DeepLabError):
                done.problems.append(Problem(path, str(result), result.kind or "unusable"))
            else:
                out, unmatched, total = result
                done.written.append(out)
                if unmatched:
                    done.unmatched.append((path, unmatched, total))
            bar.update()
    bar.close()
    return done
