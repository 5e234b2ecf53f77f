"""What can be checked, each adapted to the one protocol the pipeline uses.

The pipeline checks a :class:`Subject`: a layer-like object (``forward(*inputs)``,
``backward(*douts)`` returning one gradient per input, ``params`` and ``grads`` lists) plus the
names a report uses and the contract checks that mean something for it. Code of other
conventions is adapted here, without a wrapper class of the user's:

- a book-style layer, as it is (:func:`layer` with no keywords);
- a layer keeping parameters and gradients elsewhere (dicts, accumulating ``+=`` until a reset,
  numpy-ml's ``flush_gradients``): :func:`layer` with ``params=``, ``grads=``, ``reset=``,
  ``accumulates=``;
- a plain function with a hand-written vector-Jacobian product: :func:`function`;
- a cs231n pair ``forward(*args) -> (out, cache)``, ``backward(dout, cache)``: :func:`pair`;
- a loss ``f(*args) -> (loss, dx)``: :func:`loss`.

Each of these returns a *convention*; :meth:`bind` turns it and the inputs into the
:class:`Subject` and the array inputs the pipeline perturbs (arguments that are not arrays,
such as cs231n's ``bn_param`` dicts, are passed through unchanged and not checked).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradcheck.options import CONTRACT_CHECKS

__all__ = [
    "Convention",
    "LayerConvention",
    "Subject",
    "layer",
    "signature_parameters",
    "subject_of",
]


@dataclass(frozen=True)
class Subject:
    """One thing to check, as the pipeline sees it.

    ``layer``: the object the sandbox copies and calls. ``name``: the report's name for it;
    ``blamed``: what a wrong gradient is blamed on (``Affine.backward``, ``affine_vjp``).
    ``input_names``/``input_labels``: the entry name and row label of each input (``input[0]``
    and ``input[0] x`` for a layer, ``x`` and ``x`` for a function). ``checked``: whether each
    input's gradient is checked (a loss gives only ``dx``). ``checks``: the contract checks
    shown, in report order; ``not_applicable``: those shown as skipped, with the reason.
    ``resets``: the layer's gradients may be zeroed by a later forward (a ``reset=``), so the
    analytic ones are copied once computed.
    """

    layer: Any
    name: str
    blamed: str
    input_names: tuple[str, ...]
    input_labels: tuple[str, ...]
    checked: tuple[bool, ...]
    param_names: tuple[str, ...]
    checks: tuple[str, ...] = CONTRACT_CHECKS
    not_applicable: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    resets: bool = False  # a reset runs before every forward: it may zero the grads in place


def subject_of(obj: Any, inputs: tuple[Any, ...], **convention: Any) -> tuple[Subject, tuple]:
    """The :class:`Subject` of ``obj`` (a layer, or a convention made by :func:`function`,
    :func:`pair`, :func:`loss`, :func:`layer`) and the array inputs to perturb."""
    __tracebackhide__ = True
    if isinstance(obj, Convention):
        if any(v not in (None, False) for v in convention.values()):
            raise TypeError(
                f"params=, grads=, reset= and accumulates= describe a layer; give them to "
                f"gradcheck.layer(...), not with a {type(obj).__name__}"
            )
        return obj.bind(inputs)
    return LayerConvention(obj, **convention).bind(inputs)


class Convention:
    """A convention bound to the user's code, waiting for the inputs."""

    @property
    def name(self) -> str:
        """What a report calls the subject (before the inputs are known)."""
        raise NotImplementedError

    def bind(self, inputs: tuple[Any, ...]) -> tuple[Subject, tuple]:
        raise NotImplementedError


# --- layers ---------------------------------------------------------------------------------


Accessor = str | Callable[[Any], Any] | None


