"""Auto mode's comparison: every element covered by blocked projections, bisected where they
disagree.

The flat tensor is cut into blocks of at most :data:`BLOCK` elements. Along a direction ``u``
of unit length made of random weights (:func:`weights`) on a block's ``m`` elements and zero
elsewhere, the analytic side is ``<grad, u>`` and the numeric side one error-estimated
directional derivative (:func:`gradcheck.differences.measure`: two steps, extrapolated, 4
forwards). The two agree when

    |a - n| <= atol + noise + rtol * max(|a|, |n|) + error

where noise is the measured rounding of the loss divided by the step, and error the estimate of
the extrapolation's own. A block that agrees is trusted whole: a wrong element ``k`` moves
``<grad, u>`` by its error times ``u[k]``, about ``1/(1.5 sqrt(m))`` and never near zero,
whatever the others do, so a block hides only an error smaller than the tolerance. Values the
steps cannot be trusted for (a kink, a NaN or a steep function within them) are taken again
at the plain step ``eps`` (:func:`gradcheck.differences.second_look`).

A block that disagrees is split in halves and each half measured again (bisection), down to
single elements, and an element is blamed only when, measured on its own as full mode measures
it, it is wrong. When no single element is, the block is blamed as a whole only if it
disagrees beyond what independent errors of ``rtol`` in each of its elements could add up to
(:data:`gradcheck.differences.SPREAD_SIGMAS`): a small error spread over many elements (a
whole gate scaled by 1 %), which no element shows on its own. On a tensor of at most
``max_elements`` a disagreement is localised by every element at once instead, so that its
pattern can be named (:func:`gradcheck.compare.compare_elements`).

Cost: 4 forwards per block, so ``4 * ceil(n / BLOCK)`` per tensor, plus about ``8 * log2(BLOCK)``
for a wrong element; bisecting around many kinks costs more, and at most as many pieces as
half the tensor's elements, beyond which the row says it could not verify the tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gradcheck.compare import Findings, Target, compare_elements, undefined_message
from gradcheck.differences import (
    SPREAD_SIGMAS,
    Probe,
    Tolerance,
    measure,
    remembered,
    second_look,
)
from gradcheck.numerical import Differences, directional_derivative, slice_derivative, uniform_int16
from gradcheck.options import Settings
from gradcheck.projections import nonfinite_entry
from gradcheck.report import Entry

__all__ = ["BLOCK", "block_bounds", "compare_blocks", "weights"]

#: The most elements one block holds: ``4 * ceil(n / BLOCK)`` forwards cover a tensor of n.
BLOCK = 4096
#: Pieces a tensor may be bisected into: at least this many, and up to half its elements.
_MIN_PIECES = 96


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
    derivative along ``u``, what they may differ by (``allowed``), the relative error, and
    ``spread``: ``||grad_piece * u||``."""

    lo: int
    hi: int
    analytic: float
    numeric: float
    allowed: float
    relative: float
    spread: float

    @property
    def agrees(self) -> bool:
        return math.isfinite(self.numeric) and abs(self.analytic - self.numeric) <= self.allowed

    def beyond_spread(self, rtol: float) -> bool:
        """Whether it disagrees beyond what errors of ``rtol`` in each element add up to."""
        error = abs(self.analytic - self.numeric)
        return not error <= self.allowed + SPREAD_SIGMAS * rtol * self.spread


