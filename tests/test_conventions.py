"""Code of other conventions, checked as it is written: functions with a vjp, cs231n pairs and
losses, numpy-ml-style dict layers, the book's return convention, and skip=.

Each entry point has a negative control (a realistic bug, which must fail with the wrong
gradient named by its argument's name or dict key in the failing row) and a positive one (the
correct twin passes under the same settings). Then: every kind of subject runs through a
registered case (the CLI, the runner, the hypothesis strategy), and the bundled examples run.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import runpy
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gradcheck
from gradcheck import cases as case_registry
from gradcheck.cli import main
from gradcheck.options import CONTRACT_CHECKS
from gradcheck.strategies import layer_cases

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FULL = dict(mode="full")
OVERWRITTEN = "grads overwritten, not accumulated"


def _failing_row(report, name):
    """The row of ``str(report)`` that blames ``name`` (an argument name, a dict key, a
    contract check); fails the test when the report passed or no failing row names it."""
    text = str(report)
    assert not report.passed, text
    rows = [e.line().splitlines()[0] for e in report.entries if not e.passed]
    word = re.compile(rf"(?<![\w\[]){re.escape(name)}(?![\w\]])")
    named = [row for row in rows if word.search(row)]
    assert named, f"no failing row names {name!r}:\n{text}"
    assert all(row in text for row in named)
    return named[0]


def _entry(report, name):
    """The gradient entry labelled by ``name`` (``x``, ``input[1] h``, ``W``)."""
    word = re.compile(rf"(?<![\w\[]){re.escape(name)}(?![\w\]])")
    found = [e for e in report.gradients if word.search(e.label or e.name)]
    assert len(found) == 1, f"{name!r} labels {len(found)} gradient rows:\n{report}"
    return found[0]


def _compared(report):
    """The labels of the gradient rows that compared something (not skipped)."""
    return [e.label or e.name for e in report.gradients if e.status != "skipped"]


def _contract(report, name):
    (entry,) = [e for e in report.contract if e.name == name]
    return entry


# --- check_function: f(*args) and vjp(dout, *args) ------------------------------------------


def affine(x, W, b):
    return x @ W + b


def affine_vjp(dout, x, W, b):
    return dout @ W.T, x.T @ dout, dout.sum(axis=0)


def affine_vjp_missing_transpose(dout, x, W, b):
    return dout @ W, x.T @ dout, dout.sum(axis=0)  # BUG: W, not W.T (same shape: W is square)


def affine_vjp_ignoring_dout(dout, x, W, b):
    ones = np.ones_like(dout)  # BUG: the gradient of sum(out), whatever dout is
    return ones @ W.T, x.T @ ones, ones.sum(axis=0)


def _affine_inputs(seed=0, N=3, D=4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, D)), rng.standard_normal((D, D)), rng.standard_normal(D)


def test_function_with_correct_vjp_passes_with_rows_named_by_arguments():
    report = gradcheck.check_function(affine, affine_vjp, *_affine_inputs(), **FULL)
    assert report.passed, report
    assert [_entry(report, n).passed for n in ("x", "W", "b")] == [True] * 3
    assert not any((e.label or e.name).startswith("input[") for e in report.gradients)


def test_function_vjp_missing_a_transpose_is_blamed_on_x_only():
    report = gradcheck.check_function(
        affine, affine_vjp_missing_transpose, *_affine_inputs(), **FULL
    )
    row = _failing_row(report, "x")
    assert "max |analytic - numeric|" in row
    assert _entry(report, "W").passed and _entry(report, "b").passed, report


def test_function_vjp_ignoring_dout_is_blamed_on_every_argument():
    report = gradcheck.check_function(affine, affine_vjp_ignoring_dout, *_affine_inputs(), **FULL)
    for name in ("x", "W", "b"):
        _failing_row(report, name)
    assert "affine_vjp_ignoring_dout" in str(report).splitlines()[0]  # the header names the vjp


def test_assert_function_raises_with_the_report_and_returns_it_when_right():
    inputs = _affine_inputs()
    with pytest.raises(gradcheck.GradientMismatch) as caught:
        gradcheck.assert_function(affine, affine_vjp_missing_transpose, *inputs, **FULL)
    assert not caught.value.report.passed
    assert gradcheck.assert_function(affine, affine_vjp, *inputs, **FULL).passed


def lookup(ids, W):
    return W[ids]


def lookup_vjp(dout, ids, W):
    dW = np.zeros_like(W)
    np.add.at(dW, ids, dout)
    return None, dW


def lookup_vjp_fancy_index(dout, ids, W):
    dW = np.zeros_like(W)
    dW[ids] += dout  # BUG: buffered fancy indexing keeps one of each repeated id
    return None, dW


@pytest.mark.parametrize("vjp, passes", [(lookup_vjp, True), (lookup_vjp_fancy_index, False)])
def test_function_with_integer_ids_checks_only_W(vjp, passes):
    rng = np.random.default_rng(1)
    ids, W = np.array([[0, 2, 2], [1, 0, 0]]), rng.standard_normal((3, 4))  # repeated ids
    report = gradcheck.check_function(lookup, vjp, ids, W, **FULL)
    assert _compared(report) == ["W"], report
    if passes:
        assert report.passed, report
    else:
        _failing_row(report, "W")


def half_squared_norm(x):
    return 0.5 * float(np.sum(x * x))


def test_function_returning_a_float_is_checked_with_dout_one():
    x = np.random.default_rng(2).standard_normal((2, 3))
    report = gradcheck.check_function(half_squared_norm, lambda dout, x: dout * x, x, **FULL)
    assert report.passed, report
    wrong = gradcheck.check_function(half_squared_norm, lambda dout, x: 2 * dout * x, x, **FULL)
    _failing_row(wrong, "x")


# --- check_pair: forward(*args) -> (*outs, cache), backward(*douts, cache) -------------------


def scale_shift_forward(x, gamma, beta):
    out = x * gamma + beta
    return out, (x, gamma)


def scale_shift_backward(dout, cache):
    x, gamma = cache
    return dout * gamma, (dout * x).sum(axis=0), dout.sum(axis=0)


def scale_shift_backward_forgets_x(dout, cache):
    _, gamma = cache
    return dout * gamma, dout.sum(axis=0), dout.sum(axis=0)  # BUG: dgamma without x


def scale_shift_backward_zeroes_dout(dout, cache):
    x, gamma = cache
    dbeta = dout.sum(axis=0)
    dx = dout
    dx *= gamma  # BUG: scales the caller's dout in place (and returns it as dx)
    return dx, (dout / gamma * x).sum(axis=0), dbeta


def _scale_shift_inputs(seed=3, N=3, D=4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, D)), 1 + rng.standard_normal(D), rng.standard_normal(D)


def test_pair_correct_passes_with_rows_named_from_forward_signature():
    report = gradcheck.check_pair(
        scale_shift_forward, scale_shift_backward, *_scale_shift_inputs(), **FULL
    )
    assert report.passed, report
    assert all(_entry(report, n).passed for n in ("x", "gamma", "beta"))


def test_pair_backward_forgetting_x_in_dgamma_is_blamed_on_gamma():
    report = gradcheck.check_pair(
        scale_shift_forward, scale_shift_backward_forgets_x, *_scale_shift_inputs(), **FULL
    )
    _failing_row(report, "gamma")
    assert _entry(report, "x").passed and _entry(report, "beta").passed, report
    assert "scale_shift_backward_forgets_x" in str(report).splitlines()[0]


def test_pair_backward_writing_into_dout_breaks_dout_unmodified():
    report = gradcheck.check_pair(
        scale_shift_forward, scale_shift_backward_zeroes_dout, *_scale_shift_inputs(), **FULL
    )
    assert "dout" in _failing_row(report, "dout unmodified")


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def cell_step_forward(x, prev_c):
    """A gated cell without weights: c = sigmoid(x) * prev_c + tanh(x), h = tanh(c)."""
    f = _sigmoid(x)
    next_c = f * prev_c + np.tanh(x)
    next_h = np.tanh(next_c)
    return next_h, next_c, (x, prev_c, f, next_h)


def cell_step_backward(dnext_h, dnext_c, cache):
    x, prev_c, f, next_h = cache
    dc = dnext_c + dnext_h * (1 - next_h**2)
    dx = dc * (prev_c * f * (1 - f) + 1 - np.tanh(x) ** 2)
    return dx, dc * f


def cell_step_backward_drops_dh_path(dnext_h, dnext_c, cache):
    x, prev_c, f, next_h = cache
    dc = dnext_c + dnext_h * (1 - next_h**2)
    dx = dc * (prev_c * f * (1 - f) + 1 - np.tanh(x) ** 2)
    return dx, dnext_c * f  # BUG: dprev_c from dnext_c alone, the path through next_h lost


def cell_step_backward_into_dnext_c(dnext_h, dnext_c, cache):
    x, prev_c, f, next_h = cache
    dnext_c += dnext_h * (1 - next_h**2)  # BUG: the caller's dnext_c (seen in cs231n solutions)
    dx = dnext_c * (prev_c * f * (1 - f) + 1 - np.tanh(x) ** 2)
    return dx, dnext_c * f


def _cell_inputs(seed=4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((2, 3)), rng.standard_normal((2, 3))


def test_pair_with_two_outputs_takes_one_dout_each_and_passes_when_right():
    report = gradcheck.check_pair(cell_step_forward, cell_step_backward, *_cell_inputs(), **FULL)
    assert report.passed, report
    assert _entry(report, "prev_c").passed


def test_pair_dropping_the_dnext_h_path_is_blamed_on_prev_c():
    report = gradcheck.check_pair(
        cell_step_forward, cell_step_backward_drops_dh_path, *_cell_inputs(), **FULL
    )
    _failing_row(report, "prev_c")
    assert _entry(report, "x").passed, report


def test_pair_adding_into_the_callers_dnext_c_breaks_dout_unmodified():
    report = gradcheck.check_pair(
        cell_step_forward, cell_step_backward_into_dnext_c, *_cell_inputs(), **FULL
    )
    _failing_row(report, "dout unmodified")
    assert _entry(report, "x").passed and _entry(report, "prev_c").passed, report


def leaky_relu_forward(x, relu_param):
    """cs231n passes hyper-parameters in a dict argument (conv_param, bn_param)."""
    slope = relu_param["slope"]
    return np.where(x > 0, x, slope * x), (x, slope)


def leaky_relu_backward(dout, cache):
    x, slope = cache
    return np.where(x > 0, dout, slope * dout)


def test_pair_with_a_dict_argument_passes_it_through_and_checks_the_arrays():
    x = np.random.default_rng(5).standard_normal((3, 4)) + 0.1
    report = gradcheck.check_pair(leaky_relu_forward, leaky_relu_backward, x, {"slope": 0.1})
    assert report.passed, report
    assert _compared(report) == ["x"]


# --- check_loss: f(*args) -> (loss, dx) ------------------------------------------------------


def softmax_loss(x, y):
    """Mean cross-entropy over the N rows of x; dx carries the same 1/N."""
    N = x.shape[0]
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(N), y]).mean()
    dx = p.copy()
    dx[np.arange(N), y] -= 1
    return loss, dx / N


def softmax_loss_sum_dx(x, y):
    loss, dx = softmax_loss(x, y)
    return loss, dx * x.shape[0]  # BUG: dx of the summed loss, the loss is the mean


def _loss_inputs(seed=6):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((4, 5)), np.array([0, 3, 3, 1])


def test_loss_correct_passes():
    report = gradcheck.check_loss(softmax_loss, *_loss_inputs(), **FULL)
    assert report.passed, report
    assert _compared(report) == ["x"]


def test_loss_whose_dx_is_not_divided_by_N_is_blamed_on_x():
    report = gradcheck.check_loss(softmax_loss_sum_dx, *_loss_inputs(), **FULL)
    row = _failing_row(report, "x")
    assert "max |analytic - numeric|" in row
    with pytest.raises(gradcheck.GradientMismatch):
        gradcheck.assert_loss(softmax_loss_sum_dx, *_loss_inputs(), **FULL)


def linear_softmax_loss(W, X, y, reg):
    """cs231n's classifier form: the gradient returned is dW, of the first argument."""
    loss, dscores = softmax_loss(X @ W, y)
    return loss + reg * np.sum(W * W), X.T @ dscores + 2 * reg * W