@dataclass(frozen=True)
class LayerConvention(Convention):
    """A layer; ``params``/``grads`` name the attributes (or are callables ``layer -> list |
    dict``) holding them, ``reset`` a method (or callable) called before every forward,
    ``accumulates`` says gradients add up by design."""

    obj: Any
    params: Accessor = None
    grads: Accessor = None
    reset: Accessor = None
    accumulates: bool = False

    @property
    def name(self) -> str:
        return type(self.obj).__name__

    def bind(self, inputs: tuple[Any, ...]) -> tuple[Subject, tuple]:
        __tracebackhide__ = True
        obj, notes = self.obj, []
        name = type(obj).__name__
        _check_callable_methods(obj, name)
        plain = self.params is None and self.grads is None and self.reset is None
        target = obj
        if not plain or self.accumulates:
            for what, value in (("params", self.params), ("grads", self.grads)):
                if value is not None and not (isinstance(value, str) or callable(value)):
                    raise TypeError(
                        f"{what}={value!r} must be an attribute name or a callable layer -> "
                        f"list or dict, e.g. {what}='parameters'"
                    )
            if self.reset is not None and not (isinstance(self.reset, str) or callable(self.reset)):
                raise TypeError(f"reset={self.reset!r} must be a method name or a callable")
            target = _ConventionLayer(obj, self.params, self.grads, self.reset)
            if not _arrays_ready(target):  # parameters made by the first forward (numpy-ml)
                target = _ConventionLayer(copy.deepcopy(obj), self.params, self.grads, self.reset)
                global_state = np.random.get_state()  # noqa: NPY002  (numpy-ml draws from it)
                try:
                    target.forward(*[np.array(x, copy=True) for x in inputs])
                finally:
                    np.random.set_state(global_state)  # noqa: NPY002  (the user's, put back)
                notes.append("parameters created by a first forward on a copy of the layer")
        _check_params(target, name)
        _check_inputs(inputs, name)
        n = len(inputs)
        names = _argument_names(obj.forward, n)
        not_applicable = {}
        if self.accumulates:
            not_applicable["grads overwritten, not accumulated"] = (
                "not applicable: gradients accumulate by design (accumulates=True); "
                "they were zeroed before each backward"
            )
        param_names = _param_names(target, obj)
        return (
            Subject(
                layer=target,
                name=name,
                blamed=f"{name}.backward",
                input_names=tuple(f"input[{i}]" for i in range(n)),
                input_labels=tuple(
                    f"input[{i}] {names[i]}" if names[i] else f"input[{i}]" for i in range(n)
                ),
                checked=tuple(x.dtype.kind == "f" for x in inputs),
                param_names=param_names,
                not_applicable=not_applicable,
                notes=tuple(notes),
                resets=self.reset is not None,
            ),
            tuple(inputs),
        )


class _ConventionLayer:
    """A layer whose parameters and gradients are read through accessors (each read returns the
    arrays the layer holds now: numpy-ml rebinds them on every flush), with a reset before
    every forward."""

    def __init__(self, layer: Any, params: Accessor, grads: Accessor, reset: Accessor) -> None:
        self.layer = layer
        self._params, self._grads, self._reset = params, grads, reset
        self.stateful = getattr(layer, "stateful", None)

    def _read(self, accessor: Accessor, default: str) -> dict[str, Any] | list[Any]:
        value = (
            accessor(self.layer) if callable(accessor) else getattr(self.layer, accessor or default)
        )
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return list(value)
        what = accessor if isinstance(accessor, str) else default
        raise TypeError(
            f"{type(self.layer).__name__}.{what} is {type(value).__name__}; params= and grads= "
            "name attributes holding a list or a dict of arrays (or callables returning one)"
        )

    def _pairs(self) -> tuple[list[str], list[Any], list[Any]]:
        """Names, parameters and gradients, matched by key when both are dicts (parameters
        without a gradient, such as running statistics, are state, not checked)."""
        params, grads = self._read(self._params, "params"), self._read(self._grads, "grads")
        if isinstance(params, dict) and isinstance(grads, dict):
            keys = [k for k in params if k in grads]
            return keys, [params[k] for k in keys], [grads[k] for k in keys]
        params = list(params.values()) if isinstance(params, dict) else params
        grads = list(grads.values()) if isinstance(grads, dict) else grads
        name = self._params if isinstance(self._params, str) else "params"
        return [f"{name}[{i}]" for i in range(len(params))], params, grads

    @property
    def params(self) -> list[Any]:
        return self._pairs()[1]

    @property
    def grads(self) -> list[Any]:
        return self._pairs()[2]

    def names(self) -> tuple[str, ...]:
        return tuple(self._pairs()[0])

    def forward(self, *inputs: Any) -> Any:
        if callable(self._reset):
            self._reset(self.layer)
        elif self._reset is not None:
            getattr(self.layer, self._reset)()
        return self.layer.forward(*inputs)

    def backward(self, *douts: Any) -> Any:
        return self.layer.backward(*douts)


def _arrays_ready(target: _ConventionLayer) -> bool:
    try:
        params = target.params
    except (AttributeError, TypeError, KeyError):
        return False
    return bool(params) and all(isinstance(p, np.ndarray) for p in params)


def _check_callable_methods(obj: Any, name: str) -> None:
    __tracebackhide__ = True
    for method in ("forward", "backward"):
        if not callable(getattr(obj, method, None)):
            raise TypeError(
                f"{name} has no {method}() method; check_layer takes a layer with "
                "forward(*inputs), backward(dout), params and grads (docs/contract.md); for a "
                "function use gradcheck.check_function(f, vjp, *args)"
            )


def _check_params(layer: Any, name: str) -> None:
    __tracebackhide__ = True
    for attr in ("params", "grads"):
        value = getattr(layer, attr, None)
        if not isinstance(value, (list, tuple)):
            raise TypeError(
                f"{name}.{attr} is {type(value).__name__}, not a list; a layer without "
                f"parameters sets self.params = self.grads = [] in __init__ (or pass "
                f"{attr}='attribute name' for parameters kept in a dict)"
            )
    params, grads = layer.params, layer.grads
    if len(params) != len(grads):
        raise ValueError(
            f"{name} has {len(params)} params but {len(grads)} grads; keep one grads entry per "
            "parameter, e.g. self.grads = [np.zeros_like(p) for p in self.params]"
        )
    for kind, arrays in (("params", params), ("grads", grads)):
        for i, a in enumerate(arrays):
            if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
                what = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
                raise TypeError(
                    f"{name}.{kind}[{i}] is {what}; params and grads must be float ndarrays"
                )
    for i, p in enumerate(params):
        if not np.all(np.isfinite(p)):
            raise ValueError(f"{name}.params[{i}] contains NaN or Inf; check its initialisation")
    names = getattr(layer, "param_names", None)
    if names is not None and len(names) != len(params):
        raise ValueError(
            f"{name}.param_names has {len(names)} names for {len(params)} params; give one "
            "name per parameter"
        )


