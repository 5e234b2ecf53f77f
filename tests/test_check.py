"""check_layer and assert_layer: what is checked, how it is reported, what is never touched.

Each mechanism has a negative control (a small buggy layer the checker must blame on the right
entry) and a positive one (its correct twin passes under the same settings). The large catalogue
of realistic bugs lives in tests/zoo.py; these layers are the smallest that exercise one
mechanism each.
"""

from __future__ import annotations

import copy
import json
import pickle
import tracemalloc

import numpy as np
import pytest

from gradcheck import GradientMismatch, assert_layer, check_layer
from gradcheck.report import describe_pattern


def _grads_like(params):
    return [np.zeros_like(p) for p in params]


class Affine:
    """x @ W + b. Params: W (D, H), b (H,). forward: x (N, D) -> (N, H)."""

    def __init__(self, W, b):
        self.params = [W, b]
        self.grads = _grads_like(self.params)
        self.param_names = ["W", "b"]

    def forward(self, x):
        self.x = x
        return x @ self.params[0] + self.params[1]

    def backward(self, dout):
        W, _ = self.params
        self.grads[0][...] = self.x.T @ dout
        self.grads[1][...] = dout.sum(axis=0)
        return dout @ W.T


class AffineScaledDW(Affine):
    def backward(self, dout):
        dx = super().backward(dout)
        self.grads[0] *= 3.0  # BUG: constant factor
        return dx


class AffineNegDx(Affine):
    def backward(self, dout):
        return -super().backward(dout)  # BUG: sign flipped


class Square:
    """x @ W with W square: a transposed dW is the same shape, only the check can tell."""

    def __init__(self, W, transposed=False):
        self.params, self.grads = [W], _grads_like([W])
        self.param_names = ["W"]
        self.transposed = transposed

    def forward(self, x):
        self.x = x
        return x @ self.params[0]

    def backward(self, dout):
        dW = self.x.T @ dout
        self.grads[0][...] = dW.T if self.transposed else dW  # BUG when transposed
        return dout @ self.params[0].T


class TimeScale:
    """xs (N, T, D) * w (D,); the buggy version drops the gradient of the last time step."""

    def __init__(self, w, drop_last=False):
        self.params, self.grads = [w], _grads_like([w])
        self.drop_last = drop_last

    def forward(self, xs):
        self.xs = xs
        return xs * self.params[0]

    def backward(self, dout):
        self.grads[0][...] = np.sum(self.xs * dout, axis=(0, 1))
        dxs = dout * self.params[0]
        if self.drop_last:
            dxs[:, -1] = 0  # BUG: last time step lost
        return dxs


class Gates:
    """x @ W with W (D, 4H): the buggy version scales gate block 2 of dW."""

    def __init__(self, W, bad_block=None):
        self.params, self.grads = [W], _grads_like([W])
        self.bad_block = bad_block

    def forward(self, x):
        self.x = x
        return np.tanh(x @ self.params[0])

    def backward(self, dout):
        y = np.tanh(self.x @ self.params[0])
        da = dout * (1 - y**2)
        dW = self.x.T @ da
        if self.bad_block is not None:
            H = dW.shape[1] // 4
            dW[:, self.bad_block * H : (self.bad_block + 1) * H] *= 0.5  # BUG
        self.grads[0][...] = dW
        return da @ self.params[0].T


class ReLU:
    def __init__(self, wrong_slope=1.0):
        self.params, self.grads = [], []
        self.wrong_slope = wrong_slope

    def forward(self, x):
        self.mask = x > 0
        return np.where(self.mask, x, 0.0)

    def backward(self, dout):
        return np.where(self.mask, dout * self.wrong_slope, 0.0)


class Dropout:
    """Inverted dropout drawing from a Generator the layer owns: restoring it restores draws."""

    def __init__(self, p=0.5, rng=0):
        self.params, self.grads = [], []
        self.p, self.rng = p, np.random.default_rng(rng)

    def forward(self, x):
        self.mask = (self.rng.random(x.shape) > self.p) / (1 - self.p)
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


class Loss:
    """0.5 * sum((x @ W)**2) / N: a scalar output, backward(dout=1)."""

    def __init__(self, W):
        self.params, self.grads = [W], _grads_like([W])

    def forward(self, x):
        self.x, self.y = x, x @ self.params[0]
        return 0.5 * float(np.sum(self.y**2)) / len(x)

    def backward(self, dout=1):
        dy = self.y * dout / len(self.x)
        self.grads[0][...] = self.x.T @ dy
        return dy @ self.params[0].T


class Split:
    """Two outputs (x * w, x + w); backward takes one dout per output."""

    def __init__(self, w):
        self.params, self.grads = [w], _grads_like([w])

    def forward(self, x):
        self.x = x
        return x * self.params[0], x + self.params[0]

    def backward(self, da, db):
        self.grads[0][...] = np.sum(da * self.x, axis=0) + np.sum(db, axis=0)
        return da * self.params[0] + db


