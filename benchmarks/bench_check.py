"""What a gradient check costs, and what the layers it checks cost (pytest-benchmark).

    .venv/bin/python -m pytest benchmarks/bench_check.py --benchmark-enable

- ``test_check``: ``check_layer`` in full and fast mode on TimeLSTM, TimeAttention and
  AttentionSeq2seq, float64, at a small and a medium size (``SIZES``; medium is the reference
  of issue 7: TimeLSTM N=4 T=8 D=16 H=32, an AttentionSeq2seq of about 15.7k parameters).
- ``test_forward``, ``test_backward``: one call of each layer at the same sizes; a full check
  costs about two forwards per checked element, so these set its floor.
- ``test_lstm_book_vs_ours``: the book's TimeLSTM (one LSTM cell object per step, ``x @ Wx``
  inside the loop, per-step gradients summed afterwards) against ``layers.TimeLSTM``.

The AttentionSeq2seq training step and TimeAttention vectorised against its loop are in
``bench_seq2seq.py``. The side-by-side comparison with torch is ``compare_torch.py``, which builds
its data with :func:`build` from here. ``pyproject.toml`` disables benchmarks by default
(``--benchmark-disable``: each body runs once, as the smoke test in CI does), hence
``--benchmark-enable`` above.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import gradcheck
from layers import AttentionSeq2seq, TimeAttention, TimeLSTM

MODELS = ("lstm", "attention", "seq2seq")

#: Sizes per model, float64 throughout. ``tiny`` is for the smoke test only.
SIZES: dict[str, dict[str, dict[str, int]]] = {
    "tiny": {
        "lstm": dict(N=2, T=3, D=3, H=4),
        "attention": dict(N=2, Te=3, Td=2, H=4),
        "seq2seq": dict(N=2, Te=3, Td=2, V=5, D=3, H=4),
    },
    "small": {
        "lstm": dict(N=2, T=4, D=4, H=8),
        "attention": dict(N=2, Te=6, Td=4, H=8),
        "seq2seq": dict(N=2, Te=5, Td=4, V=13, D=8, H=8),
    },
    "medium": {
        "lstm": dict(N=4, T=8, D=16, H=32),
        "attention": dict(N=4, Te=16, Td=12, H=32),
        "seq2seq": dict(N=4, Te=8, Td=6, V=59, D=16, H=28),
    },
    # The medium widths at the sequence lengths of the book's date task (question 29 tokens,
    # answer 10 after the start token); not one of the pytest-benchmark cases, for
    # compare_torch.py --sizes date.
    "date": {
        "lstm": dict(N=4, T=29, D=16, H=32),
        "attention": dict(N=4, Te=29, Td=10, H=32),
        "seq2seq": dict(N=4, Te=29, Td=10, V=59, D=16, H=28),
    },
}


def build(model: str, rng: np.random.Generator, **dims: int) -> tuple[Any, tuple[Any, ...]]:
    """``(layer, inputs)`` in float64; a TimeLSTM is stateful and holds a random (h, c)."""
    if model == "lstm":
        N, T, D, H = dims["N"], dims["T"], dims["D"], dims["H"]
        layer = TimeLSTM(
            rng.standard_normal((D, 4 * H)) / np.sqrt(D),
            rng.standard_normal((H, 4 * H)) / np.sqrt(H),
            rng.standard_normal(4 * H) * 0.1,
            stateful=True,
        )
        layer.set_state(rng.standard_normal((N, H)), rng.standard_normal((N, H)))
        return layer, (rng.standard_normal((N, T, D)),)
    if model == "attention":
        N, Te, Td, H = dims["N"], dims["Te"], dims["Td"], dims["H"]
        hs_enc, hs_dec = rng.standard_normal((N, Te, H)), rng.standard_normal((N, Td, H))
        return TimeAttention(), (hs_enc, hs_dec)
    if model == "seq2seq":
        N, Te, Td, V, D, H = (dims[k] for k in ("N", "Te", "Td", "V", "D", "H"))
        layer = AttentionSeq2seq(V, D, H, dtype=np.float64, rng=rng)
        return layer, (rng.integers(0, V, size=(N, Te)), rng.integers(0, V, size=(N, Td + 1)))
    raise ValueError(f"model={model!r} is not one of {MODELS}")


def dout_like(out: Any) -> Any:
    """A backward argument for ``out``: ones of its shape, or 1 for a scalar loss."""
    return np.ones_like(out) if np.ndim(out) else 1


def _case(size: str, model: str) -> Any:
    return pytest.param(size, model, id=f"{model}-{size}")


CASES = [_case(size, model) for size in ("small", "medium") for model in MODELS]


@pytest.mark.parametrize("mode", ["full", "fast"])
@pytest.mark.parametrize(("size", "model"), CASES)
def test_check(benchmark, size, model, mode):
    layer, inputs = build(model, np.random.default_rng(0), **SIZES[size][model])
    benchmark.group = f"check_layer {model}-{size}"
    rounds = 3 if (size, mode) == ("medium", "full") else 10
    report = benchmark.pedantic(
        gradcheck.check_layer, args=(layer, *inputs), kwargs={"mode": mode}, rounds=rounds
    )
    assert report.passed, str(report)
    benchmark.extra_info["elements"] = sum(
        int(np.prod(e.shape)) for e in report.gradients if e.status != "skipped"
    )
    benchmark.extra_info["forward_calls"] = report.forward_calls


@pytest.mark.parametrize(("size", "model"), CASES)
def test_forward(benchmark, size, model):
    layer, inputs = build(model, np.random.default_rng(0), **SIZES[size][model])
    benchmark.group = f"forward/backward {size}"
    benchmark(layer.forward, *inputs)


@pytest.mark.parametrize(("size", "model"), CASES)
def test_backward(benchmark, size, model):
    layer, inputs = build(model, np.random.default_rng(0), **SIZES[size][model])
    benchmark.group = f"forward/backward {size}"
    dout = dout_like(layer.forward(*inputs))
    benchmark(layer.backward, dout)


# --- the book's TimeLSTM, as the "before" of layers.TimeLSTM ---------------------------------


def _book_sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


class BookLSTM:
    """The book's LSTM cell (ch. 6), dtype following the weights: x @ Wx at every step."""

    def __init__(self, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray) -> None:
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.cache = None

    def forward(self, x, h_prev, c_prev):
        Wx, Wh, b = self.params
        H = h_prev.shape[1]
        A = np.dot(x, Wx) + np.dot(h_prev, Wh) + b
        f = _book_sigmoid(A[:, :H])
        g = np.tanh(A[:, H : 2 * H])
        i = _book_sigmoid(A[:, 2 * H : 3 * H])
        o = _book_sigmoid(A[:, 3 * H :])
        c_next = f * c_prev + g * i
        h_next = o * np.tanh(c_next)
        self.cache = (x, h_prev, c_prev, i, f, g, o, c_next)
        return h_next, c_next

    def backward(self, dh_next, dc_next):
        Wx, Wh, _ = self.params
        x, h_prev, c_prev, i, f, g, o, c_next = self.cache
        tanh_c_next = np.tanh(c_next)
        ds = dc_next + (dh_next * o) * (1 - tanh_c_next**2)
        dc_prev = ds * f
        di = ds * g * i * (1 - i)
        df = ds * c_prev * f * (1 - f)
        do = dh_next * tanh_c_next * o * (1 - o)
        dg = ds * i * (1 - g**2)
        dA = np.hstack((df, dg, di, do))
        self.grads[0][...] = np.dot(x.T, dA)
        self.grads[1][...] = np.dot(h_prev.T, dA)
        self.grads[2][...] = dA.sum(axis=0)
        return np.dot(dA, Wx.T), np.dot(dA, Wh.T), dc_prev


