"""Counted nouns for the summary lines programs print: ``1 image``, ``2 images``, ``10,582 images``."""

__all__ = ["counted", "every"]


def counted(n: int, noun: str, plural: str = "") -> str:
    """``n`` and ``noun``, in the singular for exactly one, else in the plural (``noun + "s"`` unless given);
    thousands separated by commas."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def every(n: int, noun: str, plural: str = "") -> str:
    """``the 1 output`` or ``all 3 outputs``: the whole of a counted set (``counted``)."""
    return f"{'the' if n == 1 else 'all'} {counted(n, noun, plural)}"