class Lookup:
    """Embedding-like: integer ids in, plus a float scale; ids are skipped."""

    def __init__(self, W):
        self.params, self.grads = [W], _grads_like([W])

    def forward(self, ids, scale):
        self.ids, self.scale = ids, scale
        return self.params[0][ids] * scale

    def backward(self, dout):
        dW = np.zeros_like(self.params[0])
        np.add.at(dW, self.ids, dout * self.scale)
        self.grads[0][...] = dW
        return None, dout * self.params[0][self.ids]


def _affine(rng, dtype=np.float64, cls=Affine, N=3, D=4, H=5):
    W = rng.standard_normal((D, H)).astype(dtype)
    b = rng.standard_normal(H).astype(dtype)
    return cls(W, b), rng.standard_normal((N, D)).astype(dtype)


def _entry(report, name):
    (entry,) = [e for e in report.entries if e.name == name]
    return entry


@pytest.fixture
def rng():
    return np.random.default_rng(1)


# --- gradients and report ---------------------------------------------------------------


def test_correct_layer_passes_with_every_gradient_listed(rng):
    layer, x = _affine(rng)
    report = check_layer(layer, x)
    assert report.passed
    assert [e.name for e in report.gradients] == ["input[0]", "W", "b"]
    assert all(e.status == "ok" and e.max_rel_error < 1e-7 for e in report.gradients)
    assert report.layer == "Affine"
    assert report.shapes == {"x": (3, 4)}
    assert report.max_rel_error < 1e-7
    text = str(report)
    for label in ("input[0] x (3, 4): ok", "W (4, 5): ok", "b (5,): ok", "reproduce: seed=0"):
        assert label in text


def test_checker_blames_dW_off_by_constant_factor(rng):
    layer, x = _affine(rng, cls=AffineScaledDW)
    report = check_layer(layer, x)
    assert not report.passed
    w = _entry(report, "W")
    assert w.status == "mismatch"
    assert "constant factor" in w.pattern and "3 x" in w.pattern
    assert _entry(report, "b").status == "ok" and _entry(report, "input[0]").status == "ok"
    assert w.analytic == pytest.approx(3 * w.numeric, rel=1e-6)
    assert all(isinstance(i, int) for i in w.index)


def test_checker_names_a_flipped_sign(rng):
    layer, x = _affine(rng, cls=AffineNegDx)
    entry = _entry(check_layer(layer, x), "input[0]")
    assert entry.status == "mismatch" and entry.pattern.startswith("sign flipped")


def test_sign_pattern_holds_where_some_elements_are_rightly_zero(rng):
    entry = _entry(check_layer(ReLU(wrong_slope=-1.0), rng.standard_normal((3, 4))), "input[0]")
    assert entry.status == "mismatch" and entry.pattern.startswith("sign flipped")


def test_checker_names_a_transposed_gradient(rng):
    W = rng.standard_normal((4, 4))
    x = rng.standard_normal((3, 4))
    entry = _entry(check_layer(Square(W, transposed=True), x), "W")
    assert entry.status == "mismatch" and entry.pattern.startswith("transposed")
    assert check_layer(Square(W), x).passed


def test_checker_names_the_wrong_time_step(rng):
    w, xs = rng.standard_normal(4), rng.standard_normal((2, 3, 4))
    entry = _entry(check_layer(TimeScale(w, drop_last=True), xs), "input[0]")
    assert entry.status == "mismatch"
    assert "index 2 (the last) of axis 1" in entry.pattern
    assert check_layer(TimeScale(w), xs).passed


def test_checker_names_the_wrong_gate_block(rng):
    W, x = rng.standard_normal((3, 12)), rng.standard_normal((2, 3))
    entry = _entry(check_layer(Gates(W, bad_block=2), x), "params[0]")
    assert entry.status == "mismatch"
    assert "gate block 2 of 4 along axis 1 (indices 6..8)" in entry.pattern
    assert check_layer(Gates(W), x).passed


def test_rows_wrong_together_on_a_first_axis_are_not_called_a_gate_block():
    # an Embedding W (V, D) wrong in rows 0..2 (the ids it saw): rows are no gates
    wrong = np.zeros((12, 8), dtype=bool)
    wrong[:3] = True
    numeric = np.ones((12, 8))
    pattern = describe_pattern(np.where(wrong, 2.0, 1.0), numeric, wrong)
    assert pattern is None or "gate" not in pattern


def test_report_text_lists_worst_element_tolerances_and_reproduce_line(rng):
    layer, x = _affine(rng, cls=AffineScaledDW)
    text = str(check_layer(layer, x, seed=7, context="affine(N=3, D=4, H=5)"))
    assert text.startswith("AffineScaledDW.backward disagrees with central differences")
    assert "eps=1e-06, rtol=1e-05, atol=0" in text
    assert "W (4, 5): max |analytic - numeric| = " in text
    assert "pattern: off by a constant factor" in text
    assert text.splitlines()[-1] == "reproduce: seed=7, x=(3, 4), affine(N=3, D=4, H=5)"


