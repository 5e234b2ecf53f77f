"""A layer in numpy-ml's convention, checked by gradcheck without a wrapper class.

numpy-ml keeps a layer's parameters and gradients in dicts (``parameters``, ``gradients``),
appends every forward's input to ``X``, lets ``backward`` add into the gradients (``+=``, so
that several backward calls sum up before an update), and clears all that in
``flush_gradients()``, which binds fresh zero arrays. gradcheck takes such a layer with four
keywords: where the parameters and gradients are, what to call before every forward, and that
gradients accumulate by design. Check it with either of

    gradcheck examples/dict_layer.py            # the case registered below, at drawn sizes
    python examples/dict_layer.py               # one check, report printed
"""

import numpy as np

import gradcheck

#: how gradcheck reads a numpy-ml-style layer
CONVENTION = dict(params="parameters", grads="gradients", reset="flush_gradients", accumulates=True)


class Dense:
    """tanh(X @ W + b), with numpy-ml's bookkeeping.

    parameters: W (D, H), b (1, H); gradients: the same keys and shapes.
    forward: X (N, D) -> Y (N, H), appends X to self.X
    backward: dLdY (N, H) -> dLdX (N, D); adds into gradients (one dLdY per cached X; a list
    of them when several forwards ran since the last flush)
    """

    def __init__(self, W, b):
        self.parameters = {"W": W, "b": b}
        self.gradients = {k: np.zeros_like(v) for k, v in self.parameters.items()}
        self.X = []

    def forward(self, X):
        self.X.append(X)
        return np.tanh(X @ self.parameters["W"] + self.parameters["b"])

    def backward(self, dLdY):
        W, b = self.parameters["W"], self.parameters["b"]
        dXs = []
        for dY, X in zip(dLdY if isinstance(dLdY, list) else [dLdY], self.X, strict=False):
            dZ = dY * (1 - np.tanh(X @ W + b) ** 2)
            self.gradients["W"] += X.T @ dZ
            self.gradients["b"] += dZ.sum(axis=0, keepdims=True)
            dXs.append(dZ @ W.T)
        return dXs[0] if len(dXs) == 1 else dXs

    def flush_gradients(self):
        """Forget the cached inputs and start the gradients from zero (fresh arrays)."""
        self.X = []
        for k, v in self.gradients.items():
            self.gradients[k] = np.zeros_like(v)


@gradcheck.case(dims={"N": (1, 4), "D": (1, 5), "H": (1, 4)})
def dense(rng, N, D, H):
    """Small weights keep tanh away from saturation, so every gradient is visible."""
    layer = Dense(0.5 * rng.standard_normal((D, H)), 0.5 * rng.standard_normal((1, H)))
    return gradcheck.layer(layer, **CONVENTION), (rng.standard_normal((N, D)),)


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    layer = Dense(0.5 * rng.standard_normal((4, 3)), 0.5 * rng.standard_normal((1, 3)))
    X = rng.standard_normal((2, 4))
    print(gradcheck.assert_layer(layer, X, **CONVENTION))  # rows W and b: the dict keys
