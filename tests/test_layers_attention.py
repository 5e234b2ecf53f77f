"""The attention layers: gradients against finite differences (at fixed sizes and fuzzed),
TimeAttention against the loop over Attention, Te != Td both ways, the attention weights kept, and
shape errors.

The fuzz test draws each case's dimensions within its bounds (size 1 included) and a seed for the
weights and inputs; a failure shrinks to the smallest dimensions and names them.
"""

import ast
import inspect
import textwrap

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradcheck import assert_layer
from gradcheck.strategies import layer_cases
from layers import Attention, AttentionWeight, TimeAttention, WeightSum
from tests.families import (
    build,
    family_cases,
)

CASES = family_cases("attention")
# Every dimension different (N >= 2, T >= 3), Te > Td and Te < Td, and the edge N = T = H = 1.
DIMS = [
    pytest.param({"N": 2, "Te": 5, "Td": 3, "H": 4}, id="Te>Td"),
    pytest.param({"N": 2, "Te": 3, "Td": 5, "H": 4}, id="Te<Td"),
    pytest.param({"N": 1, "Te": 1, "Td": 1, "H": 1}, id="ones"),
]


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("case", CASES)
def test_backward_matches_finite_differences(case, dims):
    layer, inputs = build(case, dims)
    report = assert_layer(layer, *inputs, rtol=1e-7, atol=1e-10, mode="full")
    assert report.max_rel_error < 1e-7
    assert {e.name for e in report.gradients} >= {"input[0]", "input[1]"}


@pytest.mark.parametrize("case", CASES)
@given(data=st.data())
def test_fuzzed_backward_matches_finite_differences(case, data):
    layer, inputs = drawn = data.draw(layer_cases(case))
    assert_layer(layer, *inputs, seed=drawn.seed, context=drawn.context, **case.options)


def _loop(hs_enc, hs_dec, dcs):
    """The book's TimeAttention: one Attention per decoder step."""
    steps = [Attention() for _ in range(hs_dec.shape[1])]
    cs = np.stack([a.forward(hs_enc, hs_dec[:, t]) for t, a in enumerate(steps)], axis=1)
    dhs_enc = np.zeros_like(hs_enc)
    dhs_dec = np.empty_like(hs_dec)
    for t, a in enumerate(steps):
        dhs, dh = a.backward(dcs[:, t])
        dhs_enc += dhs
        dhs_dec[:, t] = dh
    weights = np.stack([a.attention_weight for a in steps], axis=1)
    return cs, weights, dhs_enc, dhs_dec


@pytest.mark.parametrize(("Te", "Td"), [(5, 3), (3, 5), (4, 4), (1, 3), (3, 1)])
def test_time_attention_equals_loop_over_attention(Te, Td):
    rng = np.random.default_rng(1)
    N, H = 2, 6
    hs_enc, hs_dec = rng.standard_normal((N, Te, H)), rng.standard_normal((N, Td, H))
    dcs = rng.standard_normal((N, Td, H))
    layer = TimeAttention()
    cs = layer.forward(hs_enc, hs_dec)
    dhs_enc, dhs_dec = layer.backward(dcs)
    cs_loop, weights_loop, dhs_enc_loop, dhs_dec_loop = _loop(hs_enc, hs_dec, dcs)
    assert cs.shape == (N, Td, H)
    np.testing.assert_allclose(cs, cs_loop, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.attention_weights, weights_loop, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dhs_enc, dhs_enc_loop, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dhs_dec, dhs_dec_loop, rtol=1e-12, atol=1e-14)


def test_time_attention_has_no_python_loop_over_steps():
    for method in (TimeAttention.forward, TimeAttention.backward):
        tree = ast.parse(textwrap.dedent(inspect.getsource(method)))
        loops = (ast.For, ast.While, ast.ListComp, ast.GeneratorExp)
        assert not any(isinstance(node, loops) for node in ast.walk(tree)), method.__name__


@pytest.mark.parametrize(("Te", "Td"), [(6, 2), (2, 6)])
def test_time_attention_keeps_weights_of_shape_n_td_te(Te, Td):
    rng = np.random.default_rng(2)
    layer = TimeAttention()
    layer.forward(rng.standard_normal((3, Te, 4)), rng.standard_normal((3, Td, 4)))
    assert layer.attention_weights.shape == (3, Td, Te)
    np.testing.assert_allclose(layer.attention_weights.sum(axis=2), 1.0, rtol=1e-12)
    assert (layer.attention_weights > 0).all()


def test_attention_keeps_its_weights():
    rng = np.random.default_rng(3)
    layer = Attention()
    layer.forward(rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 3)))
    assert layer.attention_weight.shape == (2, 5)
    np.testing.assert_allclose(layer.attention_weight.sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outputs_and_gradients_follow_the_input_dtype(dtype):
    rng = np.random.default_rng(4)
    hs_enc = rng.standard_normal((2, 4, 3)).astype(dtype)
    hs_dec = rng.standard_normal((2, 5, 3)).astype(dtype)
    layer = TimeAttention()
    cs = layer.forward(hs_enc, hs_dec)
    grads = layer.backward(np.ones_like(cs))
    assert cs.dtype == dtype and layer.attention_weights.dtype == dtype
    assert all(g.dtype == dtype for g in grads)


def test_softmax_is_stable_for_large_scores():
    hs_enc = np.full((1, 3, 2), 500.0)
    hs_enc[0, 1] = 600.0
    layer = TimeAttention()
    with np.errstate(all="raise"):
        cs = layer.forward(hs_enc, np.ones((1, 1, 2)))
    np.testing.assert_allclose(layer.attention_weights[0, 0], [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(cs[0, 0], [600.0, 600.0])


BAD_SHAPES = [
    pytest.param(TimeAttention, (2, 4, 3), (2, 5, 6), "(2, _, 3)", "(2, 5, 6)", id="Time-H"),
    pytest.param(TimeAttention, (2, 4, 3), (3, 5, 3), "(2, _, 3)", "(3, 5, 3)", id="Time-N"),
    pytest.param(TimeAttention, (2, 4, 3), (2, 3), "(N, Td, H)", "(2, 3)", id="Time-ndim"),
    pytest.param(TimeAttention, (4, 3), (2, 5, 3), "(N, Te, H)", "(4, 3)", id="Time-enc"),
    pytest.param(TimeAttention, (2, 0, 3), (2, 5, 3), "(N, Te, H)", "(2, 0, 3)", id="Time-Te=0"),
    pytest.param(Attention, (2, 4, 3), (2, 4), "(2, 3)", "(2, 4)", id="Attention-H"),
    pytest.param(AttentionWeight, (2, 4, 3), (1, 3), "(2, 3)", "(1, 3)", id="Weight-N"),
    pytest.param(WeightSum, (2, 4, 3), (2, 5), "(2, 4)", "(2, 5)", id="WeightSum-T"),
]


@pytest.mark.parametrize(("cls", "shape_a", "shape_b", "expected", "got"), BAD_SHAPES)
def test_wrong_input_shape_names_expected_and_received(cls, shape_a, shape_b, expected, got):
    with pytest.raises(ValueError, match=r"expected|must have shape") as info:
        cls().forward(np.zeros(shape_a), np.zeros(shape_b))
    assert expected in str(info.value) and got in str(info.value)


def test_integer_input_is_a_type_error():
    with pytest.raises(TypeError, match="float ndarray"):
        TimeAttention().forward(np.zeros((2, 4, 3), dtype=int), np.zeros((2, 5, 3)))
