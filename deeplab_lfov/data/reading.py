"""Opening files a user hands us, safely: regular files only, never a blocking open, text of bounded size.

Every reader of the data layer (images, labels, classes files, class weights, lists of images) opens its
file through ``open_regular``: the file is opened without blocking (``O_NONBLOCK``: opening a FIFO that no
one writes to would otherwise wait forever) and refused unless ``fstat`` says it is a regular file, so a
FIFO, a socket or a device named ``x.jpg`` is one ``error:`` line, and there is no window between the
check and the open.  ``read_text`` reads a small text file as UTF-8 (a byte-order mark is fine) with a size
limit checked before reading, and names the byte offset and line of the first byte that is not UTF-8.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from ..core.errors import DeepLabError

__all__ = ["open_regular", "read_text", "file_kind"]

_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def file_kind(mode: int) -> str:
    """What ``st_mode`` is, in words ("a FIFO", "a directory", ...)."""
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a file"


def open_regular(path: str, what: str) -> BinaryIO:
    """``path`` opened for reading in binary, if it is a regular file; else a ``DeepLabError`` naming it.

    ``what`` is what the file was meant to be ("image", "label", "classes file"); the error's kind is
    "<what> not found" or "not a regular file".
    """
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC | _BINARY)
    except FileNotFoundError:
        if os.path.islink(path):
            raise DeepLabError(f"{path}: not a regular file (a broken symbolic link)", "not a regular file") from None
        raise DeepLabError(f"{path}: {what} not found", f"{what} not found") from None
    except IsADirectoryError:
        raise DeepLabError(f"{path}: not a regular file (a directory)", "not a regular file") from None
    except OSError as e:
        raise DeepLabError(f"{path}: cannot open {what} ({e.strerror or e})", f"cannot read {what}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise DeepLabError(f"{path}: not a regular file ({file_kind(mode)})", "not a regular file")
        if _NONBLOCK:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_text(path: str, what: str, max_bytes: int) -> str:
    """The text of a small file (UTF-8; a leading byte-order mark is dropped), at most ``max_bytes`` long.

    Errors name the file: not found, not a regular file, too large (checked before reading it), or the
    offset and line of the first byte that is not UTF-8.
    """
    with open_regular(path, what) as f:
        try:
            size = os.fstat(f.fileno()).st_size
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise DeepLabError(f"{path}: cannot read the {what} ({e.strerror or e})", f"cannot read {what}") from None
    if len(data) > max_bytes or size > max_bytes:
        limit = f"{max_bytes >> 20} MiB" if max_bytes >= 1 << 20 else f"{max_bytes:,} bytes"
        raise DeepLabError(f"{path}: {max(size, len(data)):,} bytes, more than a {what} holds (at most {limit})",
                           f"{what} too large")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DeepLabError(f"{path}: not UTF-8 text: byte 0x{data[e.start]:02x} at offset {e.start:,} (line {line}); "
                           f"save the {what} as UTF-8", f"{what} not UTF-8") from None
    return text[1:] if text.startswith("\ufeff") else text
