"""The contract checks of CONTRACT.md section 4.2, one report line each.

Each check takes the harness of :mod:`gradcheck.harness` (the layer's float64 copy, its inputs,
dout, what the analytic pass observed) and returns an :class:`~gradcheck.report.Entry` of kind
``"contract"``: ``ok``, ``fail`` (with a message saying what broke and how to fix it) or
``skipped`` (does not apply). Checks that need calls of their own make a few (two to four
forwards and three backwards as a rule, at most five and four), always on the copy.
"""

from __future__ import annotations

import copy
import math
import types
from collections import deque
from typing import Any

import numpy as np

from gradcheck.numerical import uniform_int16
from gradcheck.report import Entry

__all__ = ["CHECKS", "run"]

#: Relative tolerance of the checks that compare two runs of exactly the same arithmetic.
_EXACT = 1e-9
_INT16_SCALE = 2.0**-15


def _entry(name: str, problems: list[str], *, ok_message: str = "") -> Entry:
    if problems:
        return Entry(name, "contract", "fail", message="; ".join(problems))
    return Entry(name, "contract", "ok", message=ok_message)


def grads_parallel(h: Any) -> Entry:
    """params and grads: same length, shapes and dtypes; no grad is (a view of) its param."""
    layer = h.original
    problems = []
    for i, (p, g) in enumerate(zip(layer.params, layer.grads, strict=True)):
        name = h.param_names[i]
        if g.shape != p.shape:
            problems.append(f"grads[{i}] ({name}) has shape {g.shape}, param has {p.shape}")
        if g.dtype != p.dtype:
            problems.append(f"grads[{i}] ({name}) is {g.dtype}, param is {p.dtype}")
        if g is p or np.may_share_memory(g, p):
            problems.append(
                f"grads[{i}] ({name}) is the parameter array itself; use np.zeros_like(param)"
            )
    return _entry("grads parallel to params", problems)


def grads_in_place(h: Any) -> Entry:
    """backward writes self.grads[i][...] = g; it never rebinds the arrays or the list, at the
    top or in any part (a composite's decoder.affine)."""
    f = h.facts
    replaced, rebound = [], []
    if f["grads_list"] != f["grads_list_after"]:
        replaced.append("the grads list")
    else:
        rebound += [
            h.param_names[i]
            for i, (a, b) in enumerate(zip(f["grads_before"], f["grads_after"], strict=True))
            if a != b
        ]
    names = dict(zip(f["grads_before"], h.param_names, strict=False))
    for (part, (list_id, ids)), after in zip(f["part_grads"], f["part_grads_after"], strict=True):
        if after is None or after[0] != list_id or len(after[1]) != len(ids):
            replaced.append(f"{_path(h.layer, part)}.grads (the list)")
            continue
        for k, (a, b) in enumerate(zip(ids, after[1], strict=True)):
            if a != b:
                where = f"{_path(h.layer, part)}.grads[{k}]"
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


def _fingerprint(g: Any, seed: int = 0) -> tuple[float, float, float]:
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
            scaled = g / peak
            norm = peak * float(np.sqrt(np.dot(scaled, scaled)))
            del scaled
    # both projections from one draw of int16s, scaled to [-1, 1) after
    r = uniform_int16(seed, 2 * n).reshape(2, n)
    step = 1 << 13  # (slices: the int16s are made float64 for the product, not all at once)
    if n <= step:
        projections = np.dot(r, g)
    else:
        projections = np.zeros(2)
        for i in range(0, n, step):
            projections += np.dot(r[:, i : i + step], g[i : i + step])
    del r
    first, second = (projections * _INT16_SCALE).tolist()
    return norm, first, second


def _scaled(b: tuple[float, ...], a: tuple[float, ...], c: float) -> bool:
    """Whether fingerprint ``b`` is that of ``c`` times the array of fingerprint ``a`` (in plain
    floats: three numbers)."""
    norm, first, second = a
    if norm == 0.0:
        return all(x == 0 for x in b)
    expect = (abs(c) * norm, c * first, c * second)
    tol = (abs(c) * norm * _EXACT, abs(c) * norm * 10 * _EXACT, abs(c) * norm * 10 * _EXACT)
    return all(abs(x - e) <= t for x, e, t in zip(b, expect, tol, strict=True))


