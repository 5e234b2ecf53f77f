"""The checker's own test zoo: deliberately buggy layers, each beside its correct twin.

Every bug here is one a person really writes by hand: a transposed weight, a derivative of the
wrong activation, an ``Embedding`` that drops repeated ids, an LSTM that keeps only ``dh``, a
backward that rebinds ``self.grads[0]``, a dropout that draws from the global ``np.random``.
Each :class:`Bug` names the report entry that must blame it; ``tests/test_zoo.py`` runs the
checker on the bug (it must fail on that entry) and on the twin (it must pass).

A correct layer is written once (``MatMul``, ``TimeRNN``, ``TimeLSTM``, ...); a bug is a
subclass that overrides the one small method or attribute where the bug lives, marked ``# BUG``.
All layers are NumPy only, with float64 weights drawn from an rng (one float32 layer, where
the bug is the dtype). Shapes are small and all different (N=2, T=3, D=4, H=5, V=6, Te=3,
Td=4), so that a bug that mixes two axes shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["KINKS", "ZOO", "Bug", "Kink"]


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _dsigmoid(y):
    """Derivative of the sigmoid, written in terms of its output y."""
    return y * (1 - y)


def _dtanh(y):
    """Derivative of tanh, written in terms of its output y."""
    return 1 - y**2


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _write(grads, values):
    """The contract's way to set gradients: in place, overwriting."""
    for grad, value in zip(grads, values, strict=True):
        grad[...] = value


# --- correct layers -------------------------------------------------------------------------


class MatMul:
    """x @ W, the smallest layer with a parameter.

    Params: W (D, H). forward: x (N, D) -> (N, H). backward: dout (N, H) -> dx (N, D)
    """

    def __init__(self, W):
        self.params, self.grads, self.param_names = [W], [np.zeros_like(W)], ["W"]

    def forward(self, x):
        self.x = x
        return x @ self.params[0]

    def backward(self, dout):
        (W,) = self.params
        self.grads[0][...] = self.x.T @ dout
        return dout @ W.T


class Affine:
    """x @ W + b. Params: W (D, H), b (H,). forward: x (N, D) -> (N, H)."""

    def __init__(self, W, b):
        self.params = [W, b]
        self.grads = [np.zeros_like(W), np.zeros_like(b)]
        self.param_names = ["W", "b"]

    def forward(self, x):
        W, b = self.params
        self.x = x
        return x @ W + b

    def backward(self, dout):
        W, _ = self.params
        _write(self.grads, (self.x.T @ dout, dout.sum(axis=0)))
        return dout @ W.T


class Activation:
    """An elementwise activation whose derivative is written in terms of its output.

    forward: x (any shape) -> y (same). backward: dy -> dx = dy * derivative(y)
    """

    function = staticmethod(np.tanh)
    derivative = staticmethod(_dtanh)

    def __init__(self):
        self.params, self.grads = [], []

    def forward(self, x):
        self.y = self.function(x)
        return self.y

    def backward(self, dout):
        return dout * self.derivative(self.y)


class Tanh(Activation):
    """tanh, elementwise."""


class Sigmoid(Activation):
    """The logistic sigmoid, elementwise."""

    function = staticmethod(_sigmoid)
    derivative = staticmethod(_dsigmoid)


class ReLU:
    """max(0, x), elementwise; the gradient at exactly 0 is taken as 0 (a kink)."""

    def __init__(self):
        self.params, self.grads = [], []

    def forward(self, x):
        self.mask = x <= 0
        return np.where(self.mask, 0.0, x)

    def backward(self, dout):
        return np.where(self.mask, 0.0, dout)


class Softmax:
    """Softmax over the last axis. forward: x (N, C) -> y (N, C)."""

    def __init__(self):
        self.params, self.grads = [], []

    def forward(self, x):
        self.y = _softmax(x)
        return self.y

    def backward(self, dout):
        y = self.y
        return y * (dout - (dout * y).sum(axis=-1, keepdims=True))


class SoftmaxWithLoss:
    """Mean cross-entropy of softmax(x) against labels.

    forward: x (N, C) float, t (N,) int -> loss (scalar). backward: dout=1 -> dx (N, C)
    """

    def __init__(self):
        self.params, self.grads = [], []

    def forward(self, x, t):
        self.y, self.t = _softmax(x), t
        return -np.log(self.y[np.arange(len(t)), t]).mean()

    def backward(self, dout=1):
        dx = self.y.copy()
        dx[np.arange(len(self.t)), self.t] -= 1
        return dx * dout / len(self.t)


class Embedding:
    """Row lookup W[ids]; repeated ids must add up in dW.

    Params: W (V, D). forward: ids (N, T) int -> (N, T, D). backward: dout -> None
    """

    def __init__(self, W):
        self.params, self.grads, self.param_names = [W], [np.zeros_like(W)], ["W"]

    def forward(self, ids):
        self.ids = ids
        return self.params[0][ids]

    def backward(self, dout):
        dW = np.zeros_like(self.grads[0])
        np.add.at(dW, self.ids, dout)
        self.grads[0][...] = dW


