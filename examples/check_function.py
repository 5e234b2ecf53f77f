"""A plain function with a hand-written vector-Jacobian product, checked by gradcheck.

Dot-product attention of one query per sequence over its T encoder states: the step of an
attention decoder that weighs what it reads. Its backward goes through a softmax and two
contractions, and each of dq, dK, dV has its own way to go wrong (a softmax Jacobian without
its centring term, a missing transpose) while keeping the right shape. Check it with either of

    gradcheck examples/check_function.py        # the case registered below, at drawn sizes
    python examples/check_function.py           # one check, report printed
"""

import numpy as np

import gradcheck


def _softmax(scores):
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attend(q, K, V):
    """Weigh the values V by the softmax of the query's dot products with the keys K.

    q (N, H), K (N, T, H), V (N, T, H) -> context (N, H)
    """
    weights = _softmax(np.einsum("nh,nth->nt", q, K))
    return np.einsum("nt,nth->nh", weights, V)


def attend_vjp(dcontext, q, K, V):
    """The gradients of ``sum(dcontext * attend(q, K, V))`` w.r.t. q, K and V, in that order.

    dcontext (N, H) -> dq (N, H), dK (N, T, H), dV (N, T, H)
    """
    weights = _softmax(np.einsum("nh,nth->nt", q, K))
    dV = weights[:, :, None] * dcontext[:, None, :]
    dweights = np.einsum("nh,nth->nt", dcontext, V)
    # softmax Jacobian: w * (g - <g, w>), the centring term keeps the weights summing to one
    dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True))
    dq = np.einsum("nt,nth->nh", dscores, K)
    dK = dscores[:, :, None] * q[:, None, :]
    return dq, dK, dV


@gradcheck.case(dims={"N": (1, 3), "T": (1, 4), "H": (1, 4)})
def attention(rng, N, T, H):
    """A batch of queries over T states; T = 1 (a softmax over one score) is drawn too."""
    q = rng.standard_normal((N, H))
    K, V = rng.standard_normal((N, T, H)), rng.standard_normal((N, T, H))
    return gradcheck.function(attend, attend_vjp), (q, K, V)


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    q, K, V = rng.standard_normal((2, 4)), *rng.standard_normal((2, 2, 3, 4))
    print(gradcheck.assert_function(attend, attend_vjp, q, K, V))  # raises if a gradient is wrong