def linear_softmax_loss_without_reg(W, X, y, reg):
    loss, dscores = softmax_loss(X @ W, y)
    return loss, X.T @ dscores + 2 * reg * W  # BUG: the loss forgot reg * sum(W * W)


@pytest.mark.parametrize(
    "f, passes", [(linear_softmax_loss, True), (linear_softmax_loss_without_reg, False)]
)
def test_loss_wrt_W_with_a_float_regularisation_argument(f, passes):
    rng = np.random.default_rng(7)
    W, X, y = 0.1 * rng.standard_normal((6, 5)), rng.standard_normal((4, 6)), np.array([0, 1, 4, 2])
    report = gradcheck.check_loss(f, W, X, y, 0.1, wrt=0, **FULL)
    assert _compared(report) == ["W"], report  # X is an argument, but dx is dloss/dW
    if passes:
        assert report.passed, report
    else:
        _failing_row(report, "W")


# --- check_layer with params= grads= reset= accumulates= (numpy-ml's convention) -------------


class DictDense:
    """numpy-ml-style tanh(X @ W + b): dict parameters and gradients, gradients added up
    (+=), inputs cached in X until flush_gradients() binds fresh zero gradients."""

    def __init__(self, W, b):
        self.parameters = {"W": W, "b": b}
        self.gradients = {k: np.zeros_like(v) for k, v in self.parameters.items()}
        self.X = []

    def forward(self, X):
        self.X.append(X)
        return np.tanh(X @ self.parameters["W"] + self.parameters["b"])

    def _dZ(self, dY, X):
        return dY * (1 - np.tanh(X @ self.parameters["W"] + self.parameters["b"]) ** 2)

    def backward(self, dLdy):
        X = self.X[0]
        dZ = self._dZ(dLdy, X)
        self.gradients["W"] += X.T @ dZ
        self.gradients["b"] += dZ.sum(axis=0, keepdims=True)
        return dZ @ self.parameters["W"].T

    def flush_gradients(self):
        self.X = []
        for k, v in self.gradients.items():
            self.gradients[k] = np.zeros_like(v)


