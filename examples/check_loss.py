"""A cs231n-style loss that returns its own gradient, checked by gradcheck.

cs231n's losses return ``(loss, dx)``: the value and the gradient w.r.t. the scores in one call.
This one is the loss of a sequence decoder: softmax cross-entropy at every time step, summed
over time, averaged over the batch, with padded steps masked out. Two details are easy to miss:
dx must carry the same 1/N as the loss, and a masked step must get no gradient at all. Check
it with either of

    gradcheck examples/check_loss.py            # the case registered below, at drawn sizes
    python examples/check_loss.py               # one check, report printed
"""

import numpy as np

import gradcheck


def temporal_softmax_loss(x, y, mask):
    """Cross-entropy of the scores x against the labels y where mask is set.

    x (N, T, V) float scores, y (N, T) int labels, mask (N, T) bool
    -> loss (a float: summed over time, averaged over N), dx (N, T, V)
    """
    N = x.shape[0]
    shifted = x - x.max(axis=2, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
    picked = np.take_along_axis(log_probs, y[:, :, None], axis=2)[:, :, 0]
    loss = -(picked * mask).sum() / N
    dx = np.exp(log_probs)
    np.put_along_axis(dx, y[:, :, None], np.take_along_axis(dx, y[:, :, None], axis=2) - 1, axis=2)
    dx *= mask[:, :, None] / N
    return loss, dx


@gradcheck.case(dims={"N": (1, 3), "T": (1, 4), "V": (2, 5)})
def decoder_loss(rng, N, T, V):
    """Labels drawn with repeats, and a mask that keeps at least the first step of each row."""
    x = rng.standard_normal((N, T, V))
    y = rng.integers(0, V, size=(N, T))
    mask = rng.random((N, T)) < 0.7
    mask[:, 0] = True
    return gradcheck.loss(temporal_softmax_loss), (x, y, mask)


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, 3, 4)), rng.integers(0, 4, size=(2, 3))
    mask = np.array([[True, True, False], [True, False, False]])
    print(gradcheck.assert_loss(temporal_softmax_loss, x, y, mask))  # dx is d loss / d x
