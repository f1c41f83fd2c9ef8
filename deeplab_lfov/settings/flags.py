"""The flag machinery: a setting is a dataclass field that is also a command-line flag.

A program's settings are a dataclass (a ``Config``) whose fields carry their flag's help text,
parser and validity check in ``dataclasses.field`` metadata (``setting``).  ``add_arguments`` turns
the fields into ``argparse`` flags (the classic scripts' names), ``from_args`` builds the dataclass
back from parsed flags, and building it, from flags or from Python, validates every value before
any file is read: a bad value is a ``DeepLabError`` that names the flag.

The parsers (``parse_size`` ...) and checks (``positive`` ...) shared by the flags live here too.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from ..core.errors import DeepLabError

__all__ = ["setting", "Config", "parse_size", "parse_floats", "parse_names", "parse_shard", "positive",
           "non_negative", "optional_positive", "fraction", "required", "label_value", "subset", "shard_spec"]


# ----------------------------------------------------------------------------------- parsers
def parse_size(text: str) -> Tuple[int, int]:
    """``"321,321"`` -> (321, 321)."""
    try:
        h, w = (int(v) for v in str(text).split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHT,WIDTH, got {text!r}") from None
    return h, w


def parse_floats(text: str) -> Tuple[float, ...]:
    """``"0.5,0.75,1.0"`` -> (0.5, 0.75, 1.0)."""
    try:
        values = tuple(float(v) for v in str(text).split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one number, got {text!r}")
    return values


# ------------------------------------------------------------------------------------ checks
def positive(value) -> Optional[str]:
    values = value if isinstance(value, tuple) else (value,)
    return None if all(v > 0 for v in values) else "must be positive"


def non_negative(value) -> Optional[str]:
    return None if value >= 0 else "must not be negative"


def optional_positive(value) -> Optional[str]:
    return None if value is None or value > 0 else "must be positive"


def fraction(value) -> Optional[str]:
    return None if 0 <= value < 1 else "must be in [0, 1)"


def required(value) -> Optional[str]:
    return None if value else "is required"


def label_value(value) -> Optional[str]:
    return None if 0 <= value <= 255 else "must be a label value 0..255"


def setting(default: Any, help: str, *, parse: Optional[Callable[[str], Any]] = None,
            choices: Optional[Sequence[str]] = None, check: Optional[Callable[[Any], Optional[str]]] = None,
            group: str = "", positional: bool = False, metavar: Optional[str] = None,
            show: Optional[str] = None, nargs: Optional[str] = None) -> Any:
    """A dataclass field that is also a command-line flag ``--NAME``.

    Args:
      default: the default value (the classic one for the classic flags).
      help: the flag's help text.
      parse: turns the flag's text into the value (default: the type of ``default``).
      choices: the allowed values.
      check: value -> None or what is wrong with it (e.g. "must be positive").
      group: the heading of the flag in ``--help``.
      positional: a positional argument instead of a flag.
      show: how the default is shown in ``--help`` (for tuples).
      nargs: argparse's ``nargs`` (the value is then a tuple).
    """
    metadata = {"help": help, "parse": parse, "choices": tuple(choices) if choices else None, "check": check,
                "group": group, "positional": positional, "metavar": metavar, "show": show, "nargs": nargs}
    return dataclasses.field(default=default, metadata=metadata)


def parse_names(text: str) -> Tuple[str, ...]:
    """``"mask,overlay"`` -> ("mask", "overlay")."""
    return tuple(v.strip() for v in str(text).split(",") if v.strip())


def subset(value, allowed: Sequence[str]) -> Optional[str]:
    """None if ``value`` is a non-empty tuple of allowed names, else what is wrong."""
    unknown = [v for v in value if v not in allowed]
    if unknown or not value:
        return f"unknown {', '.join(unknown) or 'empty value'}; choose from {', '.join(allowed)}"
    return None


def parse_shard(text: str) -> Tuple[int, int]:
    """``"K/N"`` -> (K, N) with 0 <= K < N; raises ValueError otherwise."""
    try:
        k, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError("expected K/N, e.g. 0/4") from None
    if not 0 <= k < n:
        raise ValueError("K must be 0..N-1")
    return k, n


def shard_spec(value) -> Optional[str]:
    try:
        value is None or parse_shard(value)
    except ValueError as e:
        return str(e)
    return None


class _OneLineErrors(argparse.ArgumentParser):
    """argparse with the project's error contract: a bad flag is one ``error:`` line and exit code 2
    (argparse prints its whole usage first), pointing to ``--help``."""

    def error(self, message: str):
        import sys
        print(f"error: {self.prog}: {' '.join(message.split())} (see {self.prog} --help)", file=sys.stderr, flush=True)
        sys.exit(2)


@dataclasses.dataclass
class Config:
    """Base of every program's settings: validation at construction, argparse in and out."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            choices, check = f.metadata.get("choices"), f.metadata.get("check")
            if choices and value is not None and value not in choices:
                raise DeepLabError(f"{self.flag(f.name)}: {value!r} is not one of {', '.join(choices)}")
            problem = check(value) if check else None
            if problem:
                shown = str(self._show(value)).strip()  # none given: "--output_dir is required"
                raise DeepLabError(f"{self.flag(f.name)} {shown}: {problem}" if shown else f"{self.flag(f.name)} {problem}")
        self.validate()

    def validate(self) -> None:
        """Checks that involve several settings (subclasses extend it)."""

    def require_default_files(self, *names: str) -> None:
        """Fail in one line if a setting left at its default names a file that is not there: defaults
        such as ``./dataset/train.txt`` are relative to the working directory, which a console command
        run elsewhere does not have."""
        import os
        fields = {f.name: f for f in dataclasses.fields(self)}
        for name in names:
            value = getattr(self, name)
            if value and value == fields[name].default and not os.path.exists(value):
                raise DeepLabError(f"no {self.flag(name)} given and its default {value} does not exist in the "
                                   f"working directory {os.getcwd()}: pass {self.flag(name)}")

    def require_dirs(self, *names: str) -> None:
        """Fail in one line, before any file is read, if a folder setting (``--label_dir``, ``--image_dir``)
        names no folder: each file looked for in it would otherwise be reported missing, one by one."""
        import os
        fields = {f.name: f for f in dataclasses.fields(self)}
        for name in names:
            value = getattr(self, name)
            if value and not os.path.isdir(value):
                problem = "not a directory" if os.path.exists(value) else "no such directory"
                given = value if fields[name].metadata.get("positional") else f"{self.flag(name)} {value}"
                raise DeepLabError(f"{given}: {problem}")

    @staticmethod
    def flag(name: str) -> str:
        return f"--{name}"

    @staticmethod
    def _show(value) -> str:
        return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)

    # ------------------------------------------------------------------------------ argparse
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Add one flag per field, under the headings of their groups."""
        groups: Dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            meta = f.metadata
            if "help" not in meta:
                continue
            group = meta["group"]
            if group and group not in groups:
                groups[group] = parser.add_argument_group(group)
            target = groups.get(group, parser)
            help_text = meta["help"]
            kwargs: Dict[str, Any] = {}
            if meta["parse"] is bool:  # on, off or unset (None: decided later, e.g. by the weights)
                kwargs["action"] = argparse.BooleanOptionalAction
                kwargs["default"] = f.default
            elif isinstance(f.default, bool):
                kwargs["action"] = "store_true" if not f.default else argparse.BooleanOptionalAction
                kwargs["default"] = f.default
                if f.default:
                    help_text += " (default: on)"
            else:
                kwargs["type"] = meta["parse"] or (type(f.default) if f.default is not None else str)
                kwargs["default"] = f.default
                if meta["choices"]:
                    kwargs["choices"] = meta["choices"]
                for key in ("metavar", "nargs"):
                    if meta[key]:
                        kwargs[key] = meta[key]
                shown = meta["show"] or (cls._show(f.default) if f.default is not None else None)
                if shown is not None and not meta["positional"]:
                    help_text += f" (default: {shown})"
            if meta["positional"]:
                kwargs.pop("default", None)
                target.add_argument(f.name, help=help_text, **kwargs)
            else:
                target.add_argument(f"--{f.name}", help=help_text, **kwargs)
        return parser

    @classmethod
    def parser(cls, description: str) -> argparse.ArgumentParser:
        # allow_abbrev=False: a mistyped flag (--output for --outputs) is an error, not silently another flag
        return cls.add_arguments(_OneLineErrors(description=description, allow_abbrev=False))

    @classmethod
    def from_args(cls, args: argparse.Namespace):
        """The settings of parsed flags (validated)."""
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})

    def as_record(self) -> Dict[str, Any]:
        """Every setting as JSON-friendly values (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
