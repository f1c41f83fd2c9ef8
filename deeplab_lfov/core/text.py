"""Counted nouns for the summary lines programs print: ``1 image``, ``2 images``, ``10,582 images``."""

__all__ = ["counted"]


def counted(n: int, noun: str, plural: str = "") -> str:
    """``n`` and ``noun``, in the singular for exactly one, else in the plural (``noun + "s"`` unless given);
    thousands separated by commas."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
