"""Class names and colours: PASCAL VOC's by default, or a ``--classes`` file of your own.

A classes file has one class per line, in index order (background first): ``name`` or
``name R G B``; ``#`` starts a comment line.  It is UTF-8 text (a byte-order mark is fine) of at most
``MAX_CLASSES_FILE_BYTES``, with at most ``MAX_CLASSES`` classes (255 is the ignore label) whose names are
printable, without spaces, and at most ``MAX_NAME_LENGTH`` characters long.  Classes without a colour get
VOC's bit-interleaved colour of their index (which extends to 255 classes), so a file of names alone
works for any number of classes.  The ignore label (255) is drawn in VOC's void colour, 224 224 192, and
RGB masks in that colour become 255 when converted; a line ``__ignore__ R G B`` gives another colour (see
``read_classes``).  The colours
are the palette of saved masks, of overlays and figures, and the map ``util/convert_labels.py``
turns colour-coded RGB masks back into indices with.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple

import numpy as np

from ..core.constants import IGNORE_LABEL
from ..core.errors import DeepLabError
from .colormap import IGNORE_COLOR, VOC_CLASSES, VOC_COLORS
from .reading import read_text

__all__ = ["ClassList", "read_classes", "VOC", "MAX_CLASSES", "MAX_NAME_LENGTH", "MAX_CLASSES_FILE_BYTES",
           "IGNORE_NAME"]

MAX_CLASSES = IGNORE_LABEL  # labels are 8-bit PNGs and 255 is the ignore label
MAX_NAME_LENGTH = 100  # characters of a class name (legends, tables and logs show it whole)
MAX_CLASSES_FILE_BYTES = 1 << 20  # 255 classes of 100 characters with their colours fit 100 times over
IGNORE_NAME = "__ignore__"  # the line that gives the ignore label's colour (labelme's name for it)


@dataclasses.dataclass(frozen=True)
class ClassList:
    """Names of the classes and the 256-entry colour table (index 255, ignore, in cream)."""

    names: Tuple[str, ...]
    colors: np.ndarray = dataclasses.field(compare=False, repr=False)
    source: str = "PASCAL VOC"

    def __len__(self) -> int:
        return len(self.names)

    def palette(self) -> List[int]:
        """The 768-entry palette of label PNGs."""
        return self.colors.reshape(-1).tolist()

    def names_for(self, num_classes: int) -> List[str]:
        """Names for a model of ``num_classes`` classes (numbers past the list's end)."""
        return [self.names[i] if i < len(self.names) else str(i) for i in range(num_classes)]

    @property
    def ignore_color(self) -> Tuple[int, int, int]:
        """The colour of the ignore label (VOC's void cream, 224 224 192, unless the file gave ``__ignore__``)."""
        return tuple(int(v) for v in self.colors[IGNORE_LABEL])

    def to_text(self) -> str:
        """The classes file of this list (every class with its colour)."""
        return "".join(f"{name} {r} {g} {b}\n" for name, (r, g, b) in zip(self.names, self.colors[:len(self.names)]))


VOC = ClassList(tuple(VOC_CLASSES), VOC_COLORS)


def _shown(text: str, limit: int = 80) -> str:
    """``text`` quoted for a one-line message, cut to ``limit`` characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f" ... ({len(text):,} characters)"


def read_classes(path: Optional[str]) -> ClassList:
    """The classes of a ``--classes`` file (errors name the file and line); VOC's without a path.

    A line ``__ignore__ R G B`` (labelme's name for it) gives the colour of the ignore label instead of VOC's
    void cream: colour masks in that colour become the ignore label, and saved masks draw it in that colour.
    ``__ignore__`` alone keeps VOC's, so a labelme ``labels.txt`` (``__ignore__``, ``_background_``, ...)
    is a classes file as it is.
    """
    if not path:
        return VOC
    lines = read_text(path, "classes file", MAX_CLASSES_FILE_BYTES).splitlines()
    names: List[str] = []
    colors = VOC_COLORS.copy()
    given = {}
    ignore_color = IGNORE_COLOR
    for number, text in enumerate(lines, start=1):
        fields = text.split()
        if not fields or text.lstrip().startswith("#"):
            continue
        if len(fields) not in (1, 4):
            raise DeepLabError(f"{path}:{number}: expected 'name' or 'name R G B', got {_shown(text.strip())}")
        name = fields[0]
        if len(name) > MAX_NAME_LENGTH:
            raise DeepLabError(f"{path}:{number}: class name of {len(name):,} characters (at most {MAX_NAME_LENGTH})")
        if not name.isprintable():
            raise DeepLabError(f"{path}:{number}: class name {name!r} holds a control character")
        if name in names or (name == IGNORE_NAME and name in given.values()):
            raise DeepLabError(f"{path}:{number}: class {name!r} is listed twice")
        if len(names) >= MAX_CLASSES and name != IGNORE_NAME:
            raise DeepLabError(f"{path}:{number}: more than {MAX_CLASSES} classes (255 is the ignore label)")
        if len(fields) == 4:
            try:
                rgb = tuple(int(v) for v in fields[1:])
            except ValueError:
                raise DeepLabError(f"{path}:{number}: R G B must be integers 0..255, got "
                                   f"{_shown(' '.join(fields[1:]))}") from None
            if not all(0 <= v <= 255 for v in rgb):
                raise DeepLabError(f"{path}:{number}: R G B must be integers 0..255, got {_shown(' '.join(fields[1:]))}")
            if rgb in given:
                raise DeepLabError(f"{path}:{number}: colour {rgb} is also class {given[rgb]!r}'s")
            given[rgb] = name
            if name == IGNORE_NAME:
                ignore_color = rgb
            else:
                colors[len(names)] = rgb
        elif name == IGNORE_NAME:
            given.setdefault(IGNORE_COLOR, IGNORE_NAME)
        if name != IGNORE_NAME:
            names.append(name)
    if not names:
        raise DeepLabError(f"{path}: no classes in this file")
    colors[IGNORE_LABEL] = ignore_color
    return ClassList(tuple(names), colors, source=path)
