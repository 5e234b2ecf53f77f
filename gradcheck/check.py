"""check_layer & co: a hand-written backward pass against central differences, and the contract.

Every entry point runs the same pipeline, one stage a module, read in this order:

1. :mod:`gradcheck.options`: the :class:`~gradcheck.options.Settings` (validated up front);
2. :mod:`gradcheck.subjects`, :mod:`gradcheck.conventions`: the user's code (a layer, a
   function and its vjp, a cs231n pair, a loss) adapted to one layer protocol, with its names;
3. :mod:`gradcheck.sandbox`: a float64 copy of it, restored before every evaluation (the user's
   layer is never changed);
4. :mod:`gradcheck.analytic`: the probe forward, dout, the analytic forward + backward, and what
   they showed (:class:`~gradcheck.analytic.Observations`);
5. :mod:`gradcheck.compare` (with :mod:`gradcheck.projections`, :mod:`gradcheck.precision`):
   each gradient against central differences (:mod:`gradcheck.numerical`), kinks, patterns;
6. :mod:`gradcheck.contract`: the contract checks;
7. :mod:`gradcheck.report`: the :class:`~gradcheck.report.Report`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from gradcheck import analytic, contract
from gradcheck.compare import Findings, Probe, Target, Tolerance, check_target
from gradcheck.conventions import function, loss, pair
from gradcheck.douts import digest
from gradcheck.options import Settings
from gradcheck.precision import float32_inside
from gradcheck.report import Entry, Report
from gradcheck.sandbox import Sandbox, run_sharing_arrays, sandbox
from gradcheck.state import validate_state
from gradcheck.subjects import Subject, subject_of

__all__ = [
    "GradientMismatch",
    "assert_function",
    "assert_layer",
    "assert_loss",
    "assert_pair",
    "check",
    "check_function",
    "check_layer",
    "check_loss",
    "check_pair",
]

Progress = Callable[[int, int], None]


class GradientMismatch(AssertionError):
    """Raised by the ``assert_*`` functions; ``.report`` holds the report, ``str()`` its text."""

    def __init__(self, report: Report) -> None:
        super().__init__(str(report))
        self.report = report


def check_layer(
    layer: Any,
    *inputs: Any,
    params: Any = None,
    grads: Any = None,
    reset: Any = None,
    accumulates: bool = False,
    dout: Any = None,
    state: Any = None,
    progress: Progress | None = None,
    **options: Any,
) -> Report:
    """Check ``layer.backward`` against central differences of ``L = sum(dout * forward(*inputs))``
    in float64, for every float input, every parameter and (stateful layers) the initial state;
    then check the layer contract. Never raises for a wrong gradient: read ``report.passed``.

    Layers of other conventions, without a wrapper: ``params``/``grads`` name the attributes
    holding them (lists, or dicts whose keys name the rows) or are callables ``layer -> list |
    dict``; ``reset`` names a method (or is a callable) called before every forward (numpy-ml's
    ``flush_gradients``); ``accumulates=True``: gradients add up (``+=``) by design, so they are
    zeroed before each backward and the overwrite check does not apply.
    dout: the output gradient (an array, or a tuple for several outputs); random normal by
      default, ``1.0`` for a scalar loss. state: initial state of a stateful recurrent layer,
      ``h`` or ``(h, c)``; default: the state the layer holds, or a random one.
    progress: ``progress(done, total)`` after each forward evaluation (total is an estimate).
    options: the fields of :class:`gradcheck.options.Settings` (eps, rtol, atol, mode, seed,
      max_elements, projections, contract, skip, context).
    """
    __tracebackhide__ = True
    convention = dict(params=params, grads=grads, reset=reset, accumulates=accumulates)
    return _check(layer, inputs, convention, dout, state, progress, options)


def check_function(f: Callable, vjp: Callable, *args: Any, **options: Any) -> Report:
    """Check ``vjp(dout, *args)``, the hand-written gradients of ``f(*args)`` (an array, a tuple
    of arrays or a float), in ``args`` order (one array for one argument, None for an integer
    one). Rows are named by ``f``'s parameter names; options as for :func:`check_layer`."""
    __tracebackhide__ = True
    return check(function(f, vjp), *args, **options)


