"""gradcheck.strategies: bounds hold, edge sizes are drawn, failures shrink, bad use is named."""

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

import gradcheck
from gradcheck import cases as registry
from gradcheck.cases import Case
from gradcheck.strategies import (
    DrawnCase,
    dims,
    float_arrays,
    labels,
    layer_cases,
    token_ids,
)


class _Scale:
    """y = w * x: a layer just big enough to be built by a case."""

    def __init__(self, w):
        self.params = [w]
        self.grads = [np.zeros_like(w)]


def _scale(rng, N, T, D):
    return _Scale(rng.standard_normal(D)), (rng.standard_normal((N, T, D)),)


# Built directly, not registered: tests here leave the global registry alone.
SCALE = Case(name="scale", func=_scale, module=__name__, dims={"N": (1, 3), "T": (1, 5), "D": 2})


def _minimal(strategy, condition=lambda value: True):
    """The simplest value of ``strategy`` meeting ``condition``, never replayed from a database."""
    return find(strategy, condition, settings=settings(database=None, max_examples=500))


@pytest.fixture
def clean_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", {})


def test_module_is_importable_as_submodule_with_explicit_all():
    from gradcheck import strategies

    public = {n for n in vars(strategies) if not n.startswith("_")}
    assert set(strategies.__all__) <= public
    assert {"dims", "float_arrays", "token_ids", "labels", "layer_cases"} <= set(strategies.__all__)


# dims ------------------------------------------------------------------------------------------


@given(sizes=dims("N", "T", "D", max_T=6, min_D=2, max_D=3))
def test_dims_respect_shared_and_per_dimension_bounds(sizes):
    assert list(sizes) == ["N", "T", "D"]
    assert 1 <= sizes["N"] <= 4
    assert 1 <= sizes["T"] <= 6
    assert 2 <= sizes["D"] <= 3


def test_dims_shrink_to_lower_bounds_and_include_size_one():
    assert _minimal(dims("N", "T", "Te", "Td", "D", "H", "V")) == dict.fromkeys(
        ["N", "T", "Te", "Td", "D", "H", "V"], 1
    )
    assert _minimal(dims("T", min_T=2)) == {"T": 2}


def test_dims_reach_the_upper_bound():
    assert _minimal(dims("N", max_size=7), lambda d: d["N"] == 7) == {"N": 7}


@pytest.mark.parametrize(
    ("call", "error", "says"),
    [
        (lambda: dims(), TypeError, 'dims("N", "T", "D")'),
        (lambda: dims("N", max_T=3), TypeError, "max_T=3"),
        (lambda: dims("N", min_N=3, max_N=2), ValueError, "min_N=3 > max_N=2"),
        (lambda: dims("N", min_size=0), ValueError, "min_size=0 must be >= 1"),
        (lambda: dims("N", max_N=2.5), TypeError, "max_N=2.5 must be an int"),
        (lambda: dims("N", "N"), ValueError, "twice"),
    ],
)
def test_dims_bad_use_names_the_argument(call, error, says):
    with pytest.raises(error, match=None) as info:
        call()
    assert says in str(info.value)


# float_arrays ----------------------------------------------------------------------------------


@given(x=float_arrays((2, 3), min_value=-2.0, max_value=0.5))
def test_float_arrays_are_finite_and_bounded(x):
    assert x.shape == (2, 3) and x.dtype == np.float64
    assert np.all(np.isfinite(x)) and x.min() >= -2.0 and x.max() <= 0.5


@given(x=float_arrays(st.tuples(st.integers(1, 3), st.integers(1, 3)), dtype=np.float32))
def test_float_arrays_take_a_shape_strategy_and_a_dtype(x):
    assert x.ndim == 2 and x.dtype == np.float32


@given(x=float_arrays(5, away_from=[0.0, 0.5], margin=0.01))
def test_float_arrays_keep_away_from_kinks(x):
    assert np.all(np.abs(x) >= 0.01) and np.all(np.abs(x - 0.5) >= 0.01)


@pytest.mark.parametrize(
    ("kwargs", "error", "says"),
    [
        ({"dtype": np.int64}, TypeError, "dtype=int64 must be a float dtype"),
        ({"min_value": 1.0, "max_value": 0.0}, ValueError, "min_value=1.0 > max_value=0.0"),
        ({"max_value": float("inf")}, ValueError, "max_value=inf must be a finite number"),
        ({"away_from": 0, "margin": 0}, ValueError, "margin=0 must be > 0"),
        ({"away_from": 0, "min_value": -0.1, "max_value": 0.1, "margin": 1}, ValueError, "0"),
    ],
)
def test_float_arrays_bad_use_names_the_argument(kwargs, error, says):
    with pytest.raises(error) as info:
        float_arrays((2,), **kwargs)
    assert says in str(info.value)


# token_ids and labels --------------------------------------------------------------------------


@given(ids=token_ids((3, 4), vocab_size=3))
def test_token_ids_lie_in_the_vocabulary(ids):
    assert ids.shape == (3, 4) and ids.dtype == np.int64
    assert ids.min() >= 0 and ids.max() < 3


