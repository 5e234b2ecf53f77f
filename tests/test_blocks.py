"""Auto mode's blocked projections: every element covered, a wrong one pinned by bisection.

Each check has its negative control (a layer with a bug it must catch, and where) and its
positive one (the correct layer, which must pass).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradcheck import check_layer
from gradcheck.blocks import BLOCK, block_bounds, weights
from gradcheck.numerical import noise_level
from layers import Affine, ReLU


def _entry(report, name):
    (entry,) = [e for e in report.entries if e.name == name]
    return entry


def _big_affine(cls=Affine, seed=0, N=3, D=70, H=80):
    """An affine layer whose W (5,600 elements) takes two blocks."""
    rng = np.random.default_rng(seed)
    return cls(rng.standard_normal((D, H)), rng.standard_normal(H)), rng.standard_normal((N, D))


def _one_wrong(index, delta):
    class OneWrong(Affine):
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads[0][index] *= 1 + delta  # BUG in one element
            return dx

    return OneWrong


def test_blocks_cut_a_tensor_into_near_equal_pieces_of_at_most_BLOCK():
    bounds = block_bounds(2 * BLOCK + 1)
    assert list(bounds[[0, -1]]) == [0, 2 * BLOCK + 1] and len(bounds) == 4
    assert np.diff(bounds).max() <= BLOCK and np.ptp(np.diff(bounds)) <= 1
    assert list(block_bounds(5)) == [0, 5]


def test_weights_are_never_near_zero_and_the_same_for_the_same_seed():
    w = weights(3, 10_000)
    assert np.all((np.abs(w) >= 1) & (np.abs(w) < 2))
    assert 0.45 < np.mean(w > 0) < 0.55
    np.testing.assert_array_equal(w, weights(3, 10_000))
    assert not np.array_equal(w, weights(4, 10_000))


def test_a_correct_big_layer_passes_with_every_element_covered_in_few_forwards():
    layer, x = _big_affine()
    report = check_layer(layer, x, contract=False)
    assert report.passed, report
    w = _entry(report, "W")
    assert w.checked == 70 * 80 and "blocks: 2 of up to 2800 elements" in w.message
    # 4 forwards per block (x, W: 2, b), the noise measurement (8), probe and analytic pass
    assert report.forward_calls <= 4 * 4 + 8 + 6


def test_one_wrong_element_in_a_big_tensor_is_pinned_with_both_values():
    layer, x = _big_affine(_one_wrong((41, 17), 1e-2))
    report = check_layer(layer, x, contract=False)
    w = _entry(report, "W")
    assert w.status == "mismatch" and w.index == (41, 17), report
    assert "bisected to one element" in w.message
    assert w.analytic == pytest.approx(w.numeric * (1 + 1e-2), rel=1e-6)
    assert _entry(report, "b").passed and _entry(report, "input[0]").passed


def test_bisection_costs_a_few_forwards_per_halving_not_per_element():
    layer, x = _big_affine(_one_wrong((3, 5), 0.5))
    report = check_layer(layer, x, contract=False)
    assert _entry(report, "W").index == (3, 5)
    halvings = math.ceil(math.log2(BLOCK))
    # per halving two pieces of 4 forwards, and a third step (2) for the one that disagrees;
    # the same for the block and for the element measured on its own
    assert report.forward_calls <= 4 * 4 + 8 + 6 + 2 + 10 * halvings + 6


def test_a_wrong_pattern_in_a_small_tensor_is_named_element_by_element():
    class ScaledDW(Affine):
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads[0] *= 2  # BUG: every element of dW twice too large
            return dx

    rng = np.random.default_rng(1)
    layer = ScaledDW(rng.standard_normal((4, 5)), rng.standard_normal(5))
    w = _entry(check_layer(layer, rng.standard_normal((3, 4)), contract=False), "W")
    assert w.status == "mismatch" and w.wrong == 20
    assert "off by a constant factor" in w.pattern and "blocks" not in w.message


@pytest.mark.parametrize("seed", range(20))
def test_errors_of_a_pattern_do_not_cancel_along_the_weights(seed):
    """A transposed 3x3 gradient: along plain random signs the errors cancel whenever the signs
    happen to be symmetric (1 draw in 8); along weights of random sizes they never do."""

    class Transposed(Affine):
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads[0][...] = self.grads[0].T.copy()  # BUG: dW transposed
            return dx

    rng = np.random.default_rng(seed)
    layer = Transposed(rng.standard_normal((3, 3)), rng.standard_normal(3))
    report = check_layer(layer, rng.standard_normal((2, 3)), seed=seed, contract=False)
    assert _entry(report, "W").status == "mismatch"


def test_kinks_within_the_step_are_split_around_not_blamed():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3000))
    # within the step of the extrapolated differences (but not of eps), and exactly at the kink
    x[0, :40] = rng.choice([-1, 1], 40) * rng.uniform(2e-5, 3e-4, 40)
    x[1, 7] = 0.0
    report = check_layer(ReLU(), x)
    assert report.passed, report
    assert _entry(report, "input[0]").status in ("ok", "kink")


def test_a_wrong_mask_among_kinks_is_still_caught():
    class LeakyBug(ReLU):
        def backward(self, dout):
            dx = super().backward(dout)
            dx.reshape(-1)[4321] = dout.reshape(-1)[4321] * 0.5  # BUG in one element
            return dx

    rng = np.random.default_rng(3)
    x = np.abs(rng.standard_normal((2, 3000))) + 0.1
    x[0, :40] = rng.choice([-1, 1], 40) * rng.uniform(2e-5, 3e-4, 40)
    entry = _entry(check_layer(LeakyBug(), x), "input[0]")
    assert entry.status == "mismatch" and entry.index == (1, 4321 - 3000)


def test_a_nan_in_a_big_gradient_is_named_by_its_index():
    class NaNGradient(Affine):
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads[0][60, 2] = np.nan  # BUG
            return dx

    layer, x = _big_affine(NaNGradient)
    w = _entry(check_layer(layer, x, contract=False), "W")
    assert w.status == "mismatch" and w.index == (60, 2) and "NaN" in w.message


def test_noise_level_measures_the_rounding_it_is_given():
    rng = np.random.default_rng(5)
    x = rng.standard_normal(50)
    sigma = 1e-9

    def noisy():  # a smooth function plus noise of a known standard deviation
        seed = int(np.frombuffer(x.tobytes(), dtype=np.uint64).sum() % (2**63))
        return float(np.sum(np.sin(x))) + sigma * np.random.default_rng(seed).standard_normal()

    measured = noise_level(noisy, [x], seed=1)
    assert sigma / 4 < measured < 4 * sigma
    smooth = noise_level(lambda: float(np.sum(np.sin(x))), [x], seed=1)
    assert smooth < 1e-13  # float64 rounding, not the function's curvature
    x0 = x.copy()
    noise_level(noisy, [x], seed=1)
    np.testing.assert_array_equal(x, x0)  # put back bit for bit
    kinked = rng.standard_normal(1000)
    kinked[::10] = 0.0  # exact kinks at the point itself are no noise
    at_kinks = noise_level(lambda: float(np.sum(np.maximum(kinked, 0))), [kinked], seed=2)
    assert at_kinks < 1e-13


def test_a_block_that_disagrees_blames_only_an_element_wrong_on_its_own():
    """Every element off by a tenth of rtol, in a pattern whose sum along a block's weights can
    exceed the block's tolerance when <grad, u> happens to be small: full mode passes such a
    layer, and so must auto (a block's disagreement is confirmed on one element, or dropped)."""

    class SlightlyOff(Affine):
        def backward(self, dout):
            dx = super().backward(dout)
            W = self.grads[0]
            W *= 1 + 1e-6 * np.sign(np.sin(np.arange(W.size))).reshape(W.shape)
            return dx

    for seed in range(5):
        layer, x = _big_affine(SlightlyOff, seed=seed)
        full = check_layer(layer, x, mode="full", contract=False, seed=seed)
        auto = check_layer(layer, x, contract=False, seed=seed)
        assert full.passed and auto.passed, auto


def test_error_estimated_differences_see_an_error_plain_ones_cannot():
    """dW of an affine layer fed tiny inputs is about 1e-6: a 1e-3 error in one element is 1e-9,
    under the rounding of a plain difference at eps (a sum of outputs of order 1, over 1e-6),
    and well over that of the extrapolated differences at 7.4e-4, with the noise measured."""
    rng = np.random.default_rng(6)
    layer = _one_wrong((2, 3), 1e-3)(rng.standard_normal((4, 5)), rng.standard_normal(5))
    x = 1e-6 * rng.standard_normal((3, 4))
    for mode in ("full", "auto"):
        w = _entry(check_layer(layer, x, mode=mode, contract=False), "W")
        assert w.status == "mismatch" and w.index == (2, 3), mode
    fast = _entry(check_layer(layer, x, mode="fast", contract=False), "W")
    assert fast.passed  # (plain differences at eps: the error is under their noise)
    good = Affine(layer.params[0].copy(), layer.params[1].copy())
    assert check_layer(good, x, mode="full").passed and check_layer(good, x).passed


# --- what the extrapolated steps must not be trusted for: kinks and steep functions ---


class _Tanh:
    """tanh(gain * x): steep enough at gain 300 that a step of 7.4e-4 is no small step."""

    def __init__(self, gain):
        self.gain, self.params, self.grads = gain, [], []

    def forward(self, x):
        self.out = np.tanh(self.gain * x)
        return self.out

    def backward(self, dout):
        return dout * self.gain * (1 - self.out**2)


def test_a_kink_a_fraction_of_the_step_away_is_no_false_alarm():
    """A ReLU input 1.85e-4 from zero: between a quarter and a third of the larger step away,
    where the one-sided slopes at the two steps look like curvature; a third step shows the
    value moving with the step, and the element is taken again at eps."""
    x = np.array([[1.0, -1.85e-4, 0.5, -2.0]])
    for mode in ("auto", "full"):
        assert check_layer(ReLU(), x, mode=mode).passed, mode
    for seed in (1, 8):  # inputs where elements fell in that window
        x = np.random.default_rng(seed).standard_normal((1, 1000))
        assert check_layer(ReLU(), x, mode="full", contract=False).passed, seed


@pytest.mark.parametrize("seed", range(3))
def test_a_function_too_steep_for_the_steps_is_no_false_alarm(seed):
    x = np.random.default_rng(seed).standard_normal((4, 250)) / 300
    assert check_layer(_Tanh(300), x, mode="full", contract=False).passed
    assert check_layer(_Tanh(1000), x[:1, :1] * 0.3, contract=False).passed


def test_a_wrong_element_among_many_exact_kinks_is_found():
    """5 % of the inputs exactly 0 (the output of an earlier ReLU): every block disagrees at
    its kinks; bisecting around them still finds the one wrong element."""

    class OneWrong(ReLU):
        def backward(self, dout):
            dx = super().backward(dout)
            dx[9, 450] *= 1.05  # BUG: one element 5 % off
            return dx

    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 500))
    x[rng.random(x.shape) < 0.05] = 0.0
    x[9, 450] = 0.8
    entry = _entry(check_layer(OneWrong(), x, contract=False), "input[0]")
    assert entry.status == "mismatch" and entry.index == (9, 450)
    assert check_layer(ReLU(), x, contract=False).passed