class TimeAffine:
    """One Affine applied at every time step; W, b shared across time.

    Params: W (D, H), b (H,). forward: xs (N, T, D) -> (N, T, H)
    """

    def __init__(self, W, b):
        self.params = [W, b]
        self.grads = [np.zeros_like(W), np.zeros_like(b)]
        self.param_names = ["W", "b"]

    def forward(self, xs):
        W, b = self.params
        self.xs = xs
        return xs @ W + b

    def backward(self, dout):
        W, _ = self.params
        D, H = W.shape
        dW = self.xs.reshape(-1, D).T @ dout.reshape(-1, H)
        _write(self.grads, (dW, dout.sum(axis=(0, 1))))
        return dout @ W.T


class MeanOverTime:
    """Average over the time axis. forward: xs (N, T, D) -> (N, D)."""

    def __init__(self):
        self.params, self.grads = [], []

    def forward(self, xs):
        self.shape = xs.shape
        return xs.mean(axis=1)

    def backward(self, dout):
        T = self.shape[1]
        return np.repeat(dout[:, None, :] / T, T, axis=1)


class MaxOverTime:
    """Max over the time axis; ties are kinks. forward: xs (N, T, D) -> (N, D)."""

    def __init__(self):
        self.params, self.grads = [], []

    def forward(self, xs):
        self.arg = xs.argmax(axis=1)
        self.shape = xs.shape
        return xs.max(axis=1)

    def backward(self, dout):
        dxs = np.zeros(self.shape, dtype=dout.dtype)
        np.put_along_axis(dxs, self.arg[:, None, :], dout[:, None, :], axis=1)
        return dxs


class BiasAdd:
    """x + b with b broadcast over rows. forward: x (N, D), b (D,) -> (N, D)."""

    def __init__(self):
        self.params, self.grads = [], []

    def forward(self, x, b):
        return x + b

    def backward(self, dout):
        return dout, dout.sum(axis=0)


class Dropout:
    """Inverted dropout drawing its mask from the layer's own Generator.

    forward: x (any shape) -> x * mask / (1 - ratio)
    """

    def __init__(self, ratio=0.5, *, rng=None):
        self.params, self.grads = [], []
        self.ratio, self.rng = ratio, np.random.default_rng(rng)

    def _keep(self, shape):
        return self.rng.random(shape) > self.ratio

    def forward(self, x):
        self.mask = self._keep(x.shape) / (1 - self.ratio)
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


class TimeRNN:
    """Elman RNN unrolled over T steps: h_t = tanh(x_t Wx + h_{t-1} Wh + b), weights shared.

    Params: Wx (D, H), Wh (H, H), b (H,). forward: xs (N, T, D) -> hs (N, T, H).
    backward: dhs (N, T, H) -> dxs (N, T, D); sets dh (N, H), the initial state's gradient.
    """

    dactivation = staticmethod(_dtanh)

    def __init__(self, Wx, Wh, b, *, stateful=True):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(p) for p in self.params]
        self.param_names = ["Wx", "Wh", "b"]
        self.stateful = stateful
        self.h = self.dh = None

    def set_state(self, h, c=None):
        self.h = h

    def reset_state(self):
        self.h = None

    def _initial_h(self, N):
        if self.stateful and self.h is not None:
            return self.h
        return np.zeros((N, self.params[1].shape[0]), dtype=self.params[0].dtype)

    def _buffer(self, shape):
        return np.empty(shape, dtype=self.params[0].dtype)

    def forward(self, xs):
        Wx, Wh, b = self.params
        N, T, _ = xs.shape
        h = self._initial_h(N)
        hs = self._buffer((N, T, Wh.shape[0]))
        self.xs, self.cache = xs, []
        for t in range(T):
            h_prev, h = h, np.tanh(xs[:, t] @ Wx + h @ Wh + b)
            self.cache.append((h_prev, h))
            hs[:, t] = h
        self.h = h
        return hs

    def _steps_back(self, dhs):
        return reversed(range(dhs.shape[1]))

    def _accumulate(self, totals, parts):
        for total, part in zip(totals, parts, strict=True):
            total += part

    def _step_backward(self, t, dh_out, dh_next, grads):
        """Back through step t; adds its share to grads; returns (dx_t, dh_prev)."""
        Wx, Wh, _ = self.params
        h_prev, h = self.cache[t]
        da = (dh_out + dh_next) * self.dactivation(h)
        self._accumulate(grads, (self.xs[:, t].T @ da, h_prev.T @ da, da.sum(axis=0)))
        return da @ Wx.T, da @ Wh.T

    def backward(self, dhs):
        grads = [np.zeros_like(p) for p in self.params]
        dxs = self._buffer(self.xs.shape)
        dxs[...] = 0
        dh = np.zeros_like(dhs[:, 0])
        for t in self._steps_back(dhs):
            dxs[:, t], dh = self._step_backward(t, dhs[:, t], dh, grads)
        _write(self.grads, grads)
        self.dh = dh
        return dxs