def test_to_dict_is_json_serialisable(rng):
    layer, x = _affine(rng, cls=AffineScaledDW)
    d = check_layer(layer, x).to_dict()
    back = json.loads(json.dumps(d))
    assert back["layer"] == "AffineScaledDW" and back["passed"] is False
    assert {e["name"] for e in back["entries"]} >= {"input[0]", "W", "b"}
    assert back["forward_calls"] > 0 and back["backward_calls"] > 0


def test_assert_layer_raises_gradient_mismatch_with_report_text(rng):
    layer, x = _affine(rng, cls=AffineScaledDW)
    with pytest.raises(GradientMismatch) as info:
        assert_layer(layer, x)
    assert isinstance(info.value, AssertionError)
    assert str(info.value) == str(info.value.report)
    assert "W (4, 5)" in str(info.value)
    good, x = _affine(rng)
    assert assert_layer(good, x).passed


def test_scalar_loss_is_checked_with_dout_one(rng):
    report = check_layer(Loss(rng.standard_normal((4, 3))), rng.standard_normal((5, 4)))
    assert report.passed, report


def test_tuple_outputs_get_one_dout_each(rng):
    report = check_layer(Split(rng.standard_normal(3)), rng.standard_normal((2, 3)))
    assert report.passed, report


def test_integer_inputs_are_skipped(rng):
    W = rng.standard_normal((6, 3))
    ids, scale = np.array([[0, 2, 2], [5, 0, 1]]), rng.standard_normal((2, 3, 3))
    report = check_layer(Lookup(W), ids, scale)
    assert report.passed, report
    assert [e.name for e in report.gradients] == ["input[0]", "input[1]", "params[0]"]
    ids_row = report.gradients[0]
    assert ids_row.status == "skipped" and ids_row.message == "not checked: integer input"


def test_user_dout_is_used(rng):
    layer, x = _affine(rng)
    dout = np.ones((3, 5))
    report = check_layer(layer, x, dout=dout)
    assert report.passed
    with pytest.raises(ValueError, match="dout"):
        check_layer(layer, x, dout=np.ones((3, 4)))


def test_parameter_names_come_from_attribute_paths():
    class Outer:
        def __init__(self):
            self.inner = Affine(np.ones((2, 2)), np.zeros(2))
            self.params, self.grads = self.inner.params, self.inner.grads
            del self.inner.param_names

        def forward(self, x):
            return self.inner.forward(x)

        def backward(self, dout):
            return self.inner.backward(dout)

    report = check_layer(Outer(), np.ones((1, 2)))
    assert [e.name for e in report.gradients] == ["input[0]", "inner.params[0]", "inner.params[1]"]


# --- float32 layers and the user's layer left alone ---------------------------------------


def test_float32_layer_is_checked_in_float64_without_false_alarm(rng):
    layer, x = _affine(rng, dtype=np.float32)
    report = check_layer(layer, x)
    assert report.passed, report
    assert report.max_rel_error < 1e-7
    assert layer.params[0].dtype == np.float32 and layer.grads[0].dtype == np.float32


def test_float64_copy_keeps_parts_and_composite_sharing_arrays(rng):
    class Stack:
        def __init__(self, a, b):
            self.a, self.b = a, b
            self.params = a.params + b.params
            self.grads = a.grads + b.grads

        def forward(self, x):
            return self.b.forward(self.a.forward(x))

        def backward(self, dout):
            return self.a.backward(self.b.backward(dout))

    a, x = _affine(rng, dtype=np.float32, D=4, H=4)
    b, _ = _affine(rng, dtype=np.float32, D=4, H=3)
    report = check_layer(Stack(a, b), x)
    assert report.passed, report  # would fail if the composite's params were separate copies


def test_hidden_float32_buffer_is_reported(rng):
    class Float32Buffer(Affine):
        def forward(self, x):
            out = np.empty((len(x), self.params[0].shape[1]), dtype=np.float32)  # BUG
            out[...] = super().forward(x)
            return out

    layer, x = _affine(rng, cls=Float32Buffer)
    entry = _entry(check_layer(layer, x, dtype="strict"), "output dtype follows params")
    assert entry.status == "fail" and "float32" in entry.message
    report = check_layer(layer, x)  # lenient: right to float32 precision, said at the top
    assert report.passed, report
    assert "float32: output[0]" in str(report).splitlines()[1]


def _snapshot(obj):
    """Every attribute's bytes (a layer of a local class cannot be pickled itself)."""
    return pickle.dumps(vars(obj))


def test_users_layer_is_bit_for_bit_unchanged(rng):
    layer, x = _affine(rng, dtype=np.float32, cls=AffineScaledDW)
    layer.grads[0][...] = 7.0  # stale grads a user may have
    before, x_before = _snapshot(layer), x.copy()
    check_layer(layer, x)
    assert _snapshot(layer) == before
    assert np.array_equal(x, x_before)


class _Boom(Exception):
    pass