def _check_inputs(inputs: tuple[Any, ...], name: str, labels: Sequence[str] = ()) -> None:
    __tracebackhide__ = True
    if not inputs:
        raise TypeError(f"check_layer({name}) got no inputs; pass them as check_layer(layer, x)")
    for i, x in enumerate(inputs):
        label = labels[i] if labels else f"input[{i}]"
        if not isinstance(x, np.ndarray):
            raise TypeError(
                f"{label} is {type(x).__name__}, not a numpy array; pass np.asarray(...)"
            )
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{label} has dtype {x.dtype}; inputs are float or int arrays")
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            where = [int(k) for k in np.argwhere(~np.isfinite(x))[0]]
            raise ValueError(
                f"{label} contains NaN or Inf (first at {where}); check with finite inputs"
            )


def _param_names(target: Any, obj: Any) -> tuple[str, ...]:
    if isinstance(target, _ConventionLayer):
        return target.names()
    return tuple(_param_labels(obj))


def _param_labels(layer: Any) -> list[str]:
    """Each parameter's name: ``param_names`` when given; else the name a part gives it (a
    part's own ``param_names``, or the attribute that holds the array: ``affine.W``); else its
    place in the params list of the innermost part that owns it (``encoder.lstm.params[0]``, as
    the part alone would be named); else ``params[i]``. Found breadth first, through attributes
    and lists but not through ``params``/``grads`` lists, which every composite repeats."""
    names = getattr(layer, "param_names", None)
    if names is not None:
        return [str(n) for n in names]
    wanted = {id(p): i for i, p in enumerate(layer.params)}
    found: dict[int, str] = {}
    owners: dict[int, tuple[int, str]] = {}  # param index -> (depth, name) of the innermost
    seen: set[int] = set()
    queue: list[tuple[Any, str, int]] = [(layer, "", 0)]
    while queue:
        obj, path, depth = queue.pop(0)
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, type)) or obj is None:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            if id(obj) in wanted and wanted[id(obj)] not in found:
                found[wanted[id(obj)]] = path
            continue
        if isinstance(obj, (list, tuple)):
            queue += [(v, f"{path}[{k}]", depth + 1) for k, v in enumerate(obj)]
        elif isinstance(getattr(obj, "__dict__", None), dict):
            prefix = f"{path}." if path else ""
            sub_params = getattr(obj, "params", None)
            sub_names = getattr(obj, "param_names", None) if obj is not layer else None
            if isinstance(sub_params, list):
                for k, p in enumerate(sub_params):
                    if id(p) not in wanted or obj is layer:
                        continue
                    if isinstance(sub_names, list) and k < len(sub_names):
                        found.setdefault(wanted[id(p)], prefix + str(sub_names[k]))
                    elif owners.get(wanted[id(p)], (-1, ""))[0] < depth:
                        owners[wanted[id(p)]] = (depth, f"{prefix}params[{k}]")
            queue += [
                (v, prefix + k, depth + 1)
                for k, v in vars(obj).items()
                if k not in ("params", "grads")
            ]
    return [found.get(i) or owners.get(i, (0, f"params[{i}]"))[1] for i in range(len(layer.params))]


_signatures: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def signature_parameters(func: Any) -> list[inspect.Parameter] | None:
    """The parameters of ``func`` as called (a bound method's without ``self``), or None when
    Python cannot tell. Kept per function: reading a signature costs about 15 µs, twice per
    check, and the same layer class is checked over and over (a tiny check is a few hundred
    µs)."""
    key = getattr(func, "__func__", func)
    try:
        params = _signatures[key]
    except (KeyError, TypeError):  # not seen yet, or not weakly referable
        try:
            params = tuple(inspect.signature(func).parameters.values())
        except (TypeError, ValueError):
            return None
        with contextlib.suppress(TypeError):  # (kept by the function a bound method wraps)
            _signatures[key] = params
    return list(params)


def _argument_names(func: Any, n: int) -> list[str | None]:
    """The names of ``func``'s first ``n`` positional parameters (None where it has none)."""
    params = signature_parameters(func) or []
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [names[i] if i < len(names) else None for i in range(n)]


def layer(
    obj: Any,
    *,
    params: Accessor = None,
    grads: Accessor = None,
    reset: Accessor = None,
    accumulates: bool = False,
) -> LayerConvention:
    """A layer to check (for a ``@gradcheck.case`` builder); the keywords as for
    :func:`gradcheck.check_layer`."""
    return LayerConvention(obj, params, grads, reset, bool(accumulates))
