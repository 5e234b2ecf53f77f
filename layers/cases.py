"""Registered checker cases for every public layer of ``layers`` (``gradcheck layers`` runs them).

Each case builds a float64 layer with weights of sensible scale and its inputs from the given
``numpy.random.Generator``; token ids come from a small vocabulary so that they repeat. Inputs of
ReLU are kept away from its kink at 0.
"""

from __future__ import annotations

import numpy as np

import gradcheck
from layers.attention import Attention, AttentionWeight, TimeAttention, WeightSum
from layers.basic import (
    Affine,
    Dropout,
    Embedding,
    MatMul,
    ReLU,
    Sigmoid,
    Softmax,
    SoftmaxWithLoss,
)
from layers.recurrent import GRU, LSTM, RNN, TimeBiLSTM, TimeGRU, TimeLSTM, TimeRNN
from layers.seq2seq import (
    AttentionDecoder,
    AttentionEncoder,
    AttentionSeq2seq,
    Decoder,
    Encoder,
    PeekyDecoder,
    PeekySeq2seq,
    Seq2seq,
)
from layers.time import TimeAffine, TimeDropout, TimeEmbedding, TimeSoftmaxWithLoss


def _weight(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    return rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)


def _recurrent_weights(rng: np.random.Generator, D: int, H: int, gates: int) -> tuple:
    return (
        _weight(rng, D, gates * H),
        _weight(rng, H, gates * H),
        0.1 * rng.standard_normal(gates * H),
    )


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**32))


# --- basic, time, recurrent ---

_BASIC = {"N": (1, 4), "D": (1, 5), "H": (1, 5)}
_RECURRENT = {"N": (1, 4), "T": (1, 5), "D": (1, 5), "H": (1, 5)}


@gradcheck.case(dims=_BASIC)
def matmul(rng, N, D, H):
    return MatMul(_weight(rng, D, H)), (rng.standard_normal((N, D)),)


@gradcheck.case(dims=_BASIC)
def affine(rng, N, D, H):
    layer = Affine(_weight(rng, D, H), 0.1 * rng.standard_normal(H))
    return layer, (rng.standard_normal((N, D)),)


@gradcheck.case(dims={"N": (1, 4), "D": (1, 5)})
def sigmoid(rng, N, D):
    return Sigmoid(), (2 * rng.standard_normal((N, D)),)


@gradcheck.case(dims={"N": (1, 4), "D": (1, 5)})
def relu(rng, N, D):
    x = rng.uniform(0.1, 2.0, (N, D)) * rng.choice([-1.0, 1.0], (N, D))  # away from the kink
    return ReLU(), (x,)


@gradcheck.case(dims={"N": (1, 4), "T": (1, 5), "V": (1, 8)})
def softmax(rng, N, T, V):
    return Softmax(), (2 * rng.standard_normal((N, T, V)),)


@gradcheck.case(dims={"N": (1, 4), "V": (1, 8)})
def softmax_with_loss(rng, N, V):
    return SoftmaxWithLoss(), (2 * rng.standard_normal((N, V)), rng.integers(0, V, N))


@gradcheck.case(dims={"N": (1, 4), "D": (1, 5), "V": (1, 8)})
def embedding(rng, N, D, V):
    idx = rng.integers(0, V, N)
    idx[-1] = idx[0]  # a repeated id, whose rows of dout must add up in dW
    return Embedding(rng.standard_normal((V, D))), (idx,)


@gradcheck.case(dims={"N": (1, 4), "D": (1, 5)})
def dropout(rng, N, D):
    return Dropout(0.5, rng=_seed(rng)), (rng.standard_normal((N, D)),)


@gradcheck.case(dims={"N": (1, 4), "D": (1, 5)})
def dropout_eval(rng, N, D):
    return Dropout(0.5, rng=_seed(rng), train=False), (rng.standard_normal((N, D)),)


@gradcheck.case(dims={"N": (1, 4), "T": (1, 5), "D": (1, 5), "V": (1, 8)})
def time_embedding(rng, N, T, D, V):
    xs = rng.integers(0, V, (N, T))
    xs[-1, -1] = xs[0, 0]  # a repeated id, whose rows of dout must add up in dW
    return TimeEmbedding(rng.standard_normal((V, D))), (xs,)


