"""Honest verdicts: a forward that is not deterministic is named first and its gradients are
not judged; a check that compared nothing does not pass; integer inputs get a row. Each with a
negative control (the layer it must fail) and a positive one (the twin it must pass)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from gradcheck import check_layer


@pytest.fixture
def rng():
    return np.random.default_rng(11)


class Dropout:
    """Inverted dropout; ``source`` says where the mask comes from: the layer's own generator
    (right), the global np.random, Python's random, or a fresh unseeded generator (wrong)."""

    def __init__(self, source="own", ratio=0.5):
        self.params, self.grads = [], []
        self.source, self.ratio = source, ratio
        self.rng = np.random.default_rng(0)

    def _uniform(self, shape):
        if self.source == "global":
            return np.random.random(shape)  # noqa: NPY002  # BUG
        if self.source == "python":
            return np.array([random.random() for _ in range(int(np.prod(shape)))]).reshape(shape)
        if self.source == "fresh":
            return np.random.default_rng().random(shape)  # BUG: a new seed every call
        return self.rng.random(shape)

    def forward(self, x):
        self.mask = (self._uniform(x.shape) >= self.ratio) / (1 - self.ratio)
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


@pytest.mark.parametrize("source", ["global", "python", "fresh"])
def test_nondeterministic_forward_is_named_first_and_gradients_not_judged(rng, source):
    x = rng.standard_normal((4, 5))
    report = check_layer(Dropout(source), x)
    assert not report.passed
    head = str(report).splitlines()[0]
    assert "gradients not judged, forward is not deterministic" in head, report
    if source == "global":
        assert "global np.random" in head
    assert [e.status for e in report.gradients] == ["not judged"]
    assert all(e.pattern is None and e.kinks == 0 for e in report.gradients)
    deterministic = next(e for e in report.contract if e.name == "forward deterministic")
    assert deterministic.status == "fail"
    assert check_layer(Dropout("own"), x).passed  # the twin


@pytest.mark.parametrize("seed", range(8))
def test_global_random_is_named_even_when_two_masks_agree_by_chance(seed):
    # one element: two global draws give the same mask half of the time
    x = np.array([[0.7]])
    report = check_layer(Dropout("global"), x, seed=seed)
    assert "global np.random" in str(report).splitlines()[0], report
    assert "float32" not in str(report)


def test_nondeterminism_is_a_failure_without_the_contract_too(rng):
    report = check_layer(Dropout("global"), rng.standard_normal((3, 3)), contract=False)
    assert not report.passed


class Lookup:
    """out = W[ids]; ``ids_only`` drops W, leaving a layer of integer inputs only."""

    def __init__(self, W=None):
        self.params = [] if W is None else [W]
        self.grads = [np.zeros_like(p) for p in self.params]

    def forward(self, ids, *rest):
        self.ids = ids
        table = self.params[0] if self.params else np.arange(6.0)[:, None] * np.ones((6, 2))
        return table[ids] * (rest[0] if rest else 1.0)

    def backward(self, dout):
        if self.params:
            self.grads[0][...] = 0
            np.add.at(self.grads[0], self.ids, dout)
        return 3 * self.ids * dout.sum()  # BUG for ids only: a gradient for an integer input


def test_integer_inputs_only_and_no_parameters_is_not_a_pass():
    report = check_layer(Lookup(), np.array([0, 3, 5]))
    assert not report.passed, report
    assert str(report).splitlines()[0].startswith("Lookup: nothing was checked")
    assert report.gradients[0].message == "not checked: integer input"
    nothing = next(e for e in report.gradients if e.name == "nothing checked")
    assert "no float input and no parameters" in nothing.message
    assert check_layer(Lookup(np.ones((6, 2))), np.array([0, 3, 5])).passed  # the twin


class Affine:
    def __init__(self, W):
        self.params, self.grads = [W], [np.zeros_like(W)]

    def forward(self, x):
        self.x = x
        return x @ self.params[0]

    def backward(self, dout):
        self.grads[0][...] = self.x.T @ dout
        return dout @ self.params[0].T


