"""The command-line programs, and what all of them share: one-line errors with exit code 2, quiet TensorFlow.

One module per program (``train``, ``evaluate``, ``infer``, ``extract_params``, ``check_data``,
``crf_search``, ``prepare_voc``), each with ``get_args_parser()``, ``main(argv)`` and ``entry()``
(the console entry point).  The classic top-level scripts (``train.py`` ...) call the same mains.
"""

from __future__ import annotations

import sys
from typing import Callable, Optional, Sequence

from ..core.errors import DeepLabError
from ..core.files import removed_if_left_empty
from ..core.runtime import log, quiet_stderr, quiet_tensorflow

__all__ = ["run", "quiet_tensorflow", "quiet_stderr", "log", "predictor_and_classes"]


def predictor_and_classes(config, weights: str, num_classes=None):
    """The predictor of ``weights`` (built with ``config``'s model and test-time settings) and the model's
    classes: a ``--classes`` file checked against them, else the ones the weights record.  The weights'
    record is read once, for both."""
    from ..evaluation.predict import predictor_for
    from ..model.weights import weights_record
    record = weights_record(weights)
    predictor = predictor_for(config, weights, num_classes, record=record)
    return predictor, config.classes_for(predictor.model.num_classes, record.get("classes"), weights)


def run(main: Callable[[Optional[Sequence[str]]], Optional[int]], argv: Optional[Sequence[str]] = None) -> None:
    """Call ``main(argv)``; a ``DeepLabError`` becomes ``error: ...`` on stderr and exit code 2.  A failed
    run removes the output folders it created and left empty (``core.files.removed_if_left_empty``).

    TensorFlow is not imported here: a program imports it (quietly, through ``core._tf``) only once its
    settings are valid, so ``--help``, a bad flag and every settings error answer at once.
    """
    try:
        with removed_if_left_empty():  # a failed run leaves no empty output folder it created
            code = main(argv)
    except DeepLabError as e:
        message = " ".join(str(e).split())  # one line, whatever the message held
        print(f"error: {message}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