class TimeLSTM(TimeRNN):
    """LSTM unrolled over T steps; Wx, Wh, b shared across time; gate order f, g, i, o.

    Params: Wx (D, 4H), Wh (H, 4H), b (4H,). forward: xs (N, T, D) -> hs (N, T, H).
    backward: dhs (N, T, H) -> dxs (N, T, D); sets dh, dc (N, H).
    """

    def __init__(self, Wx, Wh, b, *, stateful=True):
        super().__init__(Wx, Wh, b, stateful=stateful)
        self.c = self.dc = None

    def set_state(self, h, c=None):
        self.h, self.c = h, (np.zeros_like(h) if c is None else c)

    def reset_state(self):
        self.h = self.c = None

    def forward(self, xs):
        Wx, Wh, b = self.params
        N, T, _ = xs.shape
        H = Wh.shape[0]
        h = self._initial_h(N)
        c = self.c if self.stateful and self.c is not None else np.zeros_like(h)
        hs = self._buffer((N, T, H))
        self.xs, self.cache = xs, []
        for t in range(T):
            A = xs[:, t] @ Wx + h @ Wh + b
            f, i, o = (_sigmoid(A[:, k * H : (k + 1) * H]) for k in (0, 2, 3))
            g = np.tanh(A[:, H : 2 * H])
            h_prev, c_prev = h, c
            c = f * c + g * i
            h = o * np.tanh(c)
            self.cache.append((h_prev, c_prev, f, g, i, o, np.tanh(c)))
            hs[:, t] = h
        self.h, self.c = h, c
        return hs

    def _stack(self, df, dg, di, do):
        return np.hstack((df, dg, di, do))

    def _step_backward(self, t, dh_out, dh_next, dc_next, grads):
        """Back through step t; adds its share to grads; returns (dx_t, dh_prev, dc_prev)."""
        Wx, Wh, _ = self.params
        h_prev, c_prev, f, g, i, o, tc = self.cache[t]
        dh = dh_out + dh_next
        ds = dc_next + dh * o * self.dactivation(tc)
        dA = self._stack(
            ds * c_prev * _dsigmoid(f),
            ds * i * self.dactivation(g),
            ds * g * _dsigmoid(i),
            dh * tc * _dsigmoid(o),
        )
        self._accumulate(grads, (self.xs[:, t].T @ dA, h_prev.T @ dA, dA.sum(axis=0)))
        return dA @ Wx.T, dA @ Wh.T, ds * f

    def backward(self, dhs):
        grads = [np.zeros_like(p) for p in self.params]
        dxs = np.zeros_like(self.xs)
        dh = dc = np.zeros_like(dhs[:, 0])
        for t in self._steps_back(dhs):
            dxs[:, t], dh, dc = self._step_backward(t, dhs[:, t], dh, dc, grads)
        _write(self.grads, grads)
        self.dh, self.dc = dh, dc
        return dxs


class TimeAttention:
    """Dot-product attention of every decoder state over all encoder states (book ch. 8).

    forward: hs_enc (N, Te, H), hs_dec (N, Td, H) -> contexts (N, Td, H).
    backward: dcs (N, Td, H) -> (dhs_enc (N, Te, H), dhs_dec (N, Td, H))
    """

    def __init__(self):
        self.params, self.grads = [], []

    def forward(self, hs_enc, hs_dec):
        self.hs_enc, self.hs_dec = hs_enc, hs_dec
        self.a = _softmax(hs_dec @ hs_enc.transpose(0, 2, 1))  # (N, Td, Te)
        return self.a @ hs_enc

    def _decoder_steps(self):
        return range(self.hs_dec.shape[1])

    def backward(self, dcs):
        hs_enc, hs_dec = self.hs_enc, self.hs_dec
        dhs_enc, dhs_dec = np.zeros_like(hs_enc), np.zeros_like(hs_dec)
        for t in self._decoder_steps():
            a = self.a[:, t]  # (N, Te)
            da = (hs_enc * dcs[:, t, None]).sum(axis=2)
            ds = a * (da - (da * a).sum(axis=1, keepdims=True))
            dhs_enc += a[:, :, None] * dcs[:, t, None] + ds[:, :, None] * hs_dec[:, t, None]
            dhs_dec[:, t] = (ds[:, :, None] * hs_enc).sum(axis=1)
        return dhs_enc, dhs_dec


class Decoder:
    """tanh, then an Affine: a part that holds a part of its own (``decoder.affine``).

    Params: affine.W (H, V), affine.b (V,). forward: h (N, H) -> (N, V)
    """

    affine_class = Affine

    def __init__(self, W, b):
        self.tanh, self.affine = Tanh(), self.affine_class(W, b)
        self.params, self.grads = list(self.affine.params), list(self.affine.grads)
        self.param_names = [f"affine.{name}" for name in self.affine.param_names]

    def forward(self, h):
        return self.affine.forward(self.tanh.forward(h))

    def backward(self, dout):
        return self.tanh.backward(self.affine.backward(dout))


class EncoderDecoder:
    """An Affine encoder, then a Decoder: a composite (as Seq2seq) whose params and grads are
    its parts' own arrays, named with dots.

    Params: encoder.W (D, H), encoder.b (H,), decoder.affine.W (H, V), decoder.affine.b (V,).
    forward: x (N, D) -> (N, V). backward: dout (N, V) -> dx (N, D)
    """

    decoder_class = Decoder

    def __init__(self, W_enc, b_enc, W_dec, b_dec):
        self.encoder, self.decoder = Affine(W_enc, b_enc), self.decoder_class(W_dec, b_dec)
        parts = {"encoder": self.encoder, "decoder": self.decoder}
        self.params = [p for part in parts.values() for p in part.params]
        self.grads = [g for part in parts.values() for g in part.grads]
        self.param_names = [f"{k}.{name}" for k, part in parts.items() for name in part.param_names]

    def forward(self, x):
        return self.decoder.forward(self.encoder.forward(x))

    def backward(self, dout):
        return self.encoder.backward(self.decoder.backward(dout))


# --- bugs: wrong gradient values ------------------------------------------------------------


