"""Recurrent layers: single-step cells (RNN, LSTM, GRU) and their unrolled Time versions.

The Time layers follow the book but compute the input part ``xs @ Wx + b`` of every step in one
product before the loop, and the weight gradients in one product after it; only the recurrence
itself runs step by step. State follows CONTRACT.md section 3: ``stateful``, ``set_state``,
``reset_state``, the current state in ``h`` (and ``c``), and after ``backward`` the gradient of
the initial state in ``dh`` (and ``dc``, which the book does not keep).
"""

from __future__ import annotations

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


def _lstm_gate_scales(H: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """s, off (4H,): tanh(a * s) * s + off is sigmoid(a) in blocks f, i, o and tanh(a) in g."""
    s = np.full(4 * H, 0.5, dtype=dtype)
    s[H : 2 * H] = 1
    off = np.full(4 * H, 0.5, dtype=dtype)
    off[H : 2 * H] = 0
    return s, off


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
        _check_weights("RNN", Wx, Wh, b, 1)
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.param_names = ["Wx", "Wh", "b"]
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
        _check_weights("LSTM", Wx, Wh, b, 4)
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.param_names = ["Wx", "Wh", "b"]
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
        _check_weights("GRU", Wx, Wh, b, 3)
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.param_names = ["Wx", "Wh", "b"]
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
    """State handling shared by TimeRNN, TimeLSTM and TimeGRU (CONTRACT.md section 3)."""

    _has_cell = False

    def _init(self, Wx, Wh, b, stateful: bool) -> None:
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.param_names = ["Wx", "Wh", "b"]
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
        c = np.zeros_like(h) if c is None else np.array(c, dtype=dtype)
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


class TimeRNN(_TimeRecurrent):
    """Elman RNN unrolled over T steps; Wx, Wh, b shared across time.

    Params: Wx (D, H), Wh (H, H), b (H,).
    forward: xs (N, T, D) -> hs (N, T, H)
    backward: dhs (N, T, H) -> dxs (N, T, D); sets dh (N, H)
    """

    def __init__(self, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray, stateful: bool = False):
        _check_weights("TimeRNN", Wx, Wh, b, 1)
        self._init(Wx, Wh, b, stateful)

    def forward(self, xs: np.ndarray) -> np.ndarray:
        Wx, Wh, b = self.params
        h0, _ = self._start(xs)
        N, T, D = xs.shape
        ax = (xs.reshape(N * T, D) @ Wx + b).astype(b.dtype, copy=False)  # input part, all steps
        ax = ax.reshape(N, T, -1)
        hs = np.empty((N, T, Wh.shape[0]), dtype=Wh.dtype)
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
        _check_weights("TimeLSTM", Wx, Wh, b, 4)
        self._init(Wx, Wh, b, stateful)

    def forward(self, xs: np.ndarray) -> np.ndarray:
        Wx, Wh, b = self.params
        h0, c0 = self._start(xs)
        N, T, D = xs.shape
        H = Wh.shape[0]
        # One tanh per step gives all four gates: tanh(a * s) * s + off is sigmoid(a) in the
        # f, i, o blocks (sigmoid(a) = 0.5 * tanh(0.5 * a) + 0.5) and tanh(a) in g. s scales the
        # input part of all steps in one product and Wh once (exact: s is 0.5 or 1). Time-major
        # buffers: step t reads hs[t], cs[t] and writes zs[t], hs[t + 1], cs[t + 1] in place.
        s, off = _lstm_gate_scales(H, Wh.dtype)
        axs = xs.transpose(1, 0, 2).reshape(T * N, D) @ (Wx * s) + b * s
        axs = axs.astype(b.dtype, copy=False).reshape(T, N, 4 * H)
        Whs = Wh * s
        zs = np.empty((T, N, 4 * H), dtype=Wh.dtype)  # gates f, g, i, o of every step
        hs = np.empty((T + 1, N, H), dtype=Wh.dtype)  # hs[0] = h0
        cs = np.empty_like(hs)  # cs[0] = c0
        tanh_cs = np.empty((T, N, H), dtype=Wh.dtype)
        hs[0], cs[0] = h0, c0
        for t in range(T):
            z, c = zs[t], cs[t + 1]
            np.dot(hs[t], Whs, out=z)
            z += axs[t]
            np.tanh(z, out=z)
            z *= s
            z += off
            np.multiply(z[:, :H], cs[t], out=c)
            c += z[:, H : 2 * H] * z[:, 2 * H : 3 * H]
            np.tanh(c, out=tanh_cs[t])
            np.multiply(z[:, 3 * H :], tanh_cs[t], out=hs[t + 1])
        self.cache = (xs, hs, cs, zs, tanh_cs)
        self.h, self.c = hs[T].copy(), cs[T].copy()
        return hs[1:].transpose(1, 0, 2).copy()

    def backward(self, dhs: np.ndarray) -> np.ndarray:
        if self.cache is None:
            raise _no_forward("TimeLSTM.backward")
        Wx, Wh, _ = self.params
        xs, hs, cs, zs, tanh_cs = self.cache
        N, T, D = xs.shape
        H = Wh.shape[0]
        expected = (N, T, H)
        if dhs.shape != expected:
            raise _shape_error("TimeLSTM.backward", "dhs", str(expected), dhs.shape)
        dhs = dhs.astype(zs.dtype, copy=False)  # keeps dh, dc in the params' dtype
        # Everything that does not depend on the recurrence, for all steps at once: with
        # ds = dc + dh * o * (1 - tanh_c^2) the gradient reaching c, the pre-activation gradient
        # of blocks f, g, i is ds times coef[:, :, :3], and of block o dh times coef[:, :, 3].
        f, g, i, o = zs[..., :H], zs[..., H : 2 * H], zs[..., 2 * H : 3 * H], zs[..., 3 * H :]
        ds_per_dh = o * (1 - tanh_cs * tanh_cs)
        coef = np.empty((T, N, 4, H), dtype=zs.dtype)
        coef[:, :, 0] = cs[:-1] * f * (1 - f)
        coef[:, :, 1] = i * (1 - g * g)
        coef[:, :, 2] = g * i * (1 - i)
        coef[:, :, 3] = tanh_cs * o * (1 - o)
        da = np.empty((T, N, 4, H), dtype=zs.dtype)
        dh, dc = np.zeros((N, H), dtype=zs.dtype), np.zeros((N, H), dtype=zs.dtype)
        WhT = Wh.T
        for t in reversed(range(T)):
            dh = dhs[:, t] + dh
            ds = dc + dh * ds_per_dh[t]
            np.multiply(ds[:, None], coef[t, :, :3], out=da[t, :, :3])
            np.multiply(dh, coef[t, :, 3], out=da[t, :, 3])
            dc = ds * f[t]
            dh = np.dot(da[t].reshape(N, 4 * H), WhT)
        da2 = da.reshape(T * N, 4 * H)
        self.grads[0][...] = xs.transpose(1, 0, 2).reshape(T * N, D).T @ da2
        self.grads[1][...] = hs[:-1].reshape(T * N, H).T @ da2
        self.grads[2][...] = da2.sum(axis=0)
        self.dh, self.dc = dh, dc
        return (da2 @ Wx.T).reshape(T, N, D).transpose(1, 0, 2).copy()


class TimeGRU(_TimeRecurrent):
    """GRU unrolled over T steps; Wx, Wh, b shared across time.

    Params: Wx (D, 3H), Wh (H, 3H), b (3H,); gate order z, r, h~.
    forward: xs (N, T, D) -> hs (N, T, H)
    backward: dhs (N, T, H) -> dxs (N, T, D); sets dh (N, H)
    """

    def __init__(self, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray, stateful: bool = False):
        _check_weights("TimeGRU", Wx, Wh, b, 3)
        self._init(Wx, Wh, b, stateful)

    def forward(self, xs: np.ndarray) -> np.ndarray:
        Wx, Wh, b = self.params
        h0, _ = self._start(xs)
        N, T, D = xs.shape
        ax = (xs.reshape(N * T, D) @ Wx + b).astype(b.dtype, copy=False)  # input part, all steps
        ax = ax.reshape(N, T, -1)
        hs = np.empty((N, T, Wh.shape[0]), dtype=Wh.dtype)
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
