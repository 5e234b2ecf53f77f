"""The comparison: analytic gradients against central differences, one entry per quantity.

Each checked quantity (a float input, a parameter, the initial state ``dh``/``dc``) is a
:class:`Target`: the float64 array the differences perturb in place and the analytic gradient.
``full`` mode differences every element; ``auto`` covers every element by blocked projections,
bisected where they disagree (:mod:`gradcheck.blocks`); ``fast`` mode projects on random
directions (:mod:`gradcheck.projections`). ``auto`` and ``full`` take error-estimated
differences (:func:`gradcheck.differences.measure`: two steps, extrapolated); a value the steps
cannot be trusted for is taken again at ``eps`` (:func:`gradcheck.differences.second_look`).
Elements whose one-sided slopes disagree are suspected kinks (non-differentiable points),
re-measured with a smaller step before they are excused; a wrong gradient's pattern is named
(:func:`gradcheck.report.describe_pattern`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradcheck.differences import (
    Probe,
    Tolerance,
    measure,
    plain_tolerance,
    remembered,
    second_look,
)
from gradcheck.numerical import Differences, numerical_gradient
from gradcheck.options import Settings
from gradcheck.report import MAX_KEPT, Entry, describe_pattern

__all__ = [
    "CHUNK",
    "Findings",
    "Target",
    "check_target",
    "compare_elements",
    "elements_of",
    "within",
]

#: At most this many suspected kinks per gradient are re-measured with a 10x smaller step.
_MAX_REFINED = 64
#: Elements compared per chunk (keeps the comparison's temporaries small next to the tensor).
CHUNK = 64


@dataclass(frozen=True)
class Target:
    """One quantity whose gradient is checked: the float64 array perturbed in place, and the
    analytic gradient (None when the layer gives none, e.g. no ``dc``)."""

    name: str
    label: str
    array: np.ndarray
    analytic: Any
    is_param: bool = False


@dataclass
class Findings:
    """What the comparison learnt beyond its entries: gradients with NaN/Inf values, and the
    seed and value of each tensor's first projection (fast mode's precision probe reuses
    them)."""

    nonfinite: list[str] = field(default_factory=list)
    first_projections: dict[int, tuple[int, float]] = field(default_factory=dict)


def check_target(
    t: Target, probe: Probe, tol: Tolerance, settings: Settings, findings: Findings
) -> Entry:
    """The entry of one quantity."""
    from gradcheck.blocks import compare_blocks  # (auto mode)
    from gradcheck.projections import compare_directions  # (fast mode)

    shape = tuple(t.array.shape)
    entry = Entry(t.name, "gradient", "ok", shape=shape, label=t.label)
    if t.array.size == 0:
        entry.status, entry.message = "skipped", "empty"
        return entry
    missing = t.analytic is None
    analytic = np.zeros(shape) if missing else np.asarray(t.analytic)  # e.g. no dc: zeros
    misshapen = ""
    if analytic.shape != shape:
        misshapen = f"gradient has shape {analytic.shape}, expected {shape} exactly"
        if analytic.size != t.array.size:
            entry.status, entry.message = "fail", misshapen
            return entry
        analytic = analytic.reshape(shape)  # the same elements: compared by value too
    analytic = analytic.astype(np.float64, copy=False)
    if np.may_share_memory(analytic, t.array):  # a gradient that is the array perturbed
        analytic = analytic.copy()
    if settings.mode == "full":
        entry = compare_elements(t, analytic, None, probe, tol, findings)
    elif settings.mode == "auto":
        entry = compare_blocks(t, analytic, probe, tol, settings, findings)
    else:
        entry = compare_directions(t, analytic, probe, tol, settings, findings)
    if misshapen:  # both facts: the shape, and whether the values (reshaped) agree
        values = "its values, reshaped, agree" if entry.passed else "its values are wrong too"
        entry.message = "; ".join(m for m in (misshapen, values, entry.message) if m)
        entry.status = "fail" if entry.passed else entry.status
    if missing:  # (the analytic side is zero because there is none: no cause to guess)
        entry.pattern = f"zero everywhere (there is no {t.name})" if entry.pattern else None
        note = f"the layer keeps no {t.name} after backward (compared as zeros)"
        if entry.status != "ok":
            note += f"; set self.{t.name} in backward"
        entry.message = f"{note}; {entry.message}" if entry.message else note
    return entry


def compare_elements(
    t: Target,
    analytic: np.ndarray,
    indices: np.ndarray | None,
    probe: Probe,
    tol: Tolerance,
    findings: Findings,
) -> Entry:
    """Central differences at every element (``indices=None``) or at the flat ``indices``,
    compared with ``analytic`` in chunks of :data:`CHUNK` elements, so that the comparison's
    temporaries stay small next to the tensor; only the numeric values are kept whole (in
    float32, for the pattern)."""
    shape = tuple(t.array.shape)
    flat_analytic = analytic.reshape(-1)
    count = t.array.size if indices is None else len(indices)
    numeric = np.empty(count, dtype=np.float32)  # only for the pattern: 1e-3 is plenty
    worst_numeric = {}  # position -> the exact float64 value, for the worst elements
    wrong = np.zeros(count, dtype=bool)
    kink = np.zeros(count, dtype=bool)
    undefined = np.zeros(count, dtype=bool)  # forward NaN/Inf at x +- eps: no numeric value
    worst_wrong = (-1.0, 0)  # (abs error, position)
    worst_ok = (-1.0, 0)  # (rel error, position)
    max_abs = max_rel = 0.0
    votes = [0, 0]  # suspected kinks re-measured: [confirmed, measured]
    for lo in range(0, count, CHUNK):
        hi = min(lo + CHUNK, count)
        idx = np.arange(lo, hi) if indices is None else indices[lo:hi]
        take = elements_of(probe, t, idx)
        d = measure(probe, take)
        a = flat_analytic[idx]
        shaky = None
        if probe.estimated and not probe.float32_inside:
            d, shaky = second_look(probe, tol, a, d, take)
        n = d.central
        numeric[lo:hi] = n
        finite_a = np.isfinite(a)
        finite = finite_a & np.isfinite(n)
        allowed = tol.allowed(a, n) + d.error
        err = np.where(finite, np.abs(a - n), np.inf)  # NaN compares False: make it inf
        bad = ~finite | (err > allowed)
        suspect = bad & finite & within(a, d.left, d.right, allowed)
        suspect &= np.abs(d.left - d.right) > allowed
        if shaky is not None:  # only where the second look was plain can it be a kink
            suspect &= shaky
        if d.kinks is not None:  # float32: already told from curvature by two steps
            suspect &= d.kinks
        elif suspect.any():
            plain = tol if shaky is None else plain_tolerance(probe, tol)
            suspect = _refine_kinks(t, a, idx, suspect, d.left, d.right, probe, plain, votes)
        kink[lo:hi] = suspect
        undefined[lo:hi] = finite_a & ~finite  # analytic fine, numeric NaN/Inf
        wrong[lo:hi] = bad & ~suspect & ~undefined[lo:hi]
        valid = ~suspect & finite
        if valid.any():
            rel = tol.relative(a, n, d.error)
            max_abs = max(max_abs, float(err[valid].max()))
            max_rel = max(max_rel, float(rel[valid].max()))
            k = int(np.where(valid, rel, -1.0).argmax())
            if rel[k] > worst_ok[0]:
                worst_ok = (float(rel[k]), lo + k)
                worst_numeric[lo + k] = float(n[k])
        if wrong[lo:hi].any():
            k = int(np.where(wrong[lo:hi], err, -1.0).argmax())
            if err[k] > worst_wrong[0]:
                worst_wrong = (float(err[k]), lo + k)
                worst_numeric[lo + k] = float(n[k])
    entry = Entry(t.name, "gradient", "ok", shape=shape, label=t.label)
    entry.checked, entry.wrong, entry.kinks = count, int(wrong.sum()), int(kink.sum())
    entry.max_abs_error, entry.max_rel_error = max_abs, max_rel
    if entry.wrong:
        entry.status = "mismatch"
        k = worst_wrong[1]
    elif undefined.any():
        entry.status = "fail"
        k = int(np.argmax(undefined))
    else:
        entry.status = "kink" if entry.kinks else "ok"
        k = worst_ok[1]
    flat_k = k if indices is None else int(indices[k])
    entry.index = tuple(int(i) for i in np.unravel_index(flat_k, shape))
    entry.analytic = float(flat_analytic[flat_k])
    entry.numeric = worst_numeric.get(k, float(numeric[k]))
    notes = []
    if not np.isfinite(entry.analytic):
        entry.max_abs_error = entry.max_rel_error = np.inf
        count_bad = int(np.count_nonzero(~np.isfinite(flat_analytic)))
        notes.append(
            f"analytic gradient is {nonfinite_name(entry.analytic)} at {list(entry.index)}"
            + (f" ({count_bad} non-finite elements)" if count_bad > 1 else "")
        )
        findings.nonfinite.append(t.name)
    if undefined.any():
        first = int(np.argmax(undefined))
        first = first if indices is None else int(indices[first])
        where = tuple(int(i) for i in np.unravel_index(first, shape))
        text = undefined_message(t, where, probe.eps)
        if int(undefined.sum()) > 1:
            text += f" ({int(undefined.sum())} elements like this)"
        notes.append(text)
    if indices is not None:
        notes.insert(0, f"{count} sampled elements of {t.array.size}")
    entry.message = "; ".join(notes)
    if entry.kinks:
        note = f"{entry.kinks} element(s) at a non-differentiable point, not compared"
        entry.message = f"{entry.message}; {note}" if entry.message else note
    if entry.status == "mismatch" and np.isfinite(entry.analytic) and not undefined.any():
        if indices is None:
            mask = wrong.reshape(shape)
            numeric64 = numeric.reshape(shape).astype(np.float64)
            entry.pattern = describe_pattern(analytic, numeric64, mask)
        elif not np.any(flat_analytic[indices[wrong]]):
            entry.pattern = "zero where it should not be (analytic 0 at every wrong element)"
    if entry.status == "mismatch" and indices is None and count <= MAX_KEPT:  # for a heatmap
        numeric64 = numeric.reshape(shape).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            errors = np.array(tol.relative(analytic, numeric64), dtype=np.float64)  # (0-d too)
        errors[~np.isfinite(analytic)] = np.inf
        errors[kink.reshape(shape) | undefined.reshape(shape)] = np.nan  # not compared
        entry.errors = errors.astype(np.float32)
        entry.analytic_values = analytic.astype(np.float32)
        entry.numeric_values = numeric.reshape(shape)
    return entry


def elements_of(
    probe: Probe, t: Target, idx: np.ndarray
) -> Callable[[float, np.ndarray | None], Differences]:
    """``take(step, which=None)``: the central differences of the flat elements ``idx`` of
    ``t`` (those the mask ``which`` selects) at ``step``, remembered."""

    def take(step: float, which: np.ndarray | None = None) -> Differences:
        at = idx if which is None else idx[which]
        return remembered(
            probe,
            (t.name, t.array.shape, "elements", step, at.tobytes()),
            lambda: numerical_gradient(probe.evaluate, t.array, eps=step, indices=at, f0=probe.L0),
        )

    return take


def _refine_kinks(
    t: Target,
    a: np.ndarray,
    indices: np.ndarray,
    kink: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    probe: Probe,
    tol: Tolerance,
    votes: list[int],
) -> np.ndarray:
    """Re-measure suspected kinks with a 10x smaller step. At a kink the jump between the
    one-sided slopes stays the same (or the kink leaves the step and the gradient matches); on
    a smooth curve the jump shrinks 10x with the step, and where the loss is rounding noise (a
    layer computing in float32) it grows 10x: both are wrong gradients, not kinks. Suspects
    beyond the first _MAX_REFINED (per tensor, counted in ``votes``) get the majority verdict
    of those measured (float64 only: in float32 :func:`measure` tells kinks by two steps)."""
    if not probe.excuse_kinks:
        return np.zeros_like(kink)
    where = np.flatnonzero(kink)
    order = where[np.argsort(-np.abs(left - right)[where])]
    room = max(_MAX_REFINED - votes[1], 0)
    suspects, rest = order[:room], order[room:]
    out = np.zeros_like(kink)
    if len(suspects):
        at = indices[suspects]
        d = remembered(
            probe,
            (t.name, t.array.shape, "refined", probe.eps / 10, at.tobytes()),
            lambda: numerical_gradient(probe.evaluate, t.array, eps=probe.eps / 10, indices=at),
        )
        for j, k in enumerate(suspects):
            n_small = d.central[j]
            allowed = tol.atol + 10 * tol.noise + tol.rtol * max(abs(a[k]), abs(n_small))
            resolved = abs(a[k] - n_small) <= allowed
            ratio = abs(d.left[j] - d.right[j]) / abs(left[k] - right[k])
            out[k] = bool(resolved or 0.3 <= ratio <= 3)
        votes[0] += int(out[suspects].sum())
        votes[1] += len(suspects)
    if len(rest):
        out[rest] = votes[1] == 0 or votes[0] / votes[1] > 0.5
    return out


def nonfinite_name(value: float) -> str:
    """ "NaN", "Inf" or "-Inf": how a non-finite value is named in messages."""
    return "NaN" if np.isnan(value) else "Inf" if value > 0 else "-Inf"


def undefined_message(t: Target, index: tuple[int, ...] | None, eps: float) -> str:
    where = f"{t.name}{list(index)}" if index is not None else f"{t.name} + eps * v"
    return (
        f"forward is NaN/Inf at {where}±eps (eps={eps:g}), so the numeric derivative is "
        "undefined there; move the input away from the domain edge or lower eps"
    )


def within(a: np.ndarray, left: np.ndarray, right: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """Whether ``a`` lies between the one-sided slopes (within ``tol``)."""
    lo, hi = np.minimum(left, right), np.maximum(left, right)
    return (a >= lo - tol) & (a <= hi + tol)
