"""Functions, cs231n pairs and losses, each adapted to the layer protocol of the pipeline.

Each convention wraps the user's code in a small layer-like object with no parameters, whose
``forward`` takes the array arguments (the others, such as cs231n's ``bn_param`` dict or a
Python number, are passed through unchanged and not checked) and whose ``backward`` returns one
gradient per array argument. Rows are named by the code's own argument names.

    gradcheck.check_function(affine, affine_vjp, x, W, b)
    gradcheck.check_pair(affine_forward, affine_backward, x, w, b)
    gradcheck.check_loss(softmax_loss, x, y)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.subjects import Convention, Subject, _argument_names, _check_inputs

__all__ = ["FunctionConvention", "LossConvention", "PairConvention", "function", "loss", "pair"]

_FUNCTION_CHECKS = (
    "arguments unmodified",
    "dout unmodified",
    "forward deterministic",
    "backward linear in dout",
    "gradient shapes match inputs",
)
#: a pair's backward can also change its cache: a second backward from one cache must agree
_PAIR_CHECKS = ("grads overwritten, not accumulated", *_FUNCTION_CHECKS)
#: a loss's gradient comes from the forward itself, scaled by a dout of 1
_LOSS_CHECKS = ("arguments unmodified", "forward deterministic", "gradient shapes match inputs")


def _name(func: Any) -> str:
    return getattr(func, "__name__", None) or type(func).__name__


def _require_callable(what: str, value: Any, example: str) -> None:
    __tracebackhide__ = True
    if not callable(value):
        raise TypeError(f"{what}={value!r} is not callable; pass the function itself: {example}")


class _Arguments:
    """Where the array arguments sit among all the arguments, and the others' values."""

    def __init__(self, args: tuple[Any, ...]) -> None:
        self.count = len(args)
        self.positions = [i for i, a in enumerate(args) if isinstance(a, np.ndarray)]
        self.constants = {i: a for i, a in enumerate(args) if not isinstance(a, np.ndarray)}

    def merge(self, arrays: tuple[Any, ...]) -> list[Any]:
        args = [None] * self.count
        for i, a in self.constants.items():
            args[i] = a
        for i, a in zip(self.positions, arrays, strict=True):
            args[i] = a
        return args

    def of_arrays(self, grads: Any) -> Any:
        """The gradients of the array arguments, from gradients of all arguments in order (a
        single array stands for a one-argument function; missing trailing ones are None)."""
        if not self.constants:
            return grads
        got = list(grads) if isinstance(grads, (tuple, list)) else [grads]
        got += [None] * (self.count - len(got))
        return tuple(got[i] for i in self.positions)


def _bind(
    args: tuple[Any, ...], names_of: Any, what: str
) -> tuple[_Arguments, tuple[str, ...], tuple[np.ndarray, ...]]:
    __tracebackhide__ = True
    arguments = _Arguments(args)
    names = _argument_names(names_of, len(args))
    labels = tuple(names[i] or f"args[{i}]" for i in arguments.positions)
    arrays = tuple(args[i] for i in arguments.positions)
    if not arrays:
        raise TypeError(f"{what} got no array arguments; pass the arrays to differentiate")
    _check_inputs(arrays, what, labels)
    return arguments, labels, arrays


def _subject(
    layer: Any,
    name: str,
    blamed: str,
    labels: tuple[str, ...],
    checked: tuple[bool, ...],
    **kw: Any,
) -> Subject:
    return Subject(
        layer=layer,
        name=name,
        blamed=blamed,
        input_names=labels,
        input_labels=labels,
        checked=checked,
        param_names=(),
        **kw,
    )


# --- functions ------------------------------------------------------------------------------


class _FunctionLayer:
    """``f`` and its ``vjp`` as a layer without parameters."""

    def __init__(self, f: Callable, vjp: Callable, arguments: _Arguments) -> None:
        self.f, self.vjp, self.arguments = f, vjp, arguments
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []
        self.args: list[Any] | None = None

    def forward(self, *arrays: Any) -> Any:
        self.args = self.arguments.merge(arrays)
        return self.f(*self.args)

    def backward(self, *douts: Any) -> Any:
        dout = douts[0] if len(douts) == 1 else douts
        return self.arguments.of_arrays(self.vjp(dout, *self.args))


@dataclass(frozen=True)
class FunctionConvention(Convention):
    """``f(*args)`` (an array, a tuple of arrays or a float) and ``vjp(dout, *args)`` (the
    gradients of ``args`` in order: one array for one argument, None for an integer one)."""

    f: Callable
    vjp: Callable

    @property
    def name(self) -> str:
        return _name(self.f)

    def bind(self, inputs: tuple[Any, ...]) -> tuple[Subject, tuple]:
        __tracebackhide__ = True
        _require_callable("f", self.f, "check_function(f, vjp, x)")
        _require_callable("vjp", self.vjp, "check_function(f, vjp, x)")
        name = _name(self.f)
        arguments, labels, arrays = _bind(inputs, self.f, f"check_function({name})")
        layer = _FunctionLayer(self.f, self.vjp, arguments)
        checked = tuple(x.dtype.kind == "f" for x in arrays)
        subject = _subject(layer, name, _name(self.vjp), labels, checked, checks=_FUNCTION_CHECKS)
        return subject, arrays