class DictDenseSkipsActivationInDW(DictDense):
    def backward(self, dLdy):
        X = self.X[0]
        dZ = self._dZ(dLdy, X)
        self.gradients["W"] += X.T @ dLdy  # BUG: dLdy, not dZ: the tanh derivative skipped
        self.gradients["b"] += dZ.sum(axis=0, keepdims=True)
        return dZ @ self.parameters["W"].T


class DictDropout(DictDense):
    """Dropout on the input of DictDense, the mask from the layer's own generator; the buggy
    version (numpy-ml's Dropout wrapper) returns dX without applying the mask."""

    def __init__(self, W, b, apply_mask=True):
        super().__init__(W, b)
        self.apply_mask = apply_mask
        self.rng = np.random.default_rng(0)
        self.masks = []

    def forward(self, X):
        mask = self.rng.random(X.shape) >= 0.5
        self.masks.append(mask)
        return super().forward(X * mask)

    def backward(self, dLdy):
        dX = super().backward(dLdy)
        return dX * self.masks[0] if self.apply_mask else dX  # BUG when apply_mask=False

    def flush_gradients(self):
        super().flush_gradients()
        self.masks = []


NUMPY_ML = dict(params="parameters", grads="gradients", reset="flush_gradients", accumulates=True)


def _dense_inputs(seed=8):
    rng = np.random.default_rng(seed)
    W, b = 0.5 * rng.standard_normal((4, 3)), 0.5 * rng.standard_normal((1, 3))
    return W, b, rng.standard_normal((2, 4))