class MatMulTransposedDW(MatMul):
    """dW = dout.T @ x: the transpose of the right gradient (W square, so it still fits)."""

    def backward(self, dout):
        self.grads[0][...] = dout.T @ self.x  # BUG: should be x.T @ dout
        return dout @ self.params[0].T


class MatMulUntransposedW(MatMul):
    """dx = dout @ W: the forgotten transpose (W square, so the shapes fit)."""

    def backward(self, dout):
        self.grads[0][...] = self.x.T @ dout
        return dout @ self.params[0]  # BUG: should be W.T


class AffineWithoutBiasGrad(Affine):
    """Never writes db: the bias gradient stays zero."""

    def backward(self, dout):
        W, _ = self.params
        self.grads[0][...] = self.x.T @ dout  # BUG: db is never written
        return dout @ W.T


class TanhWithSigmoidDerivative(Tanh):
    """tanh whose backward uses the sigmoid's derivative y(1 - y)."""

    derivative = staticmethod(_dsigmoid)  # BUG


class SigmoidWithTanhDerivative(Sigmoid):
    """Sigmoid whose backward uses tanh's derivative 1 - y^2."""

    derivative = staticmethod(_dtanh)  # BUG


class ReLUWithoutMask(ReLU):
    """ReLU whose backward passes every gradient through."""

    def backward(self, dout):
        return dout  # BUG: the mask is not applied


class SoftmaxSumOverBatch(Softmax):
    """Softmax backward summing over the batch axis instead of the class axis."""

    def backward(self, dout):
        y = self.y
        return y * (dout - (dout * y).sum(axis=0, keepdims=True))  # BUG: axis=0


class SoftmaxDiagonalOnly(Softmax):
    """Softmax backward as if elementwise: dy * y(1 - y), dropping the cross terms."""

    def backward(self, dout):
        return dout * self.y * (1 - self.y)  # BUG


class SoftmaxWithLossNotAveraged(SoftmaxWithLoss):
    """Forward averages over the batch, backward forgets the 1/N."""

    def backward(self, dout=1):
        return super().backward(dout) * len(self.t)  # BUG: the 1/N is undone


class SoftmaxWithLossSignFlipped(SoftmaxWithLoss):
    """dx = (t - y) / N: the gradient of the negated loss."""

    def backward(self, dout=1):
        return -super().backward(dout)  # BUG


class EmbeddingAssigns(Embedding):
    """dW[ids] = dout: a repeated id keeps only its last row."""

    def backward(self, dout):
        dW = np.zeros_like(self.grads[0])
        dW[self.ids] = dout  # BUG: should be np.add.at
        self.grads[0][...] = dW


class EmbeddingFancyPlusEquals(Embedding):
    """dW[ids] += dout: fancy indexing is buffered, so repeated ids still add only once."""

    def backward(self, dout):
        dW = np.zeros_like(self.grads[0])
        dW[self.ids] += dout  # BUG: should be np.add.at
        self.grads[0][...] = dW


class TimeAffineMixedRowOrder(TimeAffine):
    """dW pairs the rows of xs flattened time-major with dout flattened batch-major."""

    def backward(self, dout):
        W, _ = self.params
        D, H = W.shape
        dW = self.xs.transpose(1, 0, 2).reshape(-1, D).T @ dout.reshape(-1, H)  # BUG
        _write(self.grads, (dW, dout.sum(axis=(0, 1))))
        return dout @ W.T


class MeanOverTimeDividesByN(MeanOverTime):
    """Divides by the batch size where the time length is meant; right only when N == T."""

    def backward(self, dout):
        N, T = self.shape[:2]
        return np.repeat(dout[:, None, :] / N, T, axis=1)  # BUG: / N


class RNNWithSigmoidDerivative(TimeRNN):
    """tanh RNN back-propagating through the sigmoid's derivative."""

    dactivation = staticmethod(_dsigmoid)  # BUG


class RNNUntransposedWh(TimeRNN):
    """dh_prev = da @ Wh: the recurrent weight's transpose forgotten (Wh is square)."""

    def _step_backward(self, t, dh_out, dh_next, grads):
        Wx, Wh, _ = self.params
        h_prev, h = self.cache[t]
        da = (dh_out + dh_next) * self.dactivation(h)
        self._accumulate(grads, (self.xs[:, t].T @ da, h_prev.T @ da, da.sum(axis=0)))
        return da @ Wx.T, da @ Wh  # BUG: should be Wh.T


class RNNBackpropInForwardOrder(TimeRNN):
    """BPTT walking t = 0, 1, ..., T-1: dh_next is not yet known. Right only when T == 1."""

    def _steps_back(self, dhs):
        return range(dhs.shape[1])  # BUG: not reversed


class RNNWithoutTimeAccumulation(TimeRNN):
    """Each step overwrites the weight gradients: only step 0's share survives."""

    def _accumulate(self, totals, parts):
        for total, part in zip(totals, parts, strict=True):
            total[...] = part  # BUG: should be +=


class RNNDropsRecurrentGradient(TimeRNN):
    """Each step sees only its own dhs[:, t], not the gradient from step t+1."""

    def _step_backward(self, t, dh_out, dh_next, grads):
        return super()._step_backward(t, dh_out, 0 * dh_next, grads)  # BUG


class RNNLoopsOverBatch(TimeRNN):
    """BPTT loops over dhs.shape[0] (N) where T is meant; right only when N == T."""

    def _steps_back(self, dhs):
        return reversed(range(dhs.shape[0]))  # BUG: shape[0] is N