def _gradient_fingerprints(
    h: Any, input_grads: list[Any]
) -> list[tuple[str, tuple[float, float, float]]]:
    out = [
        (name, _fingerprint(g, k))
        for k, (name, g) in enumerate(zip(h.param_names, h.layer.grads, strict=True))
    ]
    out += [
        (h.input_labels[i].split(" ")[0], _fingerprint(input_grads[i], 100 + i))
        for i in h.float_inputs
        if np.shape(input_grads[i]) == h.inputs[i].shape
    ]
    return out


def _fresh_fingerprints(h: Any) -> list[tuple[str, tuple[float, float, float]]]:
    """Fingerprints of the gradients of backward(dout) right after a restored forward, kept in
    ``h.facts``: the first backward of :func:`overwritten` and the base of :func:`linear` are
    that same computation, so it runs once."""
    h.forward()
    h.zero_grads()
    h.facts["fresh_fingerprints"] = _gradient_fingerprints(h, h.backward())
    return h.facts["fresh_fingerprints"]


def overwritten(h: Any) -> Entry:
    """A second backward after one forward gives the same gradients (no +=, no edited cache)."""
    first = _fresh_fingerprints(h)
    second = _gradient_fingerprints(h, h.backward())
    doubled, changed = [], []
    for (name, a), (_, b) in zip(first, second, strict=True):
        if _scaled(b, a, 1.0):
            continue
        (doubled if a[0] > 0 and _scaled(b, a, 2.0) else changed).append(name)
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


def arguments_unmodified(h: Any) -> Entry:
    """forward and backward leave their arguments (and arrays the caller holds) alone, float
    and integer (token ids, labels) alike; compared bit for bit after each."""
    f = h.facts
    problems = [f"forward modified {h.input_labels[i]} in place" for i in f["mutated_inputs"]]
    problems += [
        f"backward modified {h.input_labels[i]} (the caller's array) in place"
        for i in f["mutated_inputs_backward"]
    ]
    if problems:
        fix = "work on a copy (x = x * mask, not x *= mask)"
        if any(i not in h.float_inputs for i in f["mutated_inputs"] + f["mutated_inputs_backward"]):
            fix += "; cached ids are the caller's: copy them before changing them"
        problems.append(fix)
    return _entry("arguments unmodified", problems)


def params_unmodified(h: Any) -> Entry:
    """forward and backward never write into the parameters (only an optimizer does)."""
    problems = [
        f"forward or backward modified parameter {h.param_names[i]}"
        for i in h.facts["mutated_params"]
    ]
    if problems:
        problems.append("backward writes only self.grads; leave updates to the optimizer")
    return _entry("params unmodified", problems)


def dout_unmodified(h: Any) -> Entry:
    """backward leaves dout alone: the caller may pass the same dout to several layers."""
    problems = [f"backward modified dout[{k}] in place" for k in h.facts["dout_modified"]]
    if problems:
        problems.append("work on a copy (dout = dout * mask, not dout *= mask)")
    return _entry("dout unmodified", problems)


def deterministic(h: Any) -> Entry:
    """Two forwards from the same restored state return the same bits."""
    if h.facts["deterministic"]:
        return _entry("forward deterministic", [])
    return _entry(
        "forward deterministic",
        [
            "two forwards with the same inputs, params and state gave different outputs; "
            "randomness must come from a numpy Generator the layer owns (rng=), not the global "
            "np.random"
        ],
    )


def no_memory(h: Any) -> Entry:
    """stateful=False: two consecutive forwards, nothing restored between, give the same output."""
    name = "stateful=False keeps no memory"
    if getattr(h.layer, "stateful", None) is not False:
        why = "layer is stateful" if h.stateful else "layer has no stateful attribute"
        return Entry(name, "contract", "skipped", message=why)
    a = h.forward()
    a = tuple(np.array(x, copy=True) for x in a) if isinstance(a, tuple) else np.array(a)
    b = h.call_forward()
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


