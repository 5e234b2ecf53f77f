"""A failure shrinks to the smallest dimensions that show it, and says how to reproduce it.

The layer below has a bug that only shows at T >= 2 (its backward forgets that a running sum
sends every step's gradient to all earlier steps). Hypothesis must hand back T = 2, with every
other dimension and the seed at their lower bounds, and the failure text must carry them.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

import gradcheck
from gradcheck import cases as registry
from gradcheck.strategies import layer_cases

_SETTINGS = settings(
    database=None,  # a saved example would skip the shrinking this test is about
    derandomize=True,
    max_examples=200,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


class _BuggyRunningSum:
    """ys[:, t] = sum over s <= t of xs[:, s] * w; w (D,) shared across time.

    forward: xs (N, T, D) -> ys (N, T, D)
    backward: dys (N, T, D) -> dxs (N, T, D). BUG: uses dys where the reverse cumulative sum
    of dys belongs, which is the same thing only when T == 1.
    """

    def __init__(self, w):
        self.params = [w]
        self.grads = [np.zeros_like(w)]
        self.param_names = ["w"]
        self.xs = None

    def forward(self, xs):
        self.xs = xs
        return np.cumsum(xs * self.params[0], axis=1)

    def backward(self, dys):
        self.grads[0][...] = (dys * self.xs).sum(axis=(0, 1))
        return dys * self.params[0]


def _buggy_running_sum(rng, N, T, D):
    return _BuggyRunningSum(rng.standard_normal(D)), (rng.standard_normal((N, T, D)),)


@pytest.fixture
def buggy_case(monkeypatch):
    """The buggy layer registered as a case, in a registry private to this test."""
    monkeypatch.setattr(registry, "_REGISTRY", {})
    gradcheck.case(dims={"N": (1, 4), "T": (1, 6), "D": (1, 4)})(_buggy_running_sum)
    (case,) = gradcheck.registered_cases()
    return case


def _fails(drawn):
    layer, inputs = drawn
    report = gradcheck.check_layer(layer, *inputs, seed=drawn.seed, context=drawn.context)
    return not report.passed


def test_bug_is_invisible_at_T_1_and_seen_at_T_2(buggy_case):
    assert not _fails(find(layer_cases(buggy_case, T=1), lambda d: True, settings=_SETTINGS))
    assert _fails(find(layer_cases(buggy_case, T=2), lambda d: True, settings=_SETTINGS))


def test_falsifying_example_shrinks_to_T_2_and_smallest_dims(buggy_case):
    smallest = find(layer_cases(buggy_case), _fails, settings=_SETTINGS)
    assert smallest.dims == {"N": 1, "T": 2, "D": 1}
    assert smallest.seed == 0
    assert repr(smallest) == "_buggy_running_sum(seed=0, N=1, T=2, D=1)"


def test_failure_message_carries_dims_and_seed(buggy_case):
    drawn_cases = []

    @_SETTINGS
    @given(data=st.data())
    def fuzz(data):
        drawn = data.draw(layer_cases(buggy_case))
        drawn_cases.append(drawn)
        layer, inputs = drawn
        gradcheck.assert_layer(layer, *inputs, seed=drawn.seed, context=drawn.context)

    with pytest.raises(gradcheck.GradientMismatch) as info:
        fuzz()
    message = str(info.value)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert drawn_cases[-1].dims == {"N": 1, "T": 2, "D": 1}  # hypothesis replays the minimum last
    assert "_BuggyRunningSum" in message
    assert "seed=0" in message and "N=1 T=2 D=1" in message  # the report's reproduce line
    assert "_buggy_running_sum(seed=0, N=1, T=2, D=1)" in notes  # hypothesis' falsifying draw
