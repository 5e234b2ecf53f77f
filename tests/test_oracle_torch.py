"""Oracle tests: our NumPy layers against PyTorch (an implementation nobody here wrote), float64.

Same weights, same data; outputs, losses and every gradient must agree to 1e-10. Skipped when
torch is not installed (``.ci/run`` installs ``torch==2.13.0``).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from layers import (  # noqa: E402  (after the importorskip)
    Attention,
    AttentionSeq2seq,
    AttentionWeight,
    TimeAttention,
    WeightSum,
)

TOL = {"rtol": 1e-10, "atol": 1e-12}


def _leaf(a: np.ndarray):
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def _assert_close(ours, theirs, name=""):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else theirs
    np.testing.assert_allclose(ours, theirs, err_msg=name, **TOL)


# --- attention, seq2seq ---

ATTENTION_SHAPES = [
    pytest.param(3, 5, 4, 6, id="Te>Td"),
    pytest.param(2, 3, 6, 4, id="Te<Td"),
    pytest.param(1, 1, 1, 1, id="ones"),
]


@pytest.mark.parametrize(("N", "Te", "Td", "H"), ATTENTION_SHAPES)
def test_time_attention_matches_torch_scaled_dot_product_attention(N, Te, Td, H):
    rng = np.random.default_rng(0)
    hs_enc, hs_dec = rng.standard_normal((N, Te, H)), rng.standard_normal((N, Td, H))
    dcs = rng.standard_normal((N, Td, H))
    layer = TimeAttention()
    cs = layer.forward(hs_enc, hs_dec)
    dhs_enc, dhs_dec = layer.backward(dcs)

    t_enc, t_dec = _leaf(hs_enc), _leaf(hs_dec)
    t_cs = F.scaled_dot_product_attention(t_dec, t_enc, t_enc, scale=1.0)
    t_cs.backward(torch.tensor(dcs))
    weights = torch.softmax(t_dec @ t_enc.transpose(1, 2), dim=-1)
    _assert_close(cs, t_cs, "cs")
    _assert_close(layer.attention_weights, weights, "attention_weights")
    _assert_close(dhs_enc, t_enc.grad, "dhs_enc")
    _assert_close(dhs_dec, t_dec.grad, "dhs_dec")


@pytest.mark.parametrize(("N", "Te", "Td", "H"), ATTENTION_SHAPES)
def test_single_step_attention_layers_match_torch(N, Te, Td, H):
    rng = np.random.default_rng(1)
    hs, h = rng.standard_normal((N, Te, H)), rng.standard_normal((N, H))
    t_hs, t_h = _leaf(hs), _leaf(h)

    weight = AttentionWeight()
    a = weight.forward(hs, h)
    da = rng.standard_normal((N, Te))
    dhs, dh = weight.backward(da)
    t_a = torch.softmax(torch.einsum("nth,nh->nt", t_hs, t_h), dim=1)
    t_a.backward(torch.tensor(da))
    _assert_close(a, t_a, "AttentionWeight a")
    _assert_close(dhs, t_hs.grad, "AttentionWeight dhs")
    _assert_close(dh, t_h.grad, "AttentionWeight dh")

    t_hs.grad = None
    t_a = _leaf(a)
    weight_sum = WeightSum()
    c = weight_sum.forward(hs, a)
    dc = rng.standard_normal((N, H))
    dhs, da = weight_sum.backward(dc)
    t_c = torch.einsum("nt,nth->nh", t_a, t_hs)
    t_c.backward(torch.tensor(dc))
    _assert_close(c, t_c, "WeightSum c")
    _assert_close(dhs, t_hs.grad, "WeightSum dhs")
    _assert_close(da, t_a.grad, "WeightSum da")

    t_hs.grad, t_h.grad = None, None
    attention = Attention()
    c = attention.forward(hs, h)
    dhs, dh = attention.backward(dc)
    t_c = F.scaled_dot_product_attention(t_h[:, None], t_hs, t_hs, scale=1.0)[:, 0]
    t_c.backward(torch.tensor(dc))
    _assert_close(c, t_c, "Attention c")
    _assert_close(dhs, t_hs.grad, "Attention dhs")
    _assert_close(dh, t_h.grad, "Attention dh")


def _torch_lstm(Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray):
    """A torch.nn.LSTM holding our weights: ours are (D, 4H) with gates f, g, i, o; torch's are
    (4H, D) with gates i, f, g, o. Its bias_hh stays zero."""
    D, H = Wx.shape[0], Wh.shape[0]
    lstm = torch.nn.LSTM(D, H, batch_first=True, dtype=torch.float64)
    order = [2, 0, 1, 3]  # torch's gate k is our gate order[k]

    def to_torch(w):
        return np.concatenate([w[..., k * H : (k + 1) * H] for k in order], axis=-1)

    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.tensor(to_torch(Wx).T))
        lstm.weight_hh_l0.copy_(torch.tensor(to_torch(Wh).T))
        lstm.bias_ih_l0.copy_(torch.tensor(to_torch(b)))
        lstm.bias_hh_l0.zero_()

    def grads_in_our_layout():
        back = [order.index(k) for k in range(4)]  # our gate k is torch's gate back[k]

        def to_ours(g):
            return np.concatenate([g[..., k * H : (k + 1) * H] for k in back], axis=-1)

        return (
            to_ours(lstm.weight_ih_l0.grad.numpy().T),
            to_ours(lstm.weight_hh_l0.grad.numpy().T),
            to_ours(lstm.bias_ih_l0.grad.numpy()),
        )

    return lstm, grads_in_our_layout


def _torch_attention_seq2seq(model: AttentionSeq2seq, xs: np.ndarray, ts: np.ndarray):
    """The book's attention seq2seq written with torch modules and ops, from ``model``'s weights.
    Returns the loss and the gradients of every parameter, in ``model.param_names`` order."""
    p = dict(zip(model.param_names, model.params, strict=True))
    enc_embed, dec_embed = _leaf(p["encoder.embed.W"]), _leaf(p["decoder.embed.W"])
    affine_W, affine_b = _leaf(p["decoder.affine.W"]), _leaf(p["decoder.affine.b"])
    enc_lstm, enc_grads = _torch_lstm(*(p[f"encoder.lstm.{n}"] for n in ("Wx", "Wh", "b")))
    dec_lstm, dec_grads = _torch_lstm(*(p[f"decoder.lstm.{n}"] for n in ("Wx", "Wh", "b")))

    xs_t, ts_t = torch.tensor(xs), torch.tensor(ts)
    enc_hs, _ = enc_lstm(F.embedding(xs_t, enc_embed))
    h0 = enc_hs[:, -1][None]
    dec_hs, _ = dec_lstm(F.embedding(ts_t[:, :-1], dec_embed), (h0, torch.zeros_like(h0)))
    weights = torch.softmax(dec_hs @ enc_hs.transpose(1, 2), dim=-1)
    scores = torch.cat((weights @ enc_hs, dec_hs), dim=2) @ affine_W + affine_b
    V = scores.shape[-1]
    loss = F.cross_entropy(scores.reshape(-1, V), ts_t[:, 1:].reshape(-1), ignore_index=-1)
    loss.backward()

    grads = {
        "encoder.embed.W": enc_embed.grad.numpy(),
        "decoder.embed.W": dec_embed.grad.numpy(),
        "decoder.affine.W": affine_W.grad.numpy(),
        "decoder.affine.b": affine_b.grad.numpy(),
    }
    for prefix, lstm_grads in (("encoder", enc_grads), ("decoder", dec_grads)):
        for n, g in zip(("Wx", "Wh", "b"), lstm_grads(), strict=True):
            grads[f"{prefix}.lstm.{n}"] = g
    return loss.item(), [grads[n] for n in model.param_names], weights.detach().numpy()


SEQ2SEQ_DIMS = [
    pytest.param(3, 6, 4, 5, 7, 11, id="Te>Td"),
    pytest.param(2, 3, 6, 4, 5, 9, id="Te<Td"),
    pytest.param(1, 1, 1, 2, 3, 4, id="N=T=1"),
]


@pytest.mark.parametrize(("N", "Te", "Td", "D", "H", "V"), SEQ2SEQ_DIMS)
def test_attention_seq2seq_loss_and_every_gradient_match_torch(N, Te, Td, D, H, V):
    rng = np.random.default_rng(2)
    model = AttentionSeq2seq(V, D, H, dtype=np.float64, rng=3)
    for param in model.params:  # O(1) weights, not the book's small ones: every term matters
        param[...] = 0.5 * rng.standard_normal(param.shape)
    xs, ts = rng.integers(0, V, (N, Te)), rng.integers(0, V, (N, Td + 1))
    if N > 1:
        ts[0, -1] = -1  # an ignored (padding) label

    loss = model.forward(xs, ts)
    model.backward()
    t_loss, t_grads, t_weights = _torch_attention_seq2seq(model, xs, ts)

    assert abs(loss - t_loss) <= 1e-10 * abs(t_loss)
    _assert_close(model.attention_weights, t_weights, "attention_weights")
    for name, grad, t_grad in zip(model.param_names, model.grads, t_grads, strict=True):
        if N > 1:  # at T = 1 the LSTMs' Wh has nothing to do (h0 = 0): a zero gradient
            assert np.abs(t_grad).max() > 0, name
        _assert_close(grad, t_grad, name)
