"""What a check found: one :class:`Entry` per checked quantity, gathered in a :class:`Report`.

A report is plain data (``to_dict()`` is JSON-able) plus its readable text (``str(report)``),
the table of STYLE.md: every gradient listed, the worst element's index and both values, the
tolerances, a pattern when one is clear, and a ``reproduce:`` line.
:func:`describe_pattern` names the shape of a wrong gradient (off by a constant factor, sign
flipped, transposed, zero where it should not be, wrong only in one slice of one axis).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = ["Entry", "Report", "describe_pattern"]

#: Statuses that do not fail a check: a kink is a non-differentiable point, not a wrong gradient.
PASSING = ("ok", "kink", "skipped")
#: A wrong gradient keeps its values per element (for a heatmap) up to this many elements.
MAX_KEPT = 65_536
#: The per-element arrays of an entry: not part of ``to_dict()``.
VALUES = ("errors", "analytic_values", "numeric_values")


@dataclass
class Entry:
    """One checked quantity: a gradient (``kind="gradient"``), a contract check or a property of
    ``generate`` (``kind="generate"``, :func:`gradcheck.check_generate`).

    ``name`` is ``"input[0]"``, a parameter name (``"Wx"``, ``"encoder.lstm.Wh"``), ``"dh"``,
    ``"dc"``, a contract check (``"grads written in place"``) or a property of ``generate``
    (``"decoder unchanged"``); ``label`` adds what helps a
    reader (``"input[0] xs"``). ``index``/``analytic``/``numeric`` describe the worst element
    (``None`` when not applicable); errors are ``0.0`` when nothing was compared.

    A gradient found wrong element by element (mode ``full``, or ``auto`` on a tensor of at most
    ``max_elements``) of at most :data:`MAX_KEPT` elements keeps, for a heatmap, its values per
    element in float32 and in its own shape: ``errors`` (the relative error the comparison
    measures, ``|a - n| / max(|a|, |n|, floor)``; NaN where not compared, a kink; inf where the
    analytic value is not finite), ``analytic_values`` and ``numeric_values``. Every other entry
    keeps ``None``: a passing check holds no arrays.
    """

    name: str
    kind: str
    status: str
    shape: tuple[int, ...] | None = None
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    index: tuple[int, ...] | None = None
    analytic: float | None = None
    numeric: float | None = None
    pattern: str | None = None
    message: str = ""
    label: str = ""
    checked: int = 0  # elements (or directions) compared
    wrong: int = 0  # of those, how many disagree (auto, bisected: those found, or the block)
    kinks: int = 0  # of those, how many sit at a kink (auto, bisected: blocks holding one)
    errors: np.ndarray | None = field(default=None, repr=False, compare=False)
    analytic_values: np.ndarray | None = field(default=None, repr=False, compare=False)
    numeric_values: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        return self.status in PASSING

    def line(self) -> str:
        """The entry as it appears in the report text (one or two lines)."""
        label = self.label or self.name
        head = f"  {label} {self.shape}" if self.shape is not None else f"  {label}"
        if self.kind in ("contract", "generate"):
            text = f"  {self.kind}: {self.name}: {self.status}"
            return text + (f" ({self.message})" if self.message else "")
        if self.status == "ok":
            text = f"{head}: ok (max rel err {self.max_rel_error:.1e}"
            text += f", {self.message})" if self.message else ")"
            return text
        if self.status == "mismatch":
            analytic, numeric = _pair(self.analytic, self.numeric)
            if self.index is None:  # found along a direction, not at one element
                unit = "blocks" if self.message.startswith("blocks") else "directions"
                text = (
                    f"{head}: along a random direction v, <analytic, v> = {analytic}"
                    f" but the numeric derivative is {numeric} (|diff| "
                    f"{self.max_abs_error:.1e}); {self.wrong} of {self.checked} {unit} wrong"
                )
            elif "bisected to one element" in self.message:  # (auto: the first one found)
                text = (
                    f"{head}: |analytic - numeric| = {abs(self.analytic - self.numeric):.1e} at "
                    f"{list(self.index)} (analytic {analytic}, numeric {numeric}): a wrong "
                    "element, found by bisection"
                )
            else:
                text = (
                    f"{head}: max |analytic - numeric| = {self.max_abs_error:.1e} at "
                    f"{list(self.index)} (analytic {analytic}, numeric "
                    f"{numeric}); {self.wrong} of {self.checked} "
                    f"{'directions' if self.message.startswith('projections') else 'elements'}"
                    " wrong"
                )
            if self.message:
                text += f"\n      {self.message}"
            if self.pattern:
                text += f"\n      pattern: {self.pattern}"
            return text
        if self.status == "kink":
            return (
                f"{head}: kink ({self.message}); the rest ok (max rel err {self.max_rel_error:.1e})"
            )
        return f"{head}: {self.status}" + (f" ({self.message})" if self.message else "")


def _num(value: float | None, digits: int = 4) -> str:
    return "None" if value is None else f"{value:.{digits}g}"


def _pair(analytic: float | None, numeric: float | None) -> tuple[str, str]:
    """Both values with 4 significant digits, or as many more as it takes for two different
    values to read differently (a 1e-4 relative error shows as 0.9975 and 0.9975 at 4)."""
    for digits in (4, 6, 8, 10, 12, 17):
        a, n = _num(analytic, digits), _num(numeric, digits)
        if a != n or analytic == numeric:
            return a, n
    return a, n


@dataclass
class Report:
    """The result of a check (:func:`gradcheck.check_layer` & co). ``passed`` is true when no
    entry failed; ``layer`` names what was checked (a layer's class, a function's name).
    ``headline``: the first line of a check that is not of gradients (``check_generate``'s
    verdict), printed instead of the gradient verdict, tolerances and calls."""

    layer: str
    entries: list[Entry]
    seed: int
    settings: dict[str, Any]
    shapes: dict[str, tuple[int, ...]]
    forward_calls: int = 0
    backward_calls: int = 0
    context: str | None = None
    notes: list[str] = field(default_factory=list)
    blamed: str | None = None  # what a wrong gradient is blamed on (default: layer.backward)
    summary: str | None = None  # a finding said once, under the headline (float32 inside)
    headline: str | None = None  # the first line, when not a gradient check's (generate)

    @property
    def passed(self) -> bool:
        return all(e.passed for e in self.entries)

    @property
    def gradients(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "gradient"]

    @property
    def contract(self) -> list[Entry]:
        return [e for e in self.entries if e.kind == "contract"]

    @property
    def failures(self) -> list[Entry]:
        return [e for e in self.entries if not e.passed]

    @property
    def max_rel_error(self) -> float:
        # NaN-aware: Python's max(0.0, nan) is 0.0, which would hide a NaN as a perfect match
        errors = np.array([e.max_rel_error for e in self.gradients], dtype=np.float64)
        return float(np.max(np.where(np.isnan(errors), np.inf, errors), initial=0.0))

    def __repr__(self) -> str:
        return f"<Report {self.layer} passed={self.passed}>\n{self}"

    def _repr_html_(self) -> str:
        """What Jupyter shows: a compact table (:func:`gradcheck.render.report_html`)."""
        from gradcheck.render import report_html  # (render imports this module)

        return report_html(self)

    def plot(self, *, values: bool | None = None) -> Any:
        """A matplotlib Figure: a heatmap of where each wrong gradient is wrong, with analytic
        and numeric next to it for small tensors (``values``); see
        :func:`gradcheck.heatmaps.plot`. Needs matplotlib: ``pip install
        "gradcheck-seq2seq[plot]"``."""
        from gradcheck.heatmaps import plot

        return plot(self, values=values)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-able data. The per-element values of a wrong gradient
        (``Entry.errors``, ``analytic_values``, ``numeric_values``) are left out, so that the
        record is small and of one shape whatever failed; :meth:`plot` and the HTML draw them."""
        entries = []
        for e in self.entries:
            d = {f.name: getattr(e, f.name) for f in fields(e) if f.name not in VALUES}
            d["shape"] = None if e.shape is None else list(e.shape)
            d["index"] = None if e.index is None else list(e.index)
            entries.append(d)
        return {
            "layer": self.layer,
            "passed": self.passed,
            "max_rel_error": self.max_rel_error,
            "forward_calls": self.forward_calls,
            "backward_calls": self.backward_calls,
            "seed": self.seed,
            "settings": dict(self.settings),
            "shapes": {k: list(v) for k, v in self.shapes.items()},
            "context": self.context,
            "summary": self.summary,
            "headline": self.headline,
            "entries": entries,
        }

    def __str__(self) -> str:
        if self.headline is not None:
            lines = [self.headline, *(e.line() for e in self.entries)]
            lines += [f"  note: {n}" for n in self.notes]
            return "\n".join([*lines, self.reproduce_line()])
        s = self.settings
        tol = f"eps={s['eps']:g}, rtol={s['rtol']:g}, atol={s['atol']:g}, mode={s['mode']}"
        gradients_ok = all(e.passed for e in self.gradients)
        checked_contract = s.get("contract", True)
        if self.passed and checked_contract:
            head = f"{self.layer} passes: gradients and contract hold ({tol})"
        elif self.passed:
            head = f"{self.layer} passes: gradients hold; contract not checked ({tol})"
        elif gradients_ok:
            head = f"{self.layer} breaks the layer contract ({tol})"
        elif any(e.name == "nothing checked" for e in self.gradients):
            head = f"{self.layer}: nothing was checked ({tol})"
        elif any(e.status == "not judged" for e in self.gradients):
            why = next(e.message for e in self.gradients if e.status == "not judged")
            head = f"{self.layer}: gradients not judged, forward is not deterministic ({why})"
        elif any(e.status == "mismatch" for e in self.gradients):
            blamed = self.blamed or f"{self.layer}.backward"
            head = f"{blamed} disagrees with central differences ({tol})"
        else:  # no value disagrees: a gradient could not be compared (shape, NaN forward)
            head = f"{self.layer}: a gradient could not be checked ({tol})"
        lines = [head]
        if self.summary:
            lines.append(f"  {self.summary}")
        lines += [e.line() for e in self.gradients]
        lines += [e.line() for e in self.contract]
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(
            f"  calls: {self.forward_calls} forward, {self.backward_calls} backward; "
            f"worst rel err {self.max_rel_error:.1e}"
        )
        lines.append(self.reproduce_line())
        return "\n".join(lines)

    def reproduce_line(self) -> str:
        shapes = " ".join(f"{k}={v}" for k, v in self.shapes.items())
        text = (
            f"reproduce: seed={self.seed}, {shapes}" if shapes else f"reproduce: seed={self.seed}"
        )
        if self.context:
            text += f", {self.context}"
        return text


