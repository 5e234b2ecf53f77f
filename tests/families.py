"""What the layer test modules share: each family's table of cases, the fixed sizes, the helpers.

A family is a module of ``layers`` (basic, time, recurrent, attention, seq2seq). Its table is
every case registered in ``layers/cases.py`` whose built layer lives in that module, so a new
case is checked at fixed sizes and fuzzed as soon as it is registered. The tests themselves are
in ``tests/test_layers_<family>.py``; this module has none.
"""

import copy
import re

import numpy as np
import pytest

import layers  # noqa: F401  (registers the cases)
from gradcheck import check_layer, registered_cases

FAMILIES = ("basic", "time", "recurrent", "attention", "seq2seq")

# General sizes (all different, N >= 2, T >= 3, ids repeat) and the edge N = T = 1; each case
# takes the sizes it has dimensions for. The first is also where dtypes are checked.
GENERAL = {"N": 3, "T": 4, "D": 2, "H": 5, "V": 6}
SHAPES = [
    pytest.param(GENERAL, id="N3-T4-D2-H5-V6"),
    pytest.param({"N": 4, "T": 5, "D": 3, "H": 2, "V": 7}, id="N4-T5-D3-H2-V7"),
    pytest.param({"N": 1, "T": 1, "D": 3, "H": 2, "V": 4}, id="N1-T1"),
]


def family(case):
    """The family of ``case``: the ``layers`` module of the layer it builds, e.g. ``"time"``."""
    return type(case.build(0)[0]).__module__.removeprefix("layers.")


def family_cases(name):
    """The registered cases of family ``name``, as pytest params named by the case."""
    cases = registered_cases("layers")
    return [pytest.param(case, id=case.name) for case in cases if family(case) == name]


def build(case, dims, seed=0):
    """The case's layer and inputs, built with the sizes of ``dims`` that the case takes."""
    return case.build(seed, **{k: v for k, v in dims.items() if k in case.dims})


def build_float32(case, dims, seed=0):
    """The case's layer with its params, grads and state (h, c) cast to float32, every part
    included (arrays shared between parts stay shared), and its inputs unchanged (float64)."""
    layer, inputs = build(case, dims, seed)
    memo, stack, seen = {}, [layer], set()
    while stack:
        part = stack.pop()
        if id(part) in seen:
            continue
        seen.add(id(part))
        attrs = vars(part)
        arrays = [*attrs.get("params", ()), *attrs.get("grads", ())]
        arrays += [attrs[k] for k in ("h", "c") if isinstance(attrs.get(k), np.ndarray)]
        memo.update({id(a): a.astype(np.float32) for a in arrays if id(a) not in memo})
        stack += [v for v in attrs.values() if hasattr(v, "params") and hasattr(v, "__dict__")]
    return copy.deepcopy(layer, memo), inputs


def assert_float32_layer_passes_with_float64_inputs(case, dims):
    """Check the case's float32 layer (``build_float32``) fed float64 inputs: it must pass
    every check, "output dtype follows params" included (no silent promotion to float64)."""
    layer, inputs = build_float32(case, dims)
    assert all(p.dtype == np.float32 for p in layer.params), [p.dtype for p in layer.params]
    report = check_layer(layer, *inputs, **case.options)
    assert report.passed, str(report)


def assert_backward_before_forward_raises(case):
    """A fresh layer's backward (given douts of the right shapes) raises RuntimeError saying to
    call forward first, not numpy's error about unpacking None; after a forward it works."""
    twin, inputs = build(case, GENERAL)
    out = twin.forward(*inputs)
    douts = _douts(out if isinstance(out, tuple) else (out,), np.random.default_rng(1))
    layer, _ = build(case, GENERAL)
    with pytest.raises(RuntimeError, match=r"\.backward: call forward before backward"):
        layer.backward(*douts)
    layer.forward(*inputs)
    layer.backward(*douts)


def assert_wrong_dout_shape_raises(case):
    """After a forward, a dout of another shape (one row where there are N, which would
    broadcast; an (N,) array for a scalar loss) raises ValueError naming the expected and the
    received shape, one output at a time; the right shapes still work afterwards."""
    layer, inputs = build(case, GENERAL)
    out = layer.forward(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    douts = _douts(outs, np.random.default_rng(1))
    for k, o in enumerate(outs):
        shape = np.shape(o)
        wrong = np.ones((1, *shape[1:]) if shape else (GENERAL["N"],))
        expected = re.escape(str(shape))
        bad = (*douts[:k], wrong, *douts[k + 1 :])
        with pytest.raises(
            ValueError, match=rf"must have shape {expected}.*, got " + re.escape(str(wrong.shape))
        ):
            layer.backward(*bad)
    layer.backward(*douts)


def assert_float64_in_place(case):
    """Run the case's float64 layer forward and backward at GENERAL sizes and assert that
    outputs, input gradients and grads stay float64 and that backward wrote into the grads
    arrays the layer already held. Returns the layer and its input gradients (a tuple)."""
    layer, inputs = build(case, GENERAL)
    grads = list(layer.grads)
    out = layer.forward(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    dinputs = layer.backward(*_douts(outs, np.random.default_rng(1)))
    dinputs = dinputs if isinstance(dinputs, tuple) else (dinputs,)
    # (pytest does not rewrite asserts outside test modules: the messages say what was found)
    assert all(np.asarray(o).dtype == np.float64 for o in outs), [np.asarray(o).dtype for o in outs]
    assert all(d.dtype == np.float64 for d in dinputs if d is not None), [
        None if d is None else d.dtype for d in dinputs
    ]
    assert all(g is before for g, before in zip(layer.grads, grads, strict=True)), (
        "backward replaced a grads array instead of writing into it"
    )
    assert all(g.dtype == np.float64 for g in layer.grads), [g.dtype for g in layer.grads]
    return layer, dinputs


def _douts(outs, rng):
    return tuple(rng.standard_normal(np.shape(o)) if np.ndim(o) else 1.0 for o in outs)
