"""The analytic pass: one probe forward, one forward + backward, and what they showed.

:func:`run` sets a stateful layer's initial state, runs a probe forward to learn what a restore
must put back (the sandbox's :class:`~gradcheck.sandbox.RestorePlan`), makes ``dout``, then runs
the forward + backward whose gradients the comparison checks. What the calls showed (rebound
grads, arguments written into, a forward that is not deterministic, ...) is gathered in an
:class:`Observations`, which the comparison and the contract checks read.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.douts import Douts, check_backward_arity, digest
from gradcheck.sandbox import Sandbox, Snapshot, loss_of, walk
from gradcheck.state import InitialState, is_stateful, set_initial_state
from gradcheck.subjects import Subject

__all__ = ["GradsBinding", "Observations", "input_grads", "run", "without_gradients"]

_EPS64 = float(np.finfo(np.float64).eps)
#: How many times the rounding of the loss, divided by the step, the numeric gradient may be off.
_NOISE_FACTOR = 32.0


@dataclass(frozen=True)
class GradsBinding:
    """Which arrays ``obj.grads`` held (and which list), by id: what backward must leave
    bound. ``parts``: the same for every part below the layer with a grads list of its own."""

    list_id: int | None
    array_ids: tuple[int, ...]
    parts: tuple[tuple[Any, int | None, tuple[int, ...]], ...] = ()

    @classmethod
    def of(cls, layer: Any, parts: list[Any]) -> GradsBinding:
        own = vars(layer).get("grads") if hasattr(layer, "__dict__") else None
        list_id = id(own) if isinstance(own, list) else None  # (a property: no list to keep)
        return cls(list_id, tuple(id(g) for g in layer.grads), tuple(_grads_of(p) for p in parts))


def _grads_of(obj: Any) -> tuple[Any, int | None, tuple[int, ...]]:
    grads = vars(obj).get("grads")
    if not isinstance(grads, list):
        return (obj, None, ())
    return (obj, id(grads), tuple(id(g) for g in grads))


def _parts_with_grads(root: Any) -> list[Any]:
    """Each part below ``root`` with a grads list of its own (not ``root``'s list)."""
    seen = {id(vars(root).get("grads")) if hasattr(root, "__dict__") else None}
    parts = []
    for obj in walk(root).instances:
        grads = None if obj is root else vars(obj).get("grads")
        if isinstance(grads, list) and id(grads) not in seen:
            seen.add(id(grads))
            parts.append(obj)
    return parts


@dataclass(frozen=True)
class Observations:
    """What the analytic pass (and later the comparison) found out about the subject.

    Gradients: ``input_grads`` (one per input, None for unchecked ones), ``param_grads``,
    ``state_grads`` (``dh``/``dc``) and ``state_arrays`` (the state arrays they belong to).
    The loss: ``L0`` at the unperturbed inputs, ``noise`` (its rounding divided by the step),
    ``evaluate`` (a restored forward returning L). Findings for the contract checks follow;
    ``precision``, ``nonfinite`` and ``gradients_failed`` are filled in after the comparison.
    """

    douts: Douts
    evaluate: Any
    L0: float
    noise: float
    loss_scale: float  # sum |dout * out| + |L0|: what the loss's rounding is relative to
    input_grads: list[Any]
    param_grads: list[np.ndarray]
    state_arrays: dict[str, np.ndarray]
    state_problems: dict[str, str]  # "dc": set_state ignored c, or forward does not use it
    state_grads: dict[str, Any]
    out_dtypes: list[np.dtype]
    deterministic: bool
    nondeterminism: str | None  # what showed it, when not deterministic
    out_digest: list  # of the analytic pass's output: a later forward must give the same bits
    grads_before: GradsBinding
    grads_after: GradsBinding
    mutated_by_forward: frozenset[int]  # ids of arrays (inputs too) the forward wrote into
    bases: dict[int, np.ndarray]  # the array to perturb for each float one forward writes into
    mutated_inputs: tuple[int, ...]
    mutated_inputs_backward: tuple[int, ...]
    mutated_params: tuple[int, ...]
    dout_modified: tuple[int, ...]
    native_dtype: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    precision: str | None = None  # the copy computes in float32 inside: how that showed
    precision_verified: bool = False  # and its gradients were judged at float32 precision
    nonfinite: tuple[str, ...] = ()
    gradients_failed: bool = False
    fresh_fingerprints: list | None = None  # (the contract's first backward, shared by two)


def run(
    box: Sandbox,
    subject: Subject,
    dout: Any,
    state: Any,
    rng: np.random.Generator,
    eps: float,
    native_dtype: tuple[str, ...] = (),
) -> Observations:
    """Initial state, probe forward (learn what to restore), dout, and the analytic forward +
    backward whose gradients are checked."""
    __tracebackhide__ = True
    notes: list[str] = list(subject.notes)
    layer = box.layer
    initial = (
        set_initial_state(box, subject.name, state, rng, notes)
        if is_stateful(layer)
        else InitialState()
    )
    parts = _parts_with_grads(layer)
    snapshot = Snapshot.of(layer)
    input_ids = {id(x) for x in box.inputs}
    watched = [a for a in walk(layer).arrays if id(a) in box.sources and id(a) not in input_ids]
    # every input, integer ids too, bit for bit (a digest: no second copy of the inputs)
    inputs_digest = [digest(x) for x in box.inputs]
    global_draws = _GlobalRandom()
    out = _checked_output(subject.name, box.call_forward())
    out_dtypes = [np.asarray(o).dtype for o in (out if isinstance(out, tuple) else (out,))]
    probe_digest = digest(out)
    mutated_inputs = tuple(i for i, x in enumerate(box.inputs) if digest(x) != inputs_digest[i])
    written = [a for a in watched if not np.array_equal(a, box.sources[id(a)])]
    written += [box.inputs[i] for i in mutated_inputs]
    perturbed = {id(x) for x, c in zip(box.inputs, subject.checked, strict=True) if c}
    perturbed |= {id(p) for p in layer.params}
    bases = _bases(box, [a for a in written if id(a) in perturbed])
    box.plan = snapshot.plan([(a, bases.get(id(a), box.sources[id(a)])) for a in written])
    douts = Douts(subject.name, out, dout, rng)
    out = None  # (only its digest is kept)
    # the analytic pass; what the output tells is taken before backward, so that the output is
    # not held through it (L's rounding, divided by the step: the numeric noise floor)
    out = box.forward()
    outs = out if isinstance(out, tuple) else (out,)
    scale = sum(
        float(np.sum(np.abs(np.asarray(d) * np.asarray(o))))
        for d, o in zip(douts.arrays, outs, strict=False)
    )
    evaluate = box.loss_function(douts.arrays, douts.scalar)
    L0 = loss_of(douts.arrays, douts.scalar)(out)
    noise = _NOISE_FACTOR * _EPS64 * (scale + abs(L0)) / eps
    nondeterminism = global_draws.used()
    out_digest = digest(out)
    if nondeterminism is None and out_digest != probe_digest:
        nondeterminism = (
            "two forwards with the same inputs, params and state gave different outputs"
        )
    out = outs = None
    box.zero_grads()
    grads_before = GradsBinding.of(layer, parts)  # (after forward: a reset may make new ones)
    check_backward_arity(box, subject.name, 1 if douts.scalar else len(douts.arrays))
    grads = input_grads(subject, box, douts.backward(box))
    grads_after = GradsBinding.of(layer, parts)
    dout_modified = tuple(douts.modified())
    douts.passed = None  # (not held through the numeric phase)
    # later backwards get the douts uncopied, unless backward edited them or rebound a grad
    # (a grads[k] = dout would make the douts and the grads one array from then on)
    douts.shared = not dout_modified and grads_after == grads_before
    # backward must not touch the inputs or params either; put back what it changed
    mutated_backward = []
    for i, x in enumerate(box.inputs):
        if i not in mutated_inputs and digest(x) != inputs_digest[i]:
            mutated_backward.append(i)
            np.copyto(x, box.user_inputs[i], casting="unsafe")
            if not subject.checked[i]:  # never perturbed: put back before every forward
                box.plan.arrays.append((x, box.user_inputs[i]))
    mutated_params = []
    for k, p in enumerate(layer.params):
        source = box.sources.get(id(p))
        if source is not None and not np.array_equal(p, source):
            mutated_params.append(k)
            np.copyto(p, source, casting="unsafe")
    return Observations(
        douts=douts,
        evaluate=evaluate,
        L0=L0,
        noise=noise,
        loss_scale=scale + abs(L0),
        input_grads=grads,
        param_grads=[g.copy() for g in layer.grads] if subject.resets else list(layer.grads),
        state_arrays=initial.held,
        state_problems=initial.problems,
        state_grads={name: getattr(layer, name, None) for name in ("dh", "dc")},
        out_dtypes=out_dtypes,
        deterministic=nondeterminism is None,
        nondeterminism=nondeterminism,
        out_digest=out_digest,
        grads_before=grads_before,
        grads_after=grads_after,
        mutated_by_forward=frozenset(id(a) for a in written),
        bases=bases,
        mutated_inputs=mutated_inputs,
        mutated_inputs_backward=tuple(mutated_backward),
        mutated_params=tuple(mutated_params),
        dout_modified=dout_modified,
        native_dtype=native_dtype,
        notes=tuple(notes),
    )


def _bases(box: Sandbox, written: list[np.ndarray]) -> dict[int, np.ndarray]:
    """For each checked input or parameter that the forward writes into, a float64 copy of its
    starting values that the restore plan copies into it before every forward: the differences
    perturb the copy, so such an array is still checked (a fresh copy of the perturbed values
    for every evaluation). Other arrays forward writes into (its own buffers) are put back
    from the user's, as before: no copy."""
    return {
        id(a): np.array(box.sources[id(a)], dtype=np.float64)
        for a in written
        if a.dtype.kind == "f"
    }


class _GlobalRandom:
    """Whether forward draws from the global random states (numpy's legacy ``np.random.*``
    functions, Python's ``random``): a forward that does is not deterministic, even when two of
    its outputs happen to agree (a mask of a few elements often does). Keeps a hash of each
    state, not the state (Python's is 625 ints, which a check would hold to its end)."""

    def __init__(self) -> None:
        self.numpy, self.python = _numpy_global_state(), hash(random.getstate())

    def used(self) -> str | None:
        if _numpy_global_state() != self.numpy:
            return "forward draws from the global np.random"
        if hash(random.getstate()) != self.python:
            return "forward draws from Python's global random"
        return None


def _numpy_global_state() -> int:
    _, key, pos, *_ = np.random.get_state()  # noqa: NPY002  (read only: the user's global)
    return hash((pos, key.tobytes()))


def without_gradients(obs: Observations) -> Observations:
    """``obs`` with stand-ins of no size (a broadcast scalar of the same dtype and shape) for
    the analytic input and state gradients: once compared, only their dtype and shape are read
    (by the contract checks), and the arrays need not be held through the contract calls."""
    return dataclasses.replace(
        obs,
        input_grads=[_stand_in(g) for g in obs.input_grads],
        state_grads={name: _stand_in(g) for name, g in obs.state_grads.items()},
    )


def _stand_in(g: Any) -> Any:
    if not isinstance(g, np.ndarray):
        return g
    return np.broadcast_to(np.zeros((), dtype=g.dtype), g.shape)


def _checked_output(name: str, out: Any) -> Any:
    __tracebackhide__ = True
    if out is None:
        raise TypeError(
            f"{name}.forward returned None; return the output (did you forget `return out`?)"
        )
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    if isinstance(out, list):
        raise TypeError(f"{name}.forward returned a list; return a tuple of arrays")
    for k, o in enumerate(outs):
        if isinstance(o, (float, np.floating)) or (
            isinstance(o, np.ndarray) and o.dtype.kind == "f"
        ):
            if not np.all(np.isfinite(o)):
                raise ValueError(
                    f"{name}.forward output[{k}] contains NaN or Inf; check the inputs and "
                    "parameters (scale, log of 0, division by 0)"
                )
            continue
        what = o.dtype if isinstance(o, np.ndarray) else type(o).__name__
        raise TypeError(
            f"{name}.forward output[{k}] is {what}; outputs must be float arrays or a float"
        )
    if len(outs) > 1 and any(not isinstance(o, np.ndarray) for o in outs):
        raise TypeError(f"{name}.forward returned a tuple with a scalar; return arrays")
    return out


def input_grads(subject: Subject, box: Sandbox, result: Any) -> list[Any]:
    """One gradient (or None) per input, from what backward returned: all inputs in order
    (trailing Nones may be left out), or the book's convention, the gradients of the float
    inputs only, when the count matches them exactly."""
    __tracebackhide__ = True
    name, labels = subject.blamed, subject.input_labels
    n = len(box.inputs)
    got = [] if result is None else list(result) if isinstance(result, (tuple, list)) else [result]
    floats = [i for i, x in enumerate(box.inputs) if x.dtype.kind == "f"]
    if len(got) == len(floats) < n and all(g is not None for g in got):
        spread: list[Any] = [None] * n  # the book's convention: float inputs only
        for i, g in zip(floats, got, strict=True):
            spread[i] = g
        got = spread
    if len(got) > n:
        raise ValueError(
            f"{name} returned {len(got)} gradients for {n} inputs ({', '.join(labels)}); "
            "return one per input, in argument order"
        )
    got += [None] * (n - len(got))
    for i in floats:
        if not subject.checked[i]:
            continue
        if got[i] is None:
            raise ValueError(
                f"{name} returned no gradient for float {labels[i]} "
                f"({len([g for g in got if g is not None])} gradients for {n} inputs); "
                "return one per input in argument order (None only for integer inputs)"
            )
        if isinstance(got[i], (float, np.floating)):  # a 0-d gradient as a number
            got[i] = np.asarray(got[i])
        if not isinstance(got[i], np.ndarray):
            raise TypeError(
                f"{name} returned {type(got[i]).__name__} for {labels[i]}; return numpy arrays"
            )
    return got