@pytest.mark.parametrize("error", [_Boom, KeyboardInterrupt])
def test_users_layer_is_unchanged_when_the_check_is_interrupted(rng, error):
    class Interrupted(Affine):
        calls = 0

        def forward(self, x):
            out = super().forward(x)
            self.params[0][0, 0] += 1.0  # damage the copy before dying
            type(self).calls += 1
            if type(self).calls > 5:
                raise error()
            return out

    layer, x = _affine(rng, cls=Interrupted)
    before = _snapshot(layer)
    with pytest.raises(error):
        check_layer(layer, x)
    assert _snapshot(layer) == before


def test_caches_of_an_earlier_forward_are_shared_read_only_and_left_writeable(rng):
    layer, x = _affine(rng)
    layer.forward(x)  # the layer now holds a cache (self.x), which the check need not copy
    assert check_layer(layer, x).passed
    assert layer.x.flags.writeable and all(p.flags.writeable for p in layer.params)


def test_shared_views_and_their_base_are_all_writeable_again(rng):
    layer, x = _affine(rng)
    layer.table = np.zeros((4, 4))
    layer.rows = [layer.table[i] for i in range(4)]  # views, frozen along with their base
    assert check_layer(layer, x).passed
    assert layer.table.flags.writeable and all(r.flags.writeable for r in layer.rows)


def test_layer_writing_into_a_buffer_it_already_holds_is_checked_on_a_full_copy(rng):
    class Buffered(Affine):
        def forward(self, x):
            out = super().forward(x)
            if getattr(self, "buf", None) is None or self.buf.shape != out.shape:
                self.buf = np.empty_like(out)
            self.buf[...] = out  # in place into an array from an earlier call
            return self.buf.copy()

    layer, x = _affine(rng, cls=Buffered)
    layer.forward(x)
    before = _snapshot(layer)
    assert check_layer(layer, x).passed
    assert _snapshot(layer) == before and layer.buf.flags.writeable


def test_read_only_flags_are_restored_after_an_interrupt(rng):
    class Interrupt(Affine):
        calls = 0  # on the class: the check restores the copy's own attributes

        def forward(self, x):
            type(self).calls += 1
            if type(self).calls > 3:
                raise KeyboardInterrupt
            return super().forward(x)

    layer, x = _affine(rng, cls=Interrupt)
    layer.x = x.copy()  # an array the check would share read-only
    with pytest.raises(KeyboardInterrupt):
        check_layer(layer, x)
    assert layer.x.flags.writeable


# --- state -----------------------------------------------------------------------------------


class TimeRNN:
    """Minimal stateful tanh RNN with the contract's state API.

    Params: Wx (D, H), Wh (H, H). forward: xs (N, T, D) -> hs (N, T, H); sets h; backward sets dh.
    """

    def __init__(self, Wx, Wh, stateful=True, keep_dh=True):
        self.params = [Wx, Wh]
        self.grads = _grads_like(self.params)
        self.param_names = ["Wx", "Wh"]
        self.stateful, self.keep_dh = stateful, keep_dh
        self.h = None

    def set_state(self, h, c=None):
        self.h = np.array(h, dtype=self.params[0].dtype)

    def reset_state(self):
        self.h = None

    def forward(self, xs):
        Wx, Wh = self.params
        N, T, _ = xs.shape
        if not self.stateful or self.h is None:
            self.h = np.zeros((N, Wh.shape[0]), dtype=Wh.dtype)
        hs = np.empty((N, T, Wh.shape[0]), dtype=Wh.dtype)
        h = self.h
        self.cache = (xs, h, hs)
        for t in range(T):
            h = np.tanh(xs[:, t] @ Wx + h @ Wh)
            hs[:, t] = h
        self.h = h
        return hs

    def backward(self, dhs):
        Wx, Wh = self.params
        xs, h0, hs = self.cache
        dxs = np.empty_like(xs)
        dWx, dWh = np.zeros_like(Wx), np.zeros_like(Wh)
        dh = np.zeros_like(h0)
        for t in reversed(range(xs.shape[1])):
            h_prev = hs[:, t - 1] if t else h0
            da = (dhs[:, t] + dh) * (1 - hs[:, t] ** 2)
            dWx += xs[:, t].T @ da
            dWh += h_prev.T @ da
            dxs[:, t] = da @ Wx.T
            dh = da @ Wh.T
        self.grads[0][...], self.grads[1][...] = dWx, dWh
        if self.keep_dh:
            self.dh = dh
        return dxs


def _rnn(rng, **kwargs):
    layer = TimeRNN(rng.standard_normal((3, 4)) * 0.5, rng.standard_normal((4, 4)) * 0.5, **kwargs)
    return layer, rng.standard_normal((2, 3, 3))


def test_stateful_layer_gets_dh_checked_from_a_random_state(rng):
    layer, xs = _rnn(rng)
    report = check_layer(layer, xs)
    assert report.passed, report
    assert [e.name for e in report.gradients] == ["input[0]", "Wx", "Wh", "dh"]
    assert layer.h is None  # the user's layer still holds no state


