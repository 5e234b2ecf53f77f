"""The pipeline's own behaviour beyond one convention: skipping contract checks by name (call,
case option, marker), the progress hook, the book's return convention, layers whose parameters
exist only after a first forward, and a reset that zeroes gradients in place."""

from __future__ import annotations

import numpy as np
import pytest

import gradcheck
from gradcheck import check, check_layer
from gradcheck.options import CONTRACT_CHECKS

pytest_plugins = ["pytester"]


@pytest.fixture
def rng():
    return np.random.default_rng(5)


class Affine:
    """Params: W (D, H), b (H,). forward: x (N, D) -> (N, H)."""

    def __init__(self, W, b, accumulate=False):
        self.params = [W, b]
        self.grads = [np.zeros_like(W), np.zeros_like(b)]
        self.param_names = ["W", "b"]
        self.accumulate = accumulate

    def forward(self, x):
        self.x = x
        return x @ self.params[0] + self.params[1]

    def backward(self, dout):
        if self.accumulate:  # BUG for a book layer: accumulates
            self.grads[0] += self.x.T @ dout
        else:
            self.grads[0][...] = self.x.T @ dout
        self.grads[1][...] = dout.sum(axis=0)
        return dout @ self.params[0].T


def _affine(rng, **kw):
    return Affine(rng.standard_normal((3, 2)), rng.standard_normal(2), **kw), rng.standard_normal(
        (4, 3)
    )


def _line(report, name):
    return next(e for e in report.contract if e.name == name)


# --- skip= ----------------------------------------------------------------------------------


def test_skip_turns_one_failing_contract_check_into_a_skipped_line(rng):
    layer, x = _affine(rng, accumulate=True)
    assert not check_layer(layer, x).passed  # the negative control: the check catches it
    report = check_layer(layer, x, skip=("grads overwritten, not accumulated",))
    assert report.passed, report
    assert _line(report, "grads overwritten, not accumulated").status == "skipped"
    assert "skip=" in _line(report, "grads overwritten, not accumulated").message


def test_skip_takes_a_single_name_as_a_string(rng):
    layer, x = _affine(rng, accumulate=True)
    assert check_layer(layer, x, skip="grads overwritten, not accumulated").passed


def test_unknown_skip_name_is_a_usage_error_listing_the_valid_names(rng):
    layer, x = _affine(rng)
    with pytest.raises(ValueError, match="not a contract check") as info:
        check_layer(layer, x, skip=("grads overwriten",))
    assert all(name in str(info.value) for name in CONTRACT_CHECKS)


def test_unknown_option_names_the_options(rng):
    layer, x = _affine(rng)
    with pytest.raises(TypeError, match=r"rtl=.* is not an option; the options are eps, rtol"):
        check_layer(layer, x, rtl=1e-3)


def test_skip_as_a_case_option_and_as_a_marker_option(pytester):
    pytester.makepyfile(
        accumulating="""
import numpy as np
import gradcheck

class Acc:
    def __init__(self, W):
        self.params, self.grads = [W], [np.zeros_like(W)]
    def forward(self, x):
        self.x = x
        return x @ self.params[0]
    def backward(self, dout):
        self.grads[0] += self.x.T @ dout
        return dout @ self.params[0].T

@gradcheck.case(dims={"N": (1, 3)}, skip=("grads overwritten, not accumulated",))
def acc(rng, N):
    return Acc(rng.standard_normal((2, 2))), (rng.standard_normal((N, 2)),)
""",
        test_marker="""
import numpy as np
import pytest
from accumulating import Acc

@pytest.mark.gradcheck(skip=("grads overwritten, not accumulated",))
def test_skipped(gradcheck):
    rng = np.random.default_rng(0)
    gradcheck(Acc(rng.standard_normal((2, 2))), rng.standard_normal((3, 2)))

def test_not_skipped(gradcheck):
    rng = np.random.default_rng(0)
    gradcheck(Acc(rng.standard_normal((2, 2))), rng.standard_normal((3, 2)))
""",
    )
    pytester.syspathinsert()
    result = pytester.runpytest("test_marker.py")
    result.assert_outcomes(passed=1, failed=1)
    result = pytester.runpytest("--gradcheck", "accumulating", "--gradcheck-examples", "3")
    result.assert_outcomes(passed=1)


# --- progress ------------------------------------------------------------------------------


def test_progress_is_told_every_forward_evaluation_with_a_total(rng):
    layer, x = _affine(rng)
    seen = []
    report = check_layer(layer, x, progress=lambda done, total: seen.append((done, total)))
    assert [d for d, _ in seen] == list(range(1, report.forward_calls + 1))
    assert all(d <= t for d, t in seen)
    assert seen[-1][1] - report.forward_calls < report.forward_calls  # a fair estimate


# --- the book's return convention -----------------------------------------------------------