def linear(h: Any) -> Entry:
    """backward(2 * dout) gives twice the gradients of backward(dout)."""
    base = h.facts.get("fresh_fingerprints")
    if base is None or h.facts["mutated_inputs_backward"] or h.facts["mutated_params"]:
        # (an input or param that backward changes is not put back before every forward:
        # measure again)
        base = _fresh_fingerprints(h)
    h.forward()
    h.zero_grads()
    twice = _gradient_fingerprints(h, h.backward(scale=2.0))
    wrong = [name for (name, a), (_, b) in zip(base, twice, strict=True) if not _scaled(b, a, 2.0)]
    if wrong:
        return _entry(
            "backward linear in dout",
            [
                f"backward(2 * dout) did not give twice the gradient of {', '.join(wrong)}: "
                "backward must scale with dout (does it ignore dout, or use it twice?)"
            ],
        )
    return _entry("backward linear in dout", [])


def dtypes(h: Any) -> Entry:
    """In the float64 copy, outputs and gradients are float64: nothing is hard-coded float32."""
    problems = []
    for k, dtype in enumerate(h.out_dtypes):
        if dtype != np.float64:
            problems.append(f"output[{k}] is {dtype}")
    for i in h.float_inputs:
        g = h.input_grads[i]
        if isinstance(g, np.ndarray) and g.dtype != np.float64:
            problems.append(f"gradient of {h.input_labels[i]} is {g.dtype}")
    for i, g in enumerate(h.param_grads):
        if g.dtype != np.float64:
            problems.append(f"grads[{i}] ({h.param_names[i]}) is {g.dtype}")
    for name in ("dh", "dc"):
        g = h.state_grads.get(name)
        if isinstance(g, np.ndarray) and g.dtype != np.float64:
            problems.append(f"{name} is {g.dtype}")
    if problems:
        problems.insert(0, "with float64 params the layer computes in float32")
        problems.append("use the params' dtype for buffers (np.zeros_like, dtype=W.dtype)")
    if "precision" in h.facts and not h.facts["gradients_failed"]:
        # (when gradients fail, the report's note says it; the gradient entries carry the blame)
        problems.insert(0, h.facts["precision"])
    problems += h.facts.get("native_dtype", [])
    return _entry("output dtype follows params", problems)


def native_dtype_problems(layer: Any, inputs: tuple[np.ndarray, ...]) -> list[str]:
    """One forward and backward of a plain copy of the user's (say float32) layer: outputs and
    input gradients keep the params' dtype (no silent upcast to float64). Run before the
    float64 copy exists, so the two copies are never alive together. Returns the problems."""
    dtypes = {p.dtype for p in layer.params}
    if len(dtypes) != 1 or dtypes == {np.dtype(np.float64)}:
        return []
    (dtype,) = dtypes
    try:
        twin = copy.deepcopy(layer)
        out = twin.forward(*[np.array(x, copy=True) for x in inputs])
    except Exception:  # the float64 check that follows raises the clear error
        return []
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
        return problems
    grads = list(result) if isinstance(result, (tuple, list)) else [result]
    problems += [
        f"with {dtype} params, the gradient of input[{i}] is {g.dtype}"
        for i, (g, x) in enumerate(zip(grads, inputs, strict=False))
        if isinstance(g, np.ndarray) and x.dtype == dtype and g.dtype != dtype
    ]
    if problems:
        problems.append("compute in the params' dtype (np.asarray(x, dtype=float) upcasts)")
    return problems


def shapes(h: Any) -> Entry:
    """Each input gradient has its input's shape exactly (no broadcast (1, H) for (H,))."""
    problems = []
    for i in h.float_inputs:
        g = h.input_grads[i]
        if np.shape(g) != h.inputs[i].shape:
            problems.append(
                f"gradient of {h.input_labels[i]} has shape {np.shape(g)}, input has "
                f"{h.inputs[i].shape}"
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


def run(h: Any) -> list[Entry]:
    """Every check, in report order."""
    return [check(h) for check in CHECKS]
