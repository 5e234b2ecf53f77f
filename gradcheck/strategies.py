"""Hypothesis strategies for fuzzing layers: dimensions, float arrays, token ids, labels, cases.

A gradient that is right at one shape can be wrong at another (T = 1, N = T, Te != Td, repeated
token ids, a fully masked row). These strategies draw such shapes and values, and shrink a
failure to the smallest dimensions and simplest values that still fail:

    from hypothesis import given, strategies as st
    from gradcheck import assert_layer, registered_cases
    from gradcheck.strategies import layer_cases

    @given(data=st.data())
    def test_affine(data):
        drawn = data.draw(layer_cases(affine_case))
        layer, inputs = drawn
        assert_layer(layer, *inputs, seed=drawn.seed, context=drawn.context)

Built on :mod:`hypothesis.extra.numpy`; bounds are keyword-only ``min_*``/``max_*`` as there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradcheck.cases import Case, DimSpec, registered_cases

__all__ = [
    "DIM_NAMES",
    "DrawnCase",
    "dims",
    "float_arrays",
    "labels",
    "layer_cases",
    "token_ids",
]

#: The dimension names the bundled layers use: batch, time (encoder, decoder), input width,
#: hidden width, vocabulary.
DIM_NAMES = ("N", "T", "Te", "Td", "D", "H", "V")

Shape = int | tuple[int, ...] | st.SearchStrategy


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}={value!r} must be an int, e.g. {name}={max(minimum, 1)}")
    if value < minimum:
        raise ValueError(f"{name}={value} must be >= {minimum}; try {name}={minimum}")


def _ordered_dicts(strategies: Mapping[str, st.SearchStrategy]) -> st.SearchStrategy[dict]:
    # fixed_dictionaries may reorder keys; the order is part of a readable repr.
    names = list(strategies)
    return st.tuples(*strategies.values()).map(lambda values: dict(zip(names, values, strict=True)))


def dims(
    *names: str, min_size: int = 1, max_size: int = 4, **bounds: int
) -> st.SearchStrategy[dict[str, int]]:
    """Dictionaries of named dimensions, e.g. ``{"N": 2, "T": 1, "D": 3}``.

    ``names``: the dimensions to draw, in order (any identifier; the bundled layers use
    :data:`DIM_NAMES`: N, T, Te, Td, D, H, V). ``min_size``/``max_size``: inclusive bounds
    for every dimension (default 1..4, so the edge size 1 is drawn). ``min_<name>`` /
    ``max_<name>`` (``min_T=2``, ``max_V=8``): bounds for one dimension, overriding the
    shared ones. Each dimension shrinks towards its lower bound.

        dims("N", "T", "D", max_T=6)   # {"N": 1..4, "T": 1..6, "D": 1..4}
    """
    if not names:
        raise TypeError('dims() needs at least one dimension name, e.g. dims("N", "T", "D")')
    for name in names:
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(f"dims({name!r}): a dimension name is an identifier such as 'N'")
    if len(set(names)) != len(names):
        raise ValueError(f"dims{names!r} names a dimension twice; name each once")
    _check_int("min_size", min_size, minimum=1)
    _check_int("max_size", max_size, minimum=1)
    for key, value in bounds.items():
        prefix, _, name = key.partition("_")
        if prefix not in ("min", "max") or name not in names:
            raise TypeError(
                f"dims() got {key}={value!r}; bounds are min_<name>/max_<name> for the "
                f"dimensions drawn ({', '.join(names)}), e.g. max_{names[0]}=3"
            )
        _check_int(key, value, minimum=1)
    strategies = {}
    for name in names:
        lo = bounds.get(f"min_{name}", min_size)
        hi = bounds.get(f"max_{name}", max_size)
        if lo > hi:
            raise ValueError(
                f"min_{name}={lo} > max_{name}={hi}: no size to draw; pass max_{name}={lo} or more"
            )
        strategies[name] = st.integers(lo, hi)
    return _ordered_dicts(strategies)


def float_arrays(
    shape: Shape,
    *,
    min_value: float = -1.0,
    max_value: float = 1.0,
    dtype: Any = np.float64,
    away_from: float | Sequence[float] = (),
    margin: float = 1e-3,
) -> st.SearchStrategy[np.ndarray]:
    """Float arrays with finite, bounded elements, optionally kept away from kinks.

    ``shape``: an int, a tuple of ints, or a strategy drawing shapes
    (``hypothesis.extra.numpy.array_shapes``). ``min_value``/``max_value``: inclusive bounds of
    every element (default -1..1: moderate values keep finite differences accurate).
    ``dtype``: a float dtype (default float64; float32 elements are exactly representable).
    ``away_from``: a value or values where the function has a kink (``away_from=0`` for ReLU):
    no element is drawn closer than ``margin`` to any of them, so a finite difference of step
    ``eps < margin`` never straddles a kink. ``margin``: that distance (default 1e-3).
    Subnormals, NaN and infinities are never drawn; elements shrink towards simple values
    (0, then small integers).
    """
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"dtype={dtype.name} must be a float dtype; try dtype=np.float64")
    for name, value in (("min_value", min_value), ("max_value", max_value)):
        if not (isinstance(value, int | float | np.floating) and math.isfinite(value)):
            raise ValueError(f"{name}={value!r} must be a finite number, e.g. {name}=1.0")
    if min_value > max_value:
        raise ValueError(
            f"min_value={min_value} > max_value={max_value}; pass min_value <= max_value"
        )
    kinks = (away_from,) if isinstance(away_from, int | float | np.number) else tuple(away_from)
    if kinks and not (isinstance(margin, int | float) and margin > 0):
        raise ValueError(f"margin={margin!r} must be > 0; try margin=1e-3")
    if kinks and all(min_value > k - margin and max_value < k + margin for k in kinks):
        raise ValueError(
            f"away_from={away_from!r} with margin={margin} leaves nothing in "
            f"[{min_value}, {max_value}]; widen the bounds or shrink margin"
        )
    elements = hnp.from_dtype(
        dtype,
        min_value=min_value,
        max_value=max_value,
        allow_nan=False,
        allow_infinity=False,
        allow_subnormal=False,
    )
    if kinks:
        elements = elements.filter(lambda v: all(abs(v - k) >= margin for k in kinks))
    return hnp.arrays(dtype, shape, elements=elements)


def token_ids(
    shape: Shape, *, vocab_size: int, dtype: Any = np.int64
) -> st.SearchStrategy[np.ndarray]:
    """Integer arrays of token ids in ``[0, vocab_size)``.

    ``shape``: an int, a tuple of ints, or a strategy drawing shapes. ``vocab_size``: the
    number of distinct ids; keep it small (say 2..6) so that ids repeat within a batch,
    which is where an Embedding that assigns instead of accumulating (``dW[ids] = dout``
    instead of ``np.add.at``) goes wrong. ``dtype``: an integer dtype (default int64). Ids
    shrink towards 0, so a shrunk failure usually has every id equal.
    """
    _check_int("vocab_size", vocab_size, minimum=1)
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu":
        raise TypeError(f"dtype={dtype.name} must be an integer dtype; try dtype=np.int64")
    return hnp.arrays(dtype, shape, elements=st.integers(0, vocab_size - 1))


@st.composite
def _labels(draw, shape, num_classes, ignore_label, min_kept, dtype):
    if isinstance(shape, st.SearchStrategy):
        shape = draw(shape)
    shape = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)
    ts = draw(hnp.arrays(dtype, shape, elements=st.integers(0, num_classes - 1)))
    if ignore_label is None:
        return ts
    ignored = draw(hnp.arrays(np.bool_, shape))
    if len(shape) >= 2:  # whole rows (a padded sequence, say) ignored
        ignored |= draw(hnp.arrays(np.bool_, shape[:-1]))[..., None]
    flat = ignored.reshape(-1)
    flat[np.flatnonzero(flat)[: max(0, min_kept - int((~flat).sum()))]] = False
    ts[ignored] = ignore_label
    return ts


def labels(
    shape: Shape,
    *,
    num_classes: int,
    ignore_label: int | None = None,
    min_kept: int = 1,
    dtype: Any = np.int64,
) -> st.SearchStrategy[np.ndarray]:
    """Integer class labels in ``[0, num_classes)``, some set to ``ignore_label``.

    ``shape``: an int, a tuple of ints (``(N,)`` or ``(N, T)``), or a strategy drawing shapes.
    ``num_classes``: the number of classes (V for a language model); keep it small so labels
    repeat. ``ignore_label``: when given (``-1`` as in TimeSoftmaxWithLoss), single elements
    and, for two or more axes, whole rows of the last axis are set to it, so padded and fully
    masked sequences are drawn. ``min_kept``: at least this many elements keep a real label
    (default 1, so a mean over the kept labels is defined; 0 allows everything ignored, for
    testing the error a loss gives then). ``dtype``: an integer dtype (default int64).
    Everything shrinks towards label 0 and nothing ignored.
    """
    _check_int("num_classes", num_classes, minimum=1)
    _check_int("min_kept", min_kept, minimum=0)
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu":
        raise TypeError(f"dtype={dtype.name} must be an integer dtype; try dtype=np.int64")
    if ignore_label is not None:
        if isinstance(ignore_label, bool) or not isinstance(ignore_label, int | np.integer):
            raise TypeError(f"ignore_label={ignore_label!r} must be an int, e.g. -1, or None")
        if 0 <= ignore_label < num_classes:
            raise ValueError(
                f"ignore_label={ignore_label} is a real class of num_classes={num_classes}; "
                "use a label outside [0, num_classes), e.g. ignore_label=-1"
            )
        if ignore_label < 0 and dtype.kind == "u":
            raise ValueError(
                f"ignore_label={ignore_label} does not fit dtype={dtype.name}; "
                "use a signed dtype such as dtype=np.int64"
            )
    return _labels(shape, num_classes, ignore_label, min_kept, dtype)


class _LayerInputs(NamedTuple):
    layer: Any
    inputs: tuple[Any, ...]


class DrawnCase(_LayerInputs):
    """A drawn ``(layer, inputs)`` of a registered case, with what reproduces it.

    Unpacks as ``layer, inputs = drawn``. Attributes: ``case`` the :class:`gradcheck.Case`,
    ``dims`` the drawn dimensions, ``seed`` the int the case built its layer and inputs from
    (pass it on: ``check_layer(..., seed=drawn.seed, context=drawn.context)``). ``repr`` is
    ``affine(seed=3, N=2, D=1, H=4)``, so hypothesis' falsifying example says how to rebuild
    it: ``case.build(3, N=2, D=1, H=4)``.
    """

    case: Case
    dims: Mapping[str, int]
    seed: int

    def __new__(cls, layer: Any, inputs: tuple[Any, ...], *, case: Case, dims, seed: int):
        self = super().__new__(cls, layer, inputs)
        self.case, self.dims, self.seed = case, dict(dims), int(seed)
        return self

    @property
    def context(self) -> str:
        """What reproduces this example, for ``check_layer(..., context=...)``:
        ``layers.cases::affine seed=3 N=2 D=1 H=4``."""
        sizes = " ".join(f"{k}={v}" for k, v in self.dims.items())
        return f"{self.case.id} seed={self.seed} {sizes}".rstrip()

    def __repr__(self) -> str:
        args = ", ".join([f"seed={self.seed}", *(f"{k}={v}" for k, v in self.dims.items())])
        return f"{self.case.name}({args})"


def _as_strategy(name: str, spec: DimSpec, where: str) -> st.SearchStrategy[int]:
    if isinstance(spec, st.SearchStrategy):
        return spec
    if isinstance(spec, bool):
        raise TypeError(f"{name}={spec!r} ({where}) must be an int, (min, max) or a strategy")
    if isinstance(spec, int | np.integer):
        _check_int(name, spec, minimum=1)
        return st.just(int(spec))
    if isinstance(spec, tuple) and len(spec) == 2:
        lo, hi = spec
        _check_int(f"{name}[0]", lo, minimum=1)
        _check_int(f"{name}[1]", hi, minimum=1)
        if lo > hi:
            raise ValueError(
                f"{name}={spec!r} ({where}) needs min <= max, e.g. {name}=({lo}, {lo})"
            )
        return st.integers(int(lo), int(hi))
    raise TypeError(
        f"{name}={spec!r} ({where}) must be an int, (min, max) or a hypothesis strategy, "
        f"e.g. {name}=(1, 3)"
    )


def _find_case(case: Any) -> Case:
    if isinstance(case, Case):
        return case
    for registered in registered_cases():
        if case in (registered.id, registered.func):
            return registered
    raise TypeError(
        f"case={case!r} is not a registered case; pass a gradcheck.Case from "
        "gradcheck.registered_cases(), its id 'module::name', or a function decorated with "
        "@gradcheck.case"
    )


def layer_cases(case: Any, **dim_overrides: DimSpec) -> st.SearchStrategy[DrawnCase]:
    """Ready ``(layer, inputs)`` pairs of one registered case, as :class:`DrawnCase`.

    ``case``: a :class:`gradcheck.Case` (from :func:`gradcheck.registered_cases`), its id
    ``"module::name"``, or the function decorated with ``@gradcheck.case``. Each dimension
    is drawn from the case's ``dims`` spec: a fixed int, inclusive ``(min, max)`` bounds, or a
    strategy. ``dim_overrides``: replace the spec of named dimensions for this draw
    (``T=(2, 5)``, ``N=1``, ``V=st.sampled_from([3, 7])``); each must be a dimension of the case.
    A seed in ``[0, 2**32)`` is drawn too and the case is built with it. Dimensions shrink
    towards their lower bounds and the seed towards 0, so a failure is reported at the
    smallest sizes that still fail.
    """
    case = _find_case(case)
    unknown = [name for name in dim_overrides if name not in case.dims]
    if unknown:
        known = ", ".join(case.dims) or "none"
        raise TypeError(
            f"{unknown[0]}={dim_overrides[unknown[0]]!r}: case {case.id} has no dimension "
            f"{unknown[0]!r}; its dimensions are {known}"
        )
    specs = {**case.dims, **dim_overrides}
    drawn_dims = _ordered_dicts(
        {
            name: _as_strategy(
                name, spec, "override" if name in dim_overrides else f"dims of {case.id}"
            )
            for name, spec in specs.items()
        }
    )

    return _drawn_cases(case, drawn_dims)


@st.composite
def _drawn_cases(draw, case: Case, drawn_dims: st.SearchStrategy[dict[str, int]]) -> DrawnCase:
    # composite, not .map: hypothesis then prints the DrawnCase's repr as the falsifying draw
    sizes = draw(drawn_dims)
    seed = draw(st.integers(0, 2**32 - 1))
    layer, inputs = case.build(seed, **sizes)
    return DrawnCase(layer, inputs, case=case, dims=sizes, seed=seed)
