"""Every bundled layer, whatever its family: bad use is refused clearly, and float32 stays float32.

One table (every case registered in ``layers/cases.py``) and one body per rule; the families'
own modules (``test_layers_<family>.py``) hold what is particular to each.
"""

import copy
import re

import numpy as np
import pytest

from gradcheck import check_layer, registered_cases
from tests.families import GENERAL, build, douts_for

CASES = [pytest.param(case, id=case.name) for case in registered_cases("layers")]
# GENERAL's sizes, plus encoder and decoder lengths for the attention layers and models.
SIZES = {**GENERAL, "Te": 7, "Td": 8}


def _build_float32(case, dims, seed=0):
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


@pytest.mark.parametrize("case", CASES)
def test_float32_layer_fed_float64_inputs_passes_the_checker(case):
    # Every check passes, "output dtype follows params" included: no silent promotion to float64.
    layer, inputs = _build_float32(case, SIZES)
    assert all(p.dtype == np.float32 for p in layer.params)
    report = check_layer(layer, *inputs, **case.options)
    assert report.passed, str(report)


@pytest.mark.parametrize("case", CASES)
def test_backward_before_any_forward_is_a_runtime_error(case):
    # Given douts of the right shapes, a fresh layer's backward says to call forward first
    # (not numpy's error about unpacking None); after a forward it works.
    twin, inputs = build(case, SIZES)
    douts = douts_for(twin.forward(*inputs))
    layer, _ = build(case, SIZES)
    with pytest.raises(RuntimeError, match=r"\.backward: call forward before backward"):
        layer.backward(*douts)
    layer.forward(*inputs)
    layer.backward(*douts)


@pytest.mark.parametrize("case", CASES)
def test_dout_of_another_shape_is_a_value_error_naming_both_shapes(case):
    # One output at a time, a dout of another shape (one row where there are N, which would
    # broadcast; an (N,) array for a scalar loss) is refused naming both shapes; the right
    # shapes still work afterwards.
    layer, inputs = build(case, SIZES)
    out = layer.forward(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    douts = douts_for(out)
    for k, o in enumerate(outs):
        shape = np.shape(o)
        wrong = np.ones((1, *shape[1:]) if shape else (SIZES["N"],))
        bad = (*douts[:k], wrong, *douts[k + 1 :])
        expected, got = re.escape(str(shape)), re.escape(str(wrong.shape))
        with pytest.raises(ValueError, match=rf"must have shape {expected}.*, got {got}"):
            layer.backward(*bad)
    layer.backward(*douts)