def check_pair(forward: Callable, backward: Callable, *args: Any, **options: Any) -> Report:
    """Check a cs231n pair: ``forward(*args) -> (out, cache)`` (or ``(*outs, cache)``) and
    ``backward(dout, cache)`` (or ``backward(*douts, cache)``) returning the gradients of
    ``args`` in order. Arguments that are not arrays (``bn_param``) are passed through."""
    __tracebackhide__ = True
    return check(pair(forward, backward), *args, **options)


def check_loss(f: Callable, *args: Any, wrt: int = 0, **options: Any) -> Report:
    """Check a loss ``f(*args) -> (loss, dx)`` whose ``dx`` is the gradient of the scalar loss
    with respect to ``args[wrt]`` (cs231n's ``softmax_loss``, ``svm_loss``)."""
    __tracebackhide__ = True
    return check(loss(f, wrt=wrt), *args, **options)


def check(subject: Any, *inputs: Any, **options: Any) -> Report:
    """Check any subject a ``@gradcheck.case`` builder may return: a layer, or what
    :func:`gradcheck.function`, :func:`gradcheck.pair`, :func:`gradcheck.loss` or
    :func:`gradcheck.layer` made. Options as for :func:`check_layer`."""
    __tracebackhide__ = True
    return check_layer(subject, *inputs, **options)


def _raising(check_fn: Callable[..., Report]) -> Callable[..., Report]:
    def assert_fn(*args: Any, **options: Any) -> Report:
        __tracebackhide__ = True
        report = check_fn(*args, **options)
        if not report.passed:
            raise GradientMismatch(report)
        return report

    name = check_fn.__name__.replace("check_", "assert_")
    assert_fn.__name__ = assert_fn.__qualname__ = name
    assert_fn.__doc__ = (
        f"Like :func:`{check_fn.__name__}`, but raise :class:`GradientMismatch` unless the check "
        "passes. Returns the report when it does."
    )
    return assert_fn


assert_layer = _raising(check_layer)
assert_function = _raising(check_function)
assert_pair = _raising(check_pair)
assert_loss = _raising(check_loss)


# --- the pipeline ---------------------------------------------------------------------------


def _check(
    obj: Any,
    inputs: tuple[Any, ...],
    convention: dict[str, Any],
    dout: Any,
    state: Any,
    progress: Progress | None,
    options: dict[str, Any],
) -> Report:
    __tracebackhide__ = True
    settings = _settings(options)
    if settings.seed is None:
        settings = dataclasses.replace(settings, seed=int(np.random.default_rng().integers(2**31)))
    subject, arrays = subject_of(obj, inputs, **convention)
    validate_state(subject.layer, state)
    native: tuple[str, ...] = ()
    checks_dtype = settings.contract and "output dtype follows params" in subject.checks
    native_ran = checks_dtype and any(p.dtype != np.float64 for p in subject.layer.params)
    if native_ran:  # before the float64 copy exists, so that the two are never alive together
        native = contract.native_dtype_problems(subject.layer, arrays)

    def pipeline(frozen: list[np.ndarray] | None) -> Report:
        with sandbox(subject, arrays, frozen) as box:
            box.forward_calls = box.backward_calls = int(native_ran)
            if progress is not None:
                box.on_call = _progress_reporter(progress, subject, arrays, settings)
            rng = np.random.default_rng(settings.seed)
            obs = analytic.run(box, subject, dout, state, rng, settings.eps, native)
            entries, obs = _gradients(box, subject, obs, settings, rng)
            if settings.contract:
                entries += contract.run(box, obs, settings)
            return _report(box, subject, obs, entries, settings)

    return run_sharing_arrays(pipeline)


def _settings(options: dict[str, Any]) -> Settings:
    __tracebackhide__ = True
    names = [f.name for f in dataclasses.fields(Settings)]
    unknown = [k for k in options if k not in names]
    if unknown:
        raise TypeError(
            f"{unknown[0]}={options[unknown[0]]!r} is not an option; the options are "
            f"{', '.join(names)}, dout and state"
        )
    return Settings(**options)


