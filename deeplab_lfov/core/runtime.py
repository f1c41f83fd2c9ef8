"""Process-level helpers every layer may use: quiet TensorFlow import, silenced native stderr, log lines.

``quiet_tensorflow`` is what ``core._tf`` calls, so the first module that needs TensorFlow imports it
without banners; the settings and ``--help`` never import it at all.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings

from .errors import DeepLabError

__all__ = ["log", "quiet_tensorflow", "quiet_stderr"]


def log(line: str) -> None:
    """Print a progress line at once (training output is read live, through pipes too)."""
    print(line, flush=True)


def quiet_tensorflow() -> None:
    """Import TensorFlow without its start-up banners on stderr.

    TensorFlow 2.21 prints oneDNN notices from C++ static initialisers that ignore
    ``TF_CPP_MIN_LOG_LEVEL`` set from Python, so stderr is pointed at /dev/null for the import
    alone.  With ``TF_CPP_MIN_LOG_LEVEL=0`` users see everything TensorFlow says.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0" or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with quiet_stderr():
            import tensorflow  # noqa: F401
    except ImportError as e:
        raise DeepLabError(f"TensorFlow cannot be imported ({e}): pip install -r requirements.txt, or "
                           f"pip install 'deeplab-lfov[cpu]' (or [gpu])") from None


@contextlib.contextmanager
def quiet_stderr():
    """Point file descriptor 2 at /dev/null for the block: for native libraries that print notices
    (TensorFlow's import, TFLite's delegate) whatever Python's logging says.  With
    ``TF_CPP_MIN_LOG_LEVEL=0`` nothing is hidden."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
