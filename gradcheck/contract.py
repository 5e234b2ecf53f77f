"""The contract checks (docs/contract.md), one report line each.

Each check is a function ``(sandbox, observations) -> Entry``: it reads the subject's float64
copy (:class:`~gradcheck.sandbox.Sandbox`) and what the analytic pass observed
(:class:`~gradcheck.analytic.Observations`), and returns an entry of kind ``"contract"``:
``ok``, ``fail`` (with a message saying what broke and how to fix it) or ``skipped`` (does not
apply). Checks that need calls of their own make a few (two to four forwards and three
backwards as a rule, at most five and four), always on the copy. :func:`run` runs the checks
that apply to the subject, in report order.
"""

from __future__ import annotations

import copy
import dataclasses
import traceback
import types
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from gradcheck.analytic import Observations, input_grads
from gradcheck.fingerprints import fingerprint, scaled
from gradcheck.options import CONTRACT_CHECKS, Settings
from gradcheck.report import Entry
from gradcheck.sandbox import Sandbox

__all__ = ["CHECKS", "native_dtype_problems", "run"]

Fingerprints = list[tuple[str, tuple[float, float, float]]]


def _entry(name: str, problems: list[str], *, ok_message: str = "") -> Entry:
    if problems:
        return Entry(name, "contract", "fail", message="; ".join(problems))
    return Entry(name, "contract", "ok", message=ok_message)


def grads_parallel(box: Sandbox, obs: Observations) -> Entry:
    """params and grads: same length, shapes and dtypes; no grad is (a view of) its param."""
    layer, names = box.original, box.subject.param_names
    problems = []
    for i, (p, g) in enumerate(zip(layer.params, layer.grads, strict=True)):
        name = names[i]
        if g.shape != p.shape:
            problems.append(f"grads[{i}] ({name}) has shape {g.shape}, param has {p.shape}")
        if g.dtype != p.dtype:
            problems.append(f"grads[{i}] ({name}) is {g.dtype}, param is {p.dtype}")
        if g is p or np.may_share_memory(g, p):
            problems.append(
                f"grads[{i}] ({name}) is the parameter array itself; use np.zeros_like(param)"
            )
    return _entry("grads parallel to params", problems)


def grads_in_place(box: Sandbox, obs: Observations) -> Entry:
    """backward writes self.grads[i][...] = g; it never rebinds the arrays or the list, at the
    top or in any part (a composite's decoder.affine)."""
    before, after = obs.grads_before, obs.grads_after
    param_names = box.subject.param_names
    replaced, rebound = [], []
    if before.list_id != after.list_id:
        replaced.append("the grads list")
    else:
        rebound += [
            param_names[i]
            for i, (a, b) in enumerate(zip(before.array_ids, after.array_ids, strict=True))
            if a != b
        ]
    names = dict(zip(before.array_ids, param_names, strict=False))
    for (part, list_id, ids), (_, list_after, ids_after) in zip(
        before.parts, after.parts, strict=True
    ):
        if list_after is None or list_after != list_id or len(ids_after) != len(ids):
            replaced.append(f"{_path(box.layer, part)}.grads (the list)")
            continue
        for k, (a, b) in enumerate(zip(ids, ids_after, strict=True)):
            if a != b:
                where = f"{_path(box.layer, part)}.grads[{k}]"
                rebound.append(f"{names[a]} ({where})" if a in names else where)
    problems = []
    if replaced:
        problems.append(
            f"backward replaced {', '.join(replaced)} (self.grads = [...]); an optimizer holding "
            "the old list never sees the update: write self.grads[i][...] = g"
        )
    if rebound:
        problems.append(
            f"backward rebound grads of {', '.join(rebound)} instead of writing into them; "
            "write self.grads[i][...] = g, not self.grads[i] = g"
        )
    return _entry("grads written in place", problems)


_NOT_PARTS = (np.ndarray, type, types.ModuleType, types.FunctionType, types.MethodType)


def _path(root: Any, target: Any) -> str:
    """Where ``target`` sits below ``root``, as an attribute path (``decoder.affine``,
    ``layers[2]``); found breadth first, only when a message needs it."""
    seen, queue = set(), deque([(root, "")])
    while queue:
        obj, path = queue.popleft()
        if obj is target:
            return path
        if id(obj) in seen or isinstance(obj, _NOT_PARTS):
            continue
        seen.add(id(obj))
        if isinstance(obj, (list, tuple)):
            queue.extend((v, f"{path}[{k}]") for k, v in enumerate(obj))
        elif isinstance(obj, dict):
            queue.extend((v, f"{path}[{k!r}]") for k, v in obj.items())
        elif isinstance(getattr(obj, "__dict__", None), dict):
            queue.extend((v, f"{path}.{k}" if path else k) for k, v in vars(obj).items())
    return f"a {type(target).__name__} part"


