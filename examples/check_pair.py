"""A cs231n-style forward/backward pair, checked by gradcheck as it is written.

cs231n's convention: ``forward(*args)`` returns ``(out, cache)``, and ``backward(dout, cache)``
returns the gradients of the arguments in order. Layer normalisation written that way: each
row is normalised over its features, then scaled and shifted. The hard part is dx, which
reaches x directly, through the mean and through the variance. Check it with either of

    gradcheck examples/check_pair.py            # the case registered below, at drawn sizes
    python examples/check_pair.py               # one check, report printed
"""

import numpy as np

import gradcheck


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Normalise each row of x, then scale by gamma and shift by beta.

    x (N, D), gamma (D,), beta (D,) -> out (N, D), cache for layernorm_backward
    """
    mu = x.mean(axis=1, keepdims=True)
    inv_std = 1.0 / np.sqrt(x.var(axis=1, keepdims=True) + eps)
    xhat = (x - mu) * inv_std
    return gamma * xhat + beta, (xhat, inv_std, gamma)


def layernorm_backward(dout, cache):
    """dout (N, D) -> dx (N, D), dgamma (D,), dbeta (D,): the order of forward's arguments."""
    xhat, inv_std, gamma = cache
    dgamma = (dout * xhat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    dxhat = dout * gamma
    D = xhat.shape[1]
    # the three paths to x (direct, mean, variance), folded into one expression per row
    centred = D * dxhat - dxhat.sum(axis=1, keepdims=True)
    dx = inv_std / D * (centred - xhat * (dxhat * xhat).sum(axis=1, keepdims=True))
    return dx, dgamma, dbeta


@gradcheck.case(dims={"N": (1, 4), "D": (2, 6)})
def layernorm(rng, N, D):
    """gamma and beta away from 1 and 0, so that a gradient missing either shows."""
    x = rng.standard_normal((N, D))
    gamma, beta = 1 + 0.5 * rng.standard_normal(D), 0.5 * rng.standard_normal(D)
    return gradcheck.pair(layernorm_forward, layernorm_backward), (x, gamma, beta)


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    x, gamma, beta = rng.standard_normal((3, 5)), 1 + rng.standard_normal(5), rng.standard_normal(5)
    print(gradcheck.assert_pair(layernorm_forward, layernorm_backward, x, gamma, beta))
