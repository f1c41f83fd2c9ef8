"""Writing files so that nothing is ever left half-written, and checking a folder is writable first.

Every file this project writes (masks, figures, records, probabilities, checkpoints' side files) goes
through ``atomic_path``: the data lands in a hidden temporary file beside the target and is renamed
onto it only when complete.  The output folders a program creates (``check_writable``) are removed again
if it fails and leaves them empty (``removed_if_left_empty``, around every program's ``main``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from typing import Iterator, List, Optional

from .errors import DeepLabError

__all__ = ["atomic_path", "write_text_atomic", "check_writable", "removed_if_left_empty"]

# The folders check_writable created inside ``removed_if_left_empty`` (None outside it), outermost first.
_created: Optional[List[str]] = None


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A hidden temporary path beside ``path`` to write to; renamed onto ``path`` when the block succeeds.

    An interrupted or failed write (a full disk) leaves neither a partial file nor the temporary one.
    Every file this project writes (masks, figures, records, probabilities) goes through here.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text_atomic(path: str, text: str) -> None:
    """Write a text file atomically (see ``atomic_path``)."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def check_writable(directory: str, flag: str) -> None:
    """Fail before any work if ``directory`` cannot be created or written (leaves nothing behind)."""
    missing, parent = [], os.path.abspath(directory)
    while _created is not None and not os.path.exists(parent) and os.path.dirname(parent) != parent:
        missing.insert(0, parent)  # the folders this call creates: only recorded inside removed_if_left_empty
        parent = os.path.dirname(parent)
    try:
        try:
            os.makedirs(directory, exist_ok=True)
        finally:
            if missing:
                _created.extend(d for d in missing if os.path.isdir(d) and d not in _created)
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=directory)
        try:
            os.write(fd, b"0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.remove(probe)
    except OSError as e:
        raise DeepLabError(f"{directory}: {flag} is not writable ({e.strerror or e})") from None


@contextlib.contextmanager
def removed_if_left_empty() -> Iterator[None]:
    """If the block fails, remove the folders ``check_writable`` created in it that are still empty.

    A failed run (weights that do not load, every image refused) leaves no empty output folder behind;
    a folder that existed before, or that holds anything (outputs, a report of failures), is kept.
    """
    global _created
    outer, _created = _created, []
    try:
        yield
    except BaseException:
        for directory in reversed(_created):  # deepest first
            try:
                os.rmdir(directory)  # removes only an empty folder
            except OSError:
                pass
        raise
    finally:
        _created = outer