def _gradient_fingerprints(box: Sandbox, grads: list[Any]) -> Fingerprints:
    """Fingerprints of the params' gradients and of the input gradients ``grads``."""
    subject = box.subject
    out = [
        (name, fingerprint(g, k))
        for k, (name, g) in enumerate(zip(subject.param_names, box.layer.grads, strict=True))
    ]
    out += [
        (subject.input_names[i], fingerprint(g, 100 + i))
        for i, (g, x) in enumerate(zip(grads, box.inputs, strict=True))
        if subject.checked[i] and np.shape(g) == x.shape
    ]
    return out


def _backward(box: Sandbox, obs: Observations, scale: float = 1.0) -> list[Any]:
    return input_grads(box.subject, box, obs.douts.backward(box, scale=scale))


def fresh_fingerprints(box: Sandbox, obs: Observations) -> Fingerprints:
    """Fingerprints of the gradients of backward(dout) right after a restored forward: the
    first backward of :func:`overwritten` and the base of :func:`linear` are that same
    computation, so :func:`run` makes it once for both."""
    box.forward()
    box.zero_grads()
    return _gradient_fingerprints(box, _backward(box, obs))


def overwritten(box: Sandbox, obs: Observations) -> Entry:
    """A second backward after one forward gives the same gradients (no +=, no edited cache)."""
    first = obs.fresh_fingerprints or fresh_fingerprints(box, obs)
    second = _gradient_fingerprints(box, _backward(box, obs))
    doubled, changed = [], []
    for (name, a), (_, b) in zip(first, second, strict=True):
        if scaled(b, a, 1.0):
            continue
        (doubled if a[0] > 0 and scaled(b, a, 2.0) else changed).append(name)
    problems = []
    if doubled:
        problems.append(
            f"a second backward doubled {', '.join(doubled)}: backward accumulates (+=); "
            "overwrite with self.grads[i][...] = g"
        )
    if changed:
        problems.append(
            f"a second backward changed {', '.join(changed)}; does backward modify its cache "
            "or other state?"
        )
    return _entry("grads overwritten, not accumulated", problems)


def arguments_unmodified(box: Sandbox, obs: Observations) -> Entry:
    """forward and backward leave their arguments (and arrays the caller holds) alone, float
    and integer (token ids, labels) alike; compared bit for bit after each."""
    labels, checked = box.subject.input_labels, box.subject.checked
    problems = [f"forward modified {labels[i]} in place" for i in obs.mutated_inputs]
    problems += [
        f"backward modified {labels[i]} (the caller's array) in place"
        for i in obs.mutated_inputs_backward
    ]
    if problems:
        fix = "work on a copy (x = x * mask, not x *= mask)"
        written = obs.mutated_inputs + obs.mutated_inputs_backward
        if any(box.inputs[i].dtype.kind != "f" for i in written):
            fix += "; cached ids are the caller's: copy them before changing them"
        elif any(not checked[i] for i in written):
            fix += "; keep the caller's arrays as they are"
        problems.append(fix)
    return _entry("arguments unmodified", problems)


def params_unmodified(box: Sandbox, obs: Observations) -> Entry:
    """forward and backward never write into the parameters (only an optimizer does)."""
    names = box.subject.param_names
    problems = [f"forward or backward modified parameter {names[i]}" for i in obs.mutated_params]
    if problems:
        problems.append("backward writes only self.grads; leave updates to the optimizer")
    return _entry("params unmodified", problems)


def dout_unmodified(box: Sandbox, obs: Observations) -> Entry:
    """backward leaves dout alone: the caller may pass the same dout to several layers."""
    problems = [f"backward modified dout[{k}] in place" for k in obs.dout_modified]
    if problems:
        problems.append("work on a copy (dout = dout * mask, not dout *= mask)")
    return _entry("dout unmodified", problems)


def deterministic(box: Sandbox, obs: Observations) -> Entry:
    """Two forwards from the same restored state return the same bits."""
    if obs.deterministic:
        return _entry("forward deterministic", [])
    return _entry(
        "forward deterministic",
        [
            f"{obs.nondeterminism}; randomness must come from a numpy Generator the layer owns "
            "(rng=), not the global np.random"
        ],
    )