def test_stateful_layer_is_checked_from_the_state_it_holds(rng):
    layer, xs = _rnn(rng)
    layer.set_state(np.full((2, 4), 3.0))  # saturates tanh: dh is tiny but must still match
    report = check_layer(layer, xs)
    assert report.passed, report
    assert np.all(layer.h == 3.0)


def test_missing_dh_is_blamed_on_dh(rng):
    layer, xs = _rnn(rng, keep_dh=False)
    entry = _entry(check_layer(layer, xs), "dh")
    assert entry.status == "mismatch" and "keeps no dh" in entry.message


def test_state_option_sets_the_initial_state(rng):
    layer, xs = _rnn(rng)
    report = check_layer(layer, xs, state=rng.standard_normal((2, 4)))
    assert report.passed, report


def test_state_for_a_stateless_layer_is_an_error(rng):
    layer, xs = _rnn(rng, stateful=False)
    with pytest.raises(ValueError, match="not a stateful layer"):
        check_layer(layer, xs, state=np.zeros((2, 4)))


def test_stateless_layer_has_no_state_entries(rng):
    layer, xs = _rnn(rng, stateful=False)
    report = check_layer(layer, xs)
    assert report.passed, report
    assert "dh" not in [e.name for e in report.gradients]
    assert _entry(report, "stateful=False keeps no memory").status == "ok"


def test_dropout_with_its_own_generator_passes_because_state_is_restored(rng):
    report = check_layer(Dropout(), rng.standard_normal((3, 4)))
    assert report.passed, report


def test_dropout_on_the_global_random_state_is_nondeterministic(rng):
    class GlobalDropout(Dropout):
        def forward(self, x):
            self.mask = (np.random.random(x.shape) > self.p) / (1 - self.p)  # noqa: NPY002
            return x * self.mask

    entry = _entry(
        check_layer(GlobalDropout(), rng.standard_normal((3, 4))), "forward deterministic"
    )
    assert entry.status == "fail" and "np.random" in entry.message


def test_forward_that_keeps_a_running_counter_is_restored_between_evaluations(rng):
    class Counting(Affine):
        def __init__(self, W, b):
            super().__init__(W, b)
            self.calls = np.zeros(1)

        def forward(self, x):
            self.calls += 1  # in place: restored from the user's array before each evaluation
            return super().forward(x) * (1 + 0 * self.calls)

    layer, x = _affine(rng, cls=Counting)
    assert check_layer(layer, x).passed
    assert layer.calls[0] == 0


# --- kinks ----------------------------------------------------------------------------------


def test_relu_at_exactly_zero_is_a_kink_not_a_mismatch(rng):
    x = rng.standard_normal((3, 4))
    x[0, 1] = x[2, 3] = 0.0
    report = check_layer(ReLU(), x)
    entry = _entry(report, "input[0]")
    assert entry.status == "kink" and entry.kinks == 2
    assert report.passed


def test_relu_with_wrong_slope_is_caught_despite_kinks(rng):
    x = rng.standard_normal((3, 4))
    x[0, 1] = 0.0
    entry = _entry(check_layer(ReLU(wrong_slope=1.01), x), "input[0]")
    assert entry.status == "mismatch"


def test_max_with_ties_is_a_kink(rng):
    class RowMax:
        def __init__(self):
            self.params, self.grads = [], []

        def forward(self, x):
            self.x = x
            return x.max(axis=1)

        def backward(self, dout):
            return (self.x == self.x.max(axis=1, keepdims=True)) * dout[:, None]

    x = rng.standard_normal((3, 4))
    x[1, 2] = x[1, 0] = 5.0
    report = check_layer(RowMax(), x)
    assert report.passed and _entry(report, "input[0]").status == "kink"


def test_fast_mode_splits_a_projection_around_kinks(rng):
    x = rng.standard_normal((4, 6))
    x[0, 1] = x[2, 3] = x[3, 0] = 0.0  # several kinks on every projection
    for seed in range(5):
        report = check_layer(ReLU(), x, mode="fast", seed=seed)
        assert report.passed, report
        bad = _entry(check_layer(ReLU(wrong_slope=1.5), x, mode="fast", seed=seed), "input[0]")
        assert bad.status == "mismatch" and bad.index is not None  # located to one element


def test_layer_computing_in_float32_inside_is_named_and_not_taken_for_kinks(rng):
    class Float32Inside(Affine):
        def forward(self, x):
            return super().forward(x.astype(np.float32)).astype(np.float64)  # BUG

    layer, x = _affine(rng, cls=Float32Inside)
    report = check_layer(layer, x, dtype="strict")
    assert not report.passed
    assert "computes in float32" in str(report)
    assert sum(e.kinks for e in report.gradients) == 0
    report = check_layer(layer, x)  # lenient: the maths is right to float32 precision
    assert report.passed, report
    assert "gradients verified to float32 precision" in str(report).splitlines()[1]
    assert sum(e.kinks for e in report.gradients) == 0


