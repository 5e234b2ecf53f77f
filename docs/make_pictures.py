"""Draw the pictures in ``docs/reports.md`` from a check of a known bug.

    python docs/make_pictures.py          # writes docs/heatmap.png

The bug: one LSTM step whose backward pass takes gate g (a tanh) through the sigmoid's
derivative. Every gradient that passes through gate g's pre-activation is then wrong: the
parameters only in gate block 1 (g's columns), the inputs everywhere. Needs matplotlib
(``pip install "gradcheck-seq2seq[plot]"``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import gradcheck

HERE = Path(__file__).resolve().parent


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


class LSTMStep:
    """One LSTM step, gate order f, g, i, o; backward takes gate g through the wrong derivative.

    Params: Wx (D, 4H), Wh (H, 4H), b (4H,).
    forward: x (N, D), h_prev (N, H), c_prev (N, H) -> h (N, H)
    backward: dh (N, H) -> dx (N, D), dh_prev (N, H), dc_prev (N, H)
    """

    def __init__(self, Wx, Wh, b):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.param_names = ["Wx", "Wh", "b"]

    def forward(self, x, h_prev, c_prev):
        Wx, Wh, b = self.params
        H = Wh.shape[0]
        a = x @ Wx + h_prev @ Wh + b
        f, g = _sigmoid(a[:, :H]), np.tanh(a[:, H : 2 * H])
        i, o = _sigmoid(a[:, 2 * H : 3 * H]), _sigmoid(a[:, 3 * H :])
        c = f * c_prev + g * i
        h = o * np.tanh(c)
        self.cache = (x, h_prev, c_prev, f, g, i, o, c)
        return h

    def backward(self, dh):
        Wx, Wh, _ = self.params
        x, h_prev, c_prev, f, g, i, o, c = self.cache
        tanh_c = np.tanh(c)
        ds = dh * o * (1 - tanh_c**2)
        df = ds * c_prev * f * (1 - f)
        dg = ds * i * g * (1 - g)  # BUG: g is a tanh: ds * i * (1 - g**2)
        di = ds * g * i * (1 - i)
        do = dh * tanh_c * o * (1 - o)
        da = np.hstack((df, dg, di, do))
        self.grads[0][...] = x.T @ da
        self.grads[1][...] = h_prev.T @ da
        self.grads[2][...] = da.sum(axis=0)
        return da @ Wx.T, da @ Wh.T, ds * f


def buggy_report() -> gradcheck.Report:
    """The report of the buggy step at N=3, D=4, H=5 (seed 0)."""
    rng = np.random.default_rng(0)
    N, D, H = 3, 4, 5
    layer = LSTMStep(
        rng.standard_normal((D, 4 * H)),
        rng.standard_normal((H, 4 * H)),
        rng.standard_normal(4 * H),
    )
    x, h_prev, c_prev = (rng.standard_normal((N, n)) for n in (D, H, H))
    return gradcheck.check_layer(layer, x, h_prev, c_prev, seed=0)


def main() -> int:
    report = buggy_report()
    print(report)
    try:
        fig = report.plot(values=False)
    except ImportError as exc:
        print(exc, file=sys.stderr)
        return 1
    fig.savefig(HERE / "heatmap.png", dpi=80)
    print(f"wrote {HERE / 'heatmap.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