def no_memory(box: Sandbox, obs: Observations) -> Entry:
    """stateful=False: two consecutive forwards, nothing restored between, give the same output."""
    name = "stateful=False keeps no memory"
    if getattr(box.layer, "stateful", None) is not False:
        why = "layer is stateful" if _stateful(box) else "layer has no stateful attribute"
        return Entry(name, "contract", "skipped", message=why)
    a = box.forward()
    a = tuple(np.array(x, copy=True) for x in a) if isinstance(a, tuple) else np.array(a)
    b = box.call_forward()
    outs_a = a if isinstance(a, tuple) else (a,)
    outs_b = b if isinstance(b, tuple) else (b,)
    if all(np.array_equal(x, y) for x, y in zip(outs_a, outs_b, strict=True)):
        return _entry(name, [])
    return _entry(
        name,
        [
            "a second forward gave a different output: with stateful=False every forward must "
            "start from zeros, whatever came before"
        ],
    )


def _stateful(box: Sandbox) -> bool:
    layer = box.layer
    return getattr(layer, "stateful", None) is True and callable(getattr(layer, "set_state", None))


def linear(box: Sandbox, obs: Observations) -> Entry:
    """backward(2 * dout) gives twice the gradients of backward(dout)."""
    base = obs.fresh_fingerprints
    if base is None or obs.mutated_inputs_backward or obs.mutated_params:
        # (an input or param that backward changes is not put back before every forward:
        # measure again)
        base = fresh_fingerprints(box, obs)
    box.forward()
    box.zero_grads()
    twice = _gradient_fingerprints(box, _backward(box, obs, 2.0))
    wrong = [name for (name, a), (_, b) in zip(base, twice, strict=True) if not scaled(b, a, 2.0)]
    if wrong:
        return _entry(
            "backward linear in dout",
            [
                f"backward(2 * dout) did not give twice the gradient of {', '.join(wrong)}: "
                "backward must scale with dout (does it ignore dout, or use it twice?)"
            ],
        )
    return _entry("backward linear in dout", [])


def dtypes(box: Sandbox, obs: Observations) -> Entry:
    """In the float64 copy, outputs and gradients are float64: nothing is hard-coded float32."""
    subject = box.subject
    problems = []
    for k, dtype in enumerate(obs.out_dtypes):
        if dtype != np.float64:
            problems.append(f"output[{k}] is {dtype}")
    for i, g in enumerate(obs.input_grads):
        if subject.checked[i] and isinstance(g, np.ndarray) and g.dtype != np.float64:
            problems.append(f"gradient of {subject.input_labels[i]} is {g.dtype}")
    for i, g in enumerate(obs.param_grads):
        if g.dtype != np.float64:
            problems.append(f"grads[{i}] ({subject.param_names[i]}) is {g.dtype}")
    for name in ("dh", "dc"):
        g = obs.state_grads.get(name)
        if isinstance(g, np.ndarray) and g.dtype != np.float64:
            problems.append(f"{name} is {g.dtype}")
    if obs.precision_verified and not obs.native_dtype:  # said once, at the top of the report
        why = "the precision is stated under the headline; dtype='strict' makes it a failure"
        return Entry("output dtype follows params", "contract", "skipped", message=why)
    if problems:
        problems.insert(0, "with float64 params the layer computes in float32")
        problems.append("use the params' dtype for buffers (np.zeros_like, dtype=W.dtype)")
    if obs.precision is not None and not problems:  # (hidden: no dtype above shows it)
        problems.insert(0, obs.precision)
    problems += obs.native_dtype
    return _entry("output dtype follows params", problems)


