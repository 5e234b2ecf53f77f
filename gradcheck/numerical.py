"""Central finite differences of a scalar function of one array, perturbed in place.

This is the project's one finite-difference implementation. It knows nothing about layers: it
takes a zero-argument function ``f`` that reads the array ``x`` (so perturbing ``x`` in place
changes ``f()``), and returns derivatives of ``f`` with respect to elements of ``x`` or along
directions ``v``. Perturbing in place costs no copies: each element is set to ``x + eps``, then
``x - eps``, then put back bit for bit.

Besides the central difference ``(f(x+h) - f(x-h)) / 2h`` each result carries the two one-sided
slopes ``(f(x+h) - f(x)) / h`` and ``(f(x) - f(x-h)) / h``: where they disagree by more than
curvature explains, ``x`` sits at a non-differentiable point (a kink) and no single derivative
is right. They cost nothing beyond one shared evaluation ``f0 = f()``.

    x = np.array([1.0, 2.0])
    d = numerical_gradient(lambda: float(np.sum(x**3)), x)
    d.central                       # array([ 3., 12.])  (to about 1e-10)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Differences",
    "directional_derivative",
    "dot",
    "noise_level",
    "numerical_gradient",
    "slice_derivative",
    "uniform_direction",
    "uniform_int16",
]


@dataclass(frozen=True)
class Differences:
    """Finite differences at some elements (or directions) of ``x``.

    ``central``, ``left``, ``right`` are float64 arrays of one value per element (or direction);
    ``indices`` are the flat indices into ``x`` they belong to (``None`` for directions);
    ``evaluations`` counts the calls of ``f``.
    """

    central: np.ndarray
    left: np.ndarray
    right: np.ndarray
    indices: np.ndarray | None
    evaluations: int


def _check_arguments(xs: list[np.ndarray], eps: float) -> None:
    for x in xs:
        if x.dtype != np.float64:
            raise TypeError(f"x.dtype={x.dtype} must be float64; perturb a float64 copy")
    if not eps > 0:
        raise ValueError(f"eps={eps} must be > 0; try eps=1e-6")


def numerical_gradient(
    f: Callable[[], float],
    x: np.ndarray,
    *,
    eps: float = 1e-6,
    indices: np.ndarray | None = None,
    f0: float | None = None,
) -> Differences:
    """Central differences of ``f()`` w.r.t. the elements of ``x`` at flat ``indices`` (all by
    default), perturbing ``x`` in place and restoring it exactly.

    ``x`` must be a float64 array that ``f`` reads. ``f0`` is ``f()`` at the unperturbed ``x``
    (evaluated here when not given) and is used only for the one-sided slopes. The step is the
    one float64 arithmetic actually takes, ``(x + eps) - x``, not ``eps`` itself.
    (x: any shape) -> central, left, right: (len(indices),)
    """
    _check_arguments([x], eps)
    evaluations = 0
    if f0 is None:
        f0 = float(f())
        evaluations += 1
    flat = np.arange(x.size) if indices is None else np.asarray(indices, dtype=np.intp)
    view = x.reshape(-1)  # a view for the contiguous arrays the checker passes
    if not np.shares_memory(view, x):
        view = None
    f_plus, f_minus = np.empty(len(flat)), np.empty(len(flat))
    for k in range(len(flat)):
        i = int(flat[k])
        target, idx = (view, i) if view is not None else (x, np.unravel_index(i, x.shape))
        value = target.item(idx)
        target[idx] = value + eps
        try:
            f_plus[k] = f()
            target[idx] = value - eps
            f_minus[k] = f()
        finally:
            target[idx] = value
    values = view[flat] if view is not None else x.reshape(-1)[flat]
    step_up = (values + eps) - values  # the steps float64 really took
    step_down = values - (values - eps)
    central = (f_plus - f_minus) / (step_up + step_down)
    right = (f_plus - f0) / step_up
    left = (f0 - f_minus) / step_down
    return Differences(central, left, right, flat, evaluations + 2 * len(flat))


def directional_derivative(
    f: Callable[[], float],
    x: np.ndarray | Sequence[np.ndarray],
    directions: Iterable[np.ndarray | Sequence[np.ndarray]],
    *,
    eps: float = 1e-6,
    f0: float | None = None,
) -> Differences:
    """Central differences of ``f()`` along each direction ``v`` in ``directions``, i.e. the
    numerical ``<grad f, v>``, perturbing ``x`` in place (``x = x0 + eps * v``) and restoring it
    exactly from one saved copy when done. ``directions`` may be a generator (one ``v`` alive at
    a time) of any float dtype (float32 directions halve the memory; the step is formed in
    float64).
    ``x`` may also be a list of arrays moved together (say, several inputs of one function);
    each ``v`` is then a list of arrays of their shapes.

    (x: shape S, each v: shape S) -> central, left, right: (K,)
    """
    single = isinstance(x, np.ndarray)
    xs = [x] if single else list(x)
    _check_arguments(xs, eps)
    evaluations = 0
    if f0 is None:
        f0 = float(f())
        evaluations += 1
    saved = [a.copy() for a in xs]
    central: list[float] = []
    left: list[float] = []
    right: list[float] = []
    try:
        for v in directions:
            vs = [np.asarray(v)] if single else [np.asarray(u) for u in v]
            if len(vs) != len(xs) or any(
                u.shape != a.shape or u.dtype.kind != "f" for u, a in zip(vs, xs, strict=False)
            ):
                raise ValueError(
                    f"direction of shapes {[u.shape for u in vs]} and dtypes "
                    f"{[str(u.dtype) for u in vs]} must be float arrays of the shapes of x, "
                    f"{[a.shape for a in xs]}"
                )
            for sign in (1.0, -1.0):  # x = x0 +- eps * v, in x itself: no temporaries
                for a, u, a0 in zip(xs, vs, saved, strict=True):
                    np.multiply(u, sign * eps, out=a, dtype=np.float64)
                    a += a0
                if sign > 0:
                    f_plus = float(f())
                else:
                    f_minus = float(f())
            v = vs = u = None  # before the generator draws the next one (x is restored last)
            central.append((f_plus - f_minus) / (2 * eps))
            right.append((f_plus - f0) / eps)
            left.append((f0 - f_minus) / eps)
    finally:
        for a, a0 in zip(xs, saved, strict=True):
            np.copyto(a, a0)
    K = len(central)
    return Differences(
        np.array(central), np.array(left), np.array(right), None, evaluations + 2 * K
    )


#: :func:`dot` takes its product in slices of this many elements above it (one call below).
DOT_SLICE = 1 << 14


def dot(a: np.ndarray, v: np.ndarray) -> float:
    """<a, v> accumulated in float64, in slices: for a float32 (or int16) ``v`` no float64 copy
    of it is made whole (a direction may be as large as the biggest parameter); below
    :data:`DOT_SLICE` elements in one call, which saves the slicing on small tensors."""
    a, v = a.reshape(-1), v.reshape(-1)
    step = DOT_SLICE
    if a.size <= step:
        return float(np.dot(a, v))
    return float(sum(np.dot(a[i : i + step], v[i : i + step]) for i in range(0, a.size, step)))


_PCG64_INCREMENT = 0xDA3E39CB94B95BDB  # any odd constant; the seed alone picks the stream
_SCALE16 = np.float32(2.0**-15)  # int16 -> [-1, 1), exactly
_generators = threading.local()


def uniform_int16(seed: int, size: int) -> np.ndarray:
    """``size`` random int16 values, uniform over all 65,536, the same for the same ``seed`` (an
    int below 2**64), so they can be drawn again instead of kept.

    Sets the state of one PCG64 bit generator per thread directly instead of seeding a new one:
    ``np.random.default_rng(seed)`` hashes the seed through a SeedSequence (about 10 µs, a
    tenth of a fast check of a small layer when drawn for every direction); this is 1 µs.
    Each raw 64-bit draw gives four values, with no conversion pass.
    (size,) int16
    """
    bits = getattr(_generators, "bits", None)
    if bits is None:
        bits = _generators.bits = np.random.PCG64(0)
    bits.state = {
        "bit_generator": "PCG64",
        "state": {"state": int(seed), "inc": _PCG64_INCREMENT},
        "has_uint32": 0,
        "uinteger": 0,
    }
    return bits.random_raw((size + 3) // 4).view(np.int16)[:size]


def uniform_direction(seed: int, shape: int | tuple[int, ...]) -> np.ndarray:
    """A random float32 array uniform in [-1, 1) (on the grid of 2**-15), the same for the same
    ``seed`` (an int below 2**64): :func:`uniform_int16` scaled in one pass, 2.5x faster than
    ``Generator.random(dtype=np.float32)``, whose draws were a sixth of a fast check.
    (shape) -> (shape) float32
    """
    size = int(shape) if isinstance(shape, (int, np.integer)) else math.prod(shape)
    v = np.multiply(uniform_int16(seed, size), _SCALE16, dtype=np.float32)
    return v.reshape(shape)


def slice_derivative(
    f: Callable[[], float],
    x: np.ndarray,
    lo: int,
    u: np.ndarray,
    *,
    eps: float,
    f0: float,
) -> Differences:
    """The central difference of ``f()`` along a direction that is ``u`` on the flat elements
    ``[lo, lo + len(u))`` of ``x`` and zero elsewhere, moving only those elements (in place,
    put back bit for bit): what a block of :mod:`gradcheck.blocks` costs, 2 forwards, with no
    direction the size of ``x``. ``x`` must be contiguous (the checker's float64 copies are).
    (x: any shape, u: (m,)) -> central, left, right: (1,)
    """
    _check_arguments([x], eps)
    if not x.flags.c_contiguous:
        raise ValueError("x must be contiguous: perturb the checker's float64 copy")
    view = x.reshape(-1)
    hi = lo + len(u)
    saved = view[lo:hi].copy()
    try:
        np.multiply(u, eps, out=view[lo:hi], dtype=np.float64)
        view[lo:hi] += saved
        f_plus = float(f())
        np.multiply(u, -eps, out=view[lo:hi], dtype=np.float64)
        view[lo:hi] += saved
        f_minus = float(f())
    finally:
        view[lo:hi] = saved
    central = (f_plus - f_minus) / (2 * eps)
    right, left = (f_plus - f0) / eps, (f0 - f_minus) / eps
    return Differences(np.array([central]), np.array([left]), np.array([right]), None, 2)


#: How far apart the points of :func:`noise_level` are, along a direction of unit length.
NOISE_SPACING = 1e-6


def noise_level(
    f: Callable[[], float],
    xs: Sequence[np.ndarray],
    seed: int,
    *,
    spacing: float = NOISE_SPACING,
) -> float:
    """The standard deviation of the rounding noise in ``f()`` near the arrays ``xs``, measured
    rather than guessed (after Moré and Wild's ECnoise, 2011): ``f`` at 8 equally spaced points
    ``k * spacing`` (k = 1..8) along a random direction of unit length (8 forwards), then the
    k-th differences of those values for k = 3..6. On a smooth function they are of order
    ``spacing**k`` (nothing, at :data:`NOISE_SPACING`); on rounding noise of standard deviation
    s each is s times a known factor, ``sqrt((2k)! / (k!)**2)``. The largest of the four
    estimates is returned (a kink on the way only makes it larger). The points leave out the
    unperturbed point itself: a kink exactly there (a ReLU at an input that is exactly 0, a tie
    in a max) would otherwise count as noise."""
    _check_arguments(list(xs), spacing)
    vs = [uniform_direction(int(seed) + k, a.shape) for k, a in enumerate(xs)]
    norm = math.sqrt(sum(float(np.dot(v.reshape(-1), v.reshape(-1))) for v in vs)) or 1.0
    saved = [a.copy() for a in xs]
    values = np.empty(8)
    try:
        for i in range(len(values)):
            step = (i + 1) * spacing / norm
            for a, v, a0 in zip(xs, vs, saved, strict=True):
                np.multiply(v, step, out=a, dtype=np.float64)
                a += a0
            values[i] = float(f())
    finally:
        for a, a0 in zip(xs, saved, strict=True):
            np.copyto(a, a0)
    if not np.all(np.isfinite(values)):
        return math.inf
    levels = []
    table = values
    for k in range(1, 7):
        table = np.diff(table)
        if k >= 3:
            gamma = math.factorial(k) ** 2 / math.factorial(2 * k)
            levels.append(math.sqrt(gamma * float(np.mean(table**2))))
    return max(levels)
