"""layers.recurrent: finite differences for every case (at fixed sizes and fuzzed), dtypes,
state semantics, cells, torch oracle.

The fuzz test draws each case's dimensions within its bounds (size 1 included) and a seed for the
weights and inputs; a failure shrinks to the smallest dimensions and names them.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradcheck import assert_layer
from gradcheck.strategies import layer_cases
from layers import GRU, LSTM, RNN, TimeBiLSTM, TimeGRU, TimeLSTM, TimeRNN
from tests.families import (
    SHAPES,
    assert_float64_in_place,
    build,
    family_cases,
)

CASES = family_cases("recurrent")
# (class, gates, cell) for the three unrolled layers and their step cells.
TIME_LAYERS = [
    pytest.param(TimeRNN, RNN, 1, id="TimeRNN"),
    pytest.param(TimeLSTM, LSTM, 4, id="TimeLSTM"),
    pytest.param(TimeGRU, GRU, 3, id="TimeGRU"),
]


def _weights(gates, D=3, H=4, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (
        (rng.standard_normal((D, gates * H)) / np.sqrt(D)).astype(dtype),
        (rng.standard_normal((H, gates * H)) / np.sqrt(H)).astype(dtype),
        (0.1 * rng.standard_normal(gates * H)).astype(dtype),
    )


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
    layer, dinputs = assert_float64_in_place(case)
    assert all(d is not None for d in dinputs)  # every input of a recurrent layer is a float
    for name in ("h", "c", "dh", "dc"):
        value = getattr(layer, name, None)
        assert value is None or value.dtype == np.float64, name


@pytest.mark.parametrize(("cls", "cell", "gates"), TIME_LAYERS)
def test_float32_layer_stays_float32_including_state(cls, cell, gates):
    layer = cls(*_weights(gates, dtype=np.float32), stateful=True)
    layer.set_state(np.ones((2, 4)))
    hs = layer.forward(np.ones((2, 3, 3)))  # float64 input: still a float32 layer
    dxs = layer.backward(np.ones_like(hs))
    arrays = [hs, dxs, layer.h, layer.dh, *layer.grads]
    if cls is TimeLSTM:
        arrays += [layer.c, layer.dc]
    assert all(a.dtype == np.float32 for a in arrays)


@pytest.mark.parametrize(("cls", "cell", "gates"), TIME_LAYERS)
def test_float32_layer_passes_the_checker_at_default_options(cls, cell, gates):
    layer = cls(*_weights(gates, dtype=np.float32), stateful=True)
    xs = np.random.default_rng(0).standard_normal((2, 3, 3)).astype(np.float32)
    assert_layer(layer, xs)


def test_time_lstm_keeps_the_cell_state_gradient():
    layer = TimeLSTM(*_weights(4), stateful=True)
    rng = np.random.default_rng(0)
    layer.set_state(rng.standard_normal((2, 4)), rng.standard_normal((2, 4)))
    layer.backward(np.ones_like(layer.forward(rng.standard_normal((2, 3, 3)))))
    assert layer.dc.shape == layer.dh.shape == (2, 4)
    assert np.abs(layer.dc).max() > 0


@pytest.mark.parametrize(("cls", "cell", "gates"), TIME_LAYERS)
def test_stateful_chunks_equal_one_forward_over_their_concatenation(cls, cell, gates):
    xs = np.random.default_rng(1).standard_normal((2, 5, 3))
    whole = cls(*_weights(gates)).forward(xs)
    chunked = cls(*_weights(gates), stateful=True)
    parts = [chunked.forward(xs[:, :2]), chunked.forward(xs[:, 2:])]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(chunked.h, whole[:, -1], rtol=1e-14)


@pytest.mark.parametrize(("cls", "cell", "gates"), TIME_LAYERS)
def test_stateless_forward_ignores_earlier_calls_and_set_state(cls, cell, gates):
    rng = np.random.default_rng(2)
    xs = rng.standard_normal((2, 3, 3))
    layer = cls(*_weights(gates))
    first = layer.forward(xs)
    layer.forward(rng.standard_normal((2, 4, 3)))
    layer.set_state(rng.standard_normal((2, 4)))
    np.testing.assert_array_equal(layer.forward(xs), first)


@pytest.mark.parametrize(("cls", "cell", "gates"), TIME_LAYERS)
def test_reset_state_starts_the_next_forward_from_zeros(cls, cell, gates):
    rng = np.random.default_rng(3)
    xs = rng.standard_normal((2, 3, 3))
    layer = cls(*_weights(gates), stateful=True)
    assert layer.h is None
    layer.forward(rng.standard_normal((2, 2, 3)))
    assert layer.h is not None
    layer.reset_state()
    assert layer.h is None and getattr(layer, "c", None) is None
    np.testing.assert_array_equal(layer.forward(xs), cls(*_weights(gates)).forward(xs))


def test_set_state_without_c_starts_the_cell_from_zeros():
    rng = np.random.default_rng(4)
    h = rng.standard_normal((2, 4))
    xs = rng.standard_normal((2, 3, 3))
    layer = TimeLSTM(*_weights(4), stateful=True)
    layer.set_state(h)
    np.testing.assert_array_equal(layer.c, np.zeros((2, 4)))
    explicit = TimeLSTM(*_weights(4), stateful=True)
    explicit.set_state(h, np.zeros((2, 4)))
    np.testing.assert_array_equal(layer.forward(xs), explicit.forward(xs))


def test_set_state_copies_and_forward_leaves_the_callers_arrays_alone():
    rng = np.random.default_rng(5)
    h, c = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    h_before, c_before = h.copy(), c.copy()
    layer = TimeLSTM(*_weights(4), stateful=True)
    layer.set_state(h, c)
    layer.backward(np.ones_like(layer.forward(rng.standard_normal((2, 3, 3)))))
    np.testing.assert_array_equal(h, h_before)
    np.testing.assert_array_equal(c, c_before)


def test_set_state_rejects_c_for_layers_without_a_cell():
    with pytest.raises(ValueError, match="TimeGRU has no cell state"):
        TimeGRU(*_weights(3)).set_state(np.zeros((2, 4)), np.zeros((2, 4)))


@pytest.mark.parametrize(("cls", "cell", "gates"), TIME_LAYERS)
def test_time_layer_equals_the_loop_over_its_cell(cls, cell, gates):
    rng = np.random.default_rng(6)
    N, T, D, H = 2, 4, 3, 4
    xs, dhs = rng.standard_normal((N, T, D)), rng.standard_normal((N, T, H))
    h0, c0 = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    layer = cls(*_weights(gates), stateful=True)
    layer.set_state(h0, c0 if cls is TimeLSTM else None)
    hs = layer.forward(xs)
    dxs = layer.backward(dhs)

    steps, h, c = [], h0, c0
    for t in range(T):
        step = cell(*_weights(gates))
        if cls is TimeLSTM:
            h, c = step.forward(xs[:, t], h, c)
        else:
            h = step.forward(xs[:, t], h)
        np.testing.assert_allclose(hs[:, t], h, rtol=1e-13)
        steps.append(step)
    dh, dc = np.zeros((N, H)), np.zeros((N, H))
    grads = [np.zeros_like(g) for g in layer.grads]
    for t in reversed(range(T)):
        if cls is TimeLSTM:
            dx, dh, dc = steps[t].backward(dhs[:, t] + dh, dc)
        else:
            dx, dh = steps[t].backward(dhs[:, t] + dh)
        np.testing.assert_allclose(dxs[:, t], dx, rtol=1e-12, atol=1e-14)
        for total, g in zip(grads, steps[t].grads, strict=True):
            total += g
    for got, want in zip(layer.grads, grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.dh, dh, rtol=1e-12, atol=1e-14)
    if cls is TimeLSTM:
        np.testing.assert_allclose(layer.dc, dc, rtol=1e-12, atol=1e-14)


def test_bilstm_right_half_is_an_lstm_over_the_reversed_sequence():
    rng = np.random.default_rng(7)
    left, right = _weights(4, seed=1), _weights(4, seed=2)
    xs = rng.standard_normal((2, 5, 3))
    hs = TimeBiLSTM(*left, *right).forward(xs)
    np.testing.assert_allclose(hs[:, :, :4], TimeLSTM(*left).forward(xs))
    np.testing.assert_allclose(hs[:, :, 4:], TimeLSTM(*right).forward(xs[:, ::-1])[:, ::-1])


@pytest.mark.parametrize(
    ("make", "args", "expected"),
    [
        pytest.param(
            lambda: TimeLSTM(*_weights(4)),
            (np.ones((2, 3, 5)),),
            r"TimeLSTM.forward: xs must have shape \(N, T, 3\), got \(2, 3, 5\)",
        ),
        pytest.param(
            lambda: TimeRNN(*_weights(1)), (np.ones((2, 3)),), r"\(N, T, 3\), got \(2, 3\)"
        ),
        pytest.param(
            lambda: TimeGRU(*_weights(3)), (np.ones((2, 0, 3)),), r"N, T >= 1, got \(2, 0, 3\)"
        ),
        pytest.param(
            lambda: LSTM(*_weights(4)),
            (np.ones((2, 3)), np.ones((2, 4)), np.ones((3, 4))),
            r"c_prev must have shape \(2, 4\), got \(3, 4\)",
        ),
        pytest.param(
            lambda: GRU(*_weights(3)),
            (np.ones((2, 3)), np.ones((2, 5))),
            r"h_prev must have shape \(2, 4\), got \(2, 5\)",
        ),
        pytest.param(
            lambda: RNN(*_weights(1)), (np.ones((2, 2)), np.ones((2, 4))), r"\(N, 3\), got"
        ),
    ],
)
def test_wrong_input_shape_names_expected_and_received(make, args, expected):
    with pytest.raises(ValueError, match=expected):
        make().forward(*args)


def test_stateful_forward_rejects_a_state_of_another_batch_size():
    layer = TimeLSTM(*_weights(4), stateful=True)
    layer.set_state(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"\(2, 4\), got \(3, 4\)"):
        layer.forward(np.ones((2, 3, 3)))


def test_set_state_rejects_a_wrong_hidden_size():
    with pytest.raises(ValueError, match=r"h must have shape \(N, 4\), got \(2, 5\)"):
        TimeLSTM(*_weights(4)).set_state(np.zeros((2, 5)))


def test_weights_of_the_wrong_width_are_rejected():
    Wx, Wh, b = _weights(4)
    with pytest.raises(ValueError, match=r"Wx must be \(D, 4H\)"):
        TimeLSTM(Wx[:, :8], Wh, b)


# --- oracle: torch.nn.LSTM and torch.nn.RNN with the same weights, float64 ---


def _torch_order(W, H):
    """Our gate blocks f, g, i, o (columns) -> torch's i, f, g, o."""
    f, g, i, o = (W[..., k * H : (k + 1) * H] for k in range(4))
    return np.concatenate((i, f, g, o), axis=-1)