def native_dtype_problems(layer: Any, inputs: tuple[np.ndarray, ...]) -> tuple[str, ...]:
    """One forward and backward of a plain copy of the user's (say float32) layer: outputs and
    input gradients keep the params' dtype (no silent upcast to float64). Run before the
    float64 copy exists, so the two copies are never alive together; part of the check
    "output dtype follows params". Returns the problems."""
    dtypes = {p.dtype for p in layer.params}
    if len(dtypes) != 1 or dtypes == {np.dtype(np.float64)}:
        return ()
    (dtype,) = dtypes
    try:
        twin = copy.deepcopy(layer)
        out = twin.forward(*[np.array(x, copy=True) for x in inputs])
    except Exception:  # the float64 check that follows raises the clear error
        return ()
    outs = out if isinstance(out, tuple) else (out,)
    problems = [
        f"with {dtype} params, output[{k}] is {np.asarray(o).dtype}"
        for k, o in enumerate(outs)
        if isinstance(o, np.ndarray) and o.dtype != dtype
    ]
    douts = [np.ones_like(o, dtype=dtype) if isinstance(o, np.ndarray) else 1.0 for o in outs]
    try:
        result = twin.backward(*douts)
    except Exception:
        return tuple(problems)
    grads = list(result) if isinstance(result, (tuple, list)) else [result]
    problems += [
        f"with {dtype} params, the gradient of input[{i}] is {g.dtype}"
        for i, (g, x) in enumerate(zip(grads, inputs, strict=False))
        if isinstance(g, np.ndarray) and x.dtype == dtype and g.dtype != dtype
    ]
    if problems:
        problems.append("compute in the params' dtype (np.asarray(x, dtype=float) upcasts)")
    return tuple(problems)


def shapes(box: Sandbox, obs: Observations) -> Entry:
    """Each input gradient has its input's shape exactly (no broadcast (1, H) for (H,))."""
    subject = box.subject
    problems = []
    for i, (g, x) in enumerate(zip(obs.input_grads, box.inputs, strict=True)):
        if subject.checked[i] and np.shape(g) != x.shape:
            problems.append(
                f"gradient of {subject.input_labels[i]} has shape {np.shape(g)}, input has "
                f"{x.shape}"
            )
    return _entry("gradient shapes match inputs", problems)


CHECKS = (
    grads_parallel,
    grads_in_place,
    overwritten,
    arguments_unmodified,
    params_unmodified,
    dout_unmodified,
    deterministic,
    no_memory,
    linear,
    dtypes,
    shapes,
)
_BY_NAME = dict(zip(CONTRACT_CHECKS, CHECKS, strict=True))

#: Contract checks that compare gradients with each other: NaN never equals NaN, so with a
#: non-finite analytic gradient they cannot judge anything (the gradient entry has the blame).
_COMPARE_GRADIENTS = ("backward linear in dout", "grads overwritten, not accumulated")
#: Contract checks that compare two runs: a forward that is not deterministic fails them all.
_COMPARE_RUNS = (*_COMPARE_GRADIENTS, "stateful=False keeps no memory")


def run(box: Sandbox, obs: Observations, settings: Settings) -> list[Entry]:
    """The checks that apply to the subject, in report order; those it says do not apply and
    those ``settings.skip`` names are reported as skipped, with the reason."""
    subject = box.subject
    shown = [name for name in CONTRACT_CHECKS if name in subject.checks]
    runs = [n for n in shown if n not in subject.not_applicable and n not in settings.skip]
    if "grads overwritten, not accumulated" in runs and obs.deterministic:
        obs = dataclasses.replace(obs, fresh_fingerprints=fresh_fingerprints(box, obs))
    entries = []
    for name in shown:
        if name in subject.not_applicable:
            entries.append(Entry(name, "contract", "skipped", message=subject.not_applicable[name]))
        elif name in settings.skip:
            entries.append(Entry(name, "contract", "skipped", message="skip= names it"))
        elif not obs.deterministic and name in _COMPARE_RUNS:
            why = "not judged: forward is not deterministic"
            entries.append(Entry(name, "contract", "skipped", message=why))
        else:
            entry = _run_one(name, box, obs)
            if obs.nonfinite and name in _COMPARE_GRADIENTS and entry.status == "fail":
                entry.status = "skipped"
                entry.message = (
                    f"not judged: the analytic gradient of {', '.join(obs.nonfinite)} is NaN/Inf"
                )
            entries.append(entry)
    return entries


def _run_one(name: str, box: Sandbox, obs: Observations) -> Entry:
    """One check; your code raising when the check runs it again (after the analytic pass,
    which ran it once without raising) fails this check, with what was raised."""
    try:
        return _BY_NAME[name](box, obs)
    except Exception as error:  # (your code's exception: the check reports it, not raises it)
        frame = traceback.extract_tb(error.__traceback__)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        return Entry(
            name,
            "contract",
            "fail",
            message=(
                f"{type(error).__name__}: {error} (at {where}), raised when this check ran "
                "forward or backward again; a backward that consumes its cache or state (a "
                "list it pops from, a cache it deletes) can run only once"
            ),
        )
