"""Each memory or speed trick of the checker, pinned: the named function gives what the plain
computation gives, on both sides of its size threshold, and a check that relies on it still
passes a correct layer and blames a wrong element that lies beyond the threshold."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck import check_layer
from gradcheck.compare import CHUNK
from gradcheck.differences import Tolerance
from gradcheck.fingerprints import SLICE, fingerprint, scaled
from gradcheck.numerical import DOT_SLICE, dot, uniform_int16
from gradcheck.sandbox import run_sharing_arrays
from gradcheck.subjects import signature_parameters


@pytest.fixture
def rng():
    return np.random.default_rng(2)


class Scale:
    """out = x * w, elementwise. Params: w (n,). forward: x (n,) -> (n,)."""

    def __init__(
        self, w: np.ndarray, wrong_at: int | None = None, accumulate_from: int | None = None
    ):
        self.params = [w]
        self.grads = [np.zeros_like(w)]
        self.wrong_at, self.accumulate_from = wrong_at, accumulate_from
        self.x = None

    def forward(self, x):
        self.x = x
        return x * self.params[0]

    def backward(self, dout):
        dw = dout * self.x
        if self.wrong_at is not None:
            dw[self.wrong_at] *= 3.0  # BUG in one element
        if self.accumulate_from is None:
            self.grads[0][...] = dw
        else:  # BUG: accumulates, but only in the elements beyond accumulate_from
            self.grads[0][: self.accumulate_from] = dw[: self.accumulate_from]
            self.grads[0][self.accumulate_from :] += dw[self.accumulate_from :]
        return dout * self.params[0]


def _scale(rng, n, **bug):
    return Scale(rng.uniform(0.5, 1.5, n), **bug), rng.uniform(0.5, 1.5, n)


# --- numerical.dot: one call below DOT_SLICE, slices above ---------------------------------


@pytest.mark.parametrize("n", [7, DOT_SLICE, DOT_SLICE + 1, 3 * DOT_SLICE + 5])
def test_dot_equals_the_plain_product_on_both_sides_of_its_slice(rng, n):
    a = rng.standard_normal(n)
    v = rng.uniform(-1, 1, n).astype(np.float32)
    assert dot(a, v) == pytest.approx(float(np.dot(a, v.astype(np.float64))), rel=1e-12)


def test_fast_mode_blames_one_wrong_element_beyond_the_dot_slice(rng):
    n = DOT_SLICE + 2000
    layer, x = _scale(rng, n)
    assert check_layer(layer, x, mode="fast", contract=False).passed
    bad, x = _scale(rng, n, wrong_at=DOT_SLICE + 1500)
    report = check_layer(bad, x, mode="fast", contract=False)
    assert report.gradients[1].status == "mismatch", report


# --- fingerprints: projections in slices of SLICE ------------------------------------------


@pytest.mark.parametrize("n", [5, SLICE, SLICE + 1, 2 * SLICE + 3])
def test_fingerprint_equals_the_plain_projections_on_both_sides_of_its_slice(rng, n):
    g = rng.standard_normal(n)
    norm, first, second = fingerprint(g, seed=3)
    r = uniform_int16(3, 2 * n).reshape(2, n).astype(np.float64) * 2.0**-15
    assert norm == pytest.approx(float(np.linalg.norm(g)), rel=1e-12)
    assert (first, second) == pytest.approx(tuple(r @ g), rel=1e-9, abs=1e-9)
    assert scaled(fingerprint(2 * g, seed=3), (norm, first, second), 2.0)
    h = g.copy()
    h[-1] += 1e-3
    assert not scaled(fingerprint(h, seed=3), (norm, first, second), 1.0)


def test_overwrite_check_sees_accumulation_beyond_the_fingerprint_slice(rng):
    n = 2 * SLICE + 100
    layer, x = _scale(rng, n)
    assert check_layer(layer, x, mode="fast").passed
    bad, x = _scale(rng, n, accumulate_from=2 * SLICE)
    report = check_layer(bad, x, mode="fast")
    entry = next(e for e in report.contract if e.name == "grads overwritten, not accumulated")
    assert entry.status == "fail", report


# --- compare: element differences in chunks of CHUNK ---------------------------------------


def test_full_mode_blames_a_wrong_element_in_the_last_chunk(rng):
    n = 3 * CHUNK + 1
    layer, x = _scale(rng, n)
    assert check_layer(layer, x, mode="full").passed
    bad, x = _scale(rng, n, wrong_at=n - 1)
    report = check_layer(bad, x, mode="full")
    w = report.gradients[1]
    assert w.status == "mismatch" and w.index == (n - 1,) and w.wrong == 1, report


# --- Tolerance.all_agree: the plain-float path gives what the numpy path gives --------------


def test_all_agree_matches_allowed_and_relative(rng):
    tol = Tolerance(atol=1e-8, rtol=1e-5, noise=1e-9)
    a = rng.standard_normal(5)
    n = a * (1 + 1e-7)
    errors, relative = tol.all_agree(a, n)
    assert errors == pytest.approx(list(np.abs(a - n)), rel=1e-12)
    assert relative == pytest.approx(list(tol.relative(a, n)), rel=1e-12)
    n[2] += 1.0
    assert tol.all_agree(a, n) is None
    assert (np.abs(a - n) > tol.allowed(a, n)).sum() == 1


# --- run_sharing_arrays: a second run with private copies only after a failure while sharing


def test_run_sharing_arrays_retries_only_when_something_was_shared():
    calls = []

    def fails_while_sharing(frozen):
        calls.append(frozen is not None)
        if frozen is not None:
            frozen.append(np.zeros(1))
            raise ValueError("assignment destination is read-only")
        return "private"

    assert run_sharing_arrays(fails_while_sharing) == "private" and calls == [True, False]

    def fails_without_sharing(frozen):
        raise KeyError("a real bug")

    with pytest.raises(KeyError, match="a real bug"):
        run_sharing_arrays(fails_without_sharing)


# --- signature_parameters: read once per function ------------------------------------------


def test_signature_cache_gives_each_function_its_own_parameters():
    class A:
        def forward(self, xs, h):
            return xs

    class B:
        def forward(self, x):
            return x

    names = [p.name for p in signature_parameters(A().forward)]
    assert names == ["xs", "h"] and names == [p.name for p in signature_parameters(A().forward)]
    assert [p.name for p in signature_parameters(B().forward)] == ["x"]
    assert signature_parameters(len) is not None or signature_parameters(len) is None  # no raise


# --- without_gradients: stand-ins of no size for the compared gradients ---------------------


def test_stand_ins_keep_dtype_and_shape_and_hold_no_memory(rng):
    from gradcheck.analytic import _stand_in

    g = rng.standard_normal((300, 40))
    s = _stand_in(g)
    assert s.shape == g.shape and s.dtype == g.dtype and s.strides == (0, 0)
    assert s.base is not None and s.base.size == 1
    assert _stand_in(None) is None