class BookTimeLSTM:
    """The book's TimeLSTM (ch. 6): a new LSTM cell per step, gradients summed over the cells."""

    def __init__(self, Wx, Wh, b, stateful=False):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.layers = None
        self.h, self.c, self.dh = None, None, None
        self.stateful = stateful

    def set_state(self, h, c=None):
        self.h, self.c = h, c

    def forward(self, xs):
        Wh = self.params[1]
        N, T, _ = xs.shape
        H = Wh.shape[0]
        self.layers = []
        hs = np.empty((N, T, H), dtype=Wh.dtype)
        if not self.stateful or self.h is None:
            self.h = np.zeros((N, H), dtype=Wh.dtype)
        if not self.stateful or self.c is None:
            self.c = np.zeros((N, H), dtype=Wh.dtype)
        for t in range(T):
            layer = BookLSTM(*self.params)
            self.h, self.c = layer.forward(xs[:, t, :], self.h, self.c)
            hs[:, t, :] = self.h
            self.layers.append(layer)
        return hs

    def backward(self, dhs):
        Wx, _, _ = self.params
        N, T, _ = dhs.shape
        D = Wx.shape[0]
        dxs = np.empty((N, T, D), dtype=Wx.dtype)
        dh, dc = 0, 0
        grads = [0, 0, 0]
        for t in reversed(range(T)):
            layer = self.layers[t]
            dx, dh, dc = layer.backward(dhs[:, t, :] + dh, dc)
            dxs[:, t, :] = dx
            for i, grad in enumerate(layer.grads):
                grads[i] += grad
        for i, grad in enumerate(grads):
            self.grads[i][...] = grad
        self.dh = dh
        return dxs


def build_book_lstm(rng: np.random.Generator, **dims: int) -> tuple[BookTimeLSTM, np.ndarray]:
    """The book's TimeLSTM with exactly the weights, state and input that :func:`build` gives."""
    layer, (xs,) = build("lstm", rng, **dims)
    book = BookTimeLSTM(*(p.copy() for p in layer.params), stateful=True)
    book.set_state(layer.h.copy(), layer.c.copy())
    return book, xs


@pytest.mark.parametrize("impl", ["book", "ours"])
@pytest.mark.parametrize("size", ["small", "medium"])
def test_lstm_book_vs_ours(benchmark, size, impl):
    """Forward and backward of one TimeLSTM call; the ratio is README's before/after."""
    rng = np.random.default_rng(0)
    if impl == "book":
        layer, xs = build_book_lstm(rng, **SIZES[size]["lstm"])
    else:
        layer, (xs,) = build("lstm", rng, **SIZES[size]["lstm"])
    dhs = np.ones((*xs.shape[:2], layer.params[1].shape[0]))
    benchmark.group = f"TimeLSTM book vs ours, forward + backward, {size}"

    def step():
        layer.forward(xs)
        return layer.backward(dhs)

    benchmark(step)
