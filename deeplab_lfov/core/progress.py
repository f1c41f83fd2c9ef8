"""A progress line for long work: count, rate and ETA, on one line that redraws itself.

On a terminal the line is redrawn in place (at most a few times a second); into a file or pipe a
plain line is written every ``every_s`` seconds instead, so logs stay readable.  No dependency.
"""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

__all__ = ["Progress", "hms"]


def hms(seconds: float) -> str:
    """``3725`` -> ``"1:02:05"``."""
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """``what: 120/1,000 (12%) 8.1/s ETA 0:01:48`` on ``stream`` (stderr by default).

    Call ``update(n)`` as work is done and ``close()`` at the end (the final line stays).
    """

    def __init__(self, total: int, what: str = "images", stream: Optional[TextIO] = None, every_s: float = 10.0):
        self.total, self.what = total, what
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = 0.2 if self.tty else every_s
        self.done = 0
        self.started = self._last = time.time()

    @property
    def rate(self) -> float:
        return self.done / max(time.time() - self.started, 1e-9)

    def line(self) -> str:
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        eta = (self.total - self.done) / self.rate if self.done else 0.0
        return f"{self.what}: {self.done:,}/{self.total:,}{share} {self.rate:.1f}/s ETA {hms(eta)}"

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.time()
        if now - self._last >= self.every_s or self.done == self.total:
            self._last = now
            self._write()

    def _write(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
