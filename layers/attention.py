"""Dot-product attention of *Deep Learning from Scratch 2*, ch. 8, with the blog copy's bugs fixed.

A decoder state h (N, H) scores every encoder state hs (N, Te, H) by a dot product, a softmax
turns the scores into weights a (N, Te), and the context c (N, H) is the weighted sum of hs.
``TimeAttention`` does this for every decoder step at once, with batched matrix products
instead of a Python loop, and keeps the weights (N, Td, Te) so they can be drawn.

None of these layers has parameters; they compute in the dtype of their inputs.
"""

from __future__ import annotations

import numpy as np

from layers.basic import Softmax, _no_forward, _shape_error

__all__ = ["Attention", "AttentionWeight", "TimeAttention", "WeightSum"]


def _check_float(layer: str, name: str, x: object, ndim: int, letters: str) -> None:
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":  # 10x cheaper than np.issubdtype
        kind = getattr(x, "dtype", type(x).__name__)
        raise TypeError(f"{layer}.forward: {name} must be a float ndarray {letters}, got {kind}")
    if x.ndim != ndim or 0 in x.shape:
        raise ValueError(
            f"{layer}.forward: {name} must have shape {letters}, every size >= 1, got {x.shape}"
        )


def _check_match(layer: str, name: str, got: tuple, expected: tuple, letters: str) -> None:
    """Raise unless ``got`` equals ``expected`` where ``expected`` is not None."""
    if len(got) != len(expected) or any(
        e is not None and e != g for g, e in zip(got, expected, strict=True)
    ):
        shown = "(" + ", ".join(str(e) if e is not None else "_" for e in expected) + ")"
        raise ValueError(
            f"{layer}.forward: expected {name} of shape {letters} = {shown}, got {got}"
        )


