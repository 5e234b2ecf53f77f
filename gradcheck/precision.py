"""Is the float64 copy really computing in float64?

A layer with hard-coded float32 buffers (or an ``astype(np.float32)``) still computes in float32
inside its float64 copy, and central differences at a float64 step then measure rounding noise.
Along one random direction the derivative at step eps and at step eps/100 agree to rounding in
float64; a layer rounding to float32 gives noise at the small step, or a loss flat at both steps
where the analytic ``<grad, v>`` is not.
"""

from __future__ import annotations

import numpy as np

from gradcheck.compare import Target
from gradcheck.differences import Probe, remembered
from gradcheck.numerical import directional_derivative, dot
from gradcheck.projections import directions

__all__ = ["float32_inside"]


def float32_inside(
    targets: list[Target],
    probe: Probe,
    noise: float,
    atol: float,
    measured: dict[int, tuple[int, float]] | None = None,
    *,
    everything: bool = False,
) -> str | None:
    """A message saying the copy computes in float32 inside, or None when it does not.

    The direction moves the float inputs and initial state (or, with none, the first parameter,
    which feeds everything after it): 4 forwards. ``everything``: a second look, along a
    direction that moves every input, state and parameter at once (float32 hidden in a part
    that the first look's direction barely reached). ``measured`` (fast mode, after its
    projections) maps each tensor's id to the seed and central difference of its first
    projection: the direction is then made of those, its step-eps derivative is their sum (a
    derivative is linear in the direction), and only the step eps/100 costs forwards (2)."""
    if not everything:
        targets = [t for t in targets if not t.is_param] or [t for t in targets if t.is_param][:1]
    if not targets:
        return None
    arrays = [t.array for t in targets]
    eps = probe.eps
    known = measured is not None and all(id(a) in measured for a in arrays)
    if known:
        seeds = [measured[id(a)][0] for a in arrays]
    else:
        seeds = probe.rng.integers(2**63, size=len(arrays))
    v = list(directions(seeds, None, arrays))

    key = (tuple(t.name for t in targets), "float32 probe", np.asarray(seeds).tobytes())

    def along(step: float) -> float:
        d = remembered(
            probe,
            (*key, step),
            lambda: directional_derivative(probe.evaluate, arrays, [v], eps=step, f0=probe.L0),
        )
        return float(d.central[0])

    big = sum(measured[id(a)][1] for a in arrays) if known else along(eps)
    small = along(eps / 100)
    if everything and _grows_like_rounding(big, along(eps / 10), small, noise):
        return (
            "the float64 copy computes in float32 (or coarser) inside: along a random "
            f"direction the loss's derivative moves off its value at step {eps:g} ({big:.6g}) "
            f"ten times more at step {eps / 100:g} ({small:.6g}) than at {eps / 10:g}, as "
            "rounding does; look for float32 buffers or astype(np.float32)"
        )
    if abs(small - big) > 1e-2 * abs(big) + 1e3 * noise:
        return (
            "the float64 copy computes in float32 (or coarser) inside: along a random "
            f"direction the loss's derivative is {big:.6g} at step {eps:g} but {small:.6g} "
            f"at step {eps / 100:g}; look for float32 buffers or astype(np.float32)"
        )
    if big == small == 0:
        analytic = _analytic_along(targets, v)
        if analytic is not None and abs(analytic) > 1e3 * noise + atol:
            return (
                "the float64 copy computes in float32 (or coarser) inside: along a random "
                f"direction the loss does not change at all at step {eps:g} nor "
                f"{eps / 100:g}, though <analytic gradient, v> = {analytic:.6g}; look for "
                "float32 buffers or astype(np.float32)"
            )
    return None


def _grows_like_rounding(big: float, mid: float, small: float, noise: float) -> bool:
    """Whether the derivatives at steps eps, eps/10 and eps/100 drift off as rounding does:
    ten times further at eps/100 than at eps/10 (rounding divided by the step), and beyond what
    float64 rounding explains. A kink on the way makes them differ too, but by a jump that does
    not grow as the step shrinks; curvature makes them differ less at smaller steps."""
    far, near = abs(small - big), abs(mid - big)
    return far > 1e3 * noise + 1e-9 * abs(big) and far > 3 * near


def _analytic_along(targets: list[Target], v: list[np.ndarray]) -> float | None:
    """<analytic gradient, v> over the targets, or None when a gradient is missing or unusable
    (the gradient checks report that)."""
    total = 0.0
    for t, u in zip(targets, v, strict=True):
        g = t.analytic
        if not isinstance(g, np.ndarray) or g.shape != u.shape or not np.all(np.isfinite(g)):
            return None
        total += dot(g.astype(np.float64, copy=False), u)
    return total
