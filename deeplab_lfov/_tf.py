"""TensorFlow, imported once and quietly (see ``cli.quiet_tensorflow``); modules use ``from ._tf import tf``."""

from .cli import quiet_tensorflow

quiet_tensorflow()

import tensorflow as tf  # noqa: E402

__all__ = ["tf"]
