"""The gradient stage: one row per checked quantity, and the rules that make verdicts honest.

Before any value is compared: a forward that is not deterministic gets no gradient verdicts
(the differences would measure its randomness), and a copy that still computes in float32
inside is judged at float32 precision (differences at a float32 step, extrapolated, with their
error estimate) unless ``dtype="strict"`` holds it to float64. After: a check that compared
nothing, or only against an empty output, fails. Each quantity itself is compared by
:func:`gradcheck.compare.check_target`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from gradcheck import analytic
from gradcheck.compare import Findings, Target, check_target
from gradcheck.differences import (
    NOISE_SIGMAS,
    RTOL32,
    STEP32,
    STEP64,
    Probe,
    Tolerance,
    remembered,
)
from gradcheck.douts import digest
from gradcheck.numerical import NOISE_SPACING, noise_level
from gradcheck.options import Settings
from gradcheck.precision import float32_inside
from gradcheck.report import Entry
from gradcheck.sandbox import Sandbox
from gradcheck.subjects import Subject

__all__ = ["run"]

_EPS32 = float(np.finfo(np.float32).eps)
_EPS64 = float(np.finfo(np.float64).eps)
#: The spacing of the noise measurement of a copy computing in float32: its points must move
#: the arrays by more than float32 resolves, or no rounding would show.
NOISE_SPACING32 = 1e-3


def run(
    box: Sandbox,
    subject: Subject,
    obs: analytic.Observations,
    settings: Settings,
    rng: Any,
    cache: dict | None = None,
) -> tuple[list[Entry], analytic.Observations]:
    """The gradient rows, and the observations with what the comparison found (and without
    the analytic gradients, which the contract checks need not hold). ``cache``: finite
    differences kept across checks of the same forward
    (:func:`gradcheck.differences.remembered`)."""
    targets = _targets(box, subject, obs)
    movable = [t for t in targets if t.array.size]
    tol = Tolerance(settings.atol, settings.rtol, obs.noise)
    probe = Probe(obs.evaluate, obs.L0, settings.eps, rng, cache=cache)
    shows = float32_shows(subject, obs)  # float32 outputs or gradients: no probe needed
    precision = f"the float64 copy returns float32 ({', '.join(shows)})" if shows else None
    if precision is None and obs.deterministic and settings.mode != "fast":
        precision = float32_inside(movable, probe, obs.noise, settings.atol)
    if precision is not None:  # (or randomness that two forwards did not show: look again)
        obs = _looked_again(box, obs)
    if not obs.deterministic:  # differences would measure the randomness: nothing to judge
        entries = [_not_judged(t, obs.nondeterminism) for t in targets]
        return _in_input_order(subject, box, entries), analytic.without_gradients(obs)
    lenient = settings.dtype != "strict"
    found_before = precision is not None
    if found_before:
        probe, tol = _judging_float32(probe, tol, obs, lenient, movable)
    elif settings.mode != "fast":
        probe, tol = _estimated(probe, tol, movable, obs)
    findings = Findings()
    entries = [check_target(t, probe, tol, settings, findings) for t in targets]
    if precision is None and settings.mode == "fast":  # (after the projections, with their help)
        measured = findings.first_projections
        precision = float32_inside(movable, probe, obs.noise, settings.atol, measured)
    if precision is None and not all(e.passed for e in entries):  # a second look, wider
        precision = float32_inside(movable, probe, obs.noise, settings.atol, everything=True)
    if precision is not None and not found_before and not all(e.passed for e in entries):
        probe, tol = _judging_float32(probe, tol, obs, lenient, movable)
        findings = Findings()
        entries = [check_target(t, probe, tol, settings, findings) for t in targets]
    entries = _in_input_order(subject, box, entries) + _state_problems(entries, obs)
    empty_output = not obs.douts.scalar and all(d.size == 0 for d in obs.douts.arrays)
    if empty_output or not any(e.checked for e in entries):
        entries.append(_nothing_checked(subject, box, empty_output))
    verified = precision is not None and lenient
    notes = obs.notes + ((precision,) if precision and not verified else ())
    obs = dataclasses.replace(
        analytic.without_gradients(obs),
        precision=precision,
        precision_verified=verified,
        nonfinite=tuple(findings.nonfinite),
        gradients_failed=not all(e.passed for e in entries),
        notes=notes,
    )
    return entries, obs


def float32_shows(subject: Subject, obs: analytic.Observations) -> list[str]:
    """Where the float64 copy hands back float32: outputs, input or parameter gradients, dh,
    dc (a float32 buffer that shows)."""
    where = [f"output[{k}]" for k, d in enumerate(obs.out_dtypes) if _narrow(d)]
    where += [
        f"the gradient of {subject.input_labels[i]}"
        for i, g in enumerate(obs.input_grads)
        if isinstance(g, np.ndarray) and _narrow(g.dtype)
    ]
    where += [
        f"grads of {name}"
        for name, g in zip(subject.param_names, obs.param_grads, strict=True)
        if _narrow(g.dtype)
    ]
    where += [
        name
        for name, g in obs.state_grads.items()
        if isinstance(g, np.ndarray) and _narrow(g.dtype)
    ]
    return where


def _narrow(dtype: np.dtype) -> bool:
    return dtype.kind == "f" and dtype.itemsize < 8


def _judging_float32(
    probe: Probe,
    tol: Tolerance,
    obs: analytic.Observations,
    lenient: bool,
    movable: list[Target],
) -> tuple[Probe, Tolerance]:
    """The probe and tolerance for a copy found computing in float32: at float32 precision
    (lenient), or held to float64 with no rounding noise excused as a kink (strict)."""
    return _at_float32(probe, tol, obs, movable) if lenient else (_no_kinks(probe), tol)


def _at_float32(
    probe: Probe, tol: Tolerance, obs: analytic.Observations, movable: list[Target]
) -> tuple[Probe, Tolerance]:
    """The probe and tolerance of float32 precision: differences at :data:`STEP32` and half of
    it, extrapolated, each with its error estimate (:func:`gradcheck.differences.measure`); an
    analytic gradient may be off by float32 rounding over a few thousand operations
    (:data:`RTOL32`), the loss by its rounding as measured (:func:`_loss_noise`, at a spacing
    float32 resolves), divided by the step."""
    sigma = _loss_noise(probe, movable, obs, NOISE_SPACING32)
    if math.isfinite(sigma):
        noise = NOISE_SIGMAS * sigma / STEP32
    else:  # (NaN/Inf that close to the point: as much as float32 rounds the loss)
        noise = _EPS32 * obs.loss_scale / STEP32
    return (
        dataclasses.replace(probe, float32_inside=True),
        Tolerance(tol.atol, max(tol.rtol, RTOL32), noise),
    )


def _loss_noise(
    probe: Probe, movable: list[Target], obs: analytic.Observations, spacing: float
) -> float:
    """The standard deviation of the loss's rounding near the point, measured along a random
    direction moving every checked array (:func:`gradcheck.numerical.noise_level`, 8
    forwards); at least one float64 rounding of L0 itself. Inf when the loss is NaN/Inf that
    close to the point."""
    seed = int(probe.rng.integers(2**62))
    names = tuple(t.name for t in movable)
    sigma = remembered(
        probe,
        ("noise level", names, seed, spacing),
        lambda: noise_level(probe.evaluate, [t.array for t in movable], seed, spacing=spacing),
    )
    return max(sigma, _EPS64 * abs(obs.L0))


def _estimated(
    probe: Probe, tol: Tolerance, movable: list[Target], obs: analytic.Observations
) -> tuple[Probe, Tolerance]:
    """The probe and tolerance of error-estimated float64 differences (``auto`` and ``full``):
    steps :data:`STEP64` and half of it, extrapolated, and a noise term made of the loss's
    rounding as measured here (:func:`gradcheck.numerical.noise_level`, 8 forwards; at least
    one rounding of L0 itself), :data:`NOISE_SIGMAS` deep, divided by the step (the same
    noise divided by ``eps`` for the plain differences of a second look). Plain
    differences (no measured noise) when the loss is NaN/Inf that close to the point."""
    sigma = _loss_noise(probe, movable, obs, NOISE_SPACING)
    if not math.isfinite(sigma):
        return probe, tol
    noise = NOISE_SIGMAS * sigma / STEP64
    plain = NOISE_SIGMAS * sigma / probe.eps  # (the same noise, at a second look's step)
    estimated = dataclasses.replace(probe, estimated=True, eps_noise=plain)
    return estimated, Tolerance(tol.atol, tol.rtol, noise)


def _no_kinks(probe: Probe) -> Probe:
    """``dtype="strict"``: float64 differences as usual, but no rounding noise excused as a
    kink (float32 rounding makes one-sided slopes jump at a float64 step)."""
    return dataclasses.replace(probe, excuse_kinks=False)


def _targets(box: Sandbox, subject: Subject, obs: analytic.Observations) -> list[Target]:
    """What is checked; an array the forward writes into is perturbed through its base."""
    bases = obs.bases
    out = [
        Target(name, label, bases.get(id(x), x), g)
        for name, label, x, g, checked in zip(
            subject.input_names,
            subject.input_labels,
            box.inputs,
            obs.input_grads,
            subject.checked,
            strict=True,
        )
        if checked
    ]
    out += [
        Target(name, name, bases.get(id(p), p), g, is_param=True)
        for p, g, name in zip(box.layer.params, obs.param_grads, subject.param_names, strict=True)
    ]
    out += [Target(n, n, a, obs.state_grads[n]) for n, a in obs.state_arrays.items()]
    return out


def _state_problems(entries: list[Entry], obs: analytic.Observations) -> list[Entry]:
    """The state parts' problems on their rows (``dh``, ``dc``): a row that passed fails with
    the problem; a part ``set_state`` did not set gets a failing row of its own."""
    rows = {e.name: e for e in entries}
    extra = []
    for name, problem in obs.state_problems.items():
        entry = rows.get(name)
        if entry is None:
            extra.append(Entry(name, "gradient", "fail", label=name, message=problem))
            continue
        entry.message = f"{problem}; {entry.message}" if entry.message else problem
        if entry.passed:
            entry.status = "fail"
    return extra


def _looked_again(box: Sandbox, obs: analytic.Observations) -> analytic.Observations:
    """``obs``, not deterministic if one more forward from the same state gives other bits
    than the analytic pass's (randomness the first two forwards did not show)."""
    if digest(box.forward()) == obs.out_digest:
        return obs
    why = "a third forward with the same inputs, params and state gave a different output"
    return dataclasses.replace(obs, deterministic=False, nondeterminism=why)