@gradcheck.case(dims=_RECURRENT)
def time_affine(rng, N, T, D, H):
    layer = TimeAffine(_weight(rng, D, H), 0.1 * rng.standard_normal(H))
    return layer, (rng.standard_normal((N, T, D)),)


@gradcheck.case(dims={"N": (1, 4), "T": (1, 5), "V": (1, 8)})
def time_softmax_with_loss(rng, N, T, V):
    xs = 2 * rng.standard_normal((N, T, V))
    return TimeSoftmaxWithLoss(), (xs, rng.integers(0, V, (N, T)))


@gradcheck.case(dims={"N": (1, 4), "T": (1, 5), "V": (1, 8)})
def time_softmax_with_loss_ignored(rng, N, T, V):
    ts = rng.integers(-1, V, (N, T))  # about 1 in V + 1 labels is the padding label -1
    ts[rng.integers(N), rng.integers(T)] = rng.integers(V)  # at least one real label
    return TimeSoftmaxWithLoss(), (2 * rng.standard_normal((N, T, V)), ts)


@gradcheck.case(dims={"N": (1, 4), "T": (1, 5), "D": (1, 5)})
def time_dropout(rng, N, T, D):
    return TimeDropout(0.3, rng=_seed(rng)), (rng.standard_normal((N, T, D)),)


@gradcheck.case(dims=_BASIC)
def rnn(rng, N, D, H):
    layer = RNN(*_recurrent_weights(rng, D, H, 1))
    return layer, (rng.standard_normal((N, D)), rng.standard_normal((N, H)))


@gradcheck.case(dims=_BASIC)
def lstm(rng, N, D, H):
    layer = LSTM(*_recurrent_weights(rng, D, H, 4))
    inputs = (rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H)))
    return layer, inputs


@gradcheck.case(dims=_BASIC)
def gru(rng, N, D, H):
    layer = GRU(*_recurrent_weights(rng, D, H, 3))
    return layer, (rng.standard_normal((N, D)), rng.standard_normal((N, H)))


def _time_recurrent(cls, gates, rng, N, T, D, H, *, stateful=False, cell=False):
    layer = cls(*_recurrent_weights(rng, D, H, gates), stateful=stateful)
    if stateful:
        h = rng.standard_normal((N, H))
        layer.set_state(h, rng.standard_normal((N, H)) if cell else None)
    return layer, (rng.standard_normal((N, T, D)),)


@gradcheck.case(dims=_RECURRENT)
def time_rnn(rng, N, T, D, H):
    return _time_recurrent(TimeRNN, 1, rng, N, T, D, H)


@gradcheck.case(dims=_RECURRENT)
def time_rnn_stateful(rng, N, T, D, H):
    return _time_recurrent(TimeRNN, 1, rng, N, T, D, H, stateful=True)


@gradcheck.case(dims=_RECURRENT)
def time_lstm(rng, N, T, D, H):
    return _time_recurrent(TimeLSTM, 4, rng, N, T, D, H)


@gradcheck.case(dims=_RECURRENT)
def time_lstm_stateful(rng, N, T, D, H):
    return _time_recurrent(TimeLSTM, 4, rng, N, T, D, H, stateful=True, cell=True)


@gradcheck.case(dims=_RECURRENT)
def time_gru(rng, N, T, D, H):
    return _time_recurrent(TimeGRU, 3, rng, N, T, D, H)


@gradcheck.case(dims=_RECURRENT)
def time_gru_stateful(rng, N, T, D, H):
    return _time_recurrent(TimeGRU, 3, rng, N, T, D, H, stateful=True)


@gradcheck.case(dims=_RECURRENT)
def time_bilstm(rng, N, T, D, H):
    weights = _recurrent_weights(rng, D, H, 4) + _recurrent_weights(rng, D, H, 4)
    return TimeBiLSTM(*weights), (rng.standard_normal((N, T, D)),)


# --- attention, seq2seq ---

