"""Recurrent layers: single-step cells (RNN, LSTM, GRU) and their unrolled Time versions.

The Time layers follow the book but compute the input part ``xs @ Wx + b`` of every step in one
product before the loop, and the weight gradients in one product after it; only the recurrence
itself runs step by step. State follows docs/contract.md: ``stateful``, ``set_state``,
``reset_state``, the current state in ``h`` (and ``c``), and after ``backward`` the gradient of
the initial state in ``dh`` (and ``dc``, which the book does not keep).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from layers.basic import _no_forward, _shape_error, _sigmoid

__all__ = ["GRU", "LSTM", "RNN", "TimeBiLSTM", "TimeGRU", "TimeLSTM", "TimeRNN"]


# --- one step of each cell, shared by the cell class and its Time version ---


def _rnn_step(a: np.ndarray) -> np.ndarray:
    return np.tanh(a)


def _rnn_step_backward(dh: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Gradient of the pre-activation a from dh, given h = tanh(a)."""
    return dh * (1 - h * h)


def _lstm_step(a: np.ndarray, c_prev: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Pre-activations a (N, 4H), gate order f, g, i, o -> h (N, H), c (N, H), gates.

    gates = (sigmoid(a) (N, 4H), whose f, i, o blocks are used, g (N, H), tanh(c) (N, H)).
    """
    H = c_prev.shape[1]
    s = _sigmoid(a)  # over all four blocks at once: fewer, larger array operations
    f, i, o = s[:, :H], s[:, 2 * H : 3 * H], s[:, 3 * H :]
    g = np.tanh(a[:, H : 2 * H])
    c = f * c_prev + g * i
    tanh_c = np.tanh(c)
    return o * tanh_c, c, (s, g, tanh_c)


def _lstm_stacked_weights(Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray, N: int) -> tuple:
    """W (4H, H + D + 1), s, off (4H, N) for TimeLSTM's feature-major steps.

    W = [Wh; Wx; b] transposed with rows f, i, o halved, so W @ [h; x; 1] is a step's
    pre-activation a (4H, N) with its sigmoid blocks at a / 2; then tanh(.) * s + off is
    sigmoid(a) = 0.5 * tanh(0.5 * a) + 0.5 in blocks f, i, o and tanh(a) in g.
    W is a transposed (Fortran-order) view, which BLAS multiplies faster here than a copy.
    """
    D, H = Wx.shape[0], Wh.shape[0]
    w_scale, s, off = _lstm_scales(H, D, N, Wh.dtype)
    W = np.empty((H + D + 1, 4 * H), dtype=Wh.dtype)
    np.multiply(Wh, w_scale[:H], out=W[:H])
    np.multiply(Wx, w_scale[H : H + D], out=W[H : H + D])
    np.multiply(b, w_scale[H + D], out=W[H + D])
    return W.T, s, off


#: Constants up to this many elements are stored full-size; larger ones are broadcast views.
_FULL_SIZE = 1 << 13


@functools.lru_cache(maxsize=16)
def _lstm_scales(H: int, D: int, N: int, dtype: np.dtype) -> tuple[np.ndarray, ...]:
    """Read-only constants of _lstm_stacked_weights: w_scale (H + D + 1, 4H), s, off (4H, N).

    Small ones are full-size arrays rather than broadcast rows or columns: same-shape operands
    skip NumPy's broadcasting loop, about twice as fast on a small step's blocks. Large ones
    are broadcast views (no memory held; there the loop costs nothing measurable)."""
    scale = np.full(4 * H, 0.5, dtype=dtype)
    scale[H : 2 * H] = 1
    offset = np.where(scale == 1, 0, 0.5).astype(dtype)

    def constant(row: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        if math.prod(shape) > _FULL_SIZE:
            return np.broadcast_to(row, shape)
        full = np.ascontiguousarray(np.broadcast_to(row, shape))
        full.flags.writeable = False
        return full

    w_scale = constant(scale, (H + D + 1, 4 * H))
    s = constant(scale[:, None], (4 * H, N))
    off = constant(offset[:, None], (4 * H, N))
    return w_scale, s, off


def _lstm_step_backward(
    dh: np.ndarray, dc: np.ndarray, c_prev: np.ndarray, gates: tuple, da: np.ndarray
) -> np.ndarray:
    """Fill da (N, 4H) with the pre-activation gradient; return dc_prev (N, H)."""
    s, g, tanh_c = gates
    H = g.shape[1]
    f, i, o = s[:, :H], s[:, 2 * H : 3 * H], s[:, 3 * H :]
    ds = dc + dh * o * (1 - tanh_c * tanh_c)  # total gradient reaching c
    da[...] = s * (1 - s)  # sigmoid' for the f, i, o blocks; the g block is overwritten
    da[:, :H] *= ds * c_prev
    da[:, H : 2 * H] = ds * i * (1 - g * g)
    da[:, 2 * H : 3 * H] *= ds * g
    da[:, 3 * H :] *= dh * tanh_c
    return ds * f


def _gru_step(ax: np.ndarray, h_prev: np.ndarray, Wh: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Input part ax = x @ Wx + b (N, 3H), gate order z, r, h~ -> h (N, H), cache."""
    H = h_prev.shape[1]
    zr = _sigmoid(ax[:, : 2 * H] + h_prev @ Wh[:, : 2 * H])
    z, r = zr[:, :H], zr[:, H:]
    rh = r * h_prev
    h_hat = np.tanh(ax[:, 2 * H :] + rh @ Wh[:, 2 * H :])
    h = (1 - z) * h_prev + z * h_hat
    return h, (z, r, rh, h_hat)


def _gru_step_backward(
    dh: np.ndarray, h_prev: np.ndarray, Wh: np.ndarray, cache: tuple, da: np.ndarray
) -> np.ndarray:
    """Fill da (N, 3H) with the pre-activation gradient; return dh_prev (N, H).

    The Wh gradient is h_prev.T @ da[:, :2H] for the z and r blocks and rh.T @ da[:, 2H:] for
    the candidate block (the reset gate scales h_prev before Wh there).
    """
    z, r, _, h_hat = cache
    H = z.shape[1]
    da[:, 2 * H :] = dh * z * (1 - h_hat * h_hat)
    drh = da[:, 2 * H :] @ Wh[:, 2 * H :].T
    da[:, :H] = dh * (h_hat - h_prev) * z * (1 - z)
    da[:, H : 2 * H] = drh * h_prev * r * (1 - r)
    return dh * (1 - z) + drh * r + da[:, : 2 * H] @ Wh[:, : 2 * H].T


def _check_weights(name: str, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray, gates: int) -> None:
    H = Wh.shape[0]
    if Wx.ndim != 2 or Wh.shape != (H, gates * H) or Wx.shape[1] != gates * H:
        width = "H" if gates == 1 else f"{gates}H"
        raise ValueError(
            f"{name}: Wx must be (D, {width}) and Wh (H, {width}), got Wx {Wx.shape} "
            f"and Wh {Wh.shape}"
        )
    if b.shape != (gates * H,):
        raise _shape_error(name, "b", f"({gates * H},)", b.shape)


def _own_weights(layer, name: str, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray, gates: int):
    """Check (Wx, Wh, b) for ``gates`` gates side by side and make them ``layer``'s params,
    with zero grads: what every cell and Time layer here starts with."""
    _check_weights(name, Wx, Wh, b, gates)
    layer.params = [Wx, Wh, b]
    layer.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
    layer.param_names = ["Wx", "Wh", "b"]


# --- cells ---


def _check_step_inputs(
    where: str, x: np.ndarray, D: int, H: int, h_prev: np.ndarray, c_prev: np.ndarray | None = None
) -> None:
    if x.ndim != 2 or x.shape[1] != D:
        raise _shape_error(where, "x", f"(N, {D})", x.shape)
    if h_prev.shape != (x.shape[0], H):
        raise _shape_error(where, "h_prev", f"({x.shape[0]}, {H})", h_prev.shape)
    if c_prev is not None and c_prev.shape != (x.shape[0], H):
        raise _shape_error(where, "c_prev", f"({x.shape[0]}, {H})", c_prev.shape)


class RNN:
    """One step of the Elman RNN: h = tanh(x @ Wx + h_prev @ Wh + b).

    Params: Wx (D, H), Wh (H, H), b (H,).
    forward: x (N, D), h_prev (N, H) -> h (N, H)
    backward: dh (N, H) -> dx (N, D), dh_prev (N, H)
    """

    def __init__(self, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray) -> None:
        _own_weights(self, "RNN", Wx, Wh, b, 1)
        self.cache = None

    def forward(self, x: np.ndarray, h_prev: np.ndarray) -> np.ndarray:
        Wx, Wh, b = self.params
        _check_step_inputs("RNN.forward", x, Wx.shape[0], Wh.shape[0], h_prev)
        x, h_prev = x.astype(Wx.dtype, copy=False), h_prev.astype(Wx.dtype, copy=False)
        h = _rnn_step(x @ Wx + h_prev @ Wh + b)
        self.cache = (x, h_prev, h)
        return h

    def backward(self, dh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.cache is None:
            raise _no_forward("RNN.backward")
        Wx, Wh, _ = self.params
        x, h_prev, h = self.cache
        if dh.shape != h.shape:
            raise _shape_error("RNN.backward", "dh", str(h.shape), dh.shape)
        da = _rnn_step_backward(dh.astype(h.dtype, copy=False), h)
        self.grads[0][...] = x.T @ da
        self.grads[1][...] = h_prev.T @ da
        self.grads[2][...] = da.sum(axis=0)
        return da @ Wx.T, da @ Wh.T


class LSTM:
    """One LSTM step; the cell state c carries memory that the gates f, i, o edit.

    Params: Wx (D, 4H), Wh (H, 4H), b (4H,); gate order f, g, i, o as the book.
    forward: x (N, D), h_prev (N, H), c_prev (N, H) -> h (N, H), c (N, H)
    backward: dh (N, H), dc (N, H) -> dx (N, D), dh_prev (N, H), dc_prev (N, H)
    """

    def __init__(self, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray) -> None:
        _own_weights(self, "LSTM", Wx, Wh, b, 4)
        self.cache = None

    def forward(
        self, x: np.ndarray, h_prev: np.ndarray, c_prev: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        Wx, Wh, b = self.params
        _check_step_inputs("LSTM.forward", x, Wx.shape[0], Wh.shape[0], h_prev, c_prev)
        dtype = Wx.dtype  # a float64 x, h_prev or c_prev would promote every product
        x, h_prev = x.astype(dtype, copy=False), h_prev.astype(dtype, copy=False)
        c_prev = c_prev.astype(dtype, copy=False)
        h, c, gates = _lstm_step(x @ Wx + h_prev @ Wh + b, c_prev)
        self.cache = (x, h_prev, c_prev, gates)
        return h, c

    def backward(self, dh: np.ndarray, dc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.cache is None:
            raise _no_forward("LSTM.backward")
        Wx, Wh, b = self.params
        x, h_prev, c_prev, gates = self.cache
        if dh.shape != c_prev.shape:
            raise _shape_error("LSTM.backward", "dh", str(c_prev.shape), dh.shape)
        if dc.shape != c_prev.shape:
            raise _shape_error("LSTM.backward", "dc", str(c_prev.shape), dc.shape)
        da = np.empty((x.shape[0], b.shape[0]), dtype=b.dtype)
        dh, dc = dh.astype(b.dtype, copy=False), dc.astype(b.dtype, copy=False)
        dc_prev = _lstm_step_backward(dh, dc, c_prev, gates, da)
        self.grads[0][...] = x.T @ da
        self.grads[1][...] = h_prev.T @ da
        self.grads[2][...] = da.sum(axis=0)
        return da @ Wx.T, da @ Wh.T, dc_prev


class GRU:
    """One GRU step: an update gate z blends h_prev with a candidate built from r * h_prev.

    h = (1 - z) * h_prev + z * tanh(x @ Wxh + (r * h_prev) @ Whh + bh), as the book's appendix.
    Params: Wx (D, 3H), Wh (H, 3H), b (3H,); gate order z, r, h~.
    forward: x (N, D), h_prev (N, H) -> h (N, H)
    backward: dh (N, H) -> dx (N, D), dh_prev (N, H)
    """

    def __init__(self, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray) -> None:
        _own_weights(self, "GRU", Wx, Wh, b, 3)
        self.cache = None

    def forward(self, x: np.ndarray, h_prev: np.ndarray) -> np.ndarray:
        Wx, Wh, b = self.params
        _check_step_inputs("GRU.forward", x, Wx.shape[0], Wh.shape[0], h_prev)
        x, h_prev = x.astype(Wx.dtype, copy=False), h_prev.astype(Wx.dtype, copy=False)
        h, step = _gru_step(x @ Wx + b, h_prev, Wh)
        self.cache = (x, h_prev, step)
        return h

    def backward(self, dh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.cache is None:
            raise _no_forward("GRU.backward")
        Wx, Wh, b = self.params
        x, h_prev, step = self.cache
        if dh.shape != h_prev.shape:
            raise _shape_error("GRU.backward", "dh", str(h_prev.shape), dh.shape)
        H = Wh.shape[0]
        da = np.empty((x.shape[0], 3 * H), dtype=b.dtype)
        dh_prev = _gru_step_backward(dh.astype(b.dtype, copy=False), h_prev, Wh, step, da)
        self.grads[0][...] = x.T @ da
        self.grads[1][:, : 2 * H] = h_prev.T @ da[:, : 2 * H]
        self.grads[1][:, 2 * H :] = step[2].T @ da[:, 2 * H :]
        self.grads[2][...] = da.sum(axis=0)
        return da @ Wx.T, dh_prev


# --- unrolled over time ---


class _TimeRecurrent:
    """State handling shared by TimeRNN, TimeLSTM and TimeGRU (docs/contract.md, "State")."""

    _has_cell = False

    def _init(self, Wx, Wh, b, gates: int, stateful: bool) -> None:
        _own_weights(self, type(self).__name__, Wx, Wh, b, gates)
        self.stateful = stateful
        self.h = self.c = None  # current state; None before the first forward
        self.dh = self.dc = None  # gradient of the initial state, set by backward
        self.cache = None

    def set_state(self, h: np.ndarray, c: np.ndarray | None = None) -> None:
        """Start the next stateful forward from h (N, H) (and c, zeros when None)."""
        name = type(self).__name__
        dtype, H = self.params[1].dtype, self.params[1].shape[0]
        h = np.array(h, dtype=dtype)  # a copy: later forwards never touch the caller's array
        if h.ndim != 2 or h.shape[1] != H:
            raise _shape_error(f"{name}.set_state", "h", f"(N, {H})", h.shape)
        if not self._has_cell:
            if c is not None:
                raise ValueError(f"{name}.set_state: {name} has no cell state; pass c=None")
            self.h = h
            return
        c = np.zeros(h.shape, dtype=dtype) if c is None else np.array(c, dtype=dtype)
        if c.shape != h.shape:
            raise _shape_error(f"{name}.set_state", "c", str(h.shape), c.shape)
        self.h, self.c = h, c

    def reset_state(self) -> None:
        """Forget the state: the next forward starts from zeros."""
        self.h = self.c = None

    def _start(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Check xs (N, T, D) and return the initial h (and c) of this forward."""
        Wx, Wh, _ = self.params
        D, H = Wx.shape[0], Wh.shape[0]
        name = type(self).__name__
        if xs.ndim != 3 or xs.shape[2] != D:
            raise _shape_error(f"{name}.forward", "xs", f"(N, T, {D})", xs.shape)
        if 0 in xs.shape[:2]:
            raise _shape_error(f"{name}.forward", "xs", f"(N, T, {D}) with N, T >= 1", xs.shape)
        N = xs.shape[0]
        if not self.stateful or self.h is None:
            zeros = np.zeros((N, H), dtype=Wh.dtype)
            return zeros, (zeros if self._has_cell else None)
        if self.h.shape != (N, H):
            raise _shape_error(f"{name}.forward", "the stored state h", f"({N}, {H})", self.h.shape)
        c = self.c
        if self._has_cell and c is None:
            c = np.zeros_like(self.h)
        return self.h, c

    def _input_part(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """h0 (N, H), the input part ax = xs @ Wx + b of every step at once (N, T, gH), and
        an empty hs (N, T, H): how TimeRNN's and TimeGRU's forward begin."""
        Wx, Wh, b = self.params
        h0, _ = self._start(xs)
        N, T, D = xs.shape
        ax = (xs.reshape(N * T, D) @ Wx + b).astype(b.dtype, copy=False).reshape(N, T, -1)
        return h0, ax, np.empty((N, T, Wh.shape[0]), dtype=Wh.dtype)


class TimeRNN(_TimeRecurrent):
    """Elman RNN unrolled over T steps; Wx, Wh, b shared across time.

    Params: Wx (D, H), Wh (H, H), b (H,).
    forward: xs (N, T, D) -> hs (N, T, H)
    backward: dhs (N, T, H) -> dxs (N, T, D); sets dh (N, H)
    """

    def __init__(self, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray, stateful: bool = False):
        self._init(Wx, Wh, b, 1, stateful)

    def forward(self, xs: np.ndarray) -> np.ndarray:
        Wh = self.params[1]
        h0, ax, hs = self._input_part(xs)
        T = xs.shape[1]
        h = h0
        for t in range(T):
            h = _rnn_step(ax[:, t] + h @ Wh)
            hs[:, t] = h
        self.cache = (xs, h0, hs)
        self.h = h
        return hs

    def backward(self, dhs: np.ndarray) -> np.ndarray:
        if self.cache is None:
            raise _no_forward("TimeRNN.backward")
        Wx, Wh, _ = self.params
        xs, h0, hs = self.cache
        N, T, D = xs.shape
        if dhs.shape != hs.shape:
            raise _shape_error("TimeRNN.backward", "dhs", str(hs.shape), dhs.shape)
        da = np.empty_like(hs)
        dh = np.zeros_like(h0)
        for t in reversed(range(T)):
            da[:, t] = _rnn_step_backward(dhs[:, t] + dh, hs[:, t])
            dh = da[:, t] @ Wh.T
        h_prevs = np.concatenate((h0[:, None], hs[:, :-1]), axis=1)
        da2 = da.reshape(N * T, -1)
        self.grads[0][...] = xs.reshape(N * T, D).T @ da2
        self.grads[1][...] = h_prevs.reshape(N * T, -1).T @ da2
        self.grads[2][...] = da2.sum(axis=0)
        self.dh = dh
        return (da2 @ Wx.T).reshape(N, T, D)


class TimeLSTM(_TimeRecurrent):
    """LSTM unrolled over T steps; Wx, Wh, b shared across time.

    Params: Wx (D, 4H), Wh (H, 4H), b (4H,); gate order f, g, i, o.
    forward: xs (N, T, D) -> hs (N, T, H)
    backward: dhs (N, T, H) -> dxs (N, T, D); sets dh, dc (N, H)
    """

    _has_cell = True

    def __init__(self, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray, stateful: bool = False):
        self._init(Wx, Wh, b, 4, stateful)

    def forward(self, xs: np.ndarray) -> np.ndarray:
        Wx, Wh, b = self.params
        h0, c0 = self._start(xs)
        N, T, D = xs.shape
        H = Wh.shape[0]
        dtype = Wh.dtype
        # Feature-major, one (features, N) block per step, so each gate is a contiguous (H, N)
        # slice (NumPy runs those about twice as fast as (N, H) column blocks of (N, 4H) at small
        # N). Column block X[t] = [h_{t-1}; x_t; 1] makes a step's whole pre-activation one
        # product W @ X[t]; the step writes its h straight into X[t + 1]. One tanh gives all four
        # gates: tanh(a * s) * s + off is sigmoid(a) = 0.5 * tanh(0.5 * a) + 0.5 in the f, i, o
        # blocks and tanh(a) in g, with s folded into W's rows (exact: s is 0.5 or 1).
        W, s, off = _lstm_stacked_weights(Wx, Wh, b, N)  # (4H, H + D + 1), (4H, N), (4H, N)
        X = np.empty((T + 1, H + D + 1, N), dtype=dtype)
        X[0, :H] = h0.T
        X[:T, H : H + D] = xs.transpose(1, 2, 0)
        X[:, H + D] = 1
        zs = np.empty((T, 4 * H, N), dtype=dtype)  # gates f, g, i, o of every step
        cs = np.empty((T + 1, H, N), dtype=dtype)  # cs[0] = c0
        cs[0] = c0.T
        tanh_cs = np.empty((T, H, N), dtype=dtype)
        gi = np.empty((H, N), dtype=dtype)
        gates = zs[:, :H], zs[:, H : 2 * H], zs[:, 2 * H : 3 * H], zs[:, 3 * H :]
        steps = zip(X[:T], X[1:, :H], zs, cs[:T], cs[1:], tanh_cs, *gates, strict=True)
        for x, h, z, c_prev, c, tanh_c, f, g, i, o in steps:
            np.dot(W, x, out=z)
            np.tanh(z, out=z)
            z *= s
            z += off
            np.multiply(f, c_prev, out=c)
            np.multiply(g, i, out=gi)
            c += gi
            np.tanh(c, out=tanh_c)
            np.multiply(o, tanh_c, out=h)
        self.cache = (xs, X, cs, zs, tanh_cs)
        self.h, self.c = X[T, :H].T.copy(), cs[T].T.copy()
        return X[1:, :H].transpose(2, 0, 1).copy()

    def backward(self, dhs: np.ndarray) -> np.ndarray:
        if self.cache is None:
            raise _no_forward("TimeLSTM.backward")
        Wx, Wh, _ = self.params
        xs, X, cs, zs, tanh_cs = self.cache
        N, T, D = xs.shape
        H = Wh.shape[0]
        expected = (N, T, H)
        if dhs.shape != expected:
            raise _shape_error("TimeLSTM.backward", "dhs", str(expected), dhs.shape)
        dtype = zs.dtype  # keeps dh, dc in the params' dtype
        dhs_T = np.empty((T, H, N), dtype=dtype)
        dhs_T[...] = dhs.transpose(1, 2, 0)  # feature-major like the forward's buffers
        # Everything that does not depend on the recurrence, for all steps at once: with
        # ds = dc + dh * o * (1 - tanh_c^2) the gradient reaching c, the pre-activation gradient
        # of blocks f, g, i is ds times coef[:, :3], and of block o dh times coef[:, 3].
        f, g, i, o = zs[:, :H], zs[:, H : 2 * H], zs[:, 2 * H : 3 * H], zs[:, 3 * H :]
        ds_per_dh = o * (1 - tanh_cs * tanh_cs)
        coef = np.empty((T, 4, H, N), dtype=dtype)
        coef[:, 0] = cs[:T] * f * (1 - f)
        coef[:, 1] = i * (1 - g * g)
        coef[:, 2] = g * i * (1 - i)
        coef[:, 3] = tanh_cs * o * (1 - o)
        da = np.empty((T, 4, H, N), dtype=dtype)
        dh, dc = np.zeros((H, N), dtype=dtype), np.zeros((H, N), dtype=dtype)
        ds = np.empty((H, N), dtype=dtype)
        for t in reversed(range(T)):
            dh += dhs_T[t]
            np.multiply(dh, ds_per_dh[t], out=ds)
            ds += dc
            np.multiply(ds, coef[t, :3], out=da[t, :3])
            np.multiply(dh, coef[t, 3], out=da[t, 3])
            np.multiply(ds, f[t], out=dc)
            np.dot(Wh, da[t].reshape(4 * H, N), out=dh)
        da = da.reshape(T, 4 * H, N)
        dW = np.tensordot(da, X[:T], axes=([0, 2], [0, 2]))  # (4H, H + D + 1): Wh, Wx, b
        self.grads[0][...] = dW[:, H : H + D].T
        self.grads[1][...] = dW[:, :H].T
        self.grads[2][...] = dW[:, H + D]
        self.dh, self.dc = dh.T.copy(), dc.T.copy()
        return np.matmul(Wx, da).transpose(2, 0, 1).copy()  # (T, D, N) -> (N, T, D)


class TimeGRU(_TimeRecurrent):
    """GRU unrolled over T steps; Wx, Wh, b shared across time.

    Params: Wx (D, 3H), Wh (H, 3H), b (3H,); gate order z, r, h~.
    forward: xs (N, T, D) -> hs (N, T, H)
    backward: dhs (N, T, H) -> dxs (N, T, D); sets dh (N, H)
    """

    def __init__(self, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray, stateful: bool = False):
        self._init(Wx, Wh, b, 3, stateful)

    def forward(self, xs: np.ndarray) -> np.ndarray:
        Wh = self.params[1]
        h0, ax, hs = self._input_part(xs)
        T = xs.shape[1]
        steps = []
        h = h0
        for t in range(T):
            h, step = _gru_step(ax[:, t], h, Wh)
            hs[:, t] = h
            steps.append(step)
        self.cache = (xs, h0, hs, steps)
        self.h = h
        return hs

    def backward(self, dhs: np.ndarray) -> np.ndarray:
        if self.cache is None:
            raise _no_forward("TimeGRU.backward")
        Wx, Wh, b = self.params
        xs, h0, hs, steps = self.cache
        N, T, D = xs.shape
        H = Wh.shape[0]
        if dhs.shape != hs.shape:
            raise _shape_error("TimeGRU.backward", "dhs", str(hs.shape), dhs.shape)
        dhs = dhs.astype(hs.dtype, copy=False)  # keeps dh in the params' dtype
        da = np.empty((N, T, 3 * H), dtype=b.dtype)
        dh = np.zeros_like(h0)
        for t in reversed(range(T)):
            h_prev = hs[:, t - 1] if t else h0
            dh = _gru_step_backward(dhs[:, t] + dh, h_prev, Wh, steps[t], da[:, t])
        h_prevs = np.concatenate((h0[:, None], hs[:, :-1]), axis=1).reshape(N * T, H)
        rhs = np.stack([step[2] for step in steps], axis=1).reshape(N * T, H)
        da2 = da.reshape(N * T, 3 * H)
        self.grads[0][...] = xs.reshape(N * T, D).T @ da2
        self.grads[1][:, : 2 * H] = h_prevs.T @ da2[:, : 2 * H]
        self.grads[1][:, 2 * H :] = rhs.T @ da2[:, 2 * H :]
        self.grads[2][...] = da2.sum(axis=0)
        self.dh = dh
        return (da2 @ Wx.T).reshape(N, T, D)


class TimeBiLSTM:
    """Two TimeLSTMs, one reading left to right and one right to left; outputs concatenated.

    Params: forward_lstm.Wx, .Wh, .b and backward_lstm.Wx, .Wh, .b, each as TimeLSTM.
    forward: xs (N, T, D) -> hs (N, T, 2H), [:, :, :H] left-to-right, [:, :, H:] right-to-left
    backward: dhs (N, T, 2H) -> dxs (N, T, D)
    """

    def __init__(
        self,
        Wx1: np.ndarray,
        Wh1: np.ndarray,
        b1: np.ndarray,
        Wx2: np.ndarray,
        Wh2: np.ndarray,
        b2: np.ndarray,
        stateful: bool = False,
    ) -> None:
        self.forward_lstm = TimeLSTM(Wx1, Wh1, b1, stateful)
        self.backward_lstm = TimeLSTM(Wx2, Wh2, b2, stateful)
        self.params = self.forward_lstm.params + self.backward_lstm.params
        self.grads = self.forward_lstm.grads + self.backward_lstm.grads
        self.param_names = [
            f"{part}.{name}"
            for part in ("forward_lstm", "backward_lstm")
            for name in ("Wx", "Wh", "b")
        ]

    def forward(self, xs: np.ndarray) -> np.ndarray:
        hs_left = self.forward_lstm.forward(xs)
        hs_right = self.backward_lstm.forward(xs[:, ::-1])[:, ::-1]
        return np.concatenate((hs_left, hs_right), axis=2)

    def backward(self, dhs: np.ndarray) -> np.ndarray:
        if self.forward_lstm.cache is None:
            raise _no_forward("TimeBiLSTM.backward")
        xs, H = self.forward_lstm.cache[0], self.forward_lstm.params[1].shape[0]
        expected = (*xs.shape[:2], 2 * H)
        if dhs.shape != expected:
            raise _shape_error("TimeBiLSTM.backward", "dhs", str(expected), dhs.shape)
        dxs = self.forward_lstm.backward(dhs[:, :, :H])
        return dxs + self.backward_lstm.backward(dhs[:, ::-1, H:])[:, ::-1]

    def reset_state(self) -> None:
        """Forget both directions' state."""
        self.forward_lstm.reset_state()
        self.backward_lstm.reset_state()