def _gradients(
    box: Sandbox, subject: Subject, obs: analytic.Observations, settings: Settings, rng: Any
) -> tuple[list[Entry], analytic.Observations]:
    """The gradient entries, and the observations with what the comparison found (and without
    the analytic gradients, which the contract checks need not hold)."""
    targets = _targets(box, subject, obs)
    movable = [t for t in targets if t.array.size]
    tol = Tolerance(settings.atol, settings.rtol, obs.noise)
    probe = Probe(obs.evaluate, obs.L0, settings.eps, rng)
    precision = None
    if obs.deterministic and settings.mode != "fast":
        precision = float32_inside(movable, probe, obs.noise, settings.atol)
        if precision is not None:  # (or randomness that two forwards did not show: look again)
            obs = _looked_again(box, obs)
    if not obs.deterministic:  # differences would measure the randomness: nothing to judge
        entries = [_not_judged(t, obs.nondeterminism) for t in targets]
        return _in_input_order(subject, box, entries), analytic.without_gradients(obs)
    probe = dataclasses.replace(probe, float32_inside=precision is not None)
    findings = Findings()
    entries = []
    for t in targets:
        entries.append(check_target(t, probe, tol, settings, findings))
    if settings.mode == "fast" and obs.deterministic:
        measured = findings.first_projections
        precision = float32_inside(movable, probe, obs.noise, settings.atol, measured)
    entries = _in_input_order(subject, box, entries)
    empty_output = not obs.douts.scalar and all(d.size == 0 for d in obs.douts.arrays)
    if empty_output or not any(e.checked for e in entries):
        entries.append(_nothing_checked(subject, box, empty_output))
    notes = obs.notes + ((precision,) if precision else ())
    obs = dataclasses.replace(
        analytic.without_gradients(obs),
        precision=precision,
        nonfinite=tuple(findings.nonfinite),
        gradients_failed=not all(e.passed for e in entries),
        notes=notes,
    )
    return entries, obs


def _targets(box: Sandbox, subject: Subject, obs: analytic.Observations) -> list[Target]:
    """What is checked; an array the forward writes into is perturbed through its base."""
    bases = obs.bases
    out = [
        Target(
            subject.input_names[i], subject.input_labels[i], bases.get(id(x), x), obs.input_grads[i]
        )
        for i, x in enumerate(box.inputs)
        if subject.checked[i]
    ]
    out += [
        Target(name, name, bases.get(id(p), p), g, is_param=True)
        for p, g, name in zip(box.layer.params, obs.param_grads, subject.param_names, strict=True)
    ]
    out += [Target(n, n, a, obs.state_grads[n]) for n, a in obs.state_arrays.items()]
    return out


def _looked_again(box: Sandbox, obs: analytic.Observations) -> analytic.Observations:
    """``obs``, not deterministic if one more forward from the same state gives other bits
    than the analytic pass's (randomness the first two forwards did not show)."""
    if digest(box.forward()) == obs.out_digest:
        return obs
    why = "a third forward with the same inputs, params and state gave a different output"
    return dataclasses.replace(obs, deterministic=False, nondeterminism=why)


def _not_judged(t: Target, why: str) -> Entry:
    shape = tuple(t.array.shape)
    return Entry(t.name, "gradient", "not judged", shape=shape, label=t.label, message=why)


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


def _progress_reporter(
    progress: Progress, subject: Subject, arrays: tuple, settings: Settings
) -> Callable[[int], None]:
    """``progress(done, total)`` with total an estimate of the forward evaluations: 2 per
    element differenced (or per direction), plus the probe, analytic and contract calls."""
    sizes = [x.size for x, c in zip(arrays, subject.checked, strict=True) if c]
    sizes += [p.size for p in subject.layer.params]
    per_tensor = {
        "full": lambda n: n,
        "fast": lambda n: settings.projections,
        "auto": lambda n: n if n <= settings.max_elements else settings.max_elements + 2,
    }[settings.mode]
    total = 2 * sum(per_tensor(n) for n in sizes) + 12

    def report(done: int) -> None:
        progress(done, max(total, done))

    return report


def _report(
    box: Sandbox, subject: Subject, obs: analytic.Observations, entries: list, settings: Settings
) -> Report:
    shown = {
        "eps": settings.eps,
        "rtol": settings.rtol,
        "atol": settings.atol,
        "mode": settings.mode,
        "max_elements": settings.max_elements,
        "projections": settings.projections,
        "contract": settings.contract,
    }
    if settings.skip:
        shown["skip"] = list(settings.skip)
    shapes = {
        label.split(" ", 1)[-1]: tuple(x.shape)
        for label, x in zip(subject.input_labels, box.user_inputs, strict=True)
    }
    return Report(
        layer=subject.name,
        entries=entries,
        seed=settings.seed,
        settings=shown,
        shapes=shapes,
        forward_calls=box.forward_calls,
        backward_calls=box.backward_calls,
        context=settings.context,
        notes=list(obs.notes),
        blamed=subject.blamed,
    )
