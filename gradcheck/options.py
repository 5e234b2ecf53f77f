"""The checker's settings, and the options that set them from the command line and pytest.

:class:`Settings` is what every check runs under: a frozen dataclass that validates itself, so a
bad value is refused before any work with a message naming it and a value to try. The command
line (``--mode``) and the pytest plugin (``--gradcheck-mode``) spell, parse and document their
options from one table here, :data:`OPTIONS`; ``None`` as an option's default means "the
checker's own default", the :class:`Settings` field's, which the help text quotes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

__all__ = ["CONTRACT_CHECKS", "MODES", "OPTIONS", "Option", "Settings", "check_options", "describe"]

MODES = ("auto", "full", "fast")

#: The contract checks by the names a report prints, in report order (``skip=`` takes these).
CONTRACT_CHECKS = (
    "grads parallel to params",
    "grads written in place",
    "grads overwritten, not accumulated",
    "arguments unmodified",
    "params unmodified",
    "dout unmodified",
    "forward deterministic",
    "stateful=False keeps no memory",
    "backward linear in dout",
    "output dtype follows params",
    "gradient shapes match inputs",
)


@dataclass(frozen=True)
class Settings:
    """What one check runs under; validated on construction (``Settings(eps=0)`` raises
    ``ValueError: eps=0 must be > 0; try eps=1e-6``).

    eps: the finite-difference step of ``fast`` mode and of second looks at kinks; ``auto`` and
      ``full`` take error-estimated differences at their own steps (``differences.STEP64``).
    rtol, atol: a numeric value passes when
      ``|analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|) + noise + error``, where
      noise is the rounding of the loss divided by the step (measured, in ``auto`` and
      ``full``) and error the estimated error of the difference itself; atol=0 leaves the
      absolute floor to those two.
    mode: "auto" every element, in blocks of up to ``blocks.BLOCK`` measured along one
      direction each and bisected where they disagree; "full" every element on its own; "fast"
      ``projections`` random directions per tensor.
    seed: seeds dout, the random initial state and the directions (None: a fresh one, shown
      in the report).
    max_elements: in "auto", a tensor of at most this many elements whose blocks disagree is
      compared element by element, so that the pattern of its wrong elements is named; a
      larger one is bisected down to its first wrong element.
    contract: False skips every contract check; skip: contract checks to leave out, by the
      names the report prints (:data:`CONTRACT_CHECKS`).
    dtype: "lenient" judges a subject that computes in float32 inside (hard-coded float32
      buffers, as the book's) at float32 precision and says so at the top of the report;
      "strict" holds it to float64 and fails "output dtype follows params".
    context: shown on the report's ``reproduce:`` line (case id, dims, seed).
    """

    eps: float = 1e-6
    rtol: float = 1e-5
    atol: float = 0.0
    mode: str = "auto"
    seed: int | None = 0
    max_elements: int = 1000
    projections: int = 2
    contract: bool = True
    skip: tuple[str, ...] = ()
    dtype: str = "lenient"
    context: str | None = None

    def __post_init__(self) -> None:
        __tracebackhide__ = True
        for name, fix in (("eps", "1e-6"), ("rtol", "1e-5"), ("atol", "0")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
                raise TypeError(f"{name}={value!r} must be a number; try {name}={fix}")
            if not np.isfinite(value):
                raise ValueError(f"{name}={value} must be finite; try {name}={fix}")
            object.__setattr__(self, name, float(value))
        if not self.eps > 0:
            raise ValueError(f"eps={self.eps:g} must be > 0; try eps=1e-6")
        if self.eps > 0.1:
            raise ValueError(f"eps={self.eps:g} is too large for a derivative; try eps=1e-6")
        for name, fix in (("rtol", "1e-5"), ("atol", "0")):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name):g} must be >= 0; try {name}={fix}")
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} must be one of {MODES}; try mode='auto'")
        seed = self.seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed={seed!r} must be an int or None; try seed=0")
        if seed is not None and seed < 0:
            raise ValueError(f"seed={seed} must be >= 0; try seed=0")
        if seed is not None:
            object.__setattr__(self, "seed", int(seed))
        for name, fix in (("max_elements", "1000"), ("projections", "2")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name}={value!r} must be an int; try {name}={fix}")
            if value < 1:
                raise ValueError(f"{name}={value} must be >= 1; try {name}={fix}")
            object.__setattr__(self, name, int(value))
        object.__setattr__(self, "contract", bool(self.contract))
        if self.dtype not in ("lenient", "strict"):
            raise ValueError(
                f"dtype={self.dtype!r} must be 'lenient' (float32 inside judged at float32 "
                "precision) or 'strict' (a failure); try dtype='strict'"
            )
        object.__setattr__(self, "skip", _skip_names(self.skip))
        if self.context is not None and not isinstance(self.context, str):
            raise TypeError(f"context={self.context!r} must be a str or None")

    @classmethod
    def of(cls, options: Mapping[str, Any], *, also: str = "") -> Settings:
        """The settings of a call's keyword ``options``; a keyword that is no setting is a
        ``TypeError`` naming it and listing the settings (and ``also``, the call's other
        keywords)."""
        __tracebackhide__ = True
        names = [f.name for f in fields(cls)]
        unknown = [k for k in options if k not in names]
        if unknown:
            others = f", {also}" if also else ""
            raise TypeError(
                f"{unknown[0]}={options[unknown[0]]!r} is not an option; the options are "
                f"{', '.join(names)}{others}"
            )
        return cls(**options)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a report shows them (JSON-able)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "context"}
        out["skip"] = list(self.skip)
        return out


def _skip_names(skip: Any) -> tuple[str, ...]:
    __tracebackhide__ = True
    if isinstance(skip, str):
        skip = (skip,)
    try:
        names = tuple(skip)
    except TypeError:
        raise TypeError(
            f"skip={skip!r} must be contract check names, e.g. skip=('grads overwritten, "
            "not accumulated',)"
        ) from None
    unknown = [n for n in names if n not in CONTRACT_CHECKS]
    if unknown:
        valid = "; ".join(repr(n) for n in CONTRACT_CHECKS)
        raise ValueError(f"skip={unknown[0]!r} is not a contract check; the checks are: {valid}")
    return names


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


def _setting(name: str, convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type`` for the setting ``name``: what :class:`Settings` accepts, refused
    with its own message (the same ranges and hints as the API's)."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            kind = "an int" if convert is int else "a number"
            fix = _checker_default(name)
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}; try {name}={fix}") from None
        try:
            Settings(**{name: value})
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    parse.__name__ = name
    return parse


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
        Settings.mode,
        "how the gradients are compared: auto (every element, in blocks along random "
        "directions, bisected where they disagree), full (every element on its own), fast (a "
        "few random projections)",
        choices=MODES,
    ),
    Option(
        "seed",
        _setting("seed", int),
        Settings.seed,
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
    Option(
        "rtol",
        _setting("rtol", float),
        None,
        "relative tolerance of each gradient",
        metavar="FLOAT",
    ),
    Option(
        "atol",
        _setting("atol", float),
        None,
        "absolute tolerance of each gradient, beyond the measured noise",
        metavar="FLOAT",
    ),
    Option("eps", _setting("eps", float), None, "finite-difference step", metavar="FLOAT"),
)

#: Options that go to :func:`gradcheck.check_layer` as keywords (``examples`` does not).
_CHECK_KEYS = ("mode", "rtol", "atol", "eps")


def _checker_default(name: str) -> Any:
    """The :class:`Settings` default of ``name`` ("?" for a name that is no setting)."""
    field = {f.name: f for f in fields(Settings)}.get(name)
    return "?" if field is None else field.default


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
        shown = f"{value:g}" if isinstance(value, float) else value
        parts.append(f"{option.name}={shown}")
    return " ".join(parts)
