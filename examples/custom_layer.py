"""A layer of your own, checked by gradcheck: layer normalisation (not in the book).

LayerNorm normalises each row over its last axis, then scales and shifts it. Its backward is
where hand-written code usually goes wrong: the mean and the variance both depend on x, and
forgetting either term still gives plausible-looking numbers. Check it with either of

    gradcheck examples/custom_layer.py          # every case registered below
    pytest examples/test_custom_layer.py        # the same layer in plain pytest tests
"""

import numpy as np

import gradcheck


class LayerNorm:
    """Normalise over the last axis, then scale by gamma and shift by beta.

    Params: gamma (D,), beta (D,).
    forward: x (..., D) -> y (..., D)
    backward: dy (..., D) -> dx (..., D)
    """

    def __init__(self, gamma, beta, eps=1e-5):
        self.params = [gamma, beta]
        self.grads = [np.zeros_like(gamma), np.zeros_like(beta)]
        self.param_names = ["gamma", "beta"]
        self.eps = eps
        self.cache = None

    def forward(self, x):
        gamma, beta = self.params
        mu = x.mean(axis=-1, keepdims=True)
        inv_std = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + self.eps)
        xhat = (x - mu) * inv_std
        self.cache = xhat, inv_std
        return gamma * xhat + beta

    def backward(self, dy):
        gamma, _ = self.params
        xhat, inv_std = self.cache
        batch_axes = tuple(range(dy.ndim - 1))
        self.grads[0][...] = (dy * xhat).sum(axis=batch_axes)
        self.grads[1][...] = dy.sum(axis=batch_axes)
        dxhat = dy * gamma
        # x enters xhat directly, through the mean, and through the variance: three terms
        mean_dxhat = dxhat.mean(axis=-1, keepdims=True)
        mean_dxhat_xhat = (dxhat * xhat).mean(axis=-1, keepdims=True)
        return inv_std * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)


@gradcheck.case(dims={"N": (1, 4), "T": (1, 3), "D": (1, 6)})
def layer_norm(rng, N, T, D):
    """A (N, T, D) batch with gamma and beta away from 1 and 0, so both gradients matter."""
    layer = LayerNorm(1 + 0.5 * rng.standard_normal(D), 0.5 * rng.standard_normal(D))
    return layer, (rng.standard_normal((N, T, D)),)
