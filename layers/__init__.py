"""NumPy layers and sequence-to-sequence models of *Deep Learning from Scratch 2*, ch. 7-8."""

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
from layers.time import TimeAffine, TimeDropout, TimeEmbedding, TimeSoftmaxWithLoss

__all__: list[str] = [
    "GRU",
    "LSTM",
    "RNN",
    "Affine",
    "Dropout",
    "Embedding",
    "MatMul",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "SoftmaxWithLoss",
    "TimeAffine",
    "TimeBiLSTM",
    "TimeDropout",
    "TimeEmbedding",
    "TimeGRU",
    "TimeLSTM",
    "TimeRNN",
    "TimeSoftmaxWithLoss",
]

from layers import cases as _cases  # noqa: F401