def test_token_ids_repeat_in_a_small_vocabulary():
    repeated = _minimal(token_ids((2, 2), vocab_size=3), lambda a: len(set(a.ravel())) < a.size)
    assert len(set(repeated.ravel())) < repeated.size


@given(ts=labels((3, 4), num_classes=5, ignore_label=-1))
def test_labels_are_classes_or_ignored_and_keep_at_least_one(ts):
    assert set(ts.ravel()) <= {-1, 0, 1, 2, 3, 4}
    assert (ts != -1).sum() >= 1


def test_labels_draw_fully_ignored_rows():
    ts = _minimal(labels((3, 4), num_classes=2, ignore_label=-1), lambda t: (t == -1).all(-1).any())
    assert (ts == -1).all(-1).any() and (ts != -1).any()


def test_labels_with_min_kept_zero_can_ignore_everything():
    ts = _minimal(
        labels((2, 3), num_classes=2, ignore_label=-1, min_kept=0), lambda t: (t == -1).all()
    )
    assert (ts == -1).all()


@given(ts=labels(4, num_classes=3))
def test_labels_without_ignore_label_are_all_real(ts):
    assert ts.shape == (4,) and ts.min() >= 0 and ts.max() < 3


@pytest.mark.parametrize(
    ("call", "error", "says"),
    [
        (lambda: token_ids((2,), vocab_size=0), ValueError, "vocab_size=0 must be >= 1"),
        (lambda: token_ids((2,), vocab_size=3, dtype=float), TypeError, "dtype=float64"),
        (lambda: labels((2,), num_classes=3, ignore_label=1), ValueError, "ignore_label=1"),
        (lambda: labels((2,), num_classes=0), ValueError, "num_classes=0 must be >= 1"),
        (lambda: labels((2,), num_classes=2, min_kept=-1), ValueError, "min_kept=-1"),
    ],
)
def test_ids_and_labels_bad_use_names_the_argument(call, error, says):
    with pytest.raises(error) as info:
        call()
    assert says in str(info.value)


# layer_cases -----------------------------------------------------------------------------------


@given(data=st.data())
def test_layer_cases_draw_a_built_case_within_its_dims(data):
    drawn = data.draw(layer_cases(SCALE))
    layer, inputs = drawn
    (x,) = inputs
    assert isinstance(drawn, DrawnCase) and isinstance(layer, _Scale)
    assert x.shape == (drawn.dims["N"], drawn.dims["T"], 2)
    assert 1 <= drawn.dims["N"] <= 3 and 1 <= drawn.dims["T"] <= 5 and drawn.dims["D"] == 2


def test_layer_cases_rebuild_identically_from_repr_values():
    drawn = _minimal(layer_cases(SCALE), lambda d: d.dims["T"] >= 3 and d.seed > 0)
    layer, (x,) = SCALE.build(drawn.seed, **drawn.dims)
    np.testing.assert_array_equal(x, drawn.inputs[0])
    np.testing.assert_array_equal(layer.params[0], drawn.layer.params[0])


def test_layer_cases_shrink_to_smallest_dims_and_seed_zero():
    drawn = _minimal(layer_cases(SCALE), lambda d: d.dims["T"] >= 2)
    assert drawn.dims == {"N": 1, "T": 2, "D": 2} and drawn.seed == 0
    assert repr(drawn) == "scale(seed=0, N=1, T=2, D=2)"
    assert drawn.context == "test_strategies::scale seed=0 N=1 T=2 D=2"


def test_layer_cases_overrides_replace_the_case_dims():
    drawn = _minimal(layer_cases(SCALE, N=2, T=(4, 5), D=st.sampled_from([3, 6])))
    assert drawn.dims == {"N": 2, "T": 4, "D": 3}


def test_layer_cases_find_registered_cases_by_id_and_function(clean_registry):
    gradcheck.case(dims={"N": (1, 3), "T": (1, 5), "D": 2})(_scale)
    by_id = _minimal(layer_cases(f"{__name__}::_scale"))
    by_func = _minimal(layer_cases(_scale))
    assert by_id.case == by_func.case and by_id.dims == {"N": 1, "T": 1, "D": 2}


@pytest.mark.parametrize(
    ("call", "error", "says"),
    [
        (lambda: layer_cases(SCALE, Q=3), TypeError, "Q=3: case test_strategies::scale has no"),
        (lambda: layer_cases(SCALE, T=(3, 2)), ValueError, "T=(3, 2)"),
        (lambda: layer_cases(SCALE, T=0), ValueError, "T=0 must be >= 1"),
        (lambda: layer_cases(SCALE, T="big"), TypeError, "T='big'"),
        (lambda: layer_cases("nowhere::nothing"), TypeError, "registered_cases()"),
    ],
)
def test_layer_cases_bad_use_names_the_argument(call, error, says):
    with pytest.raises(error) as info:
        call()
    assert says in str(info.value)
