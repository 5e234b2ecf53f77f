"""Optimisers and gradient clipping, updating arrays in place.

A model's ``params`` are its parts' arrays themselves (docs/contract.md), so every update here
writes into the parameter (``param -= ...``), never rebinds it: the layer holding the array sees
the step. The arithmetic stays in the parameters' dtype (scalars are Python floats, so float32
stays float32).
"""

import math

import numpy as np

__all__ = ["SGD", "Adam", "clip_grads", "global_norm"]


def _check_lr(lr: float) -> float:
    if not lr > 0:
        raise ValueError(f"lr={lr} must be > 0; try lr=1e-3")
    return float(lr)


def _check_pairs(params: list[np.ndarray], grads: list[np.ndarray]) -> None:
    if len(params) != len(grads):
        raise ValueError(f"{len(params)} params but {len(grads)} grads; pass model.params, .grads")


class SGD:
    """Plain gradient descent: param -= lr * grad."""

    def __init__(self, lr: float = 0.01):
        self.lr = _check_lr(lr)

    def update(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        _check_pairs(params, grads)
        for param, grad in zip(params, grads, strict=True):
            param -= self.lr * grad


class Adam:
    """Adam (Kingma & Ba) with the book's bias correction folded into the step size.

    Keeps one first- and second-moment array per parameter, created at the first update; the
    optimiser must see the same list of parameters at every call.
    """

    def __init__(
        self, lr: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-7
    ):
        self.lr = _check_lr(lr)
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= beta < 1:
                raise ValueError(f"{name}={beta} must be in [0, 1); try {name}=0.9")
        if not eps > 0:
            raise ValueError(f"eps={eps} must be > 0; try eps=1e-7")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.iter = 0
        self.m: list[np.ndarray] | None = None
        self.v: list[np.ndarray] | None = None

    def update(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        _check_pairs(params, grads)
        if self.m is None:
            self.m = [np.zeros_like(param) for param in params]
            self.v = [np.zeros_like(param) for param in params]
        elif len(self.m) != len(params):
            raise ValueError(f"Adam was started on {len(self.m)} params, now given {len(params)}")
        self.iter += 1
        t = self.iter
        lr_t = self.lr * math.sqrt(1 - self.beta2**t) / (1 - self.beta1**t)
        for param, grad, m, v in zip(params, grads, self.m, self.v, strict=True):
            m += (1 - self.beta1) * (grad - m)
            v += (1 - self.beta2) * (grad * grad - v)
            param -= lr_t * m / (np.sqrt(v) + self.eps)


def global_norm(grads: list[np.ndarray]) -> float:
    """The L2 norm of all gradients taken together (per-array sums added as Python floats)."""
    return math.sqrt(sum(float(np.vdot(g, g)) for g in grads))


def clip_grads(grads: list[np.ndarray], max_norm: float) -> float:
    """Scale all grads in place so that their global norm is at most max_norm.

    Returns the global norm before clipping (useful to log).
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm={max_norm} must be > 0; try max_norm=5.0")
    norm = global_norm(grads)
    rate = max_norm / (norm + 1e-6)
    if rate < 1:
        for grad in grads:
            grad *= rate
    return norm
