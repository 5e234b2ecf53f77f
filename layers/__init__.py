"""NumPy layers and sequence-to-sequence models of *Deep Learning from Scratch 2*, ch. 7-8."""

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

__all__: list[str] = [
    "GRU",
    "LSTM",
    "RNN",
    "Affine",
    "Attention",
    "AttentionDecoder",
    "AttentionEncoder",
    "AttentionSeq2seq",
    "AttentionWeight",
    "Decoder",
    "Dropout",
    "Embedding",
    "Encoder",
    "MatMul",
    "PeekyDecoder",
    "PeekySeq2seq",
    "ReLU",
    "Seq2seq",
    "Sigmoid",
    "Softmax",
    "SoftmaxWithLoss",
    "TimeAffine",
    "TimeAttention",
    "TimeBiLSTM",
    "TimeDropout",
    "TimeEmbedding",
    "TimeGRU",
    "TimeLSTM",
    "TimeRNN",
    "TimeSoftmaxWithLoss",
    "WeightSum",
]

from layers import cases as _cases  # noqa: F401