def test_a_kink_near_the_point_does_not_hide_an_error_elsewhere_in_its_block():
    class OneWrong(ReLU):
        def backward(self, dout):
            dx = super().backward(dout)
            dx[7, 300] *= 1.1  # BUG
            return dx

    rng = np.random.default_rng(1)
    x = np.abs(rng.standard_normal((8, 500))) + 0.1
    x[2, 100] = 2e-6  # a kink within the larger step, inflating the block's error estimate
    entry = _entry(check_layer(OneWrong(), x, contract=False), "input[0]")
    assert entry.status == "mismatch" and entry.index == (7, 300)


class _Float32Tanh:
    """tanh(x @ W), computed in float32 inside (judged at float32 precision); ``scale``
    multiplies the gradient of the first quarter of W's columns (one gate block)."""

    def __init__(self, W, scale=1.0):
        self.params, self.grads, self.scale = [W], [np.zeros_like(W)], scale

    def forward(self, x):
        self.x = x
        out = np.tanh(x.astype(np.float32) @ self.params[0].astype(np.float32))
        self.out = out.astype(x.dtype)
        return self.out

    def backward(self, dout):
        d = dout * (1 - self.out**2)
        self.grads[0][...] = self.x.T @ d
        self.grads[0][:, : self.grads[0].shape[1] // 4] *= self.scale  # BUG when scale != 1
        return d @ self.params[0].T


def test_an_error_spread_thinly_over_a_block_is_blamed_on_the_block():
    """A gate block's gradient 0.5 % too large in float32: no element shows it on its own
    (float32 noise), but a block sums it coherently, far beyond what errors of rtol in each
    element could add up to."""
    rng = np.random.default_rng(0)
    W, x = rng.standard_normal((64, 256)) / 8, rng.standard_normal((16, 64))
    w = _entry(check_layer(_Float32Tanh(W, 1.005), x, contract=False), "params[0]")
    assert w.status == "mismatch" and w.index is None
    assert "no element of it is wrong on its own" in w.message
    assert check_layer(_Float32Tanh(W), x, contract=False).passed


class _BookSoftmaxWithLoss:
    """The book's: the loss of log(y + 1e-7), the backward of log(y). Every element off by a
    relative 1e-7 / y, under rtol at these sizes: full mode passes it."""

    def __init__(self):
        self.params, self.grads = [], []

    def forward(self, x, t):
        self.t = t
        e = np.exp(x - x.max(axis=1, keepdims=True))
        self.y = e / e.sum(axis=1, keepdims=True)
        return -np.sum(np.log(self.y[np.arange(len(t)), t] + 1e-7)) / len(t)

    def backward(self, dout=1):
        dx = self.y.copy()
        dx[np.arange(len(self.t)), self.t] -= 1
        return dout * dx / len(self.t)


def test_fast_mode_blames_a_marginal_direction_only_on_an_element_wrong_on_its_own():
    """A softmax gradient cancels along a random direction, so errors each under rtol can add
    up to more than rtol of <grad, v>: fast mode splits such a direction instead of blaming it
    (seed 25 failed fast mode before), and still catches a real error."""
    rng = np.random.default_rng(25)
    x, t = rng.standard_normal((3, 7)), rng.integers(0, 7, 3)
    for mode in ("full", "fast"):
        assert check_layer(_BookSoftmaxWithLoss(), x, t, mode=mode, seed=25).passed, mode

    class Unscaled(_BookSoftmaxWithLoss):
        def backward(self, dout=1):
            return super().backward(dout) * len(self.t)  # BUG: not divided by N

    assert not check_layer(Unscaled(), x, t, mode="fast", seed=25).passed