def function(f: Callable, vjp: Callable) -> FunctionConvention:
    """A function and its hand-written vector-Jacobian product, to check (see
    :func:`gradcheck.check_function`); what a ``@gradcheck.case`` builder returns for one."""
    return FunctionConvention(f, vjp)


# --- cs231n pairs ---------------------------------------------------------------------------


class _PairLayer:
    """``forward(*args) -> (*outs, cache)`` and ``backward(*douts, cache)`` as a layer."""

    def __init__(self, forward: Callable, backward: Callable, arguments: _Arguments) -> None:
        self.forward_fn, self.backward_fn, self.arguments = forward, backward, arguments
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []
        self.cache: Any = None

    def forward(self, *arrays: Any) -> Any:
        __tracebackhide__ = True
        result = self.forward_fn(*self.arguments.merge(arrays))
        if not isinstance(result, tuple) or len(result) < 2:
            raise TypeError(
                f"{_name(self.forward_fn)} returned {type(result).__name__}; a cs231n forward "
                "returns (out, cache) or (*outs, cache)"
            )
        *outs, self.cache = result
        return outs[0] if len(outs) == 1 else tuple(outs)

    def backward(self, *douts: Any) -> Any:
        return self.arguments.of_arrays(self.backward_fn(*douts, self.cache))


@dataclass(frozen=True)
class PairConvention(Convention):
    """A cs231n ``forward``/``backward`` pair."""

    forward: Callable
    backward: Callable

    @property
    def name(self) -> str:
        return _name(self.forward)

    def bind(self, inputs: tuple[Any, ...]) -> tuple[Subject, tuple]:
        __tracebackhide__ = True
        _require_callable("forward", self.forward, "check_pair(affine_forward, affine_backward, x)")
        _require_callable(
            "backward", self.backward, "check_pair(affine_forward, affine_backward, x)"
        )
        name = _name(self.forward)
        arguments, labels, arrays = _bind(inputs, self.forward, f"check_pair({name})")
        layer = _PairLayer(self.forward, self.backward, arguments)
        checked = tuple(x.dtype.kind == "f" for x in arrays)
        subject = _subject(layer, name, _name(self.backward), labels, checked, checks=_PAIR_CHECKS)
        return subject, arrays


def pair(forward: Callable, backward: Callable) -> PairConvention:
    """A cs231n pair to check (see :func:`gradcheck.check_pair`); what a ``@gradcheck.case``
    builder returns for one."""
    return PairConvention(forward, backward)


# --- losses ---------------------------------------------------------------------------------


class _LossLayer:
    """``f(*args) -> (loss, dx)`` as a layer whose backward returns ``dout * dx`` for the
    argument ``wrt`` (None for the others)."""

    def __init__(self, f: Callable, wrt: int, arguments: _Arguments) -> None:
        self.f, self.wrt, self.arguments = f, wrt, arguments
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []
        self.dx: Any = None

    def forward(self, *arrays: Any) -> Any:
        __tracebackhide__ = True
        result = self.f(*self.arguments.merge(arrays))
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError(
                f"{_name(self.f)} returned {type(result).__name__}; a loss returns (loss, dx)"
            )
        loss, self.dx = result
        return loss

    def backward(self, dout: Any = 1.0) -> Any:
        grads: list[Any] = [None] * len(self.arguments.positions)
        dx = self.dx
        grads[self.arguments.positions.index(self.wrt)] = dout * dx if dout != 1.0 else dx
        return tuple(grads)


@dataclass(frozen=True)
class LossConvention(Convention):
    """A loss ``f(*args) -> (loss, dx)`` with ``dx`` the gradient w.r.t. ``args[wrt]``."""

    f: Callable
    wrt: int = 0

    @property
    def name(self) -> str:
        return _name(self.f)

    def bind(self, inputs: tuple[Any, ...]) -> tuple[Subject, tuple]:
        __tracebackhide__ = True
        _require_callable("f", self.f, "check_loss(softmax_loss, x, y)")
        name = _name(self.f)
        wrt = self.wrt
        if isinstance(wrt, bool) or not isinstance(wrt, (int, np.integer)):
            raise TypeError(f"wrt={wrt!r} must be an int, the position of the argument; try wrt=0")
        if not 0 <= wrt < len(inputs):
            raise ValueError(
                f"wrt={wrt} but {name} got {len(inputs)} arguments; wrt is the position of the "
                "argument dx is the gradient of, e.g. wrt=0"
            )
        arguments, labels, arrays = _bind(inputs, self.f, f"check_loss({name})")
        x = inputs[wrt]
        if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
            what = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
            raise TypeError(
                f"wrt={wrt}: argument {wrt} of {name} is {what}; dx must be the gradient of a "
                "float array argument"
            )
        layer = _LossLayer(self.f, int(wrt), arguments)
        checked = tuple(i == wrt for i in arguments.positions)
        subject = _subject(layer, name, f"{name}'s dx", labels, checked, checks=_LOSS_CHECKS)
        return subject, arrays


def loss(f: Callable, *, wrt: int = 0) -> LossConvention:
    """A loss to check (see :func:`gradcheck.check_loss`); what a ``@gradcheck.case`` builder
    returns for one."""
    return LossConvention(f, wrt)