def describe_pattern(
    analytic: np.ndarray, numeric: np.ndarray, wrong: np.ndarray, *, rtol: float = 1e-3
) -> str | None:
    """Name the shape of a wrong gradient, or ``None`` when no simple pattern fits.

    ``analytic`` and ``numeric`` are full arrays of one shape, ``wrong`` the boolean mask of the
    elements that disagree. Tried in order: all zero, sign flipped, a constant factor,
    transposed, zero exactly where wrong, wrong only in one slice (or one block of an axis of
    3H or 4H gates).
    """
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    if not wrong.any():
        return None
    scale = float(np.max(np.abs(n))) or 1.0

    def close(x: np.ndarray, y: np.ndarray) -> bool:
        return bool(np.all(np.abs(x - y) <= rtol * scale))

    if not a.any():
        return "analytic gradient is zero everywhere (never written, or written to a copy?)"
    nn = float(np.vdot(n, n))
    if nn > 0:
        c = float(np.vdot(a, n)) / nn
        # a factor needs evidence: it explains analytic where numeric alone does not, and it
        # is not 1 as printed (a factor within rounding of 1 is no factor)
        if close(a, c * n) and not close(a, n) and f"{c:.4g}" != "1":
            if abs(c + 1) < 1e-3:
                return "sign flipped (analytic = -numeric)"
            return f"off by a constant factor (analytic = {c:.4g} x numeric)"
    # transposition needs evidence: two axes of length > 1, more than 4 elements, and values
    # that differ from their own transpose (else any reshuffle "matches")
    if _can_be_transposed(n):
        if a.shape[-1] == a.shape[-2] and close(a, np.swapaxes(n, -1, -2)) and not close(a, n):
            return "transposed (analytic = numeric with its last two axes swapped)"
        if close(a.reshape(-1), n.T.reshape(-1)) and not close(a, n):
            return "transposed data (analytic = numeric.T reshaped to the same shape)"
    where = _slice_pattern(wrong)
    if not np.any(a[wrong]):
        zero = f"zero where it should not be ({int(wrong.sum())} elements analytic 0)"
        return f"{zero}, {where}" if where else zero
    return where