class _Blocks:
    """The blocks of one target, measured on demand (each from its seed, so a piece of a block
    is measured along the same weights as the block)."""

    def __init__(self, t: Target, analytic: np.ndarray, probe: Probe, tol: Tolerance) -> None:
        self.t, self.flat, self.probe, self.tol = t, analytic.reshape(-1), probe, tol
        self.bounds = block_bounds(t.array.size)
        self.seed = int(probe.rng.integers(2**62))
        self.budget = max(_MIN_PIECES, t.array.size // 2)  # pieces left for bisection
        self.worst: Piece | None = None  # the agreeing piece of the largest relative error
        self._directions: dict[int, np.ndarray] = {}

    def direction(self, block: int) -> np.ndarray:
        u = self._directions.get(block)
        if u is None:
            lo, hi = int(self.bounds[block]), int(self.bounds[block + 1])
            w = weights(self.seed + block, hi - lo)
            u = self._directions[block] = w / np.linalg.norm(w)
        return u

    def measure(self, block: int, lo: int, hi: int) -> Piece:
        start = int(self.bounds[block])
        u = self.direction(block)[lo - start : hi - start]
        t, probe, tol = self.t, self.probe, self.tol
        g = self.flat[lo:hi]
        a = np.array([float(np.dot(g, u))])

        def along(step: float, which: np.ndarray | None = None) -> Differences:
            def differences() -> Differences:
                if t.array.flags.c_contiguous:
                    return slice_derivative(probe.evaluate, t.array, lo, u, eps=step, f0=probe.L0)
                v = np.zeros(t.array.size)
                v[lo:hi] = u
                return directional_derivative(
                    probe.evaluate, t.array, [v.reshape(t.array.shape)], eps=step, f0=probe.L0
                )

            key = (t.name, t.array.shape, "block", self.seed + block, lo, hi, step)
            return remembered(probe, key, differences)

        d = measure(probe, along)
        if probe.estimated and not probe.float32_inside:
            d, _ = second_look(probe, tol, a, d, along)
        n = d.central
        allowed = float(tol.allowed(a, n)[0] + np.broadcast_to(d.error, (1,))[0])
        error = np.broadcast_to(d.error, (1,))
        relative = float(tol.relative(a, n, error)[0]) if np.isfinite(n[0]) else math.inf
        spread = float(np.linalg.norm(g * u))
        piece = Piece(lo, hi, float(a[0]), float(n[0]), allowed, relative, spread)
        if piece.agrees and (self.worst is None or relative > self.worst.relative):
            self.worst = piece
        return piece


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
    failing = [k for k, p in enumerate(measured) if not p.agrees]
    if failing and t.array.size <= settings.max_elements:  # every element: the pattern too
        out = compare_elements(t, analytic, None, probe, tol, findings)
        if count > 1:
            said = f"{len(failing)} of {count} blocks disagree"
            out.message = f"{said}; {out.message}" if out.message else said
        if out.status == "ok" and any(measured[k].beyond_spread(tol.rtol) for k in failing):
            return _spread_over(entry, measured[failing[0]], count, blocks)
        return out
    if failing:
        entry = _bisected(entry, blocks, measured, failing, findings)
    _worst_agreeing(entry, blocks)
    return entry


def _worst_agreeing(entry: Entry, blocks: _Blocks) -> None:
    """The relative error of a row: the worst of the pieces that agreed (a wrong one's values
    are already on the row)."""
    worst = blocks.worst
    if worst is None:
        return
    entry.max_rel_error = max(entry.max_rel_error, worst.relative)
    entry.max_abs_error = max(entry.max_abs_error, abs(worst.analytic - worst.numeric))
    if entry.status == "ok" and entry.analytic is None:
        entry.analytic, entry.numeric = worst.analytic, worst.numeric


def _bisected(
    entry: Entry,
    blocks: _Blocks,
    measured: list[Piece],
    failing: list[int],
    findings: Findings,
) -> Entry:
    """The entry of a large tensor whose ``failing`` blocks are bisected, one after the other,
    until one element is found wrong on its own (or none is: the blocks held kinks, or errors
    each within its element's tolerance)."""
    t, shape, tol = blocks.t, tuple(blocks.t.array.shape), blocks.tol
    kinks = 0
    notes = [entry.message] if entry.message else []
    said = f"{len(failing)} of {len(measured)} blocks disagree" if len(measured) > 1 else ""
    said = said or "its one block disagrees"
    for k in failing:
        verdict, found = _bisect_block(blocks, k, measured[k], findings)
        if verdict == "kink":
            kinks += 1
            continue
        if verdict == "ok" and measured[k].beyond_spread(tol.rtol):
            return _spread_over(entry, measured[k], len(measured), blocks)
        if verdict == "unverified":
            entry.status = "fail"
            notes.append(
                f"{said}; not verified: bisecting them ran out of its {blocks.budget} pieces "
                "among non-differentiable points; mode='full' compares every element"
            )
            entry.message = "; ".join(notes)
            return entry
        if verdict in ("mismatch", "undefined"):
            index = tuple(int(i) for i in np.unravel_index(found.index, shape))
            entry.index, entry.analytic, entry.numeric = index, found.analytic, found.numeric
            entry.wrong, entry.kinks = (1 if verdict == "mismatch" else 0), kinks
            if verdict == "undefined":
                entry.status = "fail"
                notes.append(undefined_message(t, index, blocks.probe.eps))
            else:
                entry.status = "mismatch"
                entry.max_abs_error = abs(found.analytic - found.numeric)
                entry.max_rel_error = found.max_rel_error
                notes.append(f"{said}; bisected to one element")
                if found.analytic == 0:
                    entry.pattern = "zero where it should not be (analytic 0 at the wrong element)"
            entry.message = "; ".join(notes)
            return entry
    if kinks:
        entry.status, entry.kinks = "kink", kinks
        notes.append(
            f"{kinks} block(s) hold a non-differentiable point, not compared there; "
            "the pieces split around it agree"
        )
    else:  # (a block's disagreement alone never blames: no element was wrong on its own)
        notes.append(f"{said} slightly, but no element is wrong on its own")
    entry.message = "; ".join(notes)
    return entry


def _spread_over(entry: Entry, piece: Piece, count: int, blocks: _Blocks) -> Entry:
    """A mismatch of a whole block: beyond what per-element errors of rtol add up to, though
    no element is wrong on its own."""
    entry.status = "mismatch"
    entry.index = None
    entry.analytic, entry.numeric = piece.analytic, piece.numeric
    entry.max_abs_error = abs(piece.analytic - piece.numeric)
    entry.max_rel_error = piece.relative
    entry.checked, entry.wrong = count, 1
    where = f"elements {piece.lo}..{piece.hi - 1} (flat)"
    entry.message = (
        f"blocks: the block of {where} disagrees, though no element of it is wrong on its own: "
        "a small error spread over many elements"
    )
    return entry


def _bisect_block(
    blocks: _Blocks, block: int, piece: Piece, findings: Findings
) -> tuple[str, Entry | None]:
    """Split a disagreeing block until its pieces agree or are one element, and judge each such
    element on its own, as full mode does. Returns the verdict and, for "mismatch" and
    "undefined", the element's entry (its flat index in ``index``): "kink" when only kinks
    were found; "ok" when every piece agreed in the end; "unverified" when the tensor's budget
    of pieces ran out first."""
    pending = [piece]
    kink = False
    while pending:
        p = pending.pop()
        if p.agrees:
            continue
        if p.hi - p.lo == 1:
            verdict, found = _element(blocks, p.lo, findings)
            if verdict in ("mismatch", "undefined"):
                return verdict, found
            kink |= verdict == "kink"
            continue
        if blocks.budget < 2:
            return "unverified", None
        mid = (p.lo + p.hi) // 2
        blocks.budget -= 2
        pending += [blocks.measure(block, mid, p.hi), blocks.measure(block, p.lo, mid)]
    return ("kink" if kink else "ok"), None


def _element(blocks: _Blocks, k: int, findings: Findings) -> tuple[str, Entry]:
    """Flat element ``k`` compared on its own exactly as full mode compares it (its kinks told
    the same way): "ok", "kink", "undefined" or "mismatch", with its entry (whose ``index`` is
    set to the flat index)."""
    t = blocks.t
    one = compare_elements(
        t, blocks.flat.reshape(t.array.shape), np.array([k]), blocks.probe, blocks.tol, findings
    )
    one.index = k
    if one.status == "fail":
        return "undefined", one
    return one.status, one
