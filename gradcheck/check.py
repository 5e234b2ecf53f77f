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

from gradcheck import analytic, contract, gradients
from gradcheck.blocks import BLOCK
from gradcheck.conventions import function, loss, pair
from gradcheck.differences import RTOL32, STEP32
from gradcheck.options import Settings
from gradcheck.report import Report
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
    options = dict(options)
    cache = options.pop("_numeric_cache", None)  # (gradcheck.mutation: one forward, many checks)
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
        __tracebackhide__ = True
        with sandbox(subject, arrays, frozen) as box:
            box.forward_calls = box.backward_calls = int(native_ran)
            if progress is not None:
                box.on_call = _progress_reporter(progress, subject, arrays, settings)
            rng = np.random.default_rng(settings.seed)
            obs = analytic.run(box, subject, dout, state, rng, settings.eps, native)
            entries, obs = gradients.run(box, subject, obs, settings, rng, cache)
            if settings.contract:
                entries += contract.run(box, obs, settings)
            elif obs.precision is not None and settings.dtype == "strict":
                entries.append(contract.dtypes(box, obs))
            return _report(box, subject, obs, entries, settings)

    return run_sharing_arrays(pipeline)


def _settings(options: dict[str, Any]) -> Settings:
    __tracebackhide__ = True
    return Settings.of(options, also="dout and state")


def _progress_reporter(
    progress: Progress, subject: Subject, arrays: tuple, settings: Settings
) -> Callable[[int], None]:
    """``progress(done, total)`` with total an estimate of the forward evaluations: 4 per
    element (full) or block (auto), 2 per direction (fast), plus the probe, the noise
    measurement, the analytic and contract calls."""
    sizes = [x.size for x, c in zip(arrays, subject.checked, strict=True) if c]
    sizes += [p.size for p in subject.layer.params]
    per_tensor = {
        "full": lambda n: 4 * n,
        "fast": lambda n: 2 * settings.projections,
        "auto": lambda n: 4 * -(-n // BLOCK),
    }[settings.mode]
    total = sum(per_tensor(n) for n in sizes) + 20

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
    if settings.dtype != "lenient":
        shown["dtype"] = settings.dtype
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
        summary=_float32_summary(subject, obs) if obs.precision else None,
    )


def _float32_summary(subject: Subject, obs: analytic.Observations) -> str:
    """The one line, under the headline, that says a subject computes in float32 inside, where
    the float32 shows (outputs, gradients), if it does, and how its gradients were judged."""
    where = gradients.float32_shows(subject, obs)
    shows = (
        f"float32: {', '.join(where)}"
        if where
        else "hidden: outputs and gradients are float64, a part rounds to float32"
    )
    if not obs.precision_verified:
        return f"computes in float32 inside ({shows}): held to float64 precision (dtype='strict')"
    return (
        f"computes in float32 inside ({shows}): gradients verified to float32 precision "
        f"(differences at steps {STEP32:.2g} and {STEP32 / 2:.2g}, extrapolated, with their "
        f"error estimates; rtol {RTOL32:.1e}); dtype='strict' makes it a failure"
    )
