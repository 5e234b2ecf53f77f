"""What the layer test modules share: each family's table of cases, the fixed sizes, the helpers.

A family is a module of ``layers`` (basic, time, recurrent, attention, seq2seq). Its table is
every case registered in ``layers/cases.py`` whose built layer lives in that module, so a new
case is checked at fixed sizes and fuzzed as soon as it is registered. The tests themselves are
in ``tests/test_layers_<family>.py`` (and ``test_layers_validation.py`` for what holds for
every family alike); this module has none.
"""

import numpy as np
import pytest

import layers  # noqa: F401  (registers the cases)
from gradcheck import registered_cases

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


def assert_float64_in_place(case):
    """Run the case's float64 layer forward and backward at GENERAL sizes and assert that
    outputs, input gradients and grads stay float64 and that backward wrote into the grads
    arrays the layer already held. Returns the layer and its input gradients (a tuple)."""
    layer, inputs = build(case, GENERAL)
    grads = list(layer.grads)
    out = layer.forward(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    dinputs = layer.backward(*douts_for(out))
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


def douts_for(out):
    """A random dout for each output of a forward (1.0 for a scalar loss), seeded: a tuple."""
    outs = out if isinstance(out, tuple) else (out,)
    rng = np.random.default_rng(1)
    return tuple(rng.standard_normal(np.shape(o)) if np.ndim(o) else 1.0 for o in outs)
