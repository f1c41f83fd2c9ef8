"""The snapshot directory of a training run, owned by one live run at a time.

``SnapshotStore`` is everything that touches ``--snapshot_dir``:

* **a lock**: an exclusive ``fcntl.flock`` on ``SNAPSHOT_DIR/.lock``, taken before anything is
  written.  The kernel drops it when the process ends, however it ends (SIGKILL included), so a
  dead run never blocks the next one; a second live run on the same directory is refused with the
  first one's PID and host, and changes no file.  Under multi-worker training only the chief locks.
  A run that fails its checks (``with store.checking():``) takes away the lock file it created, so a
  new directory is left as it was; a run that opened that file just before it went away finds, once
  it holds the lock, that the path no longer names the file it locked, and locks the new one instead.
  The lock belongs to the directory the run started with: before every write (``check_owned``) the
  lock file at the path must still be the one locked (same device and inode).  A directory removed
  (``rm -rf``) or replaced while the run lives stops the run with an error instead of being silently
  recreated, so a second run that locked the new directory is never written over.
* **the run record** ``run.json``: every setting, the command line, versions and start time,
  written atomically when a run starts; a resumed run compares its settings with it.
* **snapshots** ``model.ckpt-STEP`` (weights, optimizer state, step): TensorFlow writes them under
  temporary names and switches the ``checkpoint`` index to a snapshot only once it is complete;
  the last ``max_to_keep`` are kept; what a failed save left behind is removed.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import shutil
import socket
import sys
import tempfile
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from ..core._tf import tf
from ..core.errors import DeepLabError
from ..core.files import check_writable, write_text_atomic

__all__ = ["SnapshotStore", "run_record", "compare_settings", "check_owned_path", "FIXED_BY_SNAPSHOT"]

# Settings a snapshot fixes: resuming with another value is an error, not a change.
FIXED_BY_SNAPSHOT = ("model", "msc", "num_classes", "width_multiplier", "optimizer")

LOCK_FILE = ".lock"
RECORD_FILE = "run.json"
CHECKPOINT_NAME = "model.ckpt"

_HELD: Dict[str, SnapshotStore] = {}  # the directories this process holds the lock of, by real path


def _names_file(path: str, file_id: Optional[Tuple[int, int]]) -> bool:
    """Whether ``path`` itself (not a link's target) is the file of ``file_id`` (device, inode)."""
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return (info.st_dev, info.st_ino) == file_id


def check_owned_path(path: str) -> None:
    """Raise if ``path`` lies in a snapshot directory this process locked and that directory has since been
    removed or replaced (see ``SnapshotStore.check_owned``); nothing happens for other paths."""
    real = os.path.realpath(path)
    for directory, store in list(_HELD.items()):
        if real == directory or real.startswith(directory + os.sep):
            store.check_owned()


def run_record(settings: Dict[str, object]) -> Dict[str, object]:
    """What ``run.json`` holds: the settings and how and where the run was started."""
    from .. import __version__
    return {
        "settings": settings,
        "command": sys.argv,
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "versions": {"deeplab_lfov": __version__, "tensorflow": tf.__version__, "python": sys.version.split()[0]},
    }


def compare_settings(previous: Dict[str, object], current: Dict[str, object],
                     fixed: Sequence[str]) -> Tuple[List[str], List[str]]:
    """(changes, conflicts) between two runs' settings, as ``--flag NEW (was OLD)`` phrases.

    A setting named in ``fixed`` cannot change under a snapshot: its change is a conflict.
    Settings missing from ``previous`` (an older record) are not compared.
    """
    changes, conflicts = [], []
    for name, value in current.items():
        if name not in previous or previous[name] == value:
            continue
        phrase = f"--{name} {_show(value)} (was {_show(previous[name])})"
        (conflicts if name in fixed else changes).append(phrase)
    return changes, conflicts


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


class SnapshotStore:
    """The snapshot directory of one run (see the module docstring).

    Use as a context manager: ``with SnapshotStore(dir) as store:`` holds the lock for the run, and
    ``with store.checking():`` around what a run checks before it writes anything.
    """

    def __init__(self, directory: str, *, chief: bool = True, max_to_keep: int = 5):
        self.directory = directory
        self.chief = chief
        self.max_to_keep = max_to_keep
        self.last_path: Optional[str] = None
        self._lock_fd: Optional[int] = None
        self._lock_id: Optional[Tuple[int, int]] = None  # (device, inode) of the lock file locked
        self._created_lock = False  # this run made the lock file (the directory had none)
        self._checkpoint = None
        self._manager = None

    # ------------------------------------------------------------------------------------ lock
    def __enter__(self) -> SnapshotStore:
        if self.chief:
            self.acquire()
        self.last_path = self.latest
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @contextlib.contextmanager
    def checking(self) -> Iterator[None]:
        """Around a run's checks, before its first write: if one fails, the lock file this run created is
        removed (while still locked) before the error goes on, so a new directory is left empty for
        ``cli.run`` to remove; a lock file that was there before stays."""
        try:
            yield
        except BaseException:
            if self._lock_fd is not None and self._created_lock:
                path = os.path.join(self.directory, LOCK_FILE)
                if _names_file(path, self._lock_id):
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
                self.release()
            raise

    def acquire(self) -> None:
        """Take the directory's lock, or fail naming the run that holds it (writing nothing in its folder).

        The lock file is created if missing.  Once locked, the path must still name the file locked: a run
        that failed its checks may have removed it meanwhile (``checking``); then the new one is locked.
        Nothing happens if this store holds the lock already.
        """
        if self._lock_fd is not None:
            return
        path = os.path.join(self.directory, LOCK_FILE)
        for _ in range(100):
            opened = self._open_lock_file(path)
            if opened is None:  # removed between two steps: try again
                continue
            fd, created = opened
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = _read_holder(fd)
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise DeepLabError(f"{self.directory}: cannot lock the snapshot directory ({e.strerror or e})"
                                       ) from None
                raise DeepLabError(f"{self.directory}: --snapshot_dir is in use by another training run ({holder}); "
                                   f"wait for it to end or use another --snapshot_dir") from None
            info = os.fstat(fd)
            if _names_file(path, (info.st_dev, info.st_ino)):
                break
            os.close(fd)  # locked a file that is no longer there: lock the one that is
        else:
            raise DeepLabError(f"{self.directory}: cannot lock the snapshot directory (its lock file keeps "
                               f"being removed or replaced)")
        self._created_lock = created
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")
                                  }).encode(), 0)
        self._lock_fd = fd
        self._lock_id = (info.st_dev, info.st_ino)
        _HELD[os.path.realpath(self.directory)] = self

    def _open_lock_file(self, path: str) -> Optional[Tuple[int, bool]]:
        """The lock file's descriptor and whether this call created it; None if the file or the folder went
        away between two steps.  A folder that is missing is created (``check_writable``: cli.run removes it
        if the run fails and leaves it empty); one that exists gets no probe file before the lock."""
        if not os.path.isdir(self.directory):
            check_writable(self.directory, "--snapshot_dir")
        try:
            try:
                return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644), True
            except FileExistsError:
                pass
            return os.open(path, os.O_RDWR | os.O_NOFOLLOW), False
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise DeepLabError(f"{path}: the snapshot directory's lock file is a symbolic link; remove it "
                                   f"(a lock file is a plain file this program writes)") from None
            raise DeepLabError(f"{self.directory}: --snapshot_dir is not writable ({e.strerror or e})") from None

    def release(self) -> None:
        """Drop the lock (the lock file stays: a run that trained leaves its holder line there)."""
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None
            if _HELD.get(os.path.realpath(self.directory)) is self:
                del _HELD[os.path.realpath(self.directory)]

    def check_owned(self) -> None:
        """Raise unless ``SNAPSHOT_DIR/.lock`` is still the file this run locked (a chief holding the lock):
        the directory was not removed, recreated or replaced since the run started."""
        if self._lock_id is None:
            return
        if not _names_file(os.path.join(self.directory, LOCK_FILE), self._lock_id):
            raise DeepLabError(f"{self.directory}: the snapshot directory was removed or replaced while this run "
                               f"was using it (its lock file is not the one this run locked); stopping without "
                               f"writing into it. Its snapshots are gone with it unless you moved them: restore "
                               f"the directory and run the same command to resume, or start again")

    # ------------------------------------------------------------------------------ run record
    @property
    def record_path(self) -> str:
        return os.path.join(self.directory, RECORD_FILE)

    def previous_record(self) -> Optional[Dict[str, object]]:
        """The record of the run that wrote the snapshots, or None (none yet, or unreadable)."""
        try:
            with open(self.record_path) as f:
                record = json.load(f)
            return record if isinstance(record, dict) else None
        except (OSError, ValueError):
            return None

    def write_record(self, record: Dict[str, object]) -> None:
        if self.chief:
            self.check_owned()
            write_text_atomic(self.record_path, json.dumps(record, indent=1) + "\n")

    # ------------------------------------------------------------------------------- snapshots
    @property
    def latest(self) -> Optional[str]:
        """The newest complete snapshot, or None."""
        return tf.train.latest_checkpoint(self.directory)

    def attach(self, **objects) -> tf.train.Checkpoint:
        """Track ``objects`` (model, optimizer) in the snapshots; restores the latest one if any."""
        self._checkpoint = tf.train.Checkpoint(**objects)
        if self.chief:
            self._manager = tf.train.CheckpointManager(self._checkpoint, self.directory, max_to_keep=self.max_to_keep,
                                                       checkpoint_name=CHECKPOINT_NAME)
        if self.latest:
            self._checkpoint.restore(self.latest).assert_existing_objects_matched()
        return self._checkpoint

    def save(self, step: int) -> str:
        """Write ``model.ckpt-STEP``; on failure remove what it left and name the last good snapshot.

        Refused (``check_owned``) when the directory is no longer the one this run locked.
        """
        if self.chief:
            self.check_owned()
        try:
            if self.chief:
                self.last_path = self._manager.save(checkpoint_number=step)
            else:  # every worker saves, as tf.distribute asks; only the chief's copy is kept
                scratch = tempfile.mkdtemp(prefix="deeplab-worker-")
                try:
                    self._checkpoint.write(os.path.join(scratch, CHECKPOINT_NAME))
                finally:
                    shutil.rmtree(scratch, ignore_errors=True)
                self.last_path = os.path.join(self.directory, f"{CHECKPOINT_NAME}-{step}")
        except (OSError, tf.errors.OpError) as e:  # disk full, folder removed, ...
            self.remove_partial()
            reason = getattr(e, "strerror", None) or str(e).strip().splitlines()[0]
            raise DeepLabError(f"{self.directory}: cannot write snapshot {step} ({reason}); the last complete "
                               f"snapshot is {self.last_path}") from None
        return self.last_path

    def remove_partial(self) -> None:
        """Delete what an interrupted save left: TensorFlow's ``*_temp*`` shards and ``.tmp`` files."""
        if not self.chief or not os.path.isdir(self.directory):
            return
        for name in os.listdir(self.directory):
            if "_temp" in name or name.endswith(".tmp"):
                path = os.path.join(self.directory, name)
                shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)


def _read_holder(fd: int) -> str:
    """'PID 123 on host, since ...' from a lock file held by another run."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"PID {info['pid']} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "PID unknown: it is starting"