def test_empty_batch_is_not_a_pass(rng):
    layer = Affine(rng.standard_normal((3, 2)))
    report = check_layer(layer, np.zeros((0, 3)))
    assert not report.passed, report
    assert str(report).splitlines()[0].startswith("Affine: nothing was checked"), report
    assert "the output is empty" in str(report)
    assert check_layer(layer, rng.standard_normal((2, 3))).passed  # the twin: N=2


# --- inputs the forward writes into, gradients of another shape ------------------------------


def _softmax_loss(x, y, *, in_place=False, wrong=False):
    """cs231n's softmax loss; ``in_place`` shifts x by its row maxima in place (the caller's
    array!), ``wrong`` forgets to divide dx by N."""
    if in_place:
        x -= x.max(axis=1, keepdims=True)  # writes into the caller's x
    else:
        x = x - x.max(axis=1, keepdims=True)
    p = np.exp(x)
    p /= p.sum(axis=1, keepdims=True)
    N = x.shape[0]
    loss = -np.log(p[np.arange(N), y]).mean()
    dx = p.copy()
    dx[np.arange(N), y] -= 1
    return loss, dx if wrong else dx / N


@pytest.mark.parametrize("wrong", [False, True])
def test_an_input_the_forward_writes_into_is_still_checked(rng, wrong):
    from gradcheck import check_loss

    x, y = rng.standard_normal((4, 5)), np.array([0, 4, 2, 2])

    def loss(x, y):
        return _softmax_loss(x, y, in_place=True, wrong=wrong)

    report = check_loss(loss, x, y)
    row = report.gradients[0]
    assert row.checked == x.size, report
    assert row.status == ("mismatch" if wrong else "ok"), report
    unmodified = next(e for e in report.contract if e.name == "arguments unmodified")
    assert unmodified.status == "fail" and "forward modified x" in unmodified.message
    assert check_loss(_softmax_loss, x, y).passed  # the twin works on a copy


class Bias:
    """out = x + b; ``shape`` of db: (H,) right, (1, H) wrong shape; ``factor`` scales it."""

    def __init__(self, b, shape="right", factor=1.0):
        self.params, self.grads = [b], [np.zeros_like(b)]
        self.shape, self.factor = shape, factor

    def forward(self, x):
        return x + self.params[0]

    def backward(self, dout):
        self.grads[0][...] = dout.sum(axis=0)
        dx = dout * self.factor
        return dx.reshape(1, *dx.shape) if self.shape == "wrong" else dx


@pytest.mark.parametrize("factor", [1.0, 2.0])
def test_a_gradient_of_another_shape_is_compared_by_value_and_fails_on_its_shape(rng, factor):
    x, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    report = check_layer(Bias(b, "wrong", factor), x)
    row = report.gradients[0]
    assert not report.passed
    assert "gradient has shape (1, 3, 4), expected (3, 4) exactly" in row.message, report
    if factor == 1.0:
        assert row.status == "fail" and "its values, reshaped, agree" in row.message
    else:
        assert row.status == "mismatch" and "its values are wrong too" in row.message
        assert row.pattern is not None and "constant factor" in row.pattern
    assert check_layer(Bias(b), x).passed  # the twin


# --- hidden state: learnt from what forward leaves, each part set and used -------------------


def _lstm(cls, rng, N=2, T=3, D=3, H=4):
    Wx, Wh, b = (
        rng.standard_normal((D, 4 * H)),
        rng.standard_normal((H, 4 * H)) * 0.5,
        rng.standard_normal(4 * H),
    )
    return cls(Wx, Wh, b, stateful=True), rng.standard_normal((N, T, D))