# --- modes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["full", "fast", "auto"])
def test_every_mode_passes_the_correct_layer_and_catches_the_bug(rng, mode):
    layer, x = _affine(rng, N=3, D=30, H=40)
    assert check_layer(layer, x, mode=mode, max_elements=100).passed
    bad, x = _affine(rng, cls=AffineScaledDW, N=3, D=30, H=40)
    assert _entry(check_layer(bad, x, mode=mode, max_elements=100), "W").status == "mismatch"


def test_full_mode_costs_four_forwards_per_element_plus_a_few(rng):
    layer, x = _affine(rng)
    report = check_layer(layer, x, mode="full", contract=False)
    n = x.size + sum(p.size for p in layer.params)
    # two steps of two forwards per element; the probe, analytic pass, precision probe (4) and
    # the noise measurement (8)
    assert 4 * n < report.forward_calls <= 4 * n + 15
    assert report.backward_calls == 1


def test_fast_mode_costs_two_forwards_per_projection(rng):
    layer, x = _affine(rng, N=3, D=30, H=40)
    report = check_layer(layer, x, mode="fast", projections=3, contract=False)
    assert report.forward_calls <= 2 * 3 * 3 + 6
    assert "projections" in _entry(report, "W").message


def test_auto_mode_covers_every_element_in_blocks(rng):
    layer, x = _affine(rng, N=3, D=30, H=40)
    report = check_layer(layer, x, max_elements=50)
    w = _entry(report, "W")
    assert w.checked == 1200 and w.message == ""  # one block: nothing to say
    assert _entry(report, "b").checked == 40
    assert report.forward_calls < 40  # 4 per block and a few, not 2 per element


def test_a_single_wrong_element_in_a_big_tensor_is_caught_by_projections(rng):
    class OneWrong(Affine):
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads[0][7, 11] += 0.5  # BUG in one element of 1200
            return dx

    layer, x = _affine(rng, cls=OneWrong, N=3, D=30, H=40)
    for mode in ("fast", "auto"):
        entry = _entry(check_layer(layer, x, mode=mode, max_elements=20), "W")
        assert entry.status == "mismatch", mode


def _peak(fn):
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("mode", ["auto", "fast"])
def test_a_check_holds_at_most_three_copies_of_the_params_beyond_forward_and_backward(rng, mode):
    # (big enough that the checker's fixed few kB do not count; auto with a small budget
    # runs the element-wise and the projection paths both)
    layer, x = _affine(rng, N=4, D=256, H=256)
    layer.forward(x)  # a cache from an earlier call, as a trained layer holds
    params = sum(p.nbytes for p in layer.params)
    plain = _peak(lambda: layer.backward(layer.forward(x)))
    check = _peak(lambda: check_layer(layer, x, mode=mode, max_elements=50))
    assert (check - plain) / params <= 3.0


def test_seed_none_draws_a_seed_and_reports_it(rng):
    layer, x = _affine(rng)
    report = check_layer(layer, x, seed=None)
    assert isinstance(report.seed, int)
    assert f"seed={report.seed}" in str(report)


def test_check_is_reproducible_from_its_seed(rng):
    layer, x = _affine(rng, cls=AffineScaledDW, N=3, D=30, H=40)
    a = check_layer(layer, x, seed=5, max_elements=30).to_dict()
    b = check_layer(copy.deepcopy(layer), x, seed=5, max_elements=30).to_dict()
    assert a == b


# --- bad use ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"eps": 0}, ValueError, r"eps=0 must be > 0; try eps=1e-6"),
        ({"eps": -1e-3}, ValueError, "eps=-0.001 must be > 0"),
        ({"rtol": -1}, ValueError, "rtol=-1 must be >= 0"),
        ({"atol": "x"}, TypeError, "atol='x' must be a number"),
        ({"mode": "slow"}, ValueError, "mode='slow' must be one of"),
        ({"seed": 1.5}, TypeError, "seed=1.5 must be an int"),
        ({"max_elements": 0}, ValueError, "max_elements=0 must be >= 1"),
        ({"projections": 0}, ValueError, "projections=0 must be >= 1"),
    ],
)
def test_bad_options_are_rejected_up_front(rng, options, error, match):
    layer, x = _affine(rng)
    with pytest.raises(error, match=match):
        check_layer(layer, x, **options)


def test_options_are_keyword_only(rng):
    layer, x = _affine(rng)
    with pytest.raises(TypeError):
        check_layer(layer, x, dout=None, **{"bogus": 1})


class _NoParams:
    def forward(self, x):
        return x

    def backward(self, dout):
        return dout