def _can_be_transposed(n: np.ndarray) -> bool:
    """Whether "transposed" could mean anything for ``n``: at least two axes longer than 1,
    more than 4 elements, and values that are not all alike (a transposed constant, or numbers
    that are 0 up to rounding, match anything)."""
    if n.ndim < 2 or n.size <= 4 or sum(d > 1 for d in n.shape) < 2:
        return False
    values = np.abs(n)
    return bool(values.max() > 0 and np.ptp(n) > 1e-6 * values.max())


def _slice_pattern(wrong: np.ndarray) -> str | None:
    """'wrong only at index t of axis k' or 'only in gate block j of axis k'.

    Gate blocks are looked for on the last axis only, where recurrent layers keep their 3 or 4
    gates side by side (Wx (D, 4H), Wh (H, 4H), b (4H,)): on another axis a run of wrong
    rows (say the ids an Embedding saw) is no gate."""
    best = None
    for axis in range(wrong.ndim):
        size = wrong.shape[axis]
        if size < 2:
            continue
        hit = np.flatnonzero(np.any(np.moveaxis(wrong, axis, 0).reshape(size, -1), axis=1))
        if len(hit) == size:
            continue
        covered = wrong.sum() / (np.prod(wrong.shape) / size * len(hit))
        if len(hit) == 1 and covered >= 0.5 and wrong.sum() > 1:
            t = int(hit[0])
            last = " (the last)" if t == size - 1 else " (the first)" if t == 0 else ""
            text = f"wrong only at index {t}{last} of axis {axis} (size {size})"
            if best is None:
                best = text
        for blocks in (4, 3) if axis == wrong.ndim - 1 else ():
            if size % blocks:
                continue
            H = size // blocks
            j = int(hit[0]) // H
            if H > 1 and hit[-1] < (j + 1) * H and len(hit) > 1 and covered >= 0.5:
                return (
                    f"wrong only in gate block {j} of {blocks} along axis {axis} "
                    f"(indices {j * H}..{(j + 1) * H - 1})"
                )
    return best
