"""Stateful recurrent layers under random call sequences (hypothesis.stateful).

A machine drives one stateful TimeRNN / TimeLSTM / TimeGRU through forward, backward,
set_state, reset_state and gradient checks on random chunks of a sequence, and after every step
checks that

- the stateful forwards since the last (re)start equal one forward over their concatenation,
  from the same start (truncated BPTT changes gradients, never outputs);
- the start after ``reset_state`` (or before any forward) is zeros: a ``stateful=False`` layer
  gives the same outputs;
- ``backward`` sets ``dh`` (and ``dc``) for the state the last forward started from, and
  ``gradcheck.check_layer`` finds ``dh``/``dc`` (and every other gradient) equal to finite
  differences from whatever state the calls so far left, without changing that state.
"""

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import gradcheck
from gradcheck.strategies import dims, float_arrays
from layers import TimeGRU, TimeLSTM, TimeRNN

_CHUNK_LENGTHS = st.integers(1, 3)


def _assert_close(actual, expected, what):
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-14, err_msg=what)


class _StatefulRecurrent(RuleBasedStateMachine):
    """Rules and invariants shared by the three layers; subclasses name the layer."""

    layer_class = None
    gates = 1  # weight blocks per hidden unit: 1 RNN, 4 LSTM, 3 GRU
    has_cell = False

    @initialize(sizes=dims("N", "D", "H", max_size=3), seed=st.integers(0, 2**32 - 1))
    def build(self, sizes, seed):
        rng = np.random.default_rng(seed)
        self.N, D, self.H = sizes["N"], sizes["D"], sizes["H"]
        G = self.gates * self.H
        self.weights = (
            0.5 * rng.standard_normal((D, G)),
            0.5 * rng.standard_normal((self.H, G)),
            0.1 * rng.standard_normal(G),
        )
        self.layer = self._new_layer(stateful=True)
        self.D = D
        self._restart(None, None)
        self.last_forward = None  # (xs, h0, c0) of the latest forward

    def _new_layer(self, *, stateful):
        return self.layer_class(*(w.copy() for w in self.weights), stateful=stateful)

    def _restart(self, h0, c0):
        """Begin a new run of chunks from (h0, c0); None means the zero start."""
        self.start = (h0, c0)
        self.chunks, self.outputs = [], []

    def _state(self):
        h = None if self.layer.h is None else self.layer.h.copy()
        c = None if not self.has_cell or self.layer.c is None else self.layer.c.copy()
        return h, c

    def _zeros(self):
        return np.zeros((self.N, self.H))

    # rules ---------------------------------------------------------------------------------

    @rule(data=st.data(), T=_CHUNK_LENGTHS)
    def forward(self, data, T):
        xs = data.draw(float_arrays((self.N, T, self.D)), label="xs")
        h0, c0 = self._state()
        hs = self.layer.forward(xs)
        assert hs.shape == (self.N, T, self.H)
        self.chunks.append(xs)
        self.outputs.append(hs.copy())
        zero = self._zeros()
        self.last_forward = (xs, zero if h0 is None else h0, zero if c0 is None else c0)

    @precondition(lambda self: self.last_forward is not None)
    @rule(data=st.data())
    def backward(self, data):
        xs, h0, c0 = self.last_forward
        dhs = data.draw(float_arrays((self.N, xs.shape[1], self.H)), label="dhs")
        state = self._state()
        dxs = self.layer.backward(dhs)
        assert dxs.shape == xs.shape
        reference = self._new_layer(stateful=True)
        reference.set_state(h0, c0 if self.has_cell else None)
        reference.forward(xs)
        reference.backward(dhs)
        _assert_close(self.layer.dh, reference.dh, "dh is not for the last forward's start")
        if self.has_cell:
            _assert_close(self.layer.dc, reference.dc, "dc is not for the last forward's start")
        after = self._state()
        for before_array, after_array in zip(state, after, strict=True):
            assert (before_array is None) == (after_array is None)
            if before_array is not None:
                np.testing.assert_array_equal(before_array, after_array, "backward moved h/c")

    @rule(data=st.data())
    def set_state(self, data):
        h = data.draw(float_arrays((self.N, self.H)), label="h")
        c = None
        if self.has_cell:
            c = data.draw(st.none() | float_arrays((self.N, self.H)), label="c")
        self.layer.set_state(h, c)
        self._restart(h, self._zeros() if self.has_cell and c is None else c)

    @rule()
    def reset_state(self):
        self.layer.reset_state()
        assert self.layer.h is None and self.layer.c is None
        self._restart(None, None)

    @rule(data=st.data(), T=_CHUNK_LENGTHS, seed=st.integers(0, 2**16))
    def check_gradients(self, data, T, seed):
        xs = data.draw(float_arrays((self.N, T, self.D)), label="xs")
        before = self._state()
        report = gradcheck.check_layer(self.layer, xs, seed=seed)
        assert report.passed, str(report)
        checked = {entry.name for entry in report.gradients}
        assert "dh" in checked, str(report)
        if self.has_cell:
            assert "dc" in checked, str(report)
        for before_array, after_array in zip(before, self._state(), strict=True):
            if before_array is None:
                assert after_array is None, "check_layer left a state behind"
            else:
                np.testing.assert_array_equal(after_array, before_array, "check_layer moved h/c")

    # invariants ----------------------------------------------------------------------------

    @invariant()
    def chunks_equal_one_forward_over_their_concatenation(self):
        if not getattr(self, "chunks", None):
            return
        h0, c0 = self.start
        if h0 is None:  # zero start: a stateless layer starts from zeros by contract
            reference = self._new_layer(stateful=False)
        else:
            reference = self._new_layer(stateful=True)
            reference.set_state(h0, c0)
        hs = reference.forward(np.concatenate(self.chunks, axis=1))
        _assert_close(np.concatenate(self.outputs, axis=1), hs, "chunked != concatenated")
        _assert_close(self.layer.h, hs[:, -1], "layer.h is not the last step's h")
        if self.has_cell:
            _assert_close(self.layer.c, reference.c, "layer.c is not the last step's c")


class TimeRNNMachine(_StatefulRecurrent):
    layer_class, gates = TimeRNN, 1


class TimeLSTMMachine(_StatefulRecurrent):
    layer_class, gates, has_cell = TimeLSTM, 4, True


class TimeGRUMachine(_StatefulRecurrent):
    layer_class, gates = TimeGRU, 3


# Steps per run: enough for forward/backward/set_state/reset_state/check in several orders.
TimeRNNMachine.TestCase.settings = settings(stateful_step_count=8)
TimeLSTMMachine.TestCase.settings = settings(stateful_step_count=8)
TimeGRUMachine.TestCase.settings = settings(stateful_step_count=8)

TestTimeRNN = TimeRNNMachine.TestCase
TestTimeLSTM = TimeLSTMMachine.TestCase
TestTimeGRU = TimeGRUMachine.TestCase
