"""Numeric derivatives as the comparison takes them, and what they may be off by.

A :class:`Probe` is what the comparison evaluates (the loss after a restore, its value at the
point, the step); :func:`measure` takes a derivative plainly at the step ``eps``, or
error-estimated: at two steps, extrapolated (Richardson), with the estimated error of each
value (always for a layer computing in float32 inside, and in ``auto`` and ``full`` mode in
float64). A :class:`Tolerance` says when a numeric value agrees with an analytic one;
:func:`second_look` believes an error-estimated disagreement only when a third step confirms
it, and takes again, plainly at ``eps``, the values the steps cannot be trusted for (a kink, a
NaN or a steep function within them). :func:`remembered` keeps differences across
checks of one forward.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "NOISE_SIGMAS",
    "RTOL32",
    "SPREAD_SIGMAS",
    "STEP32",
    "STEP64",
    "Measured",
    "Probe",
    "Tolerance",
    "measure",
    "plain_tolerance",
    "remembered",
    "second_look",
]


@dataclass(frozen=True)
class Tolerance:
    """When a numeric value agrees with an analytic one:
    ``|a - n| <= atol + noise + rtol * max(|a|, |n|)``."""

    atol: float
    rtol: float
    noise: float

    def allowed(self, a: np.ndarray, n: np.ndarray) -> np.ndarray:
        return self.atol + self.noise + self.rtol * np.maximum(np.abs(a), np.abs(n))

    def relative(self, a: np.ndarray, n: np.ndarray, error: Any = 0.0) -> np.ndarray:
        """``|a - n|`` relative to the larger of ``|a|``, ``|n|`` and the size below which
        the absolute terms (atol, noise, the value's own estimated ``error``) allow more than
        ``rtol`` does: a value that passes is within about ``2 * rtol``."""
        if self.rtol > 0:
            floor = np.maximum((self.atol + self.noise + error) / self.rtol, 1e-300)
        else:
            floor = 1e-300
        return np.abs(a - n) / np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)

    def all_agree(self, a: np.ndarray, n: np.ndarray) -> tuple[list[float], list[float]] | None:
        """The absolute and relative errors of each value when every numeric value is finite
        and within :meth:`allowed` of its analytic one, else None. :meth:`allowed` and
        :meth:`relative` in plain floats, operation for operation: for the two or so
        directions per tensor a dozen tiny numpy calls cost more than the rest."""
        base, rtol = self.atol + self.noise, self.rtol
        floor = max(base / rtol if rtol > 0 else 0.0, 1e-300)
        errors, relative = [], []
        for x, y in zip(a.tolist(), n.tolist(), strict=True):
            error, big = abs(x - y), max(abs(x), abs(y))
            if not math.isfinite(y) or error > base + rtol * big:
                return None
            errors.append(error)
            relative.append(error / max(big, floor))
        return (errors, relative) if errors else None


#: float32's machine epsilon, and what follows from it for a layer computing in float32:
_EPS32 = float(np.finfo(np.float32).eps)
#: the larger of the two steps of float32 differences: Richardson extrapolation over steps h
#: and h/2 leaves an error of order h**4, which balances the rounding eps32/h at eps32**(1/5)
STEP32 = _EPS32**0.2
#: the analytic gradient's own float32 rounding, accumulated over a few thousand operations
RTOL32 = _EPS32**0.5
#: the larger of the two steps of float64 error-estimated differences (the same balance)
STEP64 = float(np.finfo(np.float64).eps) ** 0.2
#: how many standard deviations of the measured rounding noise, divided by the step, a numeric
#: value may be off (the extrapolation's own noise is about 2)
NOISE_SIGMAS = 16.0
#: A disagreement along a direction ``v`` blames more than single elements only beyond this many
#: times ``rtol * ||grad * v||``: the standard deviation of the sum along ``v`` of independent
#: errors of ``rtol`` in each element (which full mode would pass).
SPREAD_SIGMAS = 4.0


@dataclass(frozen=True)
class Probe:
    """What the comparison evaluates: ``evaluate()`` is L after a restore, ``L0`` its value at
    the unperturbed point, ``eps`` the step. ``float32_inside``: the subject computes in float32
    inside, so differences are taken at :data:`STEP32` and half of it and extrapolated, each
    with its error estimate (:func:`measure`); ``estimated``: the same in float64, at
    :data:`STEP64` (the tolerance's noise is then the measured rounding noise at that step, and
    ``eps_noise`` the same noise at ``eps``, for a second look's plain difference)."""

    evaluate: Callable[[], float]
    L0: float
    eps: float
    rng: np.random.Generator
    float32_inside: bool = False
    excuse_kinks: bool = True  # False: rounding noise at a float64 step is no kink (strict)
    cache: dict | None = None  # finite differences kept across checks of one forward
    estimated: bool = False  # float64 differences at STEP64 and half of it, extrapolated
    eps_noise: float = 0.0  # the rounding noise of a plain difference at step eps


def remembered(probe: Probe, key: tuple, compute: Callable[[], Any]) -> Any:
    """``compute()`` (finite differences), kept in ``probe.cache`` under ``key`` when the probe
    has a cache. Saves every forward of a check whose forward, inputs, params and seed are
    those of an earlier one (the mutants of :mod:`gradcheck.mutation` change only backward):
    the same differences would be taken again. ``key`` names the array, the elements or
    directions, and the step; ``L0`` is added, so a different forward never hits."""
    if probe.cache is None:
        return compute()
    full = (probe.L0, *key)
    hit = probe.cache.get(full)
    if hit is None:
        hit = probe.cache[full] = compute()
    return hit


@dataclass(frozen=True)
class Measured:
    """Numeric derivatives at some elements or directions: ``central``, the one-sided slopes
    ``left``/``right`` and the estimated ``error`` of each central value (0 for a plain
    difference, whose rounding the tolerance's noise term covers). Error-estimated ones also
    keep ``half``, the central difference at half the step (a third step extrapolates with it),
    and ``kinks``: where the jump between the one-sided slopes does not shrink with the step
    (a kink, not curvature)."""

    central: np.ndarray
    left: np.ndarray
    right: np.ndarray
    error: np.ndarray | float = 0.0
    kinks: np.ndarray | None = None
    half: np.ndarray | None = None


def measure(probe: Probe, differences: Callable[[float], Any]) -> Measured:
    """``differences(step)`` (a :class:`~gradcheck.numerical.Differences`) at the probe's step;
    error-estimated (in float32, or ``probe.estimated``): at :data:`STEP32` (:data:`STEP64`)
    and half of it, extrapolated (Richardson: the h**2 terms cancel), with ``|D(h) - D(h/2)|``
    as the error estimate."""
    if not (probe.float32_inside or probe.estimated):
        d = differences(probe.eps)
        return Measured(d.central, d.left, d.right)
    step = STEP32 if probe.float32_inside else STEP64
    big, small = differences(step), differences(step / 2)
    central = (4 * small.central - big.central) / 3
    error = np.abs(big.central - small.central)
    jump_big, jump_small = np.abs(big.left - big.right), np.abs(small.left - small.right)
    kinks = jump_small > 0.75 * jump_big  # curvature halves the jump with the step
    return Measured(central, small.left, small.right, error, kinks, small.central)


def plain_tolerance(probe: Probe, tol: Tolerance) -> Tolerance:
    """The tolerance of a plain central difference at step ``eps`` (a second look)."""
    return Tolerance(tol.atol, tol.rtol, probe.eps_noise)


def second_look(
    probe: Probe,
    tol: Tolerance,
    a: np.ndarray,
    d: Measured,
    take: Callable[[float, np.ndarray], Any],
) -> tuple[Measured, np.ndarray]:
    """Error-estimated float64 differences ``d`` of the analytic values ``a``, made sure of
    where they decide the verdict. ``take(step, which)`` is the
    :class:`~gradcheck.numerical.Differences` of the values ``which`` (a mask) at ``step``.

    - A disagreement is believed when the one-sided slopes show no kink and a third step,
      ``STEP64 / 4``, extrapolates (with the half step) to a value that still disagrees by
      more than the two extrapolations differ: a kink within the steps, a NaN, or a function
      too steep for them moves the value with the step, a wrong gradient does not.
    - A disagreement that is not, and an agreement that rests on the error estimate alone (a
      kink within the steps of an otherwise smooth block can hide an error behind it), are
      taken again plainly at ``eps``, where kinks rarely are (and those that are, are told by
      the caller as for any plain difference).

    Returns the values (those taken plainly with their rounding noise as their error, and no
    ``kinks``: the caller tells kinks as it does for plain differences) and where they were
    taken plainly."""
    n = d.central
    finite = np.isfinite(n)
    with np.errstate(invalid="ignore"):
        base = tol.allowed(a, n)
        bad = ~finite | (np.abs(a - n) > base + d.error)
        leaning = ~bad & (np.asarray(d.error) > base)
        # one-sided slopes apart by more than noise, and not closer at half the step (as on a
        # smooth curve): a kink, even one the steps straddle alike (a ReLU at exactly 0)
        kink = np.asarray(d.kinks, dtype=bool) & (np.abs(d.left - d.right) > base + d.error)
    plain = leaning | (bad & kink)
    suspects = bad & finite & ~kink
    if suspects.any():
        quarter = np.asarray(take(STEP64 / 4, suspects).central)
        finer = (4 * quarter - np.asarray(d.half)[suspects]) / 3
        with np.errstate(invalid="ignore"):
            moved = np.abs(finer - n[suspects])
            a_s = a[suspects]
            believed = np.abs(a_s - finer) > tol.allowed(a_s, finer) + moved
        plain[suspects] = ~believed
    plain |= ~finite
    error = np.zeros(n.shape) + d.error
    if not plain.any():
        return Measured(d.central, d.left, d.right, error, None), plain
    again = take(probe.eps, plain)
    central, left, right = d.central.copy(), d.left.copy(), d.right.copy()
    central[plain], left[plain], right[plain] = again.central, again.left, again.right
    error[plain] = probe.eps_noise
    return Measured(central, left, right, error, None), plain