def _not_judged(t: Target, why: str | None) -> Entry:
    shape = tuple(t.array.shape)
    return Entry(t.name, "gradient", "not judged", shape=shape, label=t.label, message=why or "")


def _in_input_order(subject: Subject, box: Sandbox, entries: list[Entry]) -> list[Entry]:
    """The gradient rows with a row for each input that is not checked (an integer input, a
    loss's other arguments) in its place among the inputs."""
    checked = iter(entries)
    rows = []
    for i, x in enumerate(box.inputs):
        if subject.checked[i]:
            rows.append(next(checked))
            continue
        why = (
            "integer input"
            if x.dtype.kind != "f"
            else f"{subject.name} gives the gradient of another argument"
        )
        rows.append(
            Entry(
                subject.input_names[i],
                "gradient",
                "skipped",
                shape=tuple(x.shape),
                label=subject.input_labels[i],
                message=f"not checked: {why}",
            )
        )
    return rows + list(checked)


def _nothing_checked(subject: Subject, box: Sandbox, empty_output: bool) -> Entry:
    """A failing row for a check that compared no element at all, or only against a loss that
    is 0 whatever the inputs (an empty output): it could catch nothing."""
    floats = [x for x, c in zip(box.inputs, subject.checked, strict=True) if c]
    arrays = floats + list(box.layer.params)
    if empty_output:
        why = "the output is empty, so every gradient is 0 whatever backward does"
    elif not arrays:
        why = "no float input and no parameters"
    elif all(a.size == 0 for a in arrays):
        why = "every float input and parameter is empty"
    else:
        why = "every quantity was skipped"
    message = f"no element was compared ({why}); give it a float input of a non-empty shape"
    return Entry("nothing checked", "gradient", "fail", message=message)
