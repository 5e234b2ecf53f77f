"""Fast mode's half of the comparison: gradients checked along random directions.

Along a direction ``v`` the analytic side is ``<grad, v>`` and the numeric side one central
difference (2 forwards), so a tensor of any size costs 2 forwards per direction. A direction
that disagrees because a kink (or a NaN) lies on its way is split in halves (bisection) until
the pieces are smooth or one element, which also locates a wrong element.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from gradcheck.compare import Findings, Target, nonfinite_name, undefined_message, within
from gradcheck.differences import (
    SPREAD_SIGMAS,
    Measured,
    Probe,
    Tolerance,
    measure,
    remembered,
)
from gradcheck.numerical import (
    Differences,
    directional_derivative,
    dot,
    numerical_gradient,
    uniform_direction,
)
from gradcheck.options import Settings
from gradcheck.report import Entry

__all__ = ["compare_directions", "directions", "nonfinite_entry"]

#: At most this many pieces per tensor when a projection is split to get around kinks.
_MAX_BISECTIONS = 48


def directions(
    seeds: np.ndarray, shape: tuple[int, ...] | None, like: list[np.ndarray] | None = None
) -> Iterator[np.ndarray]:
    """Random float32 directions, uniform in [-1, 1) per element (float32: half the memory of
    the tensor they move; the step is still formed in float64), one alive at a time, each from
    its seed (so the same ones can be drawn again); of ``shape``, or of each array's shape in
    ``like``. Uniform rather than normal: as good a direction, and 3x cheaper to draw."""
    for k, seed in enumerate(seeds):
        size = shape if like is None else like[k].shape
        v = uniform_direction(int(seed), size)
        yield v
        v = None  # (so that drawing the next one does not keep two alive)


def _projected(
    vs: Iterator[np.ndarray], analytic: np.ndarray, along: list[float]
) -> Iterator[np.ndarray]:
    """Pass each direction on, appending ``<analytic, v>`` to ``along`` first: one draw per
    direction instead of one for the numeric and one for the analytic side."""
    for v in vs:
        along.append(dot(analytic, v))
        yield v
        v = None  # (so that drawing the next one does not keep two alive)


def compare_directions(
    t: Target,
    analytic: np.ndarray,
    probe: Probe,
    tol: Tolerance,
    settings: Settings,
    findings: Findings,
) -> Entry:
    """The entry of ``t`` from ``settings.projections`` random directions."""
    shape = tuple(t.array.shape)
    # one direction alive at a time (<analytic, v> taken while it is), each from its seed, so
    # a direction to split is drawn again rather than kept
    seeds = probe.rng.integers(2**63, size=settings.projections)
    along: list[float] = []

    def differences(step: float) -> Differences:
        vs = directions(seeds, shape)
        if not along:  # (a second step, in float32, draws the same directions again)
            vs = _projected(vs, analytic, along)
        return directional_derivative(probe.evaluate, t.array, vs, eps=step, f0=probe.L0)

    key = (t.name, shape, "directions", seeds.tobytes())
    d = measure(probe, lambda step: remembered(probe, (*key, step), lambda: differences(step)))
    if not along:  # (the differences were remembered: no direction was drawn for them)
        along = [dot(analytic, v) for v in directions(seeds, shape)]
    findings.first_projections[id(t.array)] = (int(seeds[0]), float(d.central[0]))
    return _judge(t, analytic, np.array(along), d, seeds, probe, tol, findings)


def _judge(
    t: Target,
    analytic: np.ndarray,
    a: np.ndarray,
    d: Measured,
    seeds: np.ndarray,
    probe: Probe,
    tol: Tolerance,
    findings: Findings,
) -> Entry:
    n = d.central
    entry = Entry(t.name, "gradient", "ok", shape=tuple(t.array.shape), label=t.label)
    entry.message = f"projections: {len(n)} random directions <grad, v>"
    flat_analytic = analytic.reshape(-1)
    if not np.all(np.isfinite(a)):  # a NaN/Inf element: blame it directly, by its index
        entry = nonfinite_entry(entry, t, analytic, probe, findings)
        entry.checked, entry.wrong = len(n), int(np.count_nonzero(~np.isfinite(a)))
        return entry
    agreed = None if probe.float32_inside else tol.all_agree(a, n)
    if agreed is not None:  # the usual case, in plain floats: the same values as below
        errors, relative = agreed
        k = errors.index(max(errors))
        entry.analytic, entry.numeric = float(a[k]), float(n[k])
        entry.max_abs_error, entry.max_rel_error = errors[k], max(relative)
        entry.checked = len(n)
        return entry
    finite = np.isfinite(n)
    allowed = tol.allowed(a, n) + d.error
    err = np.where(finite, np.abs(a - n), np.inf)  # NaN compares False: make it inf
    bad = ~finite | (err > allowed)
    kinky = bad & finite & (np.abs(d.left - d.right) > allowed)
    if d.kinks is not None:  # float32: kinks told from curvature by two steps; no bisection
        kinky &= d.kinks
        return _unsplit(entry, a, n, err, bad, kinky, tol)
    undefined = ~finite  # forward NaN/Inf at x +- eps * v
    # a disagreement within what errors of rtol in each element could add up to along v (a
    # softmax's gradient cancels along v; an approximate loss is off by a little everywhere)
    # blames only an element found wrong on its own, by splitting the direction
    flat = analytic.reshape(-1)
    spread = np.array([np.linalg.norm(flat * v.reshape(-1)) for v in directions(seeds, flat.shape)])
    marginal = bad & finite & ~kinky & (err <= allowed + SPREAD_SIGMAS * tol.rtol * spread)
    wrong = bad & ~kinky & ~undefined & ~marginal
    rel = np.where(finite, tol.relative(a, n), np.inf)
    k = int(np.argmax(np.where(kinky | undefined, -1, err)))
    entry.analytic, entry.numeric = float(a[k]), float(n[k])
    entry.max_abs_error = float(np.max(err[~kinky & ~undefined], initial=0.0))
    entry.max_rel_error = float(np.max(rel[~kinky & ~undefined], initial=0.0))
    undefined_at: tuple[int, ...] | None = None
    kinks: set[tuple[int, int]] = set()  # pieces [lo, hi) at a kink (one element each,
    budget = [_MAX_BISECTIONS]  # unless the budget ran out first)
    for j in np.flatnonzero(kinky | undefined | marginal):
        # a kink (or a NaN) on the way, or a marginal disagreement: split the direction until
        # the pieces are smooth or one element
        v = next(directions(seeds[j : j + 1], analytic.shape)).reshape(-1)
        found = _bisect(t, analytic.reshape(-1), v, 0, v.size, budget, probe, tol)
        for status, lo, hi, a_sub, n_sub in found:
            if status == "undefined":
                undefined_at = tuple(int(i) for i in np.unravel_index(lo, analytic.shape))
                continue
            rel_sub = float(tol.relative(np.array(a_sub), np.array(n_sub)))
            if status == "kink":
                if undefined[j] or marginal[j]:
                    continue  # the budget ran out before the NaN (or a wrong element) was found
                kinks.add((lo, hi))
                continue
            entry.max_rel_error = max(entry.max_rel_error, rel_sub)
            if status == "ok":
                continue
            wrong[j] = True
            if hi - lo == 1:  # one element: its own values, not scaled by v
                a_sub, n_sub = a_sub / float(v[lo]), n_sub / float(v[lo])
            e = abs(a_sub - n_sub)
            if e >= entry.max_abs_error or entry.index is None:
                entry.max_abs_error = e
                entry.analytic, entry.numeric = a_sub, n_sub
                if hi - lo == 1:
                    entry.index = tuple(int(i) for i in np.unravel_index(lo, analytic.shape))
    entry.checked, entry.wrong, entry.kinks = len(n), int(wrong.sum()), len(kinks)
    if undefined.any():
        entry.message += "; " + undefined_message(t, undefined_at, probe.eps)
    if wrong.any():
        entry.status = "mismatch"
    elif undefined.any():
        entry.status = "fail"
        if undefined_at is not None:
            entry.index = undefined_at
            entry.analytic = float(
                flat_analytic[np.ravel_multi_index(undefined_at, analytic.shape)]
            )
            entry.numeric = float("nan")
    elif kinks:
        entry.status = "kink"
        entry.message += (
            f"; {len(kinks)} element(s) at a non-differentiable point, not compared; "
            "the directions split around them agree"
        )
    return entry


def nonfinite_entry(
    entry: Entry, t: Target, analytic: np.ndarray, probe: Probe, findings: Findings
) -> Entry:
    """``entry`` failed on an analytic gradient with NaN/Inf values, blamed by the index of
    the first (with the numeric value there), without comparing anything else."""
    flat_analytic = analytic.reshape(-1)
    flat_k = int(np.argmax(~np.isfinite(flat_analytic)))
    count_bad = int(np.count_nonzero(~np.isfinite(flat_analytic)))
    entry.status = "mismatch"
    entry.index = tuple(int(i) for i in np.unravel_index(flat_k, analytic.shape))
    entry.analytic = float(flat_analytic[flat_k])
    one = numerical_gradient(probe.evaluate, t.array, eps=probe.eps, indices=[flat_k], f0=probe.L0)
    entry.numeric = float(one.central[0])
    entry.max_abs_error = entry.max_rel_error = np.inf
    entry.wrong = count_bad
    entry.message += (
        f"; analytic gradient is {nonfinite_name(entry.analytic)} at {list(entry.index)}"
        + (f" ({count_bad} non-finite elements)" if count_bad > 1 else "")
    )
    findings.nonfinite.append(t.name)
    return entry


def _unsplit(
    entry: Entry,
    a: np.ndarray,
    n: np.ndarray,
    err: np.ndarray,
    bad: np.ndarray,
    kinky: np.ndarray,
    tol: Tolerance,
) -> Entry:
    """The entry from directions judged as they are, not split (float32 differences)."""
    wrong = bad & ~kinky
    k = int(np.argmax(np.where(kinky, -1, err)))
    entry.analytic, entry.numeric = float(a[k]), float(n[k])
    entry.max_abs_error = float(np.max(err[~kinky], initial=0.0))
    entry.max_rel_error = float(np.max(tol.relative(a, n)[~kinky], initial=0.0))
    entry.checked, entry.wrong, entry.kinks = len(n), int(wrong.sum()), int(kinky.sum())
    entry.status = "mismatch" if wrong.any() else "kink" if kinky.any() else "ok"
    return entry


def _bisect(
    t: Target,
    analytic: np.ndarray,
    v: np.ndarray,
    lo: int,
    hi: int,
    budget: list[int],
    probe: Probe,
    tol: Tolerance,
) -> list[tuple[str, int, int, float, float]]:
    """Check direction ``v`` restricted to flat elements [lo, hi), halving every piece that
    disagrees until the piece is one element: there a kink is unambiguous (its one-sided slopes
    differ and the analytic value lies between them), where on a whole projection several kinks
    can cancel. Stops at the first wrong element. Returns ``(status, lo, hi, analytic,
    numeric)`` for each piece that agrees ("ok"), each kink and the mismatch (or the element
    where forward turns NaN/Inf: "undefined") found; pieces left when the budget runs out count
    as kinks (unresolved)."""
    out: list[tuple[str, int, int, float, float]] = []
    mid = (lo + hi) // 2
    pending = [(lo, mid), (mid, hi)] if hi - lo > 1 else [(lo, hi)]
    while pending:
        lo, hi = pending.pop()
        if budget[0] <= 0:
            out.append(("kink", lo, hi, 0.0, 0.0))
            continue
        budget[0] -= 1
        sub = np.zeros(v.size)
        sub[lo:hi] = v[lo:hi]
        a = dot(analytic[lo:hi], v[lo:hi])
        d = remembered(
            probe,
            (t.name, t.array.shape, "piece", lo, hi, v[lo:hi].tobytes(), probe.eps),
            lambda sub=sub: directional_derivative(
                probe.evaluate, t.array, [sub.reshape(t.array.shape)], eps=probe.eps, f0=probe.L0
            ),
        )
        n = float(d.central[0])
        allowed = float(tol.allowed(np.array(a), np.array(n)))
        if np.isfinite(n) and abs(a - n) <= allowed:  # an agreeing piece counts for the error
            out.append(("ok", lo, hi, a, n))
            continue
        if hi - lo > 1:
            mid = (lo + hi) // 2
            pending += [(lo, mid), (mid, hi)]
        elif not np.isfinite(n):  # forward NaN/Inf when this element moves by eps
            out.append(("undefined", lo, hi, a, n))
            return out
        elif abs(float(d.left[0] - d.right[0])) > allowed and within(
            np.array(a), d.left, d.right, np.array(allowed)
        ):
            out.append(("kink", lo, hi, a, n))
        else:
            out.append(("mismatch", lo, hi, a, n))
            return out
    return out