_ATTENTION = {"N": (1, 3), "Te": (1, 5), "H": (1, 4)}
_TIME_ATTENTION = {"N": (1, 3), "Te": (1, 5), "Td": (1, 5), "H": (1, 4)}
# Models are costly to check (every parameter element costs two forwards): keep them small.
_ENCODER = {"N": (1, 3), "Te": (1, 4), "D": (1, 3), "H": (1, 3), "V": (2, 5)}
_DECODER = {"N": (1, 3), "Td": (1, 4), "D": (1, 3), "H": (1, 3), "V": (2, 5)}
_MODEL = {"N": (1, 3), "Te": (1, 4), "Td": (1, 4), "D": (1, 3), "H": (1, 3), "V": (2, 5)}


@gradcheck.case(dims=_ATTENTION)
def attention_weight(rng, N, Te, H):
    return AttentionWeight(), (rng.standard_normal((N, Te, H)), rng.standard_normal((N, H)))


@gradcheck.case(dims=_ATTENTION)
def weight_sum(rng, N, Te, H):
    a = rng.random((N, Te)) + 0.1
    return WeightSum(), (rng.standard_normal((N, Te, H)), a / a.sum(axis=1, keepdims=True))


@gradcheck.case(dims=_ATTENTION)
def attention(rng, N, Te, H):
    return Attention(), (rng.standard_normal((N, Te, H)), rng.standard_normal((N, H)))


@gradcheck.case(dims=_TIME_ATTENTION)
def time_attention(rng, N, Te, Td, H):
    return TimeAttention(), (rng.standard_normal((N, Te, H)), rng.standard_normal((N, Td, H)))


def _float64_model(cls, rng, V, D, H):
    """A float64 part or model with O(1) weights (the book's initial embeddings are 1/100 and
    its biases zero, which would leave some gradients close to finite-difference noise)."""
    model = cls(V, D, H, dtype=np.float64, rng=rng)
    for p in model.params:
        p[...] = 0.5 * rng.standard_normal(p.shape)
    return model


def _ids(rng, V, *shape):
    return rng.integers(0, V, size=shape)


@gradcheck.case(dims=_ENCODER)
def encoder(rng, N, Te, D, H, V):
    return _float64_model(Encoder, rng, V, D, H), (_ids(rng, V, N, Te),)


@gradcheck.case(dims=_ENCODER)
def attention_encoder(rng, N, Te, D, H, V):
    return _float64_model(AttentionEncoder, rng, V, D, H), (_ids(rng, V, N, Te),)


@gradcheck.case(dims=_DECODER)
def decoder(rng, N, Td, D, H, V):
    return _float64_model(Decoder, rng, V, D, H), (_ids(rng, V, N, Td), rng.standard_normal((N, H)))


@gradcheck.case(dims=_DECODER)
def peeky_decoder(rng, N, Td, D, H, V):
    layer = _float64_model(PeekyDecoder, rng, V, D, H)
    return layer, (_ids(rng, V, N, Td), rng.standard_normal((N, H)))


@gradcheck.case(dims=_MODEL)
def attention_decoder(rng, N, Te, Td, D, H, V):
    layer = _float64_model(AttentionDecoder, rng, V, D, H)
    return layer, (_ids(rng, V, N, Td), np.tanh(rng.standard_normal((N, Te, H))))


@gradcheck.case(dims=_MODEL)
def seq2seq(rng, N, Te, Td, D, H, V):
    return _float64_model(Seq2seq, rng, V, D, H), (_ids(rng, V, N, Te), _ids(rng, V, N, Td + 1))


@gradcheck.case(dims=_MODEL)
def peeky_seq2seq(rng, N, Te, Td, D, H, V):
    model = _float64_model(PeekySeq2seq, rng, V, D, H)
    return model, (_ids(rng, V, N, Te), _ids(rng, V, N, Td + 1))


@gradcheck.case(dims=_MODEL)
def attention_seq2seq(rng, N, Te, Td, D, H, V):
    model = _float64_model(AttentionSeq2seq, rng, V, D, H)
    return model, (_ids(rng, V, N, Te), _ids(rng, V, N, Td + 1))
