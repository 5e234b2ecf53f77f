"""The book's basic layers, each forward beside its backward.

Every layer keeps ``params``, ``grads`` (same shapes and dtypes, written in place by
``backward``) and ``param_names``. A layer computes in the dtype of its parameters (of its input
when it has none); nothing here is hard-coded to float32.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "Affine",
    "Dropout",
    "Embedding",
    "MatMul",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "SoftmaxWithLoss",
]


def _shape_error(where: str, name: str, expected: str, got: tuple[int, ...]) -> ValueError:
    return ValueError(f"{where}: {name} must have shape {expected}, got {tuple(got)}")


def _no_forward(where: str) -> RuntimeError:
    return RuntimeError(
        f"{where}: call forward before backward (backward needs the caches of a forward; none "
        "has run since the layer was made, or a model's generate ran after it)"
    )


def _range_error(
    where: str, name: str, values: np.ndarray, V: int, *, ignore_label: int | None = None
) -> ValueError:
    """Name the first element of the integer array ``values`` outside [0, V) (that is not
    ``ignore_label``), its position and the valid range. Called once a cheap min/max failed."""
    bad = (values < 0) | (values >= V)
    if ignore_label is not None:
        bad &= values != ignore_label
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    also = "" if ignore_label is None else f" or ignore_label={ignore_label}"
    return ValueError(
        f"{where}: {name}{list(index)} = {values[index]} is out of range; every value of {name} "
        f"must be in [0, {V}){also}"
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # The tanh form never overflows (1 / (1 + exp(-x)) warns for x < -709) and keeps x's dtype.
    return 0.5 * np.tanh(0.5 * x) + 0.5


class MatMul:
    """x @ W without a bias; the building block of Affine and of the book's word2vec.

    Params: W (D, H).
    forward: x (N, D) -> out (N, H)
    backward: dout (N, H) -> dx (N, D)
    """

    def __init__(self, W: np.ndarray) -> None:
        self.params = [W]
        self.grads = [np.zeros_like(W)]
        self.param_names = ["W"]
        self.x = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        (W,) = self.params
        if x.ndim != 2 or x.shape[1] != W.shape[0]:
            raise _shape_error("MatMul.forward", "x", f"(N, {W.shape[0]})", x.shape)
        self.x = x = x.astype(W.dtype, copy=False)  # x @ W would follow a float64 x
        return x @ W

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.x is None:
            raise _no_forward("MatMul.backward")
        (W,) = self.params
        expected = (self.x.shape[0], W.shape[1])
        if dout.shape != expected:
            raise _shape_error("MatMul.backward", "dout", str(expected), dout.shape)
        dout = dout.astype(W.dtype, copy=False)
        self.grads[0][...] = self.x.T @ dout
        return dout @ W.T


class Affine:
    """x @ W + b: the fully connected layer.

    Params: W (D, H), b (H,).
    forward: x (N, D) -> out (N, H)
    backward: dout (N, H) -> dx (N, D)
    """

    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        self.params = [W, b]
        self.grads = [np.zeros_like(W), np.zeros_like(b)]
        self.param_names = ["W", "b"]
        self.x = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        W, b = self.params
        if x.ndim != 2 or x.shape[1] != W.shape[0]:
            raise _shape_error("Affine.forward", "x", f"(N, {W.shape[0]})", x.shape)
        self.x = x = x.astype(W.dtype, copy=False)  # x @ W would follow a float64 x
        return x @ W + b

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.x is None:
            raise _no_forward("Affine.backward")
        W, _ = self.params
        expected = (self.x.shape[0], W.shape[1])
        if dout.shape != expected:
            raise _shape_error("Affine.backward", "dout", str(expected), dout.shape)
        dout = dout.astype(W.dtype, copy=False)
        self.grads[0][...] = self.x.T @ dout
        self.grads[1][...] = dout.sum(axis=0)
        return dout @ W.T


class Sigmoid:
    """Elementwise logistic function; its derivative is out * (1 - out).

    No params: computes in the dtype of x.

    forward: x (any shape) -> out (same shape)
    backward: dout (same shape) -> dx (same shape)
    """

    def __init__(self) -> None:
        self.params, self.grads, self.param_names = [], [], []
        self.out = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = _sigmoid(x)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.out is None:
            raise _no_forward("Sigmoid.backward")
        if dout.shape != self.out.shape:
            raise _shape_error("Sigmoid.backward", "dout", str(self.out.shape), dout.shape)
        return dout * (1.0 - self.out) * self.out


class ReLU:
    """max(0, x) elementwise; the gradient passes where x > 0 (not differentiable at 0).

    No params: computes in the dtype of x.

    forward: x (any shape) -> out (same shape)
    backward: dout (same shape) -> dx (same shape)
    """

    def __init__(self) -> None:
        self.params, self.grads, self.param_names = [], [], []
        self.mask = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x > 0
        return x * self.mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.mask is None:
            raise _no_forward("ReLU.backward")
        if dout.shape != self.mask.shape:
            raise _shape_error("ReLU.backward", "dout", str(self.mask.shape), dout.shape)
        return dout * self.mask


class Softmax:
    """Softmax over the last axis, for inputs of any rank (attention scores are (N, Td, Te)).

    No params: computes in the dtype of x.

    forward: x (..., V) -> y (..., V), each row summing to 1
    backward: dout (..., V) -> dx (..., V)
    """

    def __init__(self) -> None:
        self.params, self.grads, self.param_names = [], [], []
        self.out = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        self.out = e / e.sum(axis=-1, keepdims=True)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.out is None:
            raise _no_forward("Softmax.backward")
        if dout.shape != self.out.shape:
            raise _shape_error("Softmax.backward", "dout", str(self.out.shape), dout.shape)
        y = self.out
        return y * (dout - (dout * y).sum(axis=-1, keepdims=True))


class SoftmaxWithLoss:
    """Softmax and mean cross-entropy against integer labels, fused for a simple gradient.

    The loss is computed from the log-softmax, so it needs no epsilon inside the log and its
    gradient (y - onehot(t)) / N is exact. No params: computes in the dtype of x.
    forward: x (N, V) scores, t (N,) integer labels in [0, V) -> loss (scalar of x's dtype)
    backward: dout=1 -> dx (N, V)
    """

    def __init__(self) -> None:
        self.params, self.grads, self.param_names = [], [], []
        self.y = None
        self.t = None

    def forward(self, x: np.ndarray, t: np.ndarray) -> np.floating:
        if x.ndim != 2:
            raise _shape_error("SoftmaxWithLoss.forward", "x", "(N, V)", x.shape)
        if t.shape != x.shape[:1]:
            raise _shape_error("SoftmaxWithLoss.forward", "t", f"({x.shape[0]},)", t.shape)
        if t.dtype.kind not in "iu":
            raise TypeError(f"SoftmaxWithLoss.forward: t must hold integer labels, got {t.dtype}")
        N, V = x.shape
        if N and t.min() < 0:  # x[:, -1] would silently be the last class
            raise _range_error("SoftmaxWithLoss.forward", "t", t, V)
        shifted = x - x.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        try:
            log_p = shifted[np.arange(N), t] - np.log(total[:, 0])
        except IndexError:  # a label >= V (numpy checks the upper bound for free)
            raise _range_error("SoftmaxWithLoss.forward", "t", t, V) from None
        self.y = e / total
        self.t = t
        return -log_p.sum() / N

    def backward(self, dout=1) -> np.ndarray:
        if self.t is None:
            raise _no_forward("SoftmaxWithLoss.backward")
        dout = np.asarray(dout, dtype=self.y.dtype)
        if dout.ndim:  # an (N,) dout would broadcast over the rows of dx
            raise _shape_error("SoftmaxWithLoss.backward", "dout", "() (a scalar)", dout.shape)
        N = self.t.shape[0]
        dx = self.y.copy()  # the cache stays intact: a second backward gives the same dx
        dx[np.arange(N), self.t] -= 1
        dx *= dout / N
        return dx


class Embedding:
    """Row lookup W[idx]; backward scatters dout into dW, summing rows for repeated ids.

    Params: W (V, D).
    forward: idx (integer array of ids in [0, V), any shape S) -> out (S + (D,))
    backward: dout (S + (D,)) -> None (ids have no gradient)
    """

    _ids = "idx"  # what errors call the ids argument

    def __init__(self, W: np.ndarray) -> None:
        self.params = [W]
        self.grads = [np.zeros_like(W)]
        self.param_names = ["W"]
        self.idx = None

    def forward(self, idx: np.ndarray) -> np.ndarray:
        where = f"{type(self).__name__}.forward"
        if idx.dtype.kind not in "iu":
            raise TypeError(f"{where}: {self._ids} must hold integer ids, got {idx.dtype}")
        W = self.params[0]
        if idx.size and idx.min() < 0:  # W[-1] would silently be the last row
            raise _range_error(where, self._ids, idx, W.shape[0])
        try:
            return self._lookup(idx)
        except IndexError:  # an id >= V (numpy checks the upper bound for free)
            raise _range_error(where, self._ids, idx, W.shape[0]) from None

    def _lookup(self, idx: np.ndarray) -> np.ndarray:
        """forward without the checks, for ids already checked (by a model's forward)."""
        out = self.params[0][idx]
        self.idx = idx
        return out

    def backward(self, dout: np.ndarray) -> None:
        where = f"{type(self).__name__}.backward"
        if self.idx is None:
            raise _no_forward(where)
        dW = self.grads[0]
        expected = self.idx.shape + dW.shape[1:]
        if dout.shape != expected:
            raise _shape_error(where, "dout", str(expected), dout.shape)
        dW[...] = 0
        np.add.at(dW, self.idx, dout)  # dW[idx] += dout would drop repeated ids
        return None


class Dropout:
    """Inverted dropout: zero each element with probability ``dropout_ratio`` while training and
    scale the survivors by 1 / (1 - ratio), so evaluation (``train = False``) is the identity.

    Masks come from the layer's own generator ``rng`` (a seed or ``numpy.random.Generator``),
    never from the global ``np.random`` state. No params: computes in the dtype of x.
    forward: x (any shape) -> out (same shape)
    backward: dout (same shape) -> dx (same shape)
    """

    def __init__(
        self,
        dropout_ratio: float = 0.5,
        *,
        rng: int | np.random.Generator | None = None,
        train: bool = True,
    ) -> None:
        if not 0.0 <= dropout_ratio < 1.0:
            raise ValueError(
                f"dropout_ratio={dropout_ratio} must be in [0, 1); try dropout_ratio=0.5"
            )
        self.params, self.grads, self.param_names = [], [], []
        self.dropout_ratio = dropout_ratio
        self.rng = np.random.default_rng(rng)
        self.train = train
        self.mask = None  # None in evaluation mode: backward is the identity
        self.shape = None  # of the last forward's x

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.shape = x.shape
        if not self.train:
            self.mask = None
            return x.copy()
        keep = self.rng.random(x.shape) >= self.dropout_ratio
        self.mask = keep * x.dtype.type(1.0 / (1.0 - self.dropout_ratio))
        return x * self.mask

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.shape is None:
            raise _no_forward(f"{type(self).__name__}.backward")
        if dout.shape != self.shape:
            where = f"{type(self).__name__}.backward"
            raise _shape_error(where, "dout", str(self.shape), dout.shape)
        if self.mask is None:
            return dout.copy()
        return dout * self.mask
