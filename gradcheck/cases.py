"""Registry of layer cases: how a module says "check this layer, at these sizes".

A case is a function ``(rng, **dims) -> (layer, inputs)`` that builds a layer and the inputs to
check it with, from a ``numpy.random.Generator`` and named dimensions (N, T, D, H, V, ...).
Modules register cases with the :func:`case` decorator; the CLI, the pytest plugin and the
hypothesis strategies find them with :func:`registered_cases`.

    @gradcheck.case(dims={"N": (1, 4), "D": (1, 6), "H": (1, 6)})
    def affine(rng, N, D, H):
        return Affine(rng.standard_normal((D, H)), rng.standard_normal(H)), (
            rng.standard_normal((N, D)),
        )
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np

__all__ = ["Case", "DimSpec", "case", "registered_cases"]

#: How one dimension is given: a fixed int, inclusive ``(min, max)`` bounds, or a hypothesis
#: strategy drawing ints.
DimSpec = Any

CaseFunction = Callable[..., tuple[Any, tuple[Any, ...]]]

_REGISTRY: dict[tuple[str, str], Case] = {}


@dataclass(frozen=True)
class Case:
    """One registered case: a builder, the bounds of its dimensions, and checker options.

    ``name`` is the function's name (unique within its module), ``module`` the module that
    registered it, ``dims`` maps each keyword of the builder to a :data:`DimSpec`, and
    ``options`` are keyword options for :func:`gradcheck.check_layer` (``rtol=...``) that this
    case needs.
    """

    name: str
    func: CaseFunction = field(repr=False, compare=False)
    module: str
    dims: Mapping[str, DimSpec] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """``module::name``, unique across modules."""
        return f"{self.module}::{self.name}"

    def smallest_dims(self) -> dict[str, int]:
        """Each dimension at its lower bound (fixed ints as given, strategies left out)."""
        out = {}
        for key, spec in self.dims.items():
            if isinstance(spec, int):
                out[key] = spec
            elif isinstance(spec, tuple):
                out[key] = spec[0]
        return out

    def build(
        self, rng: int | np.random.Generator | None = None, **dims: int
    ) -> tuple[Any, tuple[Any, ...]]:
        """Call the builder: ``(layer, inputs)``. ``dims`` default to :meth:`smallest_dims`."""
        sizes = {**self.smallest_dims(), **dims}
        missing = [key for key in self.dims if key not in sizes]
        if missing:
            raise ValueError(
                f"case {self.id} needs dims {missing} (drawn from strategies); pass them as "
                f"keywords, e.g. build(rng, {missing[0]}=2)"
            )
        result = self.func(np.random.default_rng(rng), **sizes)
        if not (isinstance(result, tuple) and len(result) == 2):
            raise TypeError(
                f"case {self.id} returned {type(result).__name__}; a case must return "
                "(layer, inputs_tuple)"
            )
        layer, inputs = result
        if not isinstance(inputs, tuple):
            inputs = (inputs,) if isinstance(inputs, np.ndarray) else tuple(inputs)
        return layer, inputs


def _validate_dims(func: CaseFunction, dims: Mapping[str, DimSpec]) -> None:
    params = inspect.signature(func).parameters
    names = list(params)
    if not names:
        raise TypeError(f"case {func.__qualname__} must take rng as its first argument")
    accepts_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for key, spec in dims.items():
        if key not in params and not accepts_kwargs:
            raise TypeError(
                f"dims={{{key!r}: ...}}: {func.__qualname__} has no argument {key!r}; "
                f"its arguments are {names[1:]}"
            )
        if isinstance(spec, bool):
            raise TypeError(f"dims[{key!r}]={spec!r} must be an int, (min, max) or a strategy")
        if isinstance(spec, int):
            if spec < 1:
                raise ValueError(f"dims[{key!r}]={spec} must be >= 1")
        elif isinstance(spec, tuple):
            if len(spec) != 2 or not all(isinstance(v, int) for v in spec):
                raise TypeError(f"dims[{key!r}]={spec!r} must be (min, max) with two ints")
            if not 1 <= spec[0] <= spec[1]:
                raise ValueError(f"dims[{key!r}]={spec!r} needs 1 <= min <= max")
        elif not hasattr(spec, "example"):  # a hypothesis SearchStrategy
            raise TypeError(
                f"dims[{key!r}]={spec!r} must be an int, (min, max) or a hypothesis strategy"
            )


@overload
def case(func: CaseFunction, /) -> CaseFunction: ...
@overload
def case(
    *, dims: Mapping[str, DimSpec] | None = None, name: str | None = None, **options: Any
) -> Callable[[CaseFunction], CaseFunction]: ...


def case(
    func: CaseFunction | None = None,
    /,
    *,
    dims: Mapping[str, DimSpec] | None = None,
    name: str | None = None,
    **options: Any,
) -> Any:
    """Register ``func(rng, **dims) -> (layer, inputs)`` as a case to check.

    Use bare (``@gradcheck.case``: the builder picks its own sizes from ``rng``) or with
    ``dims`` (``@gradcheck.case(dims={"N": (1, 4), "T": 3})``: the checker draws each dimension
    within its bounds). Other keywords are :func:`gradcheck.check_layer` options this case needs,
    e.g. ``rtol=1e-4``. Returns ``func`` unchanged, so the builder stays callable.
    Two builders of one module under one name are an error naming both; the same builder
    registered again (a re-import) replaces the earlier case.
    """

    def register(f: CaseFunction) -> CaseFunction:
        if not callable(f):
            raise TypeError(f"@gradcheck.case decorates a function, got {f!r}")
        spec = dict(dims or {})
        _validate_dims(f, spec)
        entry = Case(
            name=name or f.__name__,
            func=f,
            module=f.__module__,
            dims=spec,
            options=dict(options),
        )
        earlier = _REGISTRY.get((entry.module, entry.name))
        if (
            earlier is not None
            and _same_load(earlier.func, f)
            and _where(earlier.func) != _where(f)
        ):
            raise ValueError(
                f"two cases named {entry.name!r} in module {entry.module}: "
                f"{_where(earlier.func)} and {_where(f)}; rename one or give it name=..."
            )
        _REGISTRY[(entry.module, entry.name)] = entry
        return f

    if func is not None:
        if dims is not None or name is not None or options:
            raise TypeError("use @gradcheck.case or @gradcheck.case(dims=...), not both")
        return register(func)
    return register


def _where(func: Callable[..., Any]) -> str:
    """``scale (my_layers.py:12)``: a builder by its name and where it is defined."""
    code = getattr(func, "__code__", None)
    if code is None:
        return repr(func)
    return f"{func.__qualname__} ({Path(code.co_filename).name}:{code.co_firstlineno})"


def _same_load(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """Whether two builders come from one execution of their module: the same module spec
    (a re-import or reload makes a new one), or for a module without one (a script, a
    notebook cell), the same file."""
    spec_a = getattr(a, "__globals__", {}).get("__spec__")
    spec_b = getattr(b, "__globals__", {}).get("__spec__")
    if spec_a is not None or spec_b is not None:
        return spec_a is spec_b
    code_a, code_b = getattr(a, "__code__", None), getattr(b, "__code__", None)
    return code_a is not None and code_b is not None and code_a.co_filename == code_b.co_filename


def registered_cases(module: str | None = None) -> list[Case]:
    """Cases registered so far, in registration order; only ``module``'s (and its submodules')
    when given."""
    cases = list(_REGISTRY.values())
    if module is None:
        return cases
    return [c for c in cases if c.module == module or c.module.startswith(module + ".")]
