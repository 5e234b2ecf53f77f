"""The LayerNorm of custom_layer.py in plain pytest tests: ``pytest examples/test_custom_layer.py``.

The ``gradcheck`` fixture and the ``gradcheck`` marker come with the package (a pytest11
plugin): nothing to import or register.
"""

import numpy as np
import pytest
from custom_layer import LayerNorm, layer_norm
from hypothesis import given
from hypothesis import strategies as st

from gradcheck import assert_layer
from gradcheck.strategies import layer_cases


def test_layer_norm_gradients(gradcheck):
    rng = np.random.default_rng(0)
    layer = LayerNorm(1 + rng.standard_normal(5), rng.standard_normal(5))
    gradcheck(layer, rng.standard_normal((3, 5)))  # fails the test with the report if wrong


@pytest.mark.gradcheck(mode="full", rtol=1e-6)  # options for this test only
def test_layer_norm_float32_every_element(gradcheck):
    rng = np.random.default_rng(1)
    gamma, beta = rng.standard_normal(4, dtype=np.float32), rng.standard_normal(4, dtype=np.float32)
    report = gradcheck(LayerNorm(gamma, beta), rng.standard_normal((2, 3, 4), dtype=np.float32))
    assert report.settings["mode"] == "full"


@given(data=st.data())
def test_layer_norm_at_drawn_shapes(data):
    # hypothesis draws N, T, D within the case's bounds; a failure shrinks to the smallest
    drawn = data.draw(layer_cases(layer_norm))
    layer, inputs = drawn
    assert_layer(layer, *inputs, seed=drawn.seed, context=drawn.context)
