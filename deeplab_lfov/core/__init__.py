"""The bottom layer: constants, the user-facing error, quiet TensorFlow, atomic writes, progress lines."""
