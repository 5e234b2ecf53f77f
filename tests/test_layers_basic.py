"""layers.basic: every registered case against finite differences, at fixed sizes and fuzzed, in
float64 with grads written in place; plus the book fixes.

The fuzz test draws each case's dimensions within its bounds (size 1 included) and a seed for the
weights and inputs; a failure shrinks to the smallest dimensions and names them.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradcheck import assert_layer
from gradcheck.strategies import layer_cases
from layers import Affine, Dropout, Embedding, MatMul, ReLU, Sigmoid, Softmax, SoftmaxWithLoss
from tests.families import (
    SHAPES,
    assert_float64_in_place,
    build,
    family_cases,
)

CASES = family_cases("basic")


@pytest.mark.parametrize("dims", SHAPES)
@pytest.mark.parametrize("case", CASES)
def test_backward_matches_finite_differences(case, dims):
    layer, inputs = build(case, dims)
    assert_layer(layer, *inputs, rtol=1e-7, **case.options)


@pytest.mark.parametrize("case", CASES)
@given(data=st.data())
def test_fuzzed_backward_matches_finite_differences(case, data):
    layer, inputs = drawn = data.draw(layer_cases(case))
    assert_layer(layer, *inputs, seed=drawn.seed, context=drawn.context, **case.options)


@pytest.mark.parametrize("case", CASES)
def test_float64_layer_keeps_float64_and_writes_grads_in_place(case):
    assert_float64_in_place(case)


def test_float32_params_compute_in_float32():
    rng = np.random.default_rng(0)
    layer = Affine(rng.standard_normal((3, 2)).astype(np.float32), np.zeros(2, np.float32))
    out = layer.forward(rng.standard_normal((4, 3)).astype(np.float32))
    dx = layer.backward(np.ones_like(out))
    assert out.dtype == dx.dtype == layer.grads[0].dtype == layer.grads[1].dtype == np.float32


@pytest.mark.parametrize(
    ("layer", "args", "expected"),
    [
        pytest.param(MatMul(np.ones((3, 2))), (np.ones((4, 5)),), r"\(N, 3\), got \(4, 5\)"),
        pytest.param(Affine(np.ones((3, 2)), np.ones(2)), (np.ones(3),), r"\(N, 3\), got \(3,\)"),
        pytest.param(SoftmaxWithLoss(), (np.ones((2, 3)), np.zeros(3, int)), r"\(2,\), got \(3,\)"),
        pytest.param(SoftmaxWithLoss(), (np.ones(3), np.zeros(3, int)), r"\(N, V\), got \(3,\)"),
    ],
)
def test_wrong_input_shape_names_expected_and_received(layer, args, expected):
    with pytest.raises(ValueError, match=expected):
        layer.forward(*args)


def test_softmax_normalises_the_last_axis_of_any_rank():
    rng = np.random.default_rng(0)
    for shape in [(5,), (2, 5), (2, 3, 5), (2, 3, 4, 5)]:
        y = Softmax().forward(10 * rng.standard_normal(shape))
        np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-12)


def test_softmax_with_loss_is_mean_cross_entropy_without_overflow():
    x = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
    t = np.array([1, 2])
    layer = SoftmaxWithLoss()
    loss = layer.forward(x, t)
    np.testing.assert_allclose(loss, (1000.0 + np.log(3.0)) / 2, rtol=1e-12)
    dx = layer.backward()
    np.testing.assert_array_equal(dx, layer.backward())  # the cache is left alone
    np.testing.assert_allclose(dx.sum(axis=1), 0.0, atol=1e-15)


def test_embedding_adds_the_rows_of_repeated_ids():
    layer = Embedding(np.zeros((4, 2)))
    layer.forward(np.array([1, 3, 1, 1]))
    layer.backward(np.ones((4, 2)))
    np.testing.assert_array_equal(layer.grads[0], [[0, 0], [3, 3], [0, 0], [1, 1]])


def test_sigmoid_and_relu_at_extreme_inputs_stay_finite():
    x = np.array([-1000.0, -1.0, 0.5, 1000.0])
    with np.errstate(all="raise"):
        y = Sigmoid().forward(x)
    np.testing.assert_allclose(y, [0.0, 1 / (1 + np.e), 1 / (1 + np.exp(-0.5)), 1.0])
    np.testing.assert_array_equal(ReLU().forward(x), [0.0, 0.0, 0.5, 1000.0])


def test_dropout_draws_from_its_own_generator_not_the_global_state(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("Dropout used the global np.random state")

    for name in ("rand", "random", "random_sample", "randn", "binomial", "uniform"):
        monkeypatch.setattr(np.random, name, forbidden)
    x = np.ones((50, 40))
    a = Dropout(0.5, rng=7).forward(x)
    np.testing.assert_array_equal(a, Dropout(0.5, rng=np.random.default_rng(7)).forward(x))
    assert set(np.unique(a)) == {0.0, 2.0}  # inverted: survivors scaled by 1 / (1 - 0.5)
    assert abs(a.mean() - 1.0) < 0.1


def test_dropout_restoring_the_generator_repeats_the_mask():
    layer = Dropout(0.3, rng=0)
    x = np.ones((4, 5))
    state = layer.rng.bit_generator.state
    first = layer.forward(x)
    layer.rng.bit_generator.state = state
    np.testing.assert_array_equal(layer.forward(x), first)


def test_dropout_in_eval_mode_is_the_identity():
    layer = Dropout(0.5, rng=0, train=False)
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(x), x)


def test_dropout_rejects_a_ratio_outside_0_1():
    with pytest.raises(ValueError, match=r"dropout_ratio=1\.0 must be in \[0, 1\)"):
        Dropout(1.0)


@pytest.mark.parametrize(
    ("layer", "args", "expected"),
    [
        pytest.param(
            SoftmaxWithLoss(),
            (np.ones((2, 3)), np.array([0, -1])),
            r"t\[1\] = -1 is out of range; every value of t must be in \[0, 3\)",
            id="SoftmaxWithLoss-negative",
        ),
        pytest.param(
            SoftmaxWithLoss(),
            (np.ones((2, 3)), np.array([3, 1])),
            r"t\[0\] = 3 is out of range; every value of t must be in \[0, 3\)",
            id="SoftmaxWithLoss-V",
        ),
        pytest.param(
            Embedding(np.ones((4, 2))),
            (np.array([[0, 1], [2, -1]]),),
            r"idx\[1, 1\] = -1 is out of range; every value of idx must be in \[0, 4\)",
            id="Embedding-negative",
        ),
        pytest.param(
            Embedding(np.ones((4, 2))),
            (np.array([0, 4]),),
            r"idx\[1\] = 4 is out of range; every value of idx must be in \[0, 4\)",
            id="Embedding-V",
        ),
    ],
)
def test_label_or_id_out_of_range_names_position_value_and_range(layer, args, expected):
    with pytest.raises(ValueError, match=expected):
        layer.forward(*args)


def test_labels_and_ids_at_both_ends_of_the_range_are_accepted():
    x = np.arange(6.0).reshape(2, 3)
    loss = SoftmaxWithLoss().forward(x, np.array([0, 2]))
    np.testing.assert_allclose(loss, -(x[0, 0] + x[1, 2]) / 2 + np.log(np.exp(x).sum(1)).mean())
    W = np.arange(8.0).reshape(4, 2)
    np.testing.assert_array_equal(Embedding(W).forward(np.array([0, 3], np.uint8)), W[[0, 3]])
