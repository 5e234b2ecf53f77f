"""The options shared by the command line (``--mode``) and the pytest plugin (``--gradcheck-mode``).

Defined once here so the two spell, parse, document and default them the same way. ``None`` as a
default means "the checker's own default" (:func:`gradcheck.check_layer`'s signature), which the
help text quotes.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["MODES", "OPTIONS", "Option", "check_options", "describe"]

MODES = ("auto", "full", "fast")


def _int_at_least(lowest: int, example: str) -> Callable[[str], int]:
    """An argparse ``type``: an int >= ``lowest``, or an error suggesting ``example``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an int; try {example}") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"{value} must be >= {lowest}; try {example}")
        return value

    return parse


_positive_int = _int_at_least(1, "10")
_seed = _int_at_least(0, "0")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; try 1e-5") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{value} must be a finite number > 0; try 1e-5")
    return value


@dataclass(frozen=True)
class Option:
    """One option: ``--NAME`` on the command line, ``--gradcheck-NAME`` in pytest."""

    name: str
    type: Callable[[str], Any]
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    metavar: str | None = None

    def help_text(self) -> str:
        """The help, ending in the default (the checker's own when ``default`` is None)."""
        if self.default is None:
            default = _checker_default(self.name)
            return f"{self.help} (default: the checker's, {self.name}={default})"
        return f"{self.help} (default: {self.default})"

    def argparse_kwargs(self, dest: str) -> dict[str, Any]:
        """Keywords for ``argparse``'s and pytest's ``addoption``."""
        kwargs = dict(dest=dest, type=self.type, default=self.default, help=self.help_text())
        if self.choices:
            kwargs["choices"] = self.choices
        if self.metavar:
            kwargs["metavar"] = self.metavar
        return kwargs


OPTIONS: tuple[Option, ...] = (
    Option(
        "mode",
        str,
        "auto",
        "which elements to difference: full (every one), fast (a few random projections), "
        "auto (full for small tensors, sampled elements plus projections beyond a size budget)",
        choices=MODES,
    ),
    Option(
        "seed",
        _seed,
        0,
        "seed for the drawn dimensions, values and dout; the same seed repeats the run",
        metavar="INT",
    ),
    Option(
        "examples",
        _positive_int,
        10,
        "drawn examples per registered case; a failure shrinks to its smallest dimensions",
        metavar="N",
    ),
    Option("rtol", _positive_float, None, "relative tolerance of each gradient", metavar="FLOAT"),
    Option("atol", _positive_float, None, "absolute tolerance of each gradient", metavar="FLOAT"),
    Option("eps", _positive_float, None, "finite-difference step", metavar="FLOAT"),
)

#: Options that go to :func:`gradcheck.check_layer` as keywords (``examples`` does not).
_CHECK_KEYS = ("mode", "rtol", "atol", "eps")


def _checker_default(name: str) -> Any:
    try:
        from gradcheck.check import check_layer
    except ImportError:  # while the package is half-installed; never break `--help`
        return "?"
    param = inspect.signature(check_layer).parameters.get(name)
    return "?" if param is None else param.default


def check_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The :func:`gradcheck.check_layer` keywords of ``settings``, leaving out checker defaults."""
    return {k: settings[k] for k in _CHECK_KEYS if settings.get(k) is not None}


def describe(settings: Mapping[str, Any]) -> str:
    """One line for report headers: ``mode=auto seed=0 examples=5 rtol=1e-05 ...``."""
    parts = []
    for option in OPTIONS:
        value = settings.get(option.name)
        if value is None:
            value = _checker_default(option.name)
        parts.append(f"{option.name}={value}")
    return " ".join(parts)
