"""The case registry: how modules declare layers to check."""

import numpy as np
import pytest
from hypothesis import strategies as st

from gradcheck import cases as registry
from gradcheck.cases import case, registered_cases


class _Scale:
    """A one-parameter layer for registry tests: y = w * x."""

    def __init__(self, w):
        self.params = [w]
        self.grads = [np.zeros_like(w)]


@pytest.fixture
def clean_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", {})


def test_bare_decorator_registers_and_returns_function(clean_registry):
    @case
    def scale(rng):
        return _Scale(rng.standard_normal(3)), (rng.standard_normal(3),)

    (entry,) = registered_cases()
    assert entry.name == "scale"
    assert entry.module == __name__
    assert entry.id == f"{__name__}::scale"
    assert scale is entry.func
    layer, inputs = entry.build(0)
    assert isinstance(layer, _Scale)
    assert inputs[0].shape == (3,)


def test_dims_default_to_lower_bounds_and_accept_overrides(clean_registry):
    @case(dims={"N": (2, 5), "D": 3}, rtol=1e-4)
    def scale(rng, N, D):
        return _Scale(rng.standard_normal(D)), (rng.standard_normal((N, D)),)

    (entry,) = registered_cases()
    assert entry.options == {"rtol": 1e-4}
    assert entry.smallest_dims() == {"N": 2, "D": 3}
    assert entry.build(0)[1][0].shape == (2, 3)
    assert entry.build(0, N=4)[1][0].shape == (4, 3)


def test_build_is_deterministic_in_seed(clean_registry):
    @case
    def scale(rng):
        return _Scale(rng.standard_normal(3)), (rng.standard_normal(3),)

    (entry,) = registered_cases()
    a, b = entry.build(7), entry.build(7)
    np.testing.assert_array_equal(a[0].params[0], b[0].params[0])
    np.testing.assert_array_equal(a[1][0], b[1][0])


def test_strategy_dims_must_be_given_to_build(clean_registry):
    @case(dims={"N": st.integers(1, 3)})
    def scale(rng, N):
        return _Scale(rng.standard_normal(1)), (rng.standard_normal(N),)

    (entry,) = registered_cases()
    with pytest.raises(ValueError, match=r"needs dims \['N'\]"):
        entry.build(0)
    assert entry.build(0, N=2)[1][0].shape == (2,)


def test_reregistering_replaces_instead_of_duplicating(clean_registry):
    for _ in range(2):

        @case
        def scale(rng):
            return _Scale(np.ones(1)), (np.ones(1),)

    assert len(registered_cases()) == 1


def test_registered_cases_filters_by_module_and_submodule(clean_registry):
    def make(module):
        def f(rng):
            return _Scale(np.ones(1)), (np.ones(1),)

        f.__module__ = module
        return case(f)

    make("pkg")
    make("pkg.sub")
    make("pkgother")
    assert [c.module for c in registered_cases("pkg")] == ["pkg", "pkg.sub"]


@pytest.mark.parametrize(
    ("dims", "error", "message"),
    [
        ({"X": 2}, TypeError, "has no argument 'X'"),
        ({"N": 0}, ValueError, "must be >= 1"),
        ({"N": (3, 1)}, ValueError, "1 <= min <= max"),
        ({"N": (1, 2, 3)}, TypeError, r"\(min, max\)"),
        ({"N": "big"}, TypeError, "must be an int"),
        ({"N": True}, TypeError, "must be an int"),
    ],
)
def test_bad_dims_are_rejected_with_the_argument_named(clean_registry, dims, error, message):
    def scale(rng, N):
        return _Scale(np.ones(1)), (np.ones(N),)

    with pytest.raises(error, match=message):
        case(dims=dims)(scale)
    assert registered_cases() == []


def test_case_returning_wrong_shape_of_result_is_explained(clean_registry):
    @case
    def broken(rng):
        return _Scale(np.ones(1))

    (entry,) = registered_cases()
    with pytest.raises(TypeError, match=r"must return \(layer, inputs_tuple\)"):
        entry.build(0)


def test_single_array_input_is_wrapped_in_a_tuple(clean_registry):
    @case
    def scale(rng):
        return _Scale(np.ones(1)), np.ones(2)

    _layer, inputs = registered_cases()[0].build(0)
    assert isinstance(inputs, tuple) and inputs[0].shape == (2,)


def test_bare_and_configured_forms_cannot_be_mixed():
    def scale(rng):
        return _Scale(np.ones(1)), (np.ones(1),)

    with pytest.raises(TypeError, match="not both"):
        case(scale, dims={"N": 1})