class AttentionWeight:
    """Weights of one decoder state over the encoder states: softmax of their dot products.

    No params.
    forward: hs (N, T, H), h (N, H) -> a (N, T), rows summing to 1
    backward: da (N, T) -> dhs (N, T, H), dh (N, H)
    """

    def __init__(self) -> None:
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []
        self.param_names: list[str] = []
        self.softmax = Softmax()
        self.cache: tuple[np.ndarray, np.ndarray] | None = None

    def forward(self, hs: np.ndarray, h: np.ndarray) -> np.ndarray:
        _check_float("AttentionWeight", "hs", hs, 3, "(N, T, H)")
        N, _, H = hs.shape
        _check_float("AttentionWeight", "h", h, 2, "(N, H)")
        _check_match("AttentionWeight", "h", h.shape, (N, H), "(N, H)")
        self.cache = (hs, h)
        return self.softmax.forward(np.matmul(hs, h[:, :, None])[:, :, 0])  # (N, T)

    def backward(self, da: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.cache is None:
            raise _no_forward("AttentionWeight.backward")
        hs, h = self.cache
        expected = hs.shape[:2]
        if da.shape != expected:
            raise _shape_error("AttentionWeight.backward", "da", str(expected), da.shape)
        ds = self.softmax.backward(da)  # (N, T)
        dhs = ds[:, :, None] * h[:, None, :]
        dh = np.matmul(ds[:, None, :], hs)[:, 0]
        return dhs, dh


class WeightSum:
    """Context vector: the encoder states summed with the attention weights.

    No params.
    forward: hs (N, T, H), a (N, T) -> c (N, H)
    backward: dc (N, H) -> dhs (N, T, H), da (N, T)
    """

    def __init__(self) -> None:
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []
        self.param_names: list[str] = []
        self.cache: tuple[np.ndarray, np.ndarray] | None = None

    def forward(self, hs: np.ndarray, a: np.ndarray) -> np.ndarray:
        _check_float("WeightSum", "hs", hs, 3, "(N, T, H)")
        N, T, _ = hs.shape
        _check_float("WeightSum", "a", a, 2, "(N, T)")
        _check_match("WeightSum", "a", a.shape, (N, T), "(N, T)")
        self.cache = (hs, a)
        return np.matmul(a[:, None, :], hs)[:, 0]

    def backward(self, dc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.cache is None:
            raise _no_forward("WeightSum.backward")
        hs, a = self.cache
        expected = (hs.shape[0], hs.shape[2])
        if dc.shape != expected:
            raise _shape_error("WeightSum.backward", "dc", str(expected), dc.shape)
        dhs = a[:, :, None] * dc[:, None, :]
        da = np.matmul(hs, dc[:, :, None])[:, :, 0]
        return dhs, da


class Attention:
    """One decoder step's attention: weights over the encoder states, then their weighted sum.

    No params. Keeps the last weights in ``attention_weight`` (N, T).
    forward: hs (N, T, H), h (N, H) -> c (N, H)
    backward: dc (N, H) -> dhs (N, T, H), dh (N, H)
    """

    def __init__(self) -> None:
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []
        self.param_names: list[str] = []
        self.attention_weight_layer = AttentionWeight()
        self.weight_sum_layer = WeightSum()
        self.attention_weight: np.ndarray | None = None

    def forward(self, hs: np.ndarray, h: np.ndarray) -> np.ndarray:
        a = self.attention_weight_layer.forward(hs, h)
        self.attention_weight = a
        return self.weight_sum_layer.forward(hs, a)

    def backward(self, dc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.attention_weight is None:
            raise _no_forward("Attention.backward")
        hs = self.weight_sum_layer.cache[0]
        expected = (hs.shape[0], hs.shape[2])
        if dc.shape != expected:
            raise _shape_error("Attention.backward", "dc", str(expected), dc.shape)
        dhs_sum, da = self.weight_sum_layer.backward(dc)
        dhs_weight, dh = self.attention_weight_layer.backward(da)
        return dhs_sum + dhs_weight, dh


class TimeAttention:
    """Attention for every decoder step at once; any encoder length Te and decoder length Td.

    The blog copy unpacks ``N, T, H = hs_enc`` (not its shape) and loops over the encoder's length;
    here the Td steps are two batched matrix products, equal to the loop over ``Attention``.
    No params. Keeps the last weights in ``attention_weights`` (N, Td, Te), rows summing to 1.
    forward: hs_enc (N, Te, H), hs_dec (N, Td, H) -> cs (N, Td, H)
    backward: dcs (N, Td, H) -> dhs_enc (N, Te, H), dhs_dec (N, Td, H)
    """

    def __init__(self) -> None:
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []
        self.param_names: list[str] = []
        self.softmax = Softmax()
        self.attention_weights: np.ndarray | None = None
        self.cache: tuple[np.ndarray, np.ndarray] | None = None

    def forward(self, hs_enc: np.ndarray, hs_dec: np.ndarray) -> np.ndarray:
        _check_float("TimeAttention", "hs_enc", hs_enc, 3, "(N, Te, H)")
        N, _, H = hs_enc.shape
        _check_float("TimeAttention", "hs_dec", hs_dec, 3, "(N, Td, H)")
        _check_match("TimeAttention", "hs_dec", hs_dec.shape, (N, None, H), "(N, Td, H)")
        a = self.softmax.forward(np.matmul(hs_dec, hs_enc.transpose(0, 2, 1)))  # (N, Td, Te)
        self.attention_weights = a
        self.cache = (hs_enc, hs_dec)
        return np.matmul(a, hs_enc)

    def backward(self, dcs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.cache is None:
            raise _no_forward("TimeAttention.backward")
        hs_enc, hs_dec = self.cache
        if dcs.shape != hs_dec.shape:
            raise _shape_error("TimeAttention.backward", "dcs", str(hs_dec.shape), dcs.shape)
        a = self.softmax.out
        da = np.matmul(dcs, hs_enc.transpose(0, 2, 1))  # (N, Td, Te)
        ds = self.softmax.backward(da)
        dhs_enc = np.matmul(a.transpose(0, 2, 1), dcs) + np.matmul(ds.transpose(0, 2, 1), hs_dec)
        dhs_dec = np.matmul(ds, hs_enc)
        return dhs_enc, dhs_dec