def _bad_use_cases(rng):
    layer, x = _affine(rng)

    class ReturnsNone(Affine):
        def forward(self, x):
            super().forward(x)

    class TooManyGrads(Affine):
        def backward(self, dout):
            return super().backward(dout), dout

    class NanOut(Affine):
        def forward(self, x):
            return super().forward(x) * np.nan

    mismatched = Affine(*layer.params)
    mismatched.grads = mismatched.grads[:1]
    W, b = layer.params
    return [
        (object(), (x,), TypeError, "has no forward"),
        (_NoParams(), (x,), TypeError, "params is NoneType"),
        (mismatched, (x,), ValueError, "2 params but 1 grads"),
        (layer, ([[1.0, 2.0]],), TypeError, r"input\[0\] is list.*np.asarray"),
        (layer, (np.full((3, 4), np.nan),), ValueError, r"input\[0\] contains NaN"),
        (layer, (), TypeError, "no inputs"),
        (ReturnsNone(W, b), (x,), TypeError, "returned None.*return out"),
        (TooManyGrads(W, b), (x,), ValueError, "returned 2 gradients for 1 inputs"),
        (NanOut(W, b), (x,), ValueError, "NaN or Inf"),
    ]


@pytest.mark.parametrize("k", range(9))
def test_bad_use_gets_a_clear_error(rng, k):
    layer, inputs, error, match = _bad_use_cases(rng)[k]
    with pytest.raises(error, match=match):
        check_layer(layer, *inputs)


def test_backward_missing_a_float_input_gradient_is_an_error(rng):
    class HalfSplit(Split):
        def forward(self, x, y):
            return super().forward(x + y)

        def backward(self, da, db):
            return super().backward(da, db)  # one gradient for two float inputs

    x, y = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    with pytest.raises(ValueError, match=r"no gradient for float input\[1\] y"):
        check_layer(HalfSplit(rng.standard_normal(3)), x, y)


# --- non-finite values: a NaN must never pass for agreement ----------------------------------


class Sqrt:
    """sqrt(x), elementwise, for x > 0. forward: x (any shape) -> y (same)."""

    def __init__(self):
        self.params, self.grads = [], []

    def forward(self, x):
        self.x = x
        return np.sqrt(x)

    def backward(self, dout):
        return dout * 0.5 / np.sqrt(self.x)


class SqrtNanAt3(Sqrt):
    """Sqrt whose backward puts a NaN at flat element 3."""

    def backward(self, dout):
        dx = super().backward(dout)
        dx.flat[3] = np.nan  # BUG
        return dx


@pytest.mark.parametrize("contract", [True, False])
@pytest.mark.parametrize("mode", ["full", "fast", "auto"])
def test_checker_blames_input_when_analytic_gradient_is_nan(mode, contract):
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    report = check_layer(SqrtNanAt3(), x, mode=mode, contract=contract)
    assert not report.passed, report
    entry = _entry(report, "input[0]")
    assert entry.status == "mismatch" and entry.index == (1, 0), report
    assert "analytic gradient is NaN at [1, 0]" in entry.message
    assert report.max_rel_error == np.inf and "ok (max rel err" not in str(report)
    assert "passes" not in str(report).splitlines()[0]
    assert check_layer(Sqrt(), x, mode=mode, contract=contract).passed  # the twin


@pytest.mark.parametrize("mode", ["full", "fast"])
def test_forward_nan_at_x_plus_minus_eps_is_a_failure_not_agreement(mode):
    # a correct sqrt one step from its domain edge: sqrt(1e-7 - 1e-6) is NaN
    x = np.array([[1.0, 1e-7, 3.0], [4.0, 5.0, 6.0]])
    with np.errstate(invalid="ignore"):
        report = check_layer(Sqrt(), x, mode=mode)
        assert check_layer(Sqrt(), x, mode=mode, eps=1e-9).passed  # a smaller step is fine
    assert not report.passed, report
    entry = _entry(report, "input[0]")
    assert entry.status == "fail", report
    assert "forward is NaN/Inf at input[0][0, 1]±eps" in entry.message, report
    assert "move the input away from the domain edge or lower eps" in entry.message
    head = str(report).splitlines()[0]  # backward is right: the header must not blame it
    assert head.startswith("Sqrt: a gradient could not be checked"), head


def test_report_without_contract_does_not_claim_the_contract_holds(rng):
    layer, x = _affine(rng)
    head = str(check_layer(layer, x, contract=False)).splitlines()[0]
    assert "contract not checked" in head and "contract hold" not in head
    assert "gradients and contract hold" in str(check_layer(layer, x)).splitlines()[0]


class ShiftBy1000:
    """x + 1000, elementwise. forward: x (any shape) -> (same)."""

    def __init__(self):
        self.params, self.grads = [], []

    def forward(self, x):
        return x + 1000.0

    def backward(self, dout):
        return dout.copy()


class ShiftBy1000InFloat32(ShiftBy1000):
    """x + 1000 rounded to float32: a step of 1e-6 in x is lost in the rounding (ulp 6e-5)."""

    def forward(self, x):
        return (x + 1000.0).astype(np.float32).astype(x.dtype)  # BUG