class LSTMSwapsGatesInBackward(TimeLSTM):
    """Backward stacks the gate gradients as f, i, g, o; forward splits them f, g, i, o."""

    def _stack(self, df, dg, di, do):
        return np.hstack((df, di, dg, do))  # BUG: g and i swapped


class LSTMWithSigmoidDerivativeForTanh(TimeLSTM):
    """The tanh parts (gate g and tanh(c)) back-propagate through the sigmoid's derivative."""

    dactivation = staticmethod(_dsigmoid)  # BUG


class LSTMDropsCellGradient(TimeLSTM):
    """Each step ignores dc from step t+1; right only when T == 1."""

    def _step_backward(self, t, dh_out, dh_next, dc_next, grads):
        return super()._step_backward(t, dh_out, dh_next, 0 * dc_next, grads)  # BUG


class MatMulInFloat32(MatMul):
    """Computes in float32 and casts back: the output dtype is right, its precision is not."""

    def forward(self, x):
        self.x = x
        W = self.params[0]
        return (x.astype(np.float32) @ W.astype(np.float32)).astype(W.dtype)  # BUG


class TanhInFloat32(Tanh):
    """tanh evaluated in float32 and cast back to the input's dtype."""

    def forward(self, x):
        self.y = np.tanh(x.astype(np.float32)).astype(x.dtype)  # BUG
        return self.y


class AttentionLoopsOverEncoder(TimeAttention):
    """Backward loops over Te (encoder length) where Td is meant; right only when Te == Td."""

    def _decoder_steps(self):
        return range(self.hs_enc.shape[1])  # BUG: Te


# --- bugs: wrong state gradients ------------------------------------------------------------


class RNNDhFromStepOne(TimeRNN):
    """BPTT stops at step 1: dh is the gradient of h_0, not of the initial state."""

    def _steps_back(self, dhs):
        return reversed(range(1, dhs.shape[1]))  # BUG: step 0 never visited


class RNNIgnoresHeldState(TimeRNN):
    """Always starts from zeros, even when stateful with a state set: dh is then wrong."""

    def _initial_h(self, N):
        return np.zeros((N, self.params[1].shape[0]))  # BUG: self.h ignored


class LSTMStateGradsFromStepOne(TimeLSTM):
    """BPTT stops at step 1: dh and dc belong to step 0's output, not to the initial state."""

    def _steps_back(self, dhs):
        return reversed(range(1, dhs.shape[1]))  # BUG: step 0 never visited


class LSTMKeepsOnlyDh(TimeLSTM):
    """Sets dh but not dc after backward (as the book does)."""

    def backward(self, dhs):
        dxs = super().backward(dhs)
        self.dc = None  # BUG: the cell state's gradient is dropped
        return dxs


# --- bugs: contract breaches ----------------------------------------------------------------


class MatMulRebindsGrads(MatMul):
    """self.grads[0] = dW: an optimizer holding the old array never sees the update."""

    def backward(self, dout):
        self.grads[0] = self.x.T @ dout  # BUG: rebinds instead of writing in place
        return dout @ self.params[0].T


class MatMulFloat32Grads(MatMul):
    """Gradient buffers hard-coded to float32 (as the book): grads no longer match params."""

    def __init__(self, W):
        super().__init__(W)
        self.grads = [np.zeros(W.shape, dtype="f")]  # BUG: dtype should be W.dtype


class MatMulAccumulatesGrads(MatMul):
    """self.grads[0] += dW: a second backward doubles the gradient."""

    def backward(self, dout):
        self.grads[0] += self.x.T @ dout  # BUG: accumulates
        return dout @ self.params[0].T


class MatMulGradsAliasParams(MatMul):
    """grads holds the parameter array itself, so backward overwrites the weights."""

    def __init__(self, W):
        super().__init__(W)
        self.grads = [W]  # BUG: the same array as params[0]


