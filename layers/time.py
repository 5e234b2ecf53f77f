"""Time-distributed layers: the same weights applied at every step of a (N, T, ...) sequence.

The book loops over T with one layer object per step; here each layer handles all N * T rows
in one call, which gives the same numbers with less Python. Gradients of the shared weights
are summed over every step inside the layer.
"""

from __future__ import annotations

import numpy as np

from layers.basic import Dropout, Embedding, _no_forward, _range_error, _shape_error

__all__ = ["TimeAffine", "TimeDropout", "TimeEmbedding", "TimeSoftmaxWithLoss"]


class TimeEmbedding(Embedding):
    """Embedding lookup for every token of every sequence; W is shared across time, so
    repeated ids (within and across steps) add up in dW.

    Params: W (V, D).
    forward: xs (N, T) integer ids in [0, V) -> out (N, T, D)
    backward: dout (N, T, D) -> None (ids have no gradient)
    """

    _ids = "xs"

    def forward(self, xs: np.ndarray) -> np.ndarray:
        if xs.ndim != 2:
            raise _shape_error("TimeEmbedding.forward", "xs", "(N, T)", xs.shape)
        return super().forward(xs)


class TimeAffine:
    """xs @ W + b at every time step, as one (N*T, D) @ (D, H) product.

    Params: W (D, H), b (H,).
    forward: xs (N, T, D) -> out (N, T, H)
    backward: dout (N, T, H) -> dxs (N, T, D)
    """

    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        self.params = [W, b]
        self.grads = [np.zeros_like(W), np.zeros_like(b)]
        self.param_names = ["W", "b"]
        self.xs = None

    def forward(self, xs: np.ndarray) -> np.ndarray:
        W, b = self.params
        if xs.ndim != 3 or xs.shape[2] != W.shape[0]:
            raise _shape_error("TimeAffine.forward", "xs", f"(N, T, {W.shape[0]})", xs.shape)
        self.xs = xs = xs.astype(W.dtype, copy=False)  # xs @ W would follow a float64 xs
        N, T, D = xs.shape
        out = np.dot(xs.reshape(N * T, D), W)  # one 2-D product, then b in place
        out += b
        return out.reshape(N, T, -1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.xs is None:
            raise _no_forward("TimeAffine.backward")
        W, _ = self.params
        expected = self.xs.shape[:2] + W.shape[1:]
        if dout.shape != expected:
            raise _shape_error("TimeAffine.backward", "dout", str(expected), dout.shape)
        dout = dout.astype(W.dtype, copy=False)
        N, T, D = self.xs.shape
        dout2 = dout.reshape(N * T, -1)
        self.grads[0][...] = self.xs.reshape(N * T, D).T @ dout2
        self.grads[1][...] = dout2.sum(axis=0)
        return dout @ W.T


class TimeSoftmaxWithLoss:
    """Softmax cross-entropy at every step, averaged over the labels that are not ignored.

    Labels equal to ``ignore_label`` (padding) add nothing to the loss or the gradient. A batch
    whose labels are all ignored raises ValueError: its mean loss is 0 / 0. Unlike the book,
    backward leaves its cache alone, so a second backward returns the same dxs. No params:
    computes in the dtype of xs.
    forward: xs (N, T, V) scores, ts (N, T) labels in [0, V) or ignore_label -> loss (scalar
    of xs's dtype)
    backward: dout=1 -> dxs (N, T, V)
    """

    def __init__(self, *, ignore_label: int = -1) -> None:
        self.params, self.grads, self.param_names = [], [], []
        self.ignore_label = ignore_label
        self.cache = None

    def forward(self, xs: np.ndarray, ts: np.ndarray) -> np.floating:
        if xs.ndim != 3 or 0 in xs.shape:
            raise _shape_error("TimeSoftmaxWithLoss.forward", "xs", "(N, T, V), none 0", xs.shape)
        N, T, V = xs.shape
        if ts.shape != (N, T):
            raise _shape_error("TimeSoftmaxWithLoss.forward", "ts", f"({N}, {T})", ts.shape)
        if ts.dtype.kind not in "iu":
            raise TypeError(
                f"TimeSoftmaxWithLoss.forward: ts must hold integer labels, got {ts.dtype}"
            )
        x = xs.reshape(N * T, V)
        t = ts.reshape(N * T)
        if self.ignore_label < 0 <= t.min():  # the usual case: every label is a class
            mask, count = None, N * T
        else:
            mask = t != self.ignore_label
            count = int(np.count_nonzero(mask))
            if count == 0:
                raise ValueError(
                    f"TimeSoftmaxWithLoss.forward: every label in ts (shape {ts.shape}) equals "
                    f"ignore_label={self.ignore_label}, so the mean loss is 0 / 0; skip such "
                    "batches or give at least one real label"
                )
            t = np.where(mask, t, 0)  # any valid column; masked out below
            if t.min() < 0:  # -2 would silently be class V - 2
                raise _range_error(
                    "TimeSoftmaxWithLoss.forward", "ts", ts, V, ignore_label=self.ignore_label
                )
        shifted = x - x.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        try:
            log_p = shifted[np.arange(N * T), t] - np.log(total[:, 0])
        except IndexError:  # a label >= V (numpy checks the upper bound for free)
            raise _range_error(
                "TimeSoftmaxWithLoss.forward", "ts", ts, V, ignore_label=self.ignore_label
            ) from None
        if mask is not None:
            log_p *= mask
        self.cache = (t, e, total, mask, count, xs.shape)  # y = e / total, left to backward
        return -log_p.sum() / count

    def backward(self, dout=1) -> np.ndarray:
        if self.cache is None:
            raise _no_forward("TimeSoftmaxWithLoss.backward")
        t, e, total, mask, count, shape = self.cache
        dout = np.asarray(dout, dtype=e.dtype)
        if dout.ndim:  # a dout of any other shape would broadcast over the rows of dx
            raise _shape_error("TimeSoftmaxWithLoss.backward", "dout", "() (a scalar)", dout.shape)
        dx = e / total  # a new array: the book edits y in place, so its 2nd backward is wrong
        dx[np.arange(t.shape[0]), t] -= 1
        dx *= dout / count
        if mask is not None:
            dx *= mask[:, None]
        return dx.reshape(shape)


class TimeDropout(Dropout):
    """Inverted dropout over a whole sequence: an independent mask for every element.

    Same options as :class:`layers.Dropout` (``dropout_ratio``, own generator ``rng=``,
    ``train`` flag); the book keeps it as a separate class for use between Time layers.
    forward: xs (N, T, D) -> out (N, T, D)
    backward: dout (N, T, D) -> dxs (N, T, D)
    """

    def forward(self, xs: np.ndarray) -> np.ndarray:
        if xs.ndim != 3:
            raise _shape_error("TimeDropout.forward", "xs", "(N, T, D)", xs.shape)
        return super().forward(xs)
