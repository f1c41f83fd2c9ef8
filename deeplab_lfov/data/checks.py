"""Checks before work starts: writable directories, a data folder that exists, usable list entries.

``train.py``, ``evaluate.py`` and ``util/check_data.py`` all run these checks; the inference of
collections reports its bad files through ``report_problems`` too.  A list with thousands of
broken entries does not flood the terminal: the first ``MAX_SHOWN`` problems are printed, then a
count per kind of problem (``10,580 x image not found``), and the full list goes to a file whose
path is printed.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import sys
import tempfile
from typing import TYPE_CHECKING, Callable, List, NamedTuple, Optional, Sequence

from ..core.constants import VOC_HINT
from ..core.errors import DeepLabError
from ..core.files import write_text_atomic

if TYPE_CHECKING:  # the reader (and TensorFlow with it) is imported only by the checks that decode pairs
    from .reader import Entry

__all__ = ["Problem", "MAX_SHOWN", "check_data_dir", "check_entry", "check_entries",
           "report_problems", "raise_for_problems", "usable_entries"]

MAX_SHOWN = 20  # problems printed one per line before the rest are only counted


class Problem(NamedTuple):
    """One unusable item: what it is (a list entry or a file), the one-line message, its kind."""

    item: object
    message: str
    kind: str


def check_data_dir(data_dir: str, entries: Sequence[Entry]) -> None:
    """One clear line when ``--data_dir`` does not exist or holds none of the list's images."""
    if data_dir and not os.path.isdir(data_dir):
        raise DeepLabError(f"--data_dir {data_dir}: no such directory ({VOC_HINT})")
    if entries and not any(os.path.exists(e.image) for e in entries):
        raise DeepLabError(f"--data_dir {data_dir}: none of the {len(entries)} images of {entries[0].list_path} "
                           f"is there (the first would be {entries[0].image}); {VOC_HINT}")


def check_entry(entry: Entry, num_classes: int, ignore_label: int) -> Optional[Problem]:
    """None if the pair is usable, else the problem (its message names the list line)."""
    from .reader import load_pair
    try:
        load_pair(entry, num_classes, ignore_label)
    except DeepLabError as e:
        return Problem(entry, str(e), e.kind or "unusable")
    return None


def check_entries(entries: Sequence[Entry], num_classes: int, ignore_label: int, workers: Optional[int] = None,
                  progress: Optional[Callable[[int, int], None]] = None) -> List[Problem]:
    """Decode every pair in parallel; the problems in list order (empty if all are usable)."""
    workers = workers or min(32, (os.cpu_count() or 1) * 2)
    problems = []
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:  # Pillow decodes without the GIL
        results = pool.map(lambda e: check_entry(e, num_classes, ignore_label), entries, chunksize=16)
        for done, problem in enumerate(results, start=1):
            if problem:
                problems.append(problem)
            if progress and (done % 500 == 0 or done == len(entries)):
                progress(done, len(entries))
    return problems


def default_report_path(name: str) -> str:
    """Where a full problem report goes when the caller has no folder of its own for it."""
    stem = os.path.splitext(os.path.basename(name))[0] or "list"
    return os.path.join(tempfile.gettempdir(), f"deeplab-lfov-problems-{stem}.txt")


def report_problems(problems: Sequence[Problem], log: Callable[[str], None], *, prefix: str = "error",
                    report_path: Optional[str] = None) -> str:
    """Print the first ``MAX_SHOWN`` problems, then counts by kind and the path of the full report.

    Returns the counts by kind as one phrase (``"3 x image not found, 1 x cannot decode image"``).
    """
    for problem in problems[:MAX_SHOWN]:
        log(f"{prefix}: {problem.message}")
    counts = collections.Counter(p.kind for p in problems)
    phrase = ", ".join(f"{n:,} x {kind}" for kind, n in counts.most_common())
    if len(problems) > MAX_SHOWN:
        path = report_path or default_report_path("problems")
        try:
            write_text_atomic(path, "".join(f"{p.message}\n" for p in problems))
            where = f"all {len(problems):,} in {path}"
        except OSError as e:
            where = f"the full list could not be written to {path} ({e.strerror or e})"
        log(f"... and {len(problems) - MAX_SHOWN:,} more: {phrase}; {where}")
    return phrase


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def raise_for_problems(problems: Sequence[Problem], total: int, what: str, report_path: Optional[str] = None,
                       log: Optional[Callable[[str], None]] = None) -> None:
    """Report ``problems`` (see ``report_problems``; on stderr by default), then fail with
    ``"N of TOTAL <what> (counts by kind)"``.  Nothing happens without problems."""
    if not problems:
        return
    phrase = report_problems(problems, log or _to_stderr, report_path=report_path)
    raise DeepLabError(f"{len(problems):,} of {total:,} {what} ({phrase})")


def usable_entries(entries: List[Entry], data_dir: str, num_classes: int, ignore_label: int, *,
                   check: bool = True, skip_bad: bool = False, log: Callable[[str], None] = print,
                   report_path: Optional[str] = None, workers: Optional[int] = None,
                   hint: str = "fix them or pass --skip_bad to train without them") -> List[Entry]:
    """The entries to use: the data folder is checked always, every pair too unless ``check`` is off.

    Without ``skip_bad`` any unusable entry is an error (after every problem has been reported).
    """
    check_data_dir(data_dir, entries)
    if not check:
        return entries
    log(f"Checking {len(entries):,} list entries ...")
    problems = check_entries(entries, num_classes, ignore_label, workers=workers)
    if not problems:
        return entries
    list_path = entries[0].list_path
    # error lines go to stderr, as every program's errors do; skipped entries are progress, on the log
    report = log if skip_bad else _to_stderr
    phrase = report_problems(problems, report, prefix="skipped" if skip_bad else "error",
                             report_path=report_path or default_report_path(list_path))
    if not skip_bad:
        raise DeepLabError(f"{len(problems):,} of {len(entries):,} entries of {list_path} are unusable ({phrase}; "
                           f"listed above); {hint}")
    bad = {id(p.item) for p in problems}
    kept = [e for e in entries if id(e) not in bad]
    if not kept:
        raise DeepLabError(f"{list_path}: no usable entries left")
    log(f"Skipping {len(problems):,} unusable entries; training on {len(kept):,}.")
    return kept
