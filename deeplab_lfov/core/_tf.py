"""TensorFlow, imported once and quietly (see ``runtime.quiet_tensorflow``): ``from ..core._tf import tf``."""

from .runtime import quiet_tensorflow

quiet_tensorflow()

import tensorflow as tf  # noqa: E402

__all__ = ["tf"]