def _our_order(W, H):
    """torch's i, f, g, o -> ours f, g, i, o."""
    i, f, g, o = (W[..., k * H : (k + 1) * H] for k in range(4))
    return np.concatenate((f, g, i, o), axis=-1)


@pytest.mark.parametrize(("cls", "gates"), [(TimeLSTM, 4), (TimeRNN, 1)])
def test_time_layer_matches_torch_with_the_same_weights(cls, gates):
    torch = pytest.importorskip("torch")
    N, T, D, H = 3, 5, 2, 4
    rng = np.random.default_rng(8)
    Wx, Wh, b = _weights(gates, D=D, H=H, seed=9)
    xs, dhs = rng.standard_normal((N, T, D)), rng.standard_normal((N, T, H))
    h0, c0 = rng.standard_normal((N, H)), rng.standard_normal((N, H))

    layer = cls(Wx, Wh, b, stateful=True)
    layer.set_state(h0, c0 if cls is TimeLSTM else None)
    hs = layer.forward(xs)
    dxs = layer.backward(dhs)

    order = (lambda W: _torch_order(W, H)) if cls is TimeLSTM else (lambda W: W)
    back = (lambda W: _our_order(W, H)) if cls is TimeLSTM else (lambda W: W)
    module = (torch.nn.LSTM if cls is TimeLSTM else torch.nn.RNN)(D, H, batch_first=True)
    module = module.double()
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(order(Wx).T))
        module.weight_hh_l0.copy_(torch.from_numpy(order(Wh).T))
        module.bias_ih_l0.copy_(torch.from_numpy(order(b)))
        module.bias_hh_l0.zero_()
    x_t = torch.from_numpy(xs).requires_grad_()
    h_t = torch.from_numpy(h0[None]).requires_grad_()
    c_t = torch.from_numpy(c0[None]).requires_grad_()
    out, _ = module(x_t, (h_t, c_t) if cls is TimeLSTM else h_t)
    (out * torch.from_numpy(dhs)).sum().backward()

    tol = {"rtol": 1e-10, "atol": 1e-12}
    np.testing.assert_allclose(hs, out.detach().numpy(), **tol)
    np.testing.assert_allclose(dxs, x_t.grad.numpy(), **tol)
    np.testing.assert_allclose(layer.grads[0], back(module.weight_ih_l0.grad.numpy().T), **tol)
    np.testing.assert_allclose(layer.grads[1], back(module.weight_hh_l0.grad.numpy().T), **tol)
    np.testing.assert_allclose(layer.grads[2], back(module.bias_ih_l0.grad.numpy()), **tol)
    np.testing.assert_allclose(layer.dh, h_t.grad.numpy()[0], **tol)
    if cls is TimeLSTM:
        np.testing.assert_allclose(layer.dc, c_t.grad.numpy()[0], **tol)


def test_lstm_constants_hold_little_memory_whatever_the_sizes():
    # cached per (H, D, N, dtype): large ones must be broadcast views, or every batch size
    # seen (generate, fuzzing) would keep a weight-sized array alive
    from layers.recurrent import _FULL_SIZE, _lstm_scales

    for N in (1, 2, 64):
        for a in _lstm_scales(256, 256, N, np.dtype(np.float64)):
            held = a.nbytes if a.base is None else a.base.nbytes
            assert held <= 8 * _FULL_SIZE, (N, a.shape, held)
            assert not a.flags.writeable
