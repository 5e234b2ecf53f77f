"""Fuzz the time layers (TimeEmbedding, TimeAffine, TimeSoftmaxWithLoss, TimeDropout).

Hypothesis draws dimensions within each case's bounds (edge size 1 included), a seed for the
weights and inputs, and asserts every gradient against finite differences; a failure shrinks to
the smallest dimensions and names them. The table is every case registered in `layers/cases.py`
whose layer lives in `layers/time.py`, so a new case is fuzzed as soon as it is registered.
The last test draws the loss's values too: labels with ignored positions and padded rows.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import layers  # noqa: F401  (registers the cases)
from gradcheck import assert_layer, registered_cases
from gradcheck.strategies import dims, float_arrays, labels, layer_cases
from layers import TimeSoftmaxWithLoss

CASES = [
    pytest.param(case, id=case.name)
    for case in registered_cases("layers")
    if type(case.build(0)[0]).__module__ == "layers.time"  # the family of the built layer
]


@pytest.mark.parametrize("case", CASES)
@given(data=st.data())
def test_backward_matches_finite_differences(case, data):
    drawn = data.draw(layer_cases(case))
    layer, inputs = drawn
    assert_layer(layer, *inputs, seed=drawn.seed, context=drawn.context, **case.options)


@given(data=st.data(), sizes=dims("N", "T", "V", max_V=5))
def test_loss_gradient_holds_with_ignored_labels_and_fully_masked_rows(data, sizes):
    # Values, not just sizes, from hypothesis: padded positions and whole padded sequences.
    N, T, V = sizes["N"], sizes["T"], sizes["V"]
    xs = data.draw(float_arrays((N, T, V), min_value=-3.0, max_value=3.0), label="xs")
    ts = data.draw(labels((N, T), num_classes=V, ignore_label=-1), label="ts")
    assert_layer(TimeSoftmaxWithLoss(), xs, ts, context=f"N={N} T={T} V={V}")
