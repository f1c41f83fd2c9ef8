"""The command-line programs, and what all of them share: one-line errors with exit code 2, quiet TensorFlow.

One module per program (``train``, ``evaluate``, ``infer``, ``extract_params``, ``check_data``,
``crf_search``, ``prepare_voc``), each with ``get_args_parser()``, ``main(argv)`` and ``entry()``
(the console entry point).  The classic top-level scripts (``train.py`` ...) call the same mains.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional, Sequence

from ..core.errors import DeepLabError
from ..core.runtime import log, quiet_stderr, quiet_tensorflow

__all__ = ["run", "quiet_tensorflow", "quiet_stderr", "log"]


def run(main: Callable[[Optional[Sequence[str]]], Optional[int]], argv: Optional[Sequence[str]] = None) -> None:
    """Call ``main(argv)``; a ``DeepLabError`` becomes ``error: ...`` on stderr and exit code 2.

    TensorFlow is not imported here: a program imports it (quietly, through ``core._tf``) only once its
    settings are valid, so ``--help``, a bad flag and every settings error answer at once.
    """
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
