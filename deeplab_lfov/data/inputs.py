"""The images of a collection: what ``IMG_PATH`` names, in a stable order, with the output names they map to.

``collect`` turns ``IMG_PATH`` into a ``Collection``: sorted items (one image, every image under a folder
(recursively), a quoted glob, or a ``.txt`` list of image paths, relative paths taken from the list's
folder), and what could not be taken, so that one odd file never stops the run:

* ``problems``: files that are reported and counted as failures: two inputs that would write the same
  outputs (``coffee.gif`` and ``coffee.bmp``: neither is taken, each is named), and files that are not
  regular files (a FIFO named ``x.jpg`` would block a reader forever; a broken link);
* ``not_images``: files of a folder or glob skipped because they are not images this project reads
  (``notes.txt``, ``photo.heic`` without a HEIF plugin), for the summary line.

Each item knows its path relative to the folder it came from (for a glob or a list: the images' deepest
common folder), so outputs can mirror the input tree.  ``gather`` is the classic form: (items, single),
raising on the first problem.  ``shard`` splits a collection between jobs.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import os
import stat
from typing import List, Sequence, Tuple

from ..core.errors import DeepLabError
from ..core.text import counted
from .checks import Problem
from .reading import file_kind, read_text

__all__ = ["IMAGE_EXTENSIONS", "Item", "Collection", "collect", "gather", "shard", "not_images_phrase"]

_BASE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jfif")
# Formats Pillow reads only with an optional plugin or codec: taken when this Pillow opens them.
_OPTIONAL_EXTENSIONS = {".avif": "AVIF", ".heic": "HEIF", ".heif": "HEIF", ".jp2": "JPEG2000", ".j2k": "JPEG2000"}


def _image_extensions() -> Tuple[str, ...]:
    from PIL import Image
    Image.init()
    return _BASE_EXTENSIONS + tuple(ext for ext, fmt in _OPTIONAL_EXTENSIONS.items() if fmt in Image.OPEN)


IMAGE_EXTENSIONS = _image_extensions()
_MAX_LIST_BYTES = 1 << 30  # a list of images: ten million paths


@dataclasses.dataclass(frozen=True)
class Item:
    """One image of a collection: its path and the output name it maps to (relative, no extension)."""

    path: str
    name: str


@dataclasses.dataclass
class Collection:
    """What ``IMG_PATH`` names: the items to process, and what was left out (see the module docstring)."""

    items: List[Item]
    single: bool
    problems: List[Problem] = dataclasses.field(default_factory=list)
    not_images: List[str] = dataclasses.field(default_factory=list)


def not_images_phrase(paths: Sequence[str], shown: int = 3) -> str:
    """``"skipped 2 files that are not images: notes.txt, x.heic"`` (empty without any)."""
    if not paths:
        return ""
    names = ", ".join(os.path.basename(p) for p in paths[:shown]) + (" ..." if len(paths) > shown else "")
    return f"skipped {counted(len(paths), 'file')} that {'is not an image' if len(paths) == 1 else 'are not images'}: " \
           f"{names}"


def _is_image_name(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


def _regular(paths: Sequence[str], problems: List[Problem]) -> List[str]:
    """The paths that are regular files (links followed); the others become problems."""
    kept = []
    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except OSError as e:
            what = "a broken symbolic link" if os.path.islink(path) else e.strerror or str(e)
            problems.append(Problem(path, f"{path}: not a regular file ({what})", "not a regular file"))
            continue
        if stat.S_ISREG(mode):
            kept.append(path)
        else:
            problems.append(Problem(path, f"{path}: not a regular file ({file_kind(mode)})", "not a regular file"))
    return kept


def _relative_items(paths: Sequence[str], base: str, problems: List[Problem]) -> List[Item]:
    """Items named by their path relative to ``base``; inputs whose outputs would clash are problems."""
    items = [Item(p, os.path.splitext(os.path.relpath(p, base))[0]) for p in paths]
    groups = collections.defaultdict(list)
    for item in items:
        groups[item.name].append(item)
    for name, group in groups.items():
        if len(group) > 1:
            others = ", ".join(os.path.basename(i.path) for i in group)
            for item in group:
                problems.append(Problem(item.path, f"{item.path}: {others} would write the same outputs ({name}.png); "
                                                   f"rename all but one of them", "outputs would clash"))
    return [item for item in items if len(groups[item.name]) == 1]


def _common_folder(paths: Sequence[str]) -> str:
    return os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])


def collect(img_path: str) -> Collection:
    """The ``Collection`` ``IMG_PATH`` names (see the module docstring); one error only when nothing is there."""
    problems: List[Problem] = []
    if os.path.isdir(img_path):
        files = sorted(os.path.join(root, f) for root, _, names in os.walk(img_path) for f in names)
        not_images = [p for p in files if not _is_image_name(p)]
        paths = _regular([p for p in files if _is_image_name(p)], problems)
        if not paths and not problems:
            raise DeepLabError(f"{img_path}: no images in this folder (looked for {', '.join(IMAGE_EXTENSIONS)})")
        return Collection(_relative_items(paths, img_path, problems), False, problems, not_images)
    if img_path.lower().endswith(".txt") and os.path.isfile(img_path):
        folder = os.path.dirname(os.path.abspath(img_path))
        lines = [line.strip() for line in read_text(img_path, "list of images", _MAX_LIST_BYTES).splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
        if not lines:
            raise DeepLabError(f"{img_path}: the list of images is empty")
        paths = [p if os.path.isabs(p) else os.path.join(folder, p) for p in lines]
        return Collection(_relative_items(paths, _common_folder(paths), problems), False, problems)
    if any(c in img_path for c in "*?[") and not os.path.exists(img_path):
        found = sorted(p for p in glob.glob(img_path, recursive=True) if not os.path.isdir(p))
        not_images = [p for p in found if not _is_image_name(p)]
        paths = _regular([p for p in found if _is_image_name(p)], problems)
        if not paths and not problems:
            raise DeepLabError(f"{img_path}: no file matches this pattern" if not found else
                               f"{img_path}: none of the {len(found):,} files matching this pattern is an image")
        base = _common_folder(paths or [p.item for p in problems])
        return Collection(_relative_items(paths, base, problems), False, problems, not_images)
    return Collection([Item(img_path, os.path.splitext(os.path.basename(img_path))[0])], True)


def gather(img_path: str) -> Tuple[List[Item], bool]:
    """(items in sorted order, whether IMG_PATH is a single image): ``collect`` for callers that stop at the
    first problem (an output clash, a file that is not a regular file), raised as one ``DeepLabError``."""
    found = collect(img_path)
    if found.problems:
        first = found.problems[0]
        more = f" (and {len(found.problems) - 1:,} more problems)" if len(found.problems) > 1 else ""
        raise DeepLabError(first.message + more, first.kind)
    return found.items, found.single


def shard(items: Sequence[Item], k: int, n: int) -> List[Item]:
    """The items whose index in the sorted collection is K mod N."""
    return [item for index, item in enumerate(items) if index % n == k]
