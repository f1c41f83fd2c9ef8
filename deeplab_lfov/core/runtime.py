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

__all__ = ["log", "quiet_tensorflow", "quiet_stderr", "frozen_weights_process", "FROZEN_WEIGHTS_ENV"]

# TensorFlow's oneDNN convolutions read this once, when the process builds its first one.
FROZEN_WEIGHTS_ENV = "TF_ONEDNN_ASSUME_FROZEN_WEIGHTS"


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


def frozen_weights_process() -> bool:
    """Declare this process inference-only: every convolution filter it runs keeps its values.

    TensorFlow's oneDNN convolutions (CPUs with AVX-512) then reorder each filter into oneDNN's
    blocked layout once and keep it, instead of reading the variable's HWIO layout on every call:
    the same labels, bit for bit, about 3% less time per image at 321x321 and 3-4% at 513x513 on 2
    AVX-512 cores (paired runs of LargeFOV, fp32), one kept copy of the filters per compiled graph
    (inference.py's peak memory on a 513x513 image: 962 MB -> 990-998 MB).  ``inference.py`` calls
    it; never call it in a process that trains, or that assigns a model's weights after its first
    forward pass (a kept filter would keep the old values).  TensorFlow reads the setting when it
    builds its first convolution kernel, so this works only before TensorFlow is imported; a value
    the user set (``TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=0``) wins.  Elsewhere (Eigen kernels, GPUs)
    TensorFlow ignores it.  Returns whether the setting is now on.
    """
    if "tensorflow" not in sys.modules:
        os.environ.setdefault(FROZEN_WEIGHTS_ENV, "1")
    return os.environ.get(FROZEN_WEIGHTS_ENV, "").lower() in ("1", "true")


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
