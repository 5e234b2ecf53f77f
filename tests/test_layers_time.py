"""layers.time: every registered case against finite differences, plus the book fixes."""

import numpy as np
import pytest

import gradcheck
from layers import (
    Affine,
    SoftmaxWithLoss,
    TimeAffine,
    TimeDropout,
    TimeEmbedding,
    TimeSoftmaxWithLoss,
)

FAMILY = "layers.time"
CASES = [
    pytest.param(case, id=case.name)
    for case in gradcheck.registered_cases("layers")
    if type(case.build(0)[0]).__module__ == FAMILY
]
# General shapes (all sizes different, N >= 2, T >= 3, ids repeat) and the edge N = T = 1.
SHAPES = [
    pytest.param({"N": 3, "T": 4, "D": 2, "H": 5, "V": 6}, id="N3-T4-D2-H5-V6"),
    pytest.param({"N": 4, "T": 5, "D": 3, "H": 2, "V": 7}, id="N4-T5-D3-H2-V7"),
    pytest.param({"N": 1, "T": 1, "D": 3, "H": 2, "V": 4}, id="N1-T1"),
]


def _build(case, dims, seed=0):
    return case.build(seed, **{k: v for k, v in dims.items() if k in case.dims})


def _douts(out, rng):
    outs = out if isinstance(out, tuple) else (out,)
    return tuple(rng.standard_normal(np.shape(o)) if np.ndim(o) else 1.0 for o in outs)


@pytest.mark.parametrize("dims", SHAPES)
@pytest.mark.parametrize("case", CASES)
def test_backward_matches_finite_differences(case, dims):
    layer, inputs = _build(case, dims)
    gradcheck.assert_layer(layer, *inputs, rtol=1e-7, **case.options)


@pytest.mark.parametrize("case", CASES)
def test_float64_layer_keeps_float64_and_writes_grads_in_place(case):
    layer, inputs = _build(case, {"N": 3, "T": 4, "D": 2, "H": 5, "V": 6})
    grads = list(layer.grads)
    out = layer.forward(*inputs)
    dinputs = layer.backward(*_douts(out, np.random.default_rng(1)))
    dinputs = dinputs if isinstance(dinputs, tuple) else (dinputs,)
    assert np.asarray(out).dtype == np.float64
    assert all(d.dtype == np.float64 for d in dinputs if d is not None)
    assert all(g is before for g, before in zip(layer.grads, grads, strict=True))
    assert all(g.dtype == np.float64 for g in layer.grads)


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