@pytest.mark.parametrize("mode", ["auto", "fast"])
def test_float32_inside_is_noted_when_the_loss_is_flat_at_both_steps(mode):
    x = np.array([[0.25, -1.5, 2.0], [3.0, -0.75, 0.5]])  # x + 1000 exact in float32
    report = check_layer(ShiftBy1000InFloat32(), x, mode=mode, dtype="strict")
    assert not report.passed
    assert any("does not change at all" in note for note in report.notes), report
    report = check_layer(ShiftBy1000InFloat32(), x, mode=mode)  # lenient: float32 precision
    assert report.passed and "verified to float32 precision" in str(report), report
    assert check_layer(ShiftBy1000(), x, mode=mode).passed  # the twin


def test_fast_mode_names_float32_inside_from_its_projections_and_two_more_forwards(rng):
    class Float32Inside(Affine):
        def forward(self, x):
            return super().forward(x.astype(np.float32)).astype(np.float64)  # BUG

    layer, x = _affine(rng, cls=Float32Inside)
    bad = check_layer(layer, x, mode="fast")
    assert "computes in float32" in str(bad), bad
    layer, x = _affine(rng)
    report = check_layer(layer, x, mode="fast", contract=False)
    assert report.passed, report
    assert report.forward_calls == 1 + 1 + 2 * 2 * 3 + 2  # probe, analytic, projections, eps/100


# --- bad use that would otherwise end in a raw Python error ----------------------------------


class SplitWithOneDout(Split):
    """Two outputs, but backward takes a single dout."""

    def backward(self, dout):  # BUG: forward returns two outputs
        return super().backward(dout, dout)


def test_backward_taking_the_wrong_number_of_douts_is_named_before_python_says_it(rng):
    x, w = rng.standard_normal((2, 3)), rng.standard_normal(3)
    with pytest.raises(TypeError) as raised:
        check_layer(SplitWithOneDout(w.copy()), x)
    message = str(raised.value)
    assert "forward returned 2 outputs" in message and "backward(dout0, dout1)" in message
    assert "SplitWithOneDout.backward takes 1 (dout)" in message
    assert check_layer(Split(w.copy()), x).passed  # the twin


@pytest.mark.parametrize(
    ("state", "error", "match"),
    [
        ((np.zeros((2, 4)),) * 3, ValueError, r"state= is a tuple of 3 items; pass state=h or"),
        ([np.zeros((2, 4))], TypeError, "state= is a list"),
        ((np.zeros((2, 4)), "c"), TypeError, "state= c is str"),
        (np.full((2, 4), np.nan), ValueError, "state= h contains NaN"),
    ],
)
def test_bad_state_option_is_named_up_front(rng, state, error, match):
    layer, xs = _rnn(rng)
    with pytest.raises(error, match=match):
        check_layer(layer, xs, state=state)
    assert check_layer(layer, xs, state=(np.zeros((2, 4)),)).passed  # a 1-tuple is h alone


def test_nan_in_the_state_the_layer_holds_is_named_as_such(rng):
    layer, xs = _rnn(rng)
    layer.set_state(np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match=r"TimeRNN.h \(the state the layer holds\) contains NaN"):
        check_layer(layer, xs)
    layer.set_state(np.zeros((2, 4)))
    assert check_layer(layer, xs).passed


class Square0d:
    """x**2 of a 0-d input; backward returns a NumPy scalar (np.float64), as NumPy does."""

    def __init__(self):
        self.params, self.grads = [], []

    def forward(self, x):
        self.x = x
        return x**2

    def backward(self, dout):
        return np.float64(2 * self.x * dout)  # a scalar, not a 0-d array


class Square0dWrong(Square0d):
    def backward(self, dout):
        return np.float64(3 * self.x * dout)  # BUG


def test_zero_dim_gradient_returned_as_a_numpy_scalar_is_accepted():
    x = np.array(0.7)
    assert check_layer(Square0d(), x).passed
    report = check_layer(Square0dWrong(), x)
    assert _entry(report, "input[0]").status == "mismatch", report


class HalfSquare:
    """L = sum(x**2) / 2; backward returns dout * x, and x itself (the array the checker
    perturbs) when dout == 1, or a copy with ``copy=True``."""

    def __init__(self, copy: bool = False):
        self.params, self.grads, self.x, self.copy = [], [], None, copy

    def forward(self, x):
        self.x = x
        return 0.5 * float(np.sum(x * x))

    def backward(self, dout=1.0):
        if dout != 1:
            return dout * self.x
        return self.x.copy() if self.copy else self.x


@pytest.mark.parametrize("mode", ["fast", "full"])
def test_gradient_that_is_the_perturbed_array_is_checked_like_its_copy(mode):
    x = 1e-4 * np.random.default_rng(0).standard_normal(400)
    aliased = check_layer(HalfSquare(), x, mode=mode, contract=False)
    copied = check_layer(HalfSquare(copy=True), x, mode=mode, contract=False)
    assert aliased.passed and copied.passed, aliased
    assert aliased.to_dict() == copied.to_dict()
