"""The command-line programs, and what all of them share: one-line errors with exit code 2, quiet TensorFlow.

One module per program (``train``, ``evaluate``, ``infer``, ``extract_params``, ``check_data``,
``crf_search``, ``prepare_voc``), each with ``get_args_parser()``, ``main(argv)`` and ``entry()``
(the console entry point).  The classic top-level scripts (``train.py`` ...) call the same mains.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Callable, Optional, Sequence

__all__ = ["run", "quiet_tensorflow", "quiet_stderr", "log"]


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
        from ..errors import DeepLabError
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


def run(main: Callable[[Optional[Sequence[str]]], Optional[int]], argv: Optional[Sequence[str]] = None) -> None:
    """Call ``main(argv)``; a ``DeepLabError`` becomes ``error: ...`` on stderr and exit code 2."""
    quiet_tensorflow()
    from ..errors import DeepLabError
    try:
        code = main(argv)
    except DeepLabError as e:
        message = " ".join(str(e).split())  # one line, whatever the message held
        print(f"error: {message}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
