"""Fingerprints: a few numbers that stand for a gradient, so that the contract checks compare
two backwards without holding a second copy of every gradient.

A fingerprint is ``|g|`` and two random projections ``<r1, g>``, ``<r2, g>``: it changes when
``g`` changes (unless the change is orthogonal to both random vectors and keeps the norm, which
random vectors make vanishingly unlikely) and scales with ``g``, so "the same gradient" and
"twice the gradient" are three float comparisons each.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gradcheck.numerical import uniform_int16

__all__ = ["fingerprint", "scaled"]

#: Relative tolerance of the checks that compare two runs of exactly the same arithmetic.
_EXACT = 1e-9
_INT16_SCALE = 2.0**-15
#: Above this many elements the projections are taken in slices of it (the int16 draws are
#: made float64 for the product a slice at a time, not all at once).
SLICE = 1 << 13


def fingerprint(g: Any, seed: int = 0) -> tuple[float, float, float]:
    """A few numbers that change when ``g`` changes and scale with it: ``|g|`` and two
    random projections. Comparing fingerprints instead of copies keeps the contract checks
    from holding a second copy of every gradient."""
    g = np.asarray(g, dtype=np.float64).reshape(-1)
    n = g.size
    squares = float(np.dot(g, g))
    if 1e-280 < squares < 1e280:
        norm = math.sqrt(squares)
    else:  # zero, or g.g under- or overflows (tiny but valid values), or not finite
        peak = max(float(g.max()), -float(g.min())) if n else 0.0
        norm = 0.0
        if peak > 0:  # |g| as peak * |g / peak|
            unit = g / peak
            norm = peak * float(np.sqrt(np.dot(unit, unit)))
            del unit
    # both projections from one draw of int16s, scaled to [-1, 1) after
    r = uniform_int16(seed, 2 * n).reshape(2, n)
    step = SLICE
    if n <= step:
        projections = np.dot(r, g)
    else:
        projections = np.zeros(2)
        for i in range(0, n, step):
            projections += np.dot(r[:, i : i + step], g[i : i + step])
    del r
    first, second = (projections * _INT16_SCALE).tolist()
    return norm, first, second


def scaled(b: tuple[float, ...], a: tuple[float, ...], c: float) -> bool:
    """Whether fingerprint ``b`` is that of ``c`` times the array of fingerprint ``a`` (in plain
    floats: three numbers)."""
    norm, first, second = a
    if norm == 0.0:
        return all(x == 0 for x in b)
    expect = (abs(c) * norm, c * first, c * second)
    tol = (abs(c) * norm * _EXACT, abs(c) * norm * 10 * _EXACT, abs(c) * norm * 10 * _EXACT)
    return all(abs(x - e) <= t for x, e, t in zip(b, expect, tol, strict=True))