def test_dict_layer_passes_with_rows_named_by_dict_keys_and_accumulation_not_applicable():
    W, b, X = _dense_inputs()
    report = gradcheck.check_layer(DictDense(W, b), X, **NUMPY_ML, **FULL)
    assert report.passed, report
    assert _entry(report, "W").passed and _entry(report, "b").passed
    assert _entry(report, "input[0] X").passed
    entry = _contract(report, OVERWRITTEN)
    assert entry.status == "skipped" and "not applicable" in entry.message, report


def test_dict_layer_skipping_the_activation_in_dW_is_blamed_on_W():
    W, b, X = _dense_inputs()
    report = gradcheck.check_layer(DictDenseSkipsActivationInDW(W, b), X, **NUMPY_ML, **FULL)
    _failing_row(report, "W")
    assert _entry(report, "b").passed and _entry(report, "input[0] X").passed, report


@pytest.mark.parametrize("apply_mask", [True, False])
def test_dict_dropout_whose_backward_skips_the_mask_is_blamed_on_X(apply_mask):
    W, b, X = _dense_inputs()
    report = gradcheck.check_layer(DictDropout(W, b, apply_mask), X, **NUMPY_ML, **FULL)
    if apply_mask:
        assert report.passed, report
    else:
        _failing_row(report, "X")
        assert _entry(report, "W").passed and _entry(report, "b").passed, report


def test_dict_layer_read_through_callables():
    W, b, X = _dense_inputs()
    report = gradcheck.check_layer(
        DictDense(W, b),
        X,
        params=lambda layer: layer.parameters,
        grads=lambda layer: layer.gradients,
        reset=lambda layer: layer.flush_gradients(),
        accumulates=True,
        **FULL,
    )
    assert report.passed, report


class LazyDictDense(DictDense):
    """numpy-ml's FullyConnected: no parameters until the first forward sees n_in."""

    def __init__(self, n_out, seed=0):
        self.n_out, self.seed = n_out, seed
        self.parameters = {"W": None, "b": None}
        self.gradients = {}
        self.X = []

    def forward(self, X):
        if self.parameters["W"] is None:
            rng = np.random.default_rng(self.seed)
            W = 0.5 * rng.standard_normal((X.shape[1], self.n_out))
            super().__init__(W, np.zeros((1, self.n_out)))
        return super().forward(X)


def test_dict_layer_whose_parameters_appear_on_the_first_forward_is_checked():
    X = np.random.default_rng(9).standard_normal((2, 4))
    report = gradcheck.check_layer(LazyDictDense(3), X, **NUMPY_ML, **FULL)
    assert report.passed, report
    assert _entry(report, "W").shape == (4, 3)


def test_accumulating_dict_layer_without_accumulates_fails_the_overwrite_check():
    W, b, X = _dense_inputs()
    report = gradcheck.check_layer(
        DictDense(W, b), X, params="parameters", grads="gradients", reset="flush_gradients"
    )
    _failing_row(report, OVERWRITTEN)


# --- the book's return convention: backward returns only the float inputs' gradients ---------


class StartStateDecoder:
    """out[n, t] = W[xs[n, t]] + h[n]: forward(xs, h) with integer xs; backward returns dh
    only, as the book's Decoder does. Params: W (V, H)."""

    def __init__(self, W, last_step_only=False):
        self.params, self.grads = [W], [np.zeros_like(W)]
        self.param_names = ["W"]
        self.last_step_only = last_step_only

    def forward(self, xs, h):
        self.xs = xs
        return self.params[0][xs] + h[:, None, :]

    def backward(self, dout):
        self.grads[0][...] = 0
        np.add.at(self.grads[0], self.xs, dout)
        if self.last_step_only:
            return dout[:, -1].copy()  # BUG: dh from the last time step only
        return dout.sum(axis=1)


def _decoder_inputs(seed=10):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((5, 3)), rng.integers(0, 5, (2, 4)), rng.standard_normal((2, 3))


@pytest.mark.parametrize("last_step_only", [False, True])
def test_book_decoder_returning_only_dh_is_accepted_and_dh_checked(last_step_only):
    W, xs, h = _decoder_inputs()
    report = gradcheck.check_layer(StartStateDecoder(W, last_step_only), xs, h, **FULL)
    if last_step_only:
        _failing_row(report, "h")
        assert _entry(report, "W").passed, report
    else:
        assert report.passed, report
        assert _entry(report, "input[1] h").passed


class TwoStateDecoder(StartStateDecoder):
    """forward(xs, h, c) with two float inputs, but backward still returns dh alone."""

    def forward(self, xs, h, c):
        return super().forward(xs, h) + c[:, None, :]


class ThreeGradientsDecoder(StartStateDecoder):
    def backward(self, dout):
        dh = super().backward(dout)
        return None, dh, dh  # one more than the two inputs


@pytest.mark.parametrize("cls", [TwoStateDecoder, ThreeGradientsDecoder])
def test_book_convention_with_a_wrong_count_keeps_a_clear_error(cls):
    W, xs, h = _decoder_inputs()
    inputs = (xs, h, h.copy()) if cls is TwoStateDecoder else (xs, h)
    with pytest.raises(ValueError, match=r"backward returned") as caught:
        gradcheck.check_layer(cls(W), *inputs)
    assert "input" in str(caught.value) and "gradient" in str(caught.value)


# --- skip= -----------------------------------------------------------------------------------


class AccumulatingAffine:
    """x @ W whose backward adds into grads: only a second backward shows it."""

    def __init__(self, W, wrong_dx=False):
        self.params, self.grads, self.param_names = [W], [np.zeros_like(W)], ["W"]
        self.wrong_dx = wrong_dx

    def forward(self, x):
        self.x = x
        return x @ self.params[0]

    def backward(self, dout):
        self.grads[0] += self.x.T @ dout
        return dout @ (self.params[0] if self.wrong_dx else self.params[0].T)


def test_skip_turns_a_named_contract_check_into_skipped_but_never_hides_a_gradient():
    rng = np.random.default_rng(11)
    W, x = rng.standard_normal((3, 3)), rng.standard_normal((2, 3))
    _failing_row(gradcheck.check_layer(AccumulatingAffine(W), x, **FULL), OVERWRITTEN)
    report = gradcheck.check_layer(AccumulatingAffine(W), x, skip=(OVERWRITTEN,), **FULL)
    assert report.passed, report
    assert _contract(report, OVERWRITTEN).status == "skipped"
    wrong = gradcheck.check_layer(
        AccumulatingAffine(W, wrong_dx=True), x, skip=(OVERWRITTEN,), **FULL
    )
    _failing_row(wrong, "x")


@pytest.mark.parametrize(
    "check",
    [
        lambda skip: gradcheck.check_layer(
            AccumulatingAffine(np.eye(2)), np.ones((1, 2)), skip=skip
        ),
        lambda skip: gradcheck.check_function(affine, affine_vjp, *_affine_inputs(), skip=skip),
        lambda skip: gradcheck.check_pair(
            scale_shift_forward, scale_shift_backward, *_scale_shift_inputs(), skip=skip
        ),
        lambda skip: gradcheck.check_loss(softmax_loss, *_loss_inputs(), skip=skip),
    ],
    ids=["layer", "function", "pair", "loss"],
)
def test_unknown_skip_name_is_a_value_error_listing_the_valid_names(check):
    with pytest.raises(ValueError, match="forward deterministic") as caught:
        check(("forward determinstic",))  # a typo
    message = str(caught.value)
    assert "'forward determinstic'" in message
    assert "arguments unmodified" in message  # the valid names, of every kind of subject


def test_unknown_skip_name_for_a_layer_lists_every_contract_check():
    with pytest.raises(ValueError) as caught:
        gradcheck.check_layer(AccumulatingAffine(np.eye(2)), np.ones((1, 2)), skip=("grads",))
    assert all(name in str(caught.value) for name in CONTRACT_CHECKS)


# --- registered cases of every kind: CLI, runner, strategies ---------------------------------

CASES = """
import numpy as np

import gradcheck
from tests.test_conventions import (
    AccumulatingAffine, DictDense, DictDenseSkipsActivationInDW, StartStateDecoder, affine,
    affine_vjp, affine_vjp_missing_transpose, cell_step_backward,
    cell_step_backward_drops_dh_path, cell_step_forward, softmax_loss, softmax_loss_sum_dx,
)


@gradcheck.case(dims={{"N": (1, 3), "D": (2, 3)}})
def function_case(rng, N, D):
    x, W, b = rng.standard_normal((N, D)), rng.standard_normal((D, D)), rng.standard_normal(D)
    return gradcheck.function(affine, {vjp}), (x, W, b)


@gradcheck.case(dims={{"N": (1, 3), "H": (1, 3)}})
def pair_case(rng, N, H):
    return gradcheck.pair(cell_step_forward, {backward}), (
        rng.standard_normal((N, H)), rng.standard_normal((N, H)))


@gradcheck.case(dims={{"N": (2, 4), "V": (2, 4)}})
def loss_case(rng, N, V):
    return gradcheck.loss({loss}), (rng.standard_normal((N, V)), rng.integers(0, V, N))


@gradcheck.case(dims={{"N": (1, 3), "D": (1, 3), "H": (1, 3)}})
def dict_layer_case(rng, N, D, H):
    layer = {dense}(0.5 * rng.standard_normal((D, H)), 0.5 * rng.standard_normal((1, H)))
    return gradcheck.layer(layer, params="parameters", grads="gradients",
                           reset="flush_gradients", accumulates=True), (
        rng.standard_normal((N, D)),)


@gradcheck.case(dims={{"N": (1, 3), "T": (1, 3)}})
def book_case(rng, N, T):
    return StartStateDecoder(rng.standard_normal((4, 2))), (
        rng.integers(0, 4, (N, T)), rng.standard_normal((N, 2)))


@gradcheck.case(skip=("grads overwritten, not accumulated",))
def skip_case(rng):
    return AccumulatingAffine(rng.standard_normal((2, 2))), (rng.standard_normal((2, 2)),)
"""

GOOD = dict(
    vjp="affine_vjp",
    backward="cell_step_backward",
    loss="softmax_loss",
    dense="DictDense",
)
BUGGY = dict(
    vjp="affine_vjp_missing_transpose",
    backward="cell_step_backward_drops_dh_path",
    loss="softmax_loss_sum_dx",
    dense="DictDenseSkipsActivationInDW",
)
KINDS = ("function_case", "pair_case", "loss_case", "dict_layer_case", "book_case", "skip_case")


@pytest.fixture
def cases_module(tmp_path, monkeypatch):
    """Write a module of cases (one per kind of subject) into a fresh working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(case_registry, "_REGISTRY", dict(case_registry._REGISTRY))
    written = []

    def write(name, names):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(CASES.format(**names)))
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


def test_cli_checks_a_case_of_every_kind(cases_module, capsys):
    cases_module("conv_good", GOOD)
    assert main(["conv_good", "--examples", "3"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("conv_good::")]
    assert [row.split()[0].split("::")[1] for row in rows] == list(KINDS)
    assert all(row.endswith("ok") for row in rows), out


def test_cli_blames_each_buggy_kind_by_its_argument_name(cases_module, capsys):
    cases_module("conv_buggy", BUGGY)
    assert main(["conv_buggy", "--examples", "5"]) == 1
    out = capsys.readouterr().out
    failed = {"function_case": "x", "pair_case": "prev_c", "loss_case": "x", "dict_layer_case": "W"}
    for case, name in failed.items():
        row = next(line for line in out.splitlines() if line.startswith(f"conv_buggy::{case}"))
        assert row.endswith("FAIL"), out
        report = out[out.index(f"FAIL conv_buggy::{case}") :]
        assert re.search(rf"^  {re.escape(name)} \(", report, re.M), report
    for case in ("book_case", "skip_case"):
        row = next(line for line in out.splitlines() if line.startswith(f"conv_buggy::{case}"))
        assert row.endswith("ok"), out
    assert "Traceback" not in out


def test_runner_runs_a_case_of_every_kind(cases_module):
    runner = importlib.import_module("gradcheck.runner")
    importlib.import_module(cases_module("conv_runner", GOOD))
    cases = case_registry.registered_cases("conv_runner")
    assert [c.name for c in cases] == list(KINDS)
    for case in cases:
        result = runner.run_case(case, examples=2)
        assert result.passed, (case.id, result.details())


@pytest.mark.parametrize("kind", KINDS)
def test_layer_cases_draws_every_kind_for_gradcheck_check(cases_module, kind):
    module = cases_module(f"conv_drawn_{kind}", GOOD)
    importlib.import_module(module)
    (case,) = [c for c in case_registry.registered_cases(module) if c.name == kind]

    @settings(max_examples=3, database=None)
    @given(data=st.data())
    def drawn_case_passes(data):
        drawn = data.draw(layer_cases(case))
        subject, inputs = drawn
        options = {**case.options, "seed": drawn.seed, "context": drawn.context}
        report = gradcheck.check(subject, *inputs, **options)
        assert report.passed, report

    drawn_case_passes()


# --- the bundled examples run -----------------------------------------------------------------

EXAMPLE_FILES = ["check_function.py", "check_pair.py", "check_loss.py", "dict_layer.py"]


@pytest.fixture
def example(monkeypatch):
    """Import an example by path under its own name, keeping the case registry untouched."""
    monkeypatch.setattr(case_registry, "_REGISTRY", dict(case_registry._REGISTRY))
    loaded = []

    def load(filename):
        name = f"_example_{Path(filename).stem}"
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / filename)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loaded.append(name)
        spec.loader.exec_module(module)
        return module

    yield load
    for name in loaded:
        sys.modules.pop(name, None)


@pytest.mark.parametrize("filename", EXAMPLE_FILES)
def test_example_case_passes_at_its_smallest_and_a_larger_size(example, filename):
    module = example(filename)
    (case,) = case_registry.registered_cases(module.__name__)
    for dims in ({}, {k: spec[1] for k, spec in case.dims.items()}):
        subject, inputs = case.build(0, **dims)
        report = gradcheck.check(subject, *inputs, **case.options)
        assert report.passed, report


@pytest.mark.parametrize("filename", EXAMPLE_FILES)
def test_example_main_block_checks_and_prints_a_passing_report(filename, capsys, monkeypatch):
    monkeypatch.setattr(case_registry, "_REGISTRY", dict(case_registry._REGISTRY))
    runpy.run_path(str(EXAMPLES / filename), run_name="__main__")  # assert_*: raises if wrong
    out = capsys.readouterr().out
    assert "disagrees" not in out and "ok" in out


@pytest.mark.parametrize("filename", EXAMPLE_FILES)
def test_example_file_passes_the_cli(filename, monkeypatch, capsys):
    monkeypatch.setattr(case_registry, "_REGISTRY", dict(case_registry._REGISTRY))
    try:
        assert main([str(EXAMPLES / filename), "--examples", "3"]) == 0, capsys.readouterr().out
    finally:
        sys.modules.pop(Path(filename).stem, None)


BROKEN_EXAMPLES = [
    pytest.param(
        "check_function.py",
        "weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True))",
        "weights * dweights",  # the softmax Jacobian without its centring term
        "q",
        id="attend_vjp-without-centring",
    ),
    pytest.param(
        "check_pair.py",
        "dgamma = (dout * xhat).sum(axis=0)",
        "dgamma = dout.sum(axis=0)",
        "gamma",
        id="layernorm-dgamma-without-xhat",
    ),
    pytest.param(
        "check_loss.py",
        "dx *= mask[:, :, None] / N",
        "dx *= mask[:, :, None]",  # dx of the summed loss; the loss is averaged over N
        "x",
        id="loss-dx-not-divided-by-N",
    ),
    pytest.param(
        "dict_layer.py",
        'self.gradients["W"] += X.T @ dZ',
        'self.gradients["W"] += X.T @ dY',  # the tanh derivative skipped
        "W",
        id="dense-dW-without-activation",
    ),
]


@pytest.mark.parametrize("filename, right, wrong, blamed", BROKEN_EXAMPLES)
def test_broken_copy_of_an_example_fails_the_cli_blaming_its_argument(
    filename, right, wrong, blamed, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(case_registry, "_REGISTRY", dict(case_registry._REGISTRY))
    source = (EXAMPLES / filename).read_text()
    assert source.count(right) == 1
    broken = tmp_path / f"broken_{filename}"
    broken.write_text(source.replace(right, wrong))
    try:
        assert main([str(broken), "--examples", "10"]) == 1
    finally:
        sys.modules.pop(broken.stem, None)
    out = capsys.readouterr().out
    assert re.search(rf"^  {re.escape(blamed)} \(.*max \|analytic - numeric\|", out, re.M), out


def test_a_pair_whose_backward_consumes_its_cache_fails_a_contract_line_not_the_check():
    """cs231n-style code that pops its cache: the analytic pass runs it once and is fine; the
    contract check that runs backward again from the same cache reports what was raised."""

    def forward(x, w):
        return x @ w, [x, w]

    def popping_backward(dout, cache):
        w, x = cache.pop(), cache.pop()  # consumes the cache
        return dout @ w.T, x.T @ dout

    def backward(dout, cache):
        x, w = cache
        return dout @ w.T, x.T @ dout

    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    report = gradcheck.check_pair(forward, popping_backward, x, w)
    (line,) = [e for e in report.entries if e.name == "grads overwritten, not accumulated"]
    assert line.status == "fail" and "IndexError: pop from empty list" in line.message
    assert all(e.passed for e in report.gradients)
    assert gradcheck.check_pair(forward, backward, x, w).passed