class Decoderish:
    """forward(xs, h): integer ids and a float state; backward returns dh only (the book's
    Decoder), or ``(None, dh)``, or a wrong count."""

    def __init__(self, W, returns="dh"):
        self.params, self.grads, self.param_names = [W], [np.zeros_like(W)], ["W"]
        self.returns = returns

    def forward(self, xs, h):
        self.xs, self.h = xs, h
        return self.params[0][xs] * h

    def backward(self, dout):
        self.grads[0][...] = 0
        np.add.at(self.grads[0], self.xs, dout * self.h)
        dh = dout * self.params[0][self.xs]
        return {"dh": dh, "pair": (None, dh), "three": (None, dh, dh)}[self.returns]


@pytest.mark.parametrize("returns", ["dh", "pair"])
def test_backward_may_return_only_the_float_inputs_gradients(rng, returns):
    layer = Decoderish(rng.standard_normal((5, 3)), returns)
    xs, h = np.array([[0, 4], [4, 1]]), rng.standard_normal((2, 2, 3))
    report = check_layer(layer, xs, h)
    assert report.passed, report
    assert [e.name for e in report.gradients] == ["input[0]", "input[1]", "W"]
    assert report.gradients[0].status == "skipped"


def test_another_count_keeps_the_clear_error(rng):
    layer = Decoderish(rng.standard_normal((5, 3)), "three")
    xs, h = np.array([[0, 4], [4, 1]]), rng.standard_normal((2, 2, 3))
    with pytest.raises(ValueError, match="returned 3 gradients for 2 inputs"):
        check_layer(layer, xs, h)


# --- layers of other conventions: lazy parameters, a reset that zeroes in place ----------------


class LazyDense:
    """numpy-ml's shape: parameters made by the first forward, gradients accumulated with +=,
    a flush that zeroes them in place (``zero_in_place``) or rebinds them."""

    def __init__(self, n_out, seed=0, zero_in_place=False, wrong_db=False):
        self.n_out, self.seed = n_out, seed
        self.parameters = {"W": None, "b": None}
        self.gradients = {}
        self.X = []
        self.zero_in_place, self.wrong_db = zero_in_place, wrong_db

    def _init(self, n_in):
        rng = np.random.default_rng(self.seed)
        self.parameters = {"W": rng.standard_normal((n_in, self.n_out)), "b": np.zeros(self.n_out)}
        self.gradients = {k: np.zeros_like(v) for k, v in self.parameters.items()}

    def flush_gradients(self):
        self.X = []
        for k, v in self.gradients.items():
            if self.zero_in_place:
                v[...] = 0
            else:
                self.gradients[k] = np.zeros_like(v)

    def forward(self, X):
        if self.parameters["W"] is None:
            self._init(X.shape[1])
        self.X.append(X)
        return X @ self.parameters["W"] + self.parameters["b"]

    def backward(self, dLdy):
        X = self.X[-1]
        self.gradients["W"] += X.T @ dLdy
        self.gradients["b"] += dLdy.sum(axis=0) * (2.0 if self.wrong_db else 1.0)  # BUG if set
        return dLdy @ self.parameters["W"].T


@pytest.mark.parametrize("zero_in_place", [False, True])
def test_numpy_ml_style_layer_needs_only_the_keywords(rng, zero_in_place):
    x = rng.standard_normal((4, 3))
    options = dict(params="parameters", grads="gradients", reset="flush_gradients")
    layer = LazyDense(2, zero_in_place=zero_in_place)
    report = check_layer(layer, x, accumulates=True, **options)
    assert report.passed, report
    assert [e.name for e in report.gradients] == ["input[0]", "W", "b"]
    assert layer.parameters["W"] is None  # the user's layer untouched: still uninitialised
    assert "first forward" in str(report)
    bad = check_layer(LazyDense(2, wrong_db=True), x, accumulates=True, **options)
    assert [e.name for e in bad.failures] == ["b"], bad


def test_registered_layer_of_another_convention_runs_through_check(rng):
    subject = gradcheck.layer(
        LazyDense(2),
        params="parameters",
        grads="gradients",
        reset="flush_gradients",
        accumulates=True,
    )
    assert check(subject, rng.standard_normal((3, 3))).passed
    with pytest.raises(TypeError, match=r"give them to gradcheck\.layer"):
        check_layer(subject, rng.standard_normal((3, 3)), params="parameters")


# --- a layer that raises shows its own frame, not the checker's ------------------------------


def test_a_raising_layer_in_a_fixture_test_shows_only_the_users_frames(pytester):
    pytester.makepyfile(
        test_raises="""
import numpy as np

class Broken:
    def __init__(self):
        self.params, self.grads = [], []
    def forward(self, x):
        return x * undefined_name  # noqa: F821
    def backward(self, dout):
        return dout

def test_broken(gradcheck):
    gradcheck(Broken(), np.ones((2, 2)))
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "NameError: name 'undefined_name' is not defined" in text
    assert "gradcheck/" not in text.replace("gradcheck: ", ""), text  # no frame of the checker
