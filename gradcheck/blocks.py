"""Auto mode's comparison: every element covered by blocked projections, bisected where they
disagree.

The flat tensor is cut into blocks of at most :data:`BLOCK` elements. Along a direction ``u``
of unit length made of random weights (:func:`weights`) on a block's ``m`` elements and zero
elsewhere, the
analytic side is ``<grad, u>`` and the numeric side one error-estimated directional derivative
(:func:`gradcheck.differences.measure`: two steps, extrapolated, 4 forwards). The two agree when

    |a - n| <= atol + noise + rtol * max(|a|, |n|, ||grad_block * u||) + error

where noise is the measured rounding of the loss divided by the step, and error the estimate of
the extrapolation's own. A block that agrees is trusted whole: a wrong element ``k`` moves
``<grad, u>`` by its error times ``u[k]``, at least ``1/(2 sqrt(m))``, whatever the others do,
so a block hides only an error smaller than the tolerance (no weight is ever near zero). A
block that disagrees is split in halves and each half measured again (bisection), down to the
one element that is wrong, as full mode would name it; a kink (or a NaN) within the step is
split around the same way and its element looked at again at the plain step ``eps``. On a
tensor of at most ``max_elements`` a disagreement is localised by every element at once
instead, so that its pattern can be named (:func:`gradcheck.compare.compare_elements`).

Cost: 4 forwards per block, so ``4 * ceil(n / BLOCK)`` per tensor, plus about ``8 * log2(BLOCK)``
for a wrong element.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gradcheck.compare import Findings, Target, compare_elements, undefined_message, within
from gradcheck.differences import Probe, Tolerance, measure, remembered, second_look
from gradcheck.numerical import (
    directional_derivative,
    numerical_gradient,
    slice_derivative,
    uniform_int16,
)
from gradcheck.options import Settings
from gradcheck.projections import nonfinite_entry
from gradcheck.report import Entry

__all__ = ["BLOCK", "block_bounds", "compare_blocks", "weights"]

#: The most elements one block holds: ``4 * ceil(n / BLOCK)`` forwards cover a tensor of n.
BLOCK = 4096
#: At most this many pieces per tensor are measured while bisecting.
_MAX_PIECES = 96


def block_bounds(size: int) -> np.ndarray:
    """Where the blocks of a flat tensor of ``size`` elements start and end: as many as
    ``ceil(size / BLOCK)``, of sizes that differ by at most one."""
    count = max(1, -(-size // BLOCK))
    return np.linspace(0, size, count + 1).round().astype(np.int64)


def weights(seed: int, size: int) -> np.ndarray:
    """``size`` random weights in float64, the same for the same ``seed``: a random sign times
    a size uniform in [1, 2). Never near zero, so every element counts in its block at least
    half as much as any other; not all of one size, so that errors of a pattern (a transposed
    matrix: the error at (i, j) minus the one at (j, i)) cannot cancel along them, as they do
    along plain signs whenever those happen to be symmetric."""
    bits = uniform_int16(seed, size)
    size_of = 1.0 + (bits.astype(np.int32) & 0x7FFF) / 32768.0
    return np.where(bits < 0, -size_of, size_of)


@dataclass(frozen=True)
class Piece:
    """One measured piece: the flat elements ``[lo, hi)``, ``<grad, u>`` and the numeric
    derivative along ``u``, what they may differ by, and whether the numeric value is not to be
    trusted as it is (NaN/Inf within the step, or a kink: the jump between the one-sided slopes
    does not halve with the step)."""

    lo: int
    hi: int
    analytic: float
    numeric: float
    allowed: float
    scale: float
    shaky: bool

    @property
    def agrees(self) -> bool:
        return math.isfinite(self.numeric) and abs(self.analytic - self.numeric) <= self.allowed

    @property
    def relative(self) -> float:
        return abs(self.analytic - self.numeric) / max(self.scale, 1e-300)


class _Blocks:
    """The blocks of one target, measured on demand (each from its seed, so a piece of a block
    is measured along the same weights as the block)."""

    def __init__(self, t: Target, analytic: np.ndarray, probe: Probe, tol: Tolerance) -> None:
        self.t, self.flat, self.probe, self.tol = t, analytic.reshape(-1), probe, tol
        self.bounds = block_bounds(t.array.size)
        self.seed = int(probe.rng.integers(2**62))
        self.pieces = 0

    def direction(self, block: int) -> np.ndarray:
        lo, hi = int(self.bounds[block]), int(self.bounds[block + 1])
        u = weights(self.seed + block, hi - lo)
        return u / np.linalg.norm(u)

    def measure(self, block: int, lo: int, hi: int) -> Piece:
        start = int(self.bounds[block])
        u = self.direction(block)[lo - start : hi - start]
        t, probe, tol = self.t, self.probe, self.tol
        g = self.flat[lo:hi]
        a = float(np.dot(g, u))

        def along(step: float):
            if t.array.flags.c_contiguous:
                return slice_derivative(probe.evaluate, t.array, lo, u, eps=step, f0=probe.L0)
            v = np.zeros(t.array.size)
            v[lo:hi] = u
            return directional_derivative(
                probe.evaluate, t.array, [v.reshape(t.array.shape)], eps=step, f0=probe.L0
            )

        key = (t.name, t.array.shape, "block", self.seed + block, lo, hi)
        d = measure(probe, lambda step: remembered(probe, (*key, step), lambda: along(step)))
        n = float(d.central[0])
        error = float(np.broadcast_to(d.error, (1,))[0])
        scale = max(abs(a), abs(n) if math.isfinite(n) else 0.0)
        allowed = tol.atol + tol.noise + tol.rtol * scale + error
        # a kink within the step: one-sided slopes apart by more than noise, and not by less
        # at half the step (curvature halves the gap)
        gap = abs(float(d.left[0]) - float(d.right[0]))
        kink = d.kinks is not None and bool(d.kinks[0]) and gap > allowed
        shaky = not math.isfinite(n) or kink
        if shaky and abs(a - n) > allowed and probe.estimated and not probe.float32_inside:
            # a kink or a domain edge within reach of the larger step: judged at the plain
            # step eps instead (2 forwards), where it rarely is; a piece that still disagrees
            # is split further
            plain = remembered(probe, (*key, probe.eps), lambda: along(probe.eps))
            n = float(plain.central[0])
            scale = max(abs(a), abs(n) if math.isfinite(n) else 0.0)
            allowed = tol.atol + probe.eps_noise + tol.noise + tol.rtol * scale
        return Piece(lo, hi, a, n, allowed, scale, shaky)


def compare_blocks(
    t: Target,
    analytic: np.ndarray,
    probe: Probe,
    tol: Tolerance,
    settings: Settings,
    findings: Findings,
) -> Entry:
    """The entry of ``t`` from blocked projections covering every element."""
    shape = tuple(t.array.shape)
    blocks = _Blocks(t, analytic, probe, tol)
    count = len(blocks.bounds) - 1
    largest = int(np.max(np.diff(blocks.bounds)))
    entry = Entry(t.name, "gradient", "ok", shape=shape, label=t.label)
    entry.checked = t.array.size
    # (one block, the usual case of a small tensor, goes without saying)
    entry.message = f"blocks: {count} of up to {largest} elements" if count > 1 else ""
    if not np.all(np.isfinite(blocks.flat)):  # a NaN/Inf element: blamed directly, by index
        if t.array.size <= settings.max_elements:
            return compare_elements(t, analytic, None, probe, tol, findings)
        return nonfinite_entry(entry, t, analytic, probe, findings)
    bounds = blocks.bounds
    measured = [blocks.measure(k, int(bounds[k]), int(bounds[k + 1])) for k in range(count)]
    agreeing = [p for p in measured if p.agrees]
    worst = max(agreeing, key=lambda p: p.relative, default=None)
    if worst is not None:
        entry.analytic, entry.numeric = worst.analytic, worst.numeric
        entry.max_abs_error = max(abs(p.analytic - p.numeric) for p in agreeing)
        entry.max_rel_error = worst.relative
    failing = [k for k, p in enumerate(measured) if not p.agrees]
    if not failing:
        return entry
    if t.array.size <= settings.max_elements:  # every element at once: the pattern too
        out = compare_elements(t, analytic, None, probe, tol, findings)
        if out.status == "ok":  # the blocks' disagreement was a kink or NaN the elements saw
            return out
        if count > 1:
            said = f"{len(failing)} of {count} blocks disagree"
            out.message = f"{said}; {out.message}" if out.message else said
        return out
    return _bisected(entry, blocks, measured, failing, probe, tol)


def _bisected(
    entry: Entry,
    blocks: _Blocks,
    measured: list,
    failing: list[int],
    probe: Probe,
    tol: Tolerance,
) -> Entry:
    """The entry of a large tensor whose ``failing`` blocks are bisected, one after the other,
    until one element is found wrong on its own (or none is: the blocks held kinks, or errors
    each within its element's tolerance)."""
    t, shape = blocks.t, tuple(blocks.t.array.shape)
    kinks = wrong_blocks = 0
    undefined_at: tuple[int, ...] | None = None
    found = None
    for k in failing:
        piece = measured[k]
        verdict, leaf = _bisect_block(blocks, k, piece, probe, tol)
        if verdict == "kink":
            kinks += 1
        elif verdict == "undefined":
            undefined_at = tuple(int(i) for i in np.unravel_index(leaf[0], shape))
            break
        elif verdict == "mismatch":
            wrong_blocks += 1
            found = leaf
            break
    failing_count = len(failing)
    entry.wrong, entry.kinks = wrong_blocks, kinks
    notes = [entry.message]
    if undefined_at is not None:
        entry.status = "fail"
        entry.index = undefined_at
        entry.analytic = float(blocks.flat[np.ravel_multi_index(undefined_at, shape)])
        entry.numeric = float("nan")
        notes.append(undefined_message(t, undefined_at, probe.eps))
    elif found is not None:
        entry.status = "mismatch"
        flat_k, a, n = found
        entry.analytic, entry.numeric = a, n
        entry.max_abs_error = max(entry.max_abs_error, abs(a - n))
        entry.max_rel_error = max(
            entry.max_rel_error, float(tol.relative(np.array(a), np.array(n)))
        )
        entry.index = tuple(int(i) for i in np.unravel_index(flat_k, shape))
        notes.append(f"{failing_count} of {len(measured)} blocks disagree; bisected to one element")
        if a == 0:
            entry.pattern = "zero where it should not be (analytic 0 at the wrong element)"
    elif kinks:
        entry.status = "kink"
        notes.append(
            f"{kinks} block(s) hold a non-differentiable point, not compared there; "
            "the pieces split around it agree"
        )
    else:  # (a block's disagreement alone never blames: no element was wrong on its own)
        notes.append(
            f"{failing_count} of {len(measured)} blocks disagreed by more than their tolerance, "
            "but bisected, no element of them is wrong on its own"
        )
    entry.message = "; ".join(notes)
    return entry


def _bisect_block(
    blocks: _Blocks, block: int, piece: Piece, probe: Probe, tol: Tolerance
) -> tuple[str, tuple | None]:
    """Split a disagreeing block until its pieces agree or are one element, and judge each such
    element on its own (:func:`_element`). Returns the verdict: "mismatch" or "undefined" with
    ``(flat index, analytic, numeric)`` of the element; "kink" when only kinks were found;
    "ok" when every piece agreed in the end, or the budget ran out before any element was
    found wrong (a block's disagreement alone never blames)."""
    pending = [piece]
    kink = False
    while pending:
        p = pending.pop()
        if p.agrees:
            continue
        if p.hi - p.lo == 1:
            verdict, values = _element(blocks, p.lo, probe, tol)
            if verdict in ("mismatch", "undefined"):
                return verdict, values
            kink |= verdict == "kink"
            continue
        if blocks.pieces + 2 > _MAX_PIECES:
            break
        mid = (p.lo + p.hi) // 2
        blocks.pieces += 2
        pending += [blocks.measure(block, mid, p.hi), blocks.measure(block, p.lo, mid)]
    return ("kink" if kink else "ok"), None


def _element(blocks: _Blocks, k: int, probe: Probe, tol: Tolerance) -> tuple[str, tuple]:
    """The verdict on flat element ``k``, measured on its own as full mode measures it
    (error-estimated, a kink or NaN within the step looked at again at ``eps``): "ok", "kink",
    "undefined" or "mismatch", with ``(k, analytic, numeric)``."""
    t = blocks.t
    a = blocks.flat[k : k + 1]
    at = np.array([k])
    d = measure(
        probe,
        lambda step: remembered(
            probe,
            (t.name, t.array.shape, "elements", step, at.tobytes()),
            lambda: numerical_gradient(probe.evaluate, t.array, eps=step, indices=at, f0=probe.L0),
        ),
    )
    shaky = np.asarray(d.kinks if d.kinks is not None else [True], dtype=bool)
    if probe.estimated and not probe.float32_inside:
        d, shaky = second_look(t, a, at, d, probe, tol)
    n = float(d.central[0])
    values = (k, float(a[0]), n)
    if not math.isfinite(n):
        return "undefined", values
    allowed = float(tol.allowed(a, d.central)[0] + np.broadcast_to(d.error, (1,))[0])
    if abs(values[1] - n) <= allowed:
        return "ok", values
    gap = abs(float(d.left[0] - d.right[0]))
    if (
        probe.excuse_kinks
        and bool(shaky[0])
        and gap > allowed
        and bool(within(a, d.left, d.right, np.array(allowed))[0])
    ):
        return "kink", values
    return "mismatch", values
