"""Publishing a finished folder or file in one atomic step, and cleaning what an interrupted one left.

Exports and the best snapshot are written into a hidden staging folder beside their place and moved
there only once complete.  ``publish`` does that move in one step, so a reader (a model server, a
resumed run) always finds either the old version or the new one, never none and never half of one:

* a file, or a folder with nothing at its place yet: one ``rename``;
* a folder replacing a folder: one ``renameat2(RENAME_EXCHANGE)`` (Linux), which swaps the two in a
  single step; the old version is then at the staged path, to be removed.  Where the file system
  cannot exchange (another OS, some network file systems), the old folder is first renamed to
  ``<staging>/replaced-<name>`` and the new one renamed into place: a kill between the two renames
  leaves the old version there, and ``recover_leftovers`` (run by the next export) puts it back.

``usual_permissions`` gives a staged folder the mode of a folder made with ``mkdir`` (``0777`` minus the
umask): ``tempfile.mkdtemp`` makes them ``0700``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from typing import List, Optional

__all__ = ["publish", "usual_permissions", "recover_leftovers", "REPLACED_PREFIX"]

REPLACED_PREFIX = "replaced-"  # inside a staging folder: a version moved away by the two-rename fallback
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _libc_renameat2():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):  # not glibc >= 2.28, or not Linux
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_renameat2 = _libc_renameat2()


def _exchange(a: str, b: str) -> bool:
    """Swap ``a`` and ``b`` in one step; False where this system or file system cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), b)


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def usual_permissions(path: str) -> None:
    """Give ``path`` (a staged folder) the mode ``mkdir`` would have: ``0777`` minus the umask."""
    os.chmod(path, 0o777 & ~current_umask())


def publish(staged: str, final: str) -> Optional[str]:
    """Move ``staged`` (a file or folder, beside ``final`` on the same file system) to ``final`` in one step.

    Returns where the version it replaced now is (a folder for the caller to remove), or None.
    """
    if not os.path.isdir(staged) or not os.path.isdir(final) or os.path.islink(final):
        os.replace(staged, final)  # a file onto a file, or a folder onto nothing: atomic
        return None
    if _exchange(staged, final):
        return staged  # the old version, now at the staged path
    old = os.path.join(os.path.dirname(staged), REPLACED_PREFIX + os.path.basename(final))
    os.replace(final, old)
    os.replace(staged, final)
    return old


def recover_leftovers(parent: str, prefix: str) -> List[str]:
    """Clean the staging folders ``parent/<prefix>*`` that interrupted runs left.

    A version that the two-rename fallback had moved away (``<staging>/replaced-<name>``) is put back at
    ``parent/<name>`` when nothing is there; everything else in them is removed.  Returns the folders
    removed.  Call it only while no other run can be staging there (under the folder's lock).
    """
    removed = []
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return removed
    for name in names:
        path = os.path.join(parent, name)
        if not name.startswith(prefix) or not os.path.isdir(path) or os.path.islink(path):
            continue
        for inner in os.listdir(path):
            if inner.startswith(REPLACED_PREFIX):
                final = os.path.join(parent, inner[len(REPLACED_PREFIX):])
                if not os.path.lexists(final):
                    os.replace(os.path.join(path, inner), final)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed
