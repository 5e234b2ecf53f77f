"""layers.time: every registered case against finite differences, at fixed sizes and fuzzed, in
float64 with grads written in place; plus the book fixes.

The fuzz test draws each case's dimensions within its bounds (size 1 included) and a seed for the
weights and inputs; a failure shrinks to the smallest dimensions and names them. A second fuzz test
draws the loss's values too: labels with ignored positions and padded rows.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradcheck import assert_layer, strategies
from gradcheck.strategies import float_arrays, labels, layer_cases
from layers import (
    Affine,
    SoftmaxWithLoss,
    TimeAffine,
    TimeDropout,
    TimeEmbedding,
    TimeSoftmaxWithLoss,
)
from tests.families import (
    SHAPES,
    assert_float64_in_place,
    build,
    family_cases,
)

CASES = family_cases("time")


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


@given(data=st.data(), sizes=strategies.dims("N", "T", "V", max_V=5))
def test_loss_gradient_holds_with_ignored_labels_and_fully_masked_rows(data, sizes):
    # Values, not just sizes, from hypothesis: padded positions and whole padded sequences.
    N, T, V = sizes["N"], sizes["T"], sizes["V"]
    xs = data.draw(float_arrays((N, T, V), min_value=-3.0, max_value=3.0), label="xs")
    ts = data.draw(labels((N, T), num_classes=V, ignore_label=-1), label="ts")
    assert_layer(TimeSoftmaxWithLoss(), xs, ts, context=f"N={N} T={T} V={V}")


@pytest.mark.parametrize("case", CASES)
def test_float64_layer_keeps_float64_and_writes_grads_in_place(case):
    assert_float64_in_place(case)


def _scores_and_labels(N=2, T=3, V=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, T, V)), rng.integers(0, V, (N, T))


def test_time_softmax_with_loss_second_backward_is_identical():
    layer = TimeSoftmaxWithLoss()
    layer.forward(*_scores_and_labels())
    first = layer.backward()
    np.testing.assert_array_equal(layer.backward(), first)  # the book's edits its cache


def test_time_softmax_with_loss_rejects_a_batch_with_every_label_ignored():
    xs, ts = _scores_and_labels()
    with pytest.raises(ValueError, match=r"every label .* ignore_label=-1"):
        TimeSoftmaxWithLoss().forward(xs, np.full_like(ts, -1))


def test_time_softmax_with_loss_ignores_padding_labels():
    xs, ts = _scores_and_labels(N=2, T=3, V=4)
    ts[0, 1] = ts[1, 2] = -1
    layer = TimeSoftmaxWithLoss()
    loss = layer.forward(xs, ts)
    dxs = layer.backward()
    keep = ts != -1
    reference = SoftmaxWithLoss()
    np.testing.assert_allclose(loss, reference.forward(xs[keep], ts[keep]), rtol=1e-14)
    np.testing.assert_allclose(dxs[keep], reference.backward(), rtol=1e-14)
    np.testing.assert_array_equal(dxs[~keep], 0.0)


def test_time_softmax_with_loss_custom_ignore_label():
    xs, ts = _scores_and_labels(V=4)
    ts[0, 0] = 3
    loss = TimeSoftmaxWithLoss(ignore_label=3).forward(xs, ts)
    keep = ts != 3
    np.testing.assert_allclose(loss, SoftmaxWithLoss().forward(xs[keep], ts[keep]), rtol=1e-14)


def test_time_affine_equals_affine_at_every_step():
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((3, 5)), rng.standard_normal(5)
    xs, dout = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 5))
    time_layer, step = TimeAffine(W, b), Affine(W, b)
    np.testing.assert_allclose(
        time_layer.forward(xs), step.forward(xs.reshape(8, 3)).reshape(2, 4, 5)
    )
    dxs = time_layer.backward(dout)
    np.testing.assert_allclose(dxs.reshape(8, 3), step.backward(dout.reshape(8, 5)))
    for got, want in zip(time_layer.grads, step.grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-13)


def test_time_embedding_adds_repeated_ids_across_steps():
    layer = TimeEmbedding(np.zeros((3, 2)))
    layer.forward(np.array([[0, 2, 2], [2, 1, 0]]))
    layer.backward(np.ones((2, 3, 2)))
    np.testing.assert_array_equal(layer.grads[0], [[2, 2], [1, 1], [3, 3]])


@pytest.mark.parametrize(
    ("layer", "args", "expected"),
    [
        pytest.param(
            TimeAffine(np.ones((3, 2)), np.ones(2)),
            (np.ones((4, 3)),),
            r"xs must have shape \(N, T, 3\), got \(4, 3\)",
        ),
        pytest.param(TimeEmbedding(np.ones((5, 2))), (np.zeros(4, int),), r"\(N, T\), got \(4,\)"),
        pytest.param(
            TimeSoftmaxWithLoss(),
            (np.ones((2, 3, 4)), np.zeros((3, 2), int)),
            r"ts must have shape \(2, 3\), got \(3, 2\)",
        ),
        pytest.param(TimeDropout(rng=0), (np.ones((2, 3)),), r"\(N, T, D\), got \(2, 3\)"),
    ],
)
def test_wrong_input_shape_names_expected_and_received(layer, args, expected):
    with pytest.raises(ValueError, match=expected):
        layer.forward(*args)


@pytest.mark.parametrize(
    ("layer", "args", "expected"),
    [
        pytest.param(
            TimeSoftmaxWithLoss(ignore_label=-1),
            (np.ones((2, 2, 4)), np.array([[0, -1], [-2, 1]])),
            r"ts\[1, 0\] = -2 is out of range; every value of ts must be in \[0, 4\) or "
            r"ignore_label=-1",
            id="TimeSoftmaxWithLoss-below-ignore_label",
        ),
        pytest.param(
            TimeSoftmaxWithLoss(),
            (np.ones((2, 2, 4)), np.array([[0, 1], [2, 4]])),
            r"ts\[1, 1\] = 4 is out of range",
            id="TimeSoftmaxWithLoss-V",
        ),
        pytest.param(
            TimeEmbedding(np.ones((4, 2))),
            (np.array([[0, 1], [-1, 2]]),),
            r"xs\[1, 0\] = -1 is out of range; every value of xs must be in \[0, 4\)",
            id="TimeEmbedding-negative",
        ),
        pytest.param(
            TimeEmbedding(np.ones((4, 2))),
            (np.array([[0, 4]]),),
            r"xs\[0, 1\] = 4 is out of range; every value of xs must be in \[0, 4\)",
            id="TimeEmbedding-V",
        ),
    ],
)
def test_label_or_id_out_of_range_names_position_value_and_range(layer, args, expected):
    with pytest.raises(ValueError, match=expected):
        layer.forward(*args)


def test_labels_at_both_ends_and_the_ignore_label_are_accepted():
    xs, _ = _scores_and_labels(N=1, T=3, V=4)
    ts = np.array([[0, -1, 3]])
    loss = TimeSoftmaxWithLoss().forward(xs, ts)
    keep = ts != -1
    np.testing.assert_allclose(loss, SoftmaxWithLoss().forward(xs[keep], ts[keep]), rtol=1e-14)
    W = np.arange(8.0).reshape(4, 2)
    np.testing.assert_array_equal(TimeEmbedding(W).forward(np.array([[3, 0]])), W[[[3, 0]]])
    assert TimeEmbedding(W).forward(np.zeros((2, 0), np.int64)).shape == (2, 0, 2)  # no ids