def _lstm_classes():
    from layers.recurrent import TimeLSTM

    class IgnoresC(TimeLSTM):
        def set_state(self, h, c=None):  # BUG: c dropped
            super().set_state(h)
            self.c = None

    class ForwardIgnoresC(TimeLSTM):
        def _start(self, xs):  # BUG: the cell state always starts from zeros
            h, _ = super()._start(xs)
            return h, np.zeros_like(h)

    class ForwardIgnoresState(TimeLSTM):
        def _start(self, xs):  # BUG: both parts always start from zeros
            h, _ = super()._start(xs)
            return np.zeros_like(h), np.zeros_like(h)

    return TimeLSTM, IgnoresC, ForwardIgnoresC, ForwardIgnoresState


@pytest.mark.parametrize(
    ("bug", "row", "says"),
    [
        ("IgnoresC", "dc", "set_state(h, c) did not set c"),
        ("ForwardIgnoresC", "dc", "forward does not depend on the state c"),
        ("ForwardIgnoresState", "dh", "forward does not depend on the state h"),
    ],
)
def test_state_parts_are_set_and_used_or_named(rng, bug, row, says):
    TimeLSTM, *bugs = _lstm_classes()
    cls = {c.__name__: c for c in bugs}[bug]
    layer, xs = _lstm(cls, rng)
    report = check_layer(layer, xs)
    assert not report.passed
    entry = next(e for e in report.gradients if e.name == row)
    assert not entry.passed and says in entry.message, report
    twin, xs = _lstm(TimeLSTM, np.random.default_rng(11))
    assert check_layer(twin, xs).passed  # the twin


def test_cell_state_is_checked_when_only_h_is_held(rng):
    TimeLSTM, *_ = _lstm_classes()

    class BookSetState(TimeLSTM):
        def set_state(self, h, c=None):  # the book's: c stays None until a forward
            self.h, self.c = np.array(h, dtype=self.params[1].dtype), c

    layer, xs = _lstm(BookSetState, rng)
    layer.set_state(rng.standard_normal((2, 4)))  # c=None: zeros
    assert layer.c is None
    report = check_layer(layer, xs)
    assert report.passed, report
    assert {"dh", "dc"} <= {e.name for e in report.gradients}


# --- float32 inside: judged at float32 precision, bugs beyond it still caught ------------------


def _float32_lstm_classes():
    from layers.recurrent import TimeLSTM

    class BookStyleLSTM(TimeLSTM):
        """The book's buffers: hs and dxs hard-coded to float32 (dtype='f')."""

        def forward(self, xs):
            hs = np.empty((*xs.shape[:2], self.params[1].shape[0]), dtype="f")
            hs[...] = super().forward(xs)
            return hs

        def backward(self, dhs):
            dxs = np.empty((*dhs.shape[:2], self.params[0].shape[0]), dtype="f")
            dxs[...] = super().backward(dhs)
            return dxs

    class BookStyleLSTMWrongWh(BookStyleLSTM):
        def backward(self, dhs):
            dxs = super().backward(dhs)
            self.grads[1][...] *= 1.01  # BUG: dWh 1 % too large
            return dxs

    return BookStyleLSTM, BookStyleLSTMWrongWh


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("mode", ["auto", "fast"])
def test_book_style_float32_lstm_passes_at_float32_precision(seed, mode):
    right, wrong = _float32_lstm_classes()
    layer, xs = _lstm(right, np.random.default_rng(seed))
    report = check_layer(layer, xs, mode=mode, seed=seed)
    assert report.passed, report
    top = str(report).splitlines()[1]
    assert "computes in float32 inside (float32: output[0], the gradient of input[0] xs)" in top
    assert "gradients verified to float32 precision" in top
    assert sum("float32" in line for line in str(report).splitlines()) == 1  # said once
    layer, xs = _lstm(wrong, np.random.default_rng(seed))
    report = check_layer(layer, xs, mode=mode, seed=seed)
    assert [e.name for e in report.failures] == ["Wh"], report
    layer, xs = _lstm(right, np.random.default_rng(seed))
    strict = check_layer(layer, xs, mode=mode, seed=seed, dtype="strict")
    assert not strict.passed