class AffineLearnsInBackward(Affine):
    """Backward takes an SGD step on W itself: the parameters change under the caller."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.params[0] -= 0.1 * self.grads[0]  # BUG: modifies a parameter
        return dx


class ReLUInPlace(ReLU):
    """Forward zeroes the negative entries of its argument in place."""

    def forward(self, x):
        self.mask = x <= 0
        x[self.mask] = 0  # BUG: modifies the caller's array
        return x


class ReLUModifiesDout(ReLU):
    """Backward zeroes dout in place (as the book's Relu does)."""

    def backward(self, dout):
        dout[self.mask] = 0  # BUG: modifies the caller's dout
        return dout


class RNNWithFloat32Buffers(TimeRNN):
    """Buffers hard-coded to float32 (as the book's TimeRNN): a float64 layer loses precision."""

    def _buffer(self, shape):
        return np.empty(shape, dtype="f")  # BUG: dtype should follow the parameters


class AffineCastsInput(Affine):
    """np.asarray(x, dtype=float) upcasts a float32 layer's output to float64."""

    def forward(self, x):
        return super().forward(np.asarray(x, dtype=float))  # BUG: float is float64


class BiasAddKeepsDims(BiasAdd):
    """db summed with keepdims=True: shape (1, D) for an input b of shape (D,)."""

    def backward(self, dout):
        return dout, dout.sum(axis=0, keepdims=True)  # BUG: (1, D), not (D,)


class AffineClipsDout(Affine):
    """Clips dout to [-1, 1] inside backward: backward is no longer linear in dout."""

    def backward(self, dout):
        return super().backward(np.clip(dout, -1, 1))  # BUG


class DropoutWithGlobalRandom(Dropout):
    """Draws the mask from the global np.random: two forwards give different outputs."""

    def _keep(self, shape):
        return np.random.random_sample(shape) > self.ratio  # noqa: NPY002  # BUG


class RNNStatelessWithMemory(TimeRNN):
    """stateful=False, yet the next forward starts from the last one's final state."""

    def _initial_h(self, N):
        if self.h is not None:  # BUG: self.stateful not consulted
            return self.h
        return super()._initial_h(N)


class EmbeddingZeroesIds(Embedding):
    """Backward clears the ids it cached once it is done with them: they are the caller's array,
    so the caller's next use of its ids (and every later forward) sees zeros."""

    def backward(self, dout):
        super().backward(dout)
        self.ids[...] = 0  # BUG: writes into the caller's integer array


class AffineRebindsGrads(Affine):
    """self.grads[0] = dW: deep in a composite, the composite's grads keep the old array."""

    def backward(self, dout):
        W, _ = self.params
        self.grads[0] = self.x.T @ dout  # BUG: rebinds instead of writing in place
        self.grads[1][...] = dout.sum(axis=0)
        return dout @ W.T


class DecoderWithRebindingAffine(Decoder):
    """A Decoder whose affine rebinds its grads[0]."""

    affine_class = AffineRebindsGrads


class EncoderDecoderRebindsInAPart(EncoderDecoder):
    """decoder.affine rebinds its grads[0]: the composite's own lists and arrays are untouched,
    and the only other sign is that decoder.affine.W's gradient stays zero."""

    decoder_class = DecoderWithRebindingAffine


# --- builders: (cls, rng, **dims) -> (layer, inputs) ------------------------------------------


def _normal(rng, *shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def _matmul(cls, rng, N=2, D=4, H=5):
    return cls(_normal(rng, D, H)), (_normal(rng, N, D),)


def _affine(cls, rng, N=2, D=4, H=5, dtype=np.float64):
    return cls(_normal(rng, D, H, dtype=dtype), _normal(rng, H, dtype=dtype)), (
        _normal(rng, N, D, dtype=dtype),
    )


def _encoder_decoder(cls, rng, N=2, D=4, H=5, V=6):
    weights = _normal(rng, D, H), _normal(rng, H), _normal(rng, H, V), _normal(rng, V)
    return cls(*weights), (_normal(rng, N, D),)


def _elementwise(cls, rng, N=2, D=4):
    return cls(), (_normal(rng, N, D),)


def _relu_with_zeros(cls, rng, N=2, D=4):
    """Inputs away from 0, except two entries at exactly 0 (the kink)."""
    x = _normal(rng, N, D)
    x += np.where(x >= 0, 0.5, -0.5)
    x[0, 0] = x[-1, -1] = 0.0
    return cls(), (x,)


def _softmax_loss(cls, rng, N=2, V=6):
    return cls(), (_normal(rng, N, V), rng.integers(0, V, size=N))


def _embedding(cls, rng, N=2, T=3, V=6, D=4):
    """Ids with repeats, within a row and across rows."""
    ids = np.resize(rng.permutation(V)[:2], (N, T))
    return cls(_normal(rng, V, D)), (ids,)


def _sequence(cls, rng, N=2, T=3, D=4):
    return cls(), (_normal(rng, N, T, D),)


def _time_affine(cls, rng, N=2, T=3, D=4, H=5):
    return cls(_normal(rng, D, H), _normal(rng, H)), (_normal(rng, N, T, D),)


def _bias_add(cls, rng, N=2, D=4):
    return cls(), (_normal(rng, N, D), _normal(rng, D))


def _dropout(cls, rng, N=2, D=4):
    return cls(0.5, rng=rng.spawn(1)[0]), (_normal(rng, N, D),)


def _rnn(cls, rng, N=2, T=3, D=4, H=5, stateful=True):
    Wx, Wh, b = _normal(rng, D, H), _normal(rng, H, H) * 0.5, _normal(rng, H)
    return cls(Wx, Wh, b, stateful=stateful), (_normal(rng, N, T, D),)


def _stateless_rnn(cls, rng, **dims):
    return _rnn(cls, rng, stateful=False, **dims)


def _lstm(cls, rng, N=2, T=3, D=4, H=5):
    Wx, Wh, b = _normal(rng, D, 4 * H), _normal(rng, H, 4 * H) * 0.5, _normal(rng, 4 * H)
    return cls(Wx, Wh, b), (_normal(rng, N, T, D),)


def _attention(cls, rng, N=2, Te=3, Td=4, H=5):
    return cls(), (_normal(rng, N, Te, H), _normal(rng, N, Td, H))


class Softplus(Activation):
    """log(1 + e^x), elementwise, computed stably; its derivative is the sigmoid of x.

    forward: x (any shape) -> y (same). backward: dy -> dx = dy * sigmoid(x)
    """

    def forward(self, x):
        self.x = x
        return np.logaddexp(0.0, x)

    def backward(self, dout):
        return dout * 0.5 * (1 + np.tanh(self.x / 2))  # sigmoid(x), without overflow


class SoftplusNaiveSigmoid(Softplus):
    """Softplus whose backward writes the sigmoid as e^x / (1 + e^x): inf / inf = NaN once
    x > 709, so the gradient holds a NaN where the loss is perfectly finite."""

    def backward(self, dout):
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(self.x)
            return dout * (e / (1 + e))  # BUG: NaN for large x


def _one_large_input(cls, rng, N=2, D=4):
    """Normal inputs, one of them large (800), where a naive exp overflows."""
    x = _normal(rng, N, D)
    x[0, 1] = 800.0
    return cls(), (x,)


# --- the zoo --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bug:
    """A buggy layer, its correct twin, and the report entry that must blame the bug.

    ``check`` is ``"gradient"`` (the entry ``blame`` is a gradient: ``"W"``, ``"input[0]"``,
    ``"dh"``) or ``"contract"`` (``blame`` is the contract check's entry name). ``dims``
    override the builder's default sizes; ``hidden_at`` are sizes at which the bug cannot show
    (the buggy layer then passes), the reason checks must vary shapes. ``pattern``, when given,
    is a word the blamed entry's pattern must contain ("transposed", "sign flipped", ...).
    ``options``: what the check needs to see the bug (``dtype="strict"``: computing in float32
    inside is a bug only for those who hold the dtype contract).
    """

    name: str
    layer: type
    twin: type
    build: Callable[..., tuple[Any, tuple[Any, ...]]] = field(repr=False)
    blame: str
    check: str = "gradient"
    dims: Mapping[str, Any] = field(default_factory=dict)
    hidden_at: Mapping[str, Any] | None = None
    pattern: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # check_layer options it needs

    def make(self, cls: type | None = None, *, seed: int = 0, **dims: Any):
        """``(layer, inputs)`` for the bug (or ``cls``, e.g. the twin), same weights and inputs."""
        rng = np.random.default_rng(seed)
        return self.build(cls or self.layer, rng, **{**self.dims, **dims})


_SQUARE = {"D": 4, "H": 4}

# Contract check names, as gradcheck.contract spells them.
PARALLEL = "grads parallel to params"
IN_PLACE = "grads written in place"
OVERWRITTEN = "grads overwritten, not accumulated"
ARGUMENTS = "arguments unmodified"
PARAMS = "params unmodified"
DOUT = "dout unmodified"
DETERMINISTIC = "forward deterministic"
STRICT = {"dtype": "strict"}
STATELESS = "stateful=False keeps no memory"
LINEAR = "backward linear in dout"
DTYPE = "output dtype follows params"
SHAPES = "gradient shapes match inputs"

# fmt: off
ZOO = [
    # wrong gradient values
    Bug("matmul_dW_transposed", MatMulTransposedDW, MatMul, _matmul, "W", dims=_SQUARE,
        pattern="transposed"),
    Bug("matmul_dx_missing_transpose", MatMulUntransposedW, MatMul, _matmul, "input[0]",
        dims=_SQUARE),
    Bug("affine_bias_grad_missing", AffineWithoutBiasGrad, Affine, _affine, "b",
        pattern="zero"),
    Bug("tanh_with_sigmoid_derivative", TanhWithSigmoidDerivative, Tanh, _elementwise,
        "input[0]"),
    Bug("sigmoid_with_tanh_derivative", SigmoidWithTanhDerivative, Sigmoid, _elementwise,
        "input[0]"),
    Bug("relu_without_mask", ReLUWithoutMask, ReLU, _relu_with_zeros, "input[0]"),
    Bug("softmax_sum_over_batch_axis", SoftmaxSumOverBatch, Softmax, _elementwise, "input[0]"),
    Bug("softmax_diagonal_only", SoftmaxDiagonalOnly, Softmax, _elementwise, "input[0]"),
    Bug("softmax_loss_missing_1_over_N", SoftmaxWithLossNotAveraged, SoftmaxWithLoss,
        _softmax_loss, "input[0]", hidden_at={"N": 1}, pattern="constant factor"),
    Bug("softmax_loss_sign_flipped", SoftmaxWithLossSignFlipped, SoftmaxWithLoss,
        _softmax_loss, "input[0]", pattern="sign flipped"),
    Bug("embedding_assigns_repeated_ids", EmbeddingAssigns, Embedding, _embedding, "W"),
    Bug("embedding_fancy_plus_equals", EmbeddingFancyPlusEquals, Embedding, _embedding, "W"),
    Bug("time_affine_mixed_row_order", TimeAffineMixedRowOrder, TimeAffine, _time_affine, "W",
        hidden_at={"T": 1}),
    Bug("mean_over_time_divides_by_N", MeanOverTimeDividesByN, MeanOverTime, _sequence,
        "input[0]", hidden_at={"N": 3, "T": 3}, pattern="constant factor"),
    Bug("rnn_with_sigmoid_derivative", RNNWithSigmoidDerivative, TimeRNN, _rnn, "Wx"),
    Bug("rnn_dh_prev_missing_transpose", RNNUntransposedWh, TimeRNN, _rnn, "Wh"),
    Bug("rnn_bptt_in_forward_order", RNNBackpropInForwardOrder, TimeRNN, _rnn, "input[0]",
        hidden_at={"T": 1}),
    Bug("rnn_no_accumulation_over_time", RNNWithoutTimeAccumulation, TimeRNN, _rnn, "Wx",
        hidden_at={"T": 1}),
    Bug("rnn_drops_recurrent_gradient", RNNDropsRecurrentGradient, TimeRNN, _rnn, "input[0]",
        hidden_at={"T": 1}),
    Bug("rnn_loops_over_batch", RNNLoopsOverBatch, TimeRNN, _rnn, "input[0]",
        hidden_at={"N": 3, "T": 3}),
    Bug("lstm_gates_swapped_in_backward", LSTMSwapsGatesInBackward, TimeLSTM, _lstm, "Wx"),
    Bug("lstm_tanh_with_sigmoid_derivative", LSTMWithSigmoidDerivativeForTanh, TimeLSTM, _lstm,
        "Wh"),
    Bug("lstm_drops_dc_between_steps", LSTMDropsCellGradient, TimeLSTM, _lstm, "input[0]",
        hidden_at={"T": 1}),
    Bug("attention_loops_over_Te", AttentionLoopsOverEncoder, TimeAttention, _attention,
        "input[1]", hidden_at={"Te": 4, "Td": 4}, pattern="the last"),
    # float32 inside: a failure for those who hold the dtype contract (strict), and the rows
    # then disagree at float64 precision too
    Bug("matmul_computes_in_float32", MatMulInFloat32, MatMul, _matmul, DTYPE, "contract",
        options=STRICT),
    Bug("tanh_computes_in_float32", TanhInFloat32, Tanh, _elementwise, DTYPE, "contract",
        options=STRICT),
    # wrong state gradients
    Bug("rnn_dh_from_step_1", RNNDhFromStepOne, TimeRNN, _rnn, "dh"),
    Bug("rnn_ignores_held_state", RNNIgnoresHeldState, TimeRNN, _rnn, "dh"),
    Bug("lstm_dc_from_step_1", LSTMStateGradsFromStepOne, TimeLSTM, _lstm, "dc"),
    Bug("lstm_forgets_dc", LSTMKeepsOnlyDh, TimeLSTM, _lstm, "dc", pattern="zero"),
    # contract breaches
    Bug("matmul_rebinds_grads", MatMulRebindsGrads, MatMul, _matmul, IN_PLACE, "contract"),
    Bug("composite_part_rebinds_grads", EncoderDecoderRebindsInAPart, EncoderDecoder,
        _encoder_decoder, IN_PLACE, "contract"),
    Bug("matmul_accumulates_grads", MatMulAccumulatesGrads, MatMul, _matmul, OVERWRITTEN,
        "contract"),
    Bug("matmul_float32_grads", MatMulFloat32Grads, MatMul, _matmul, PARALLEL, "contract"),
    Bug("matmul_grads_alias_params", MatMulGradsAliasParams, MatMul, _matmul, PARALLEL,
        "contract"),
    Bug("affine_updates_params_in_backward", AffineLearnsInBackward, Affine, _affine, PARAMS,
        "contract"),
    Bug("relu_modifies_input", ReLUInPlace, ReLU, _elementwise, ARGUMENTS, "contract"),
    Bug("embedding_zeroes_callers_ids", EmbeddingZeroesIds, Embedding, _embedding, ARGUMENTS,
        "contract"),
    Bug("relu_modifies_dout", ReLUModifiesDout, ReLU, _elementwise, DOUT, "contract"),
    Bug("rnn_float32_buffers", RNNWithFloat32Buffers, TimeRNN, _rnn, DTYPE, "contract",
        options=STRICT),
    Bug("affine_float32_output_upcast", AffineCastsInput, Affine, _affine, DTYPE, "contract",
        dims={"dtype": np.float32}),
    Bug("bias_add_grad_keepdims", BiasAddKeepsDims, BiasAdd, _bias_add, SHAPES, "contract"),
    Bug("affine_clips_dout", AffineClipsDout, Affine, _affine, LINEAR, "contract"),
    # nondeterminism and hidden memory
    # 64 outputs: two global-random masks agree by chance with probability 2**-64, not 2**-8
    Bug("dropout_global_random", DropoutWithGlobalRandom, Dropout, _dropout, DETERMINISTIC,
        "contract", dims={"N": 4, "D": 16}),
    Bug("rnn_stateless_keeps_memory", RNNStatelessWithMemory, TimeRNN, _stateless_rnn,
        STATELESS, "contract"),
    # non-finite gradients
    Bug("softplus_naive_sigmoid_nan", SoftplusNaiveSigmoid, Softplus, _one_large_input,
        "input[0]"),
]
# fmt: on


@dataclass(frozen=True)
class Kink:
    """A correct layer evaluated at a non-differentiable point: ``entry`` must be ``"kink"``."""

    name: str
    layer: type
    build: Callable[..., tuple[Any, tuple[Any, ...]]] = field(repr=False)
    entry: str = "input[0]"

    def make(self, *, seed: int = 0):
        return self.build(self.layer, np.random.default_rng(seed))


class ReLUOpenAtZero(ReLU):
    """ReLU taking the other subgradient at 0 (1 instead of 0): also right, also a kink."""

    def forward(self, x):
        self.mask = x < 0
        return np.where(self.mask, 0.0, x)


def _tied_maxima(cls, rng, N=2, T=3, D=4):
    """Every column's maximum is tied between steps 0 and 1 in batch row 0."""
    xs = _normal(rng, N, T, D)
    xs[0, 1] = xs[0, 0] = xs[0].max(axis=0) + 1
    return cls(), (xs,)


KINKS = [
    Kink("relu_at_zero", ReLU, _relu_with_zeros),
    Kink("relu_open_at_zero", ReLUOpenAtZero, _relu_with_zeros),
    Kink("max_over_time_with_ties", MaxOverTime, _tied_maxima),
]
