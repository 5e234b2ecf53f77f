"""The catalogue of typical backward bugs, and how a mutant carries one into a check.

A mutant is the subject's layer behind a thin wrapper (:class:`MutantLayer`): forward is the
layer's own; backward calls the layer's backward, then breaks one thing in a typical way in
what it returned (an input gradient), wrote (``grads[k]``, in place) or left (``dh``, ``dc``).
Nobody's source is edited. :mod:`gradcheck.mutation` runs the mutants and scores them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.subjects import Convention, Subject

#: The catalogue, in report order: each bug class and what its mutants do to one gradient
#: (two for "swapped").
BUG_CLASSES: dict[str, str] = {
    "scaled": "one gradient times (1 + δ), δ from 1 down to 1e-4",
    "sign flipped": "one gradient negated",
    "element zeroed": "the largest element of one gradient set to 0",
    "slice zeroed": "the largest slice along one axis of one gradient set to 0",
    "gate zeroed": "the largest gate block (3H or 4H gates) of one gradient set to 0",
    "transposed": "one square gradient transposed",
    "swapped": "two gradients of one shape swapped",
    "accumulated": "grads[k] += g instead of grads[k][...] = g",
    "state dropped": "dh or dc not set by backward",
    "time shifted": "an input's gradient of step t given to step t + 1 (N, T, D)",
    "time step lost": "an input's gradient at the first step left 0 (N, T, D)",
    "constant added": "a term that does not depend on dout added to one gradient",
}
#: The relative errors of the "scaled" mutants: the smallest one caught is the resolution.
DELTAS = (1.0, 1e-1, 1e-2, 1e-3, 1e-4)

#: Why a bug class has no mutant for a subject.
NOT_APPLICABLE = {
    "slice zeroed": "no gradient with two or more axes",
    "gate zeroed": "no parameter of 3H or 4H gates (a weight (H, 3H) or (H, 4H) shows them)",
    "transposed": "no square gradient",
    "swapped": "no two gradients of one shape",
    "accumulated": "no parameters (or they accumulate by design)",
    "state dropped": "no initial state checked (dh, dc)",
    "time shifted": "no float input (N, T, D) with T >= 2",
    "time step lost": "no float input (N, T, D) with T >= 2",
}


# --- the catalogue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Quantity:
    """A checked gradient: an input's (``kind="input"``, ``index`` its position), a
    parameter's (``"param"``, its index in ``grads``) or the initial state's (``"state"``,
    ``"dh"``/``"dc"``)."""

    name: str
    kind: str
    index: Any
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Mutant:
    bug_class: str
    targets: tuple[Quantity, ...]
    delta: float | None = None
    axis: int | None = None  # slice zeroed: the axis; gate zeroed: the number of gates

    @property
    def key(self) -> tuple[str, str, float | None]:
        """Names the mutant across examples (shapes vary, names do not)."""
        return (self.bug_class, self.target, self.delta)

    @property
    def target(self) -> str:
        names = ", ".join(q.name for q in self.targets)
        if self.bug_class == "slice zeroed":
            return f"{names} axis {self.axis}"
        return names


def gate_blocks(params: Sequence[np.ndarray]) -> tuple[int, int] | None:
    """(gates, H) when a weight (H, 3H) or (H, 4H) shows a gated recurrent layer (H >= 2)."""
    for p in params:
        if p.ndim == 2 and p.shape[0] >= 2:
            for gates in (4, 3):
                if p.shape[1] == gates * p.shape[0]:
                    return gates, p.shape[0]
    return None


def catalogue(quantities: list[Quantity], params: Sequence[np.ndarray], accumulates: bool):
    """Every mutant that applies to these gradients, in catalogue order."""
    gates = gate_blocks(params)
    out: list[Mutant] = []
    for q in quantities:
        out += [Mutant("scaled", (q,), delta) for delta in DELTAS]
    out += [Mutant("sign flipped", (q,)) for q in quantities]
    out += [Mutant("element zeroed", (q,)) for q in quantities]
    out += [
        Mutant("slice zeroed", (q,), axis=axis)
        for q in quantities
        if len(q.shape) >= 2
        for axis in range(len(q.shape))
    ]
    if gates is not None:
        width = gates[0] * gates[1]
        out += [
            Mutant("gate zeroed", (q,), axis=gates[0])
            for q in quantities
            if q.kind == "param" and q.shape and q.shape[-1] == width
        ]
    out += [
        Mutant("transposed", (q,))
        for q in quantities
        if len(q.shape) >= 2 and q.shape[-1] == q.shape[-2] >= 2
    ]
    out += [
        Mutant("swapped", (a, b))
        for i, a in enumerate(quantities)
        for b in quantities[i + 1 :]
        if a.shape == b.shape
    ]
    if not accumulates:
        out += [Mutant("accumulated", (q,)) for q in quantities if q.kind == "param"]
    out += [Mutant("state dropped", (q,)) for q in quantities if q.kind == "state"]
    timed = [q for q in quantities if q.kind == "input" and len(q.shape) == 3 and q.shape[1] >= 2]
    out += [Mutant("time shifted", (q,)) for q in timed]
    out += [Mutant("time step lost", (q,)) for q in timed]
    out += [Mutant("constant added", (q,)) for q in quantities]
    return out


def largest(g: np.ndarray, axis: int, blocks: int | None = None) -> tuple[slice | int, ...]:
    """The index of the largest slice of ``g`` along ``axis`` (or of the largest of ``blocks``
    equal blocks of it)."""
    moved = np.moveaxis(np.abs(g), axis, 0)
    size = moved.shape[0]
    sums = moved.reshape(size, -1).sum(axis=1)
    where: list[slice | int] = [slice(None)] * g.ndim
    if blocks is None:
        where[axis] = int(np.argmax(sums))
    else:
        width = size // blocks
        j = int(np.argmax(sums.reshape(blocks, width).sum(axis=1)))
        where[axis] = slice(j * width, (j + 1) * width)
    return tuple(where)


def constant(shape: tuple[int, ...]) -> np.ndarray:
    """The same array for the same shape, whatever dout is: a term backward should not add."""
    return 0.1 * np.random.default_rng(20240).standard_normal(shape)


def broken(m: Mutant, g: np.ndarray) -> np.ndarray:
    """A new array: ``g`` with the bug of ``m`` (one-gradient classes)."""
    name = m.bug_class
    if name == "scaled":
        return g * (1.0 + m.delta)
    if name == "sign flipped":
        return -g
    if name == "transposed":
        return np.swapaxes(g, -1, -2).copy()
    if name == "constant added":
        return g + constant(g.shape)
    out = np.array(g, dtype=np.float64 if g.dtype.kind != "f" else g.dtype)
    if name == "element zeroed":
        out.reshape(-1)[int(np.argmax(np.abs(g).reshape(-1)))] = 0
    elif name == "slice zeroed":
        out[largest(g, m.axis)] = 0
    elif name == "gate zeroed":
        out[largest(g, g.ndim - 1, m.axis)] = 0
    elif name == "time shifted":
        out[:, 1:] = g[:, :-1]
        out[:, 0] = 0
    elif name == "time step lost":
        out[:, 0] = 0
    else:
        raise ValueError(f"bug_class={name!r} is not one gradient's bug")
    return out


class Injection:
    """One mutant's bug, applied after every backward of the mutant layer. Shared (not copied)
    by the sandbox's deep copies of the layer, so ``changed`` says whether any backward of the
    check came out different; ``__slots__``: no ``__dict__`` for the sandbox to walk."""

    __slots__ = ("changed", "floats", "mutant", "n_inputs")

    def __init__(self, mutant: Mutant, n_inputs: int, floats: list[int]) -> None:
        self.mutant, self.n_inputs, self.floats = mutant, n_inputs, floats
        self.changed = False

    def __deepcopy__(self, memo: dict) -> Injection:
        return self

    def _position(self, i: int, count: int) -> int:
        """Where input ``i``'s gradient is in what backward returned: one per input, or the
        book's convention, one per float input."""
        if count != self.n_inputs and count == len(self.floats) and i in self.floats:
            return self.floats.index(i)
        return i

    def apply(self, layer: MutantLayer, result: Any, before: list[np.ndarray] | None) -> Any:
        m = self.mutant
        single = not isinstance(result, (tuple, list))
        got = [result] if single else list(result)
        inner = layer.inner

        def read(q: Quantity) -> Any:
            if q.kind == "input":
                k = self._position(q.index, len(got))
                return got[k] if k < len(got) else None
            if q.kind == "param":
                return inner.grads[q.index]
            return getattr(inner, q.index, None)

        def write(q: Quantity, new: Any) -> None:
            if q.kind == "input":
                k = self._position(q.index, len(got))
                if k < len(got):
                    got[k] = new
            elif q.kind == "param":
                g = inner.grads[q.index]
                if new is not None and np.shape(new) == g.shape:
                    g[...] = new
            else:
                setattr(layer, q.index, new)

        olds = [read(q) for q in m.targets]
        if any(not isinstance(g, np.ndarray) for g in olds) and m.bug_class != "state dropped":
            return result  # (a gradient the checker reports missing anyway)
        olds = [np.array(g) if m.bug_class == "swapped" else g for g in olds]
        if m.bug_class == "swapped":
            news = [olds[1], olds[0]]
        elif m.bug_class == "accumulated":
            news = [olds[0] + before[m.targets[0].index]] if before is not None else olds
            self.changed |= bool(np.any(olds[0]))  # (a second backward would differ)
        elif m.bug_class == "state dropped":
            news = [None]
        else:
            news = [broken(m, olds[0])]
        for q, old, new in zip(m.targets, olds, news, strict=True):
            if new is None or old is None:
                self.changed |= new is not old
            elif not np.array_equal(old, new):
                self.changed = True
            write(q, new)
        if single:
            return got[0]
        return tuple(got) if isinstance(result, tuple) else got


class MutantLayer:
    """The subject's layer with one bug injected after backward: forward and everything else
    are the layer's own (``params``, ``grads``, state and ``set_state`` read through)."""

    def __init__(self, inner: Any, injection: Injection | None) -> None:
        self.inner = inner
        self.injection = injection

    @property
    def params(self) -> list[Any]:
        return self.inner.params

    @property
    def grads(self) -> list[Any]:
        return self.inner.grads

    def forward(self, *inputs: Any) -> Any:
        return self.inner.forward(*inputs)

    def backward(self, *douts: Any) -> Any:
        injection = self.injection
        if injection is None:
            return self.inner.backward(*douts)
        before = None
        if injection.mutant.bug_class == "accumulated":
            before = [np.array(g) for g in self.inner.grads]
        result = self.inner.backward(*douts)
        return injection.apply(self, result, before)

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("inner")
        if inner is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(inner, name)


@dataclass(frozen=True)
class Mutated(Convention):
    """The subject with an injection (None: the unmutated baseline, through the same wrapper)."""

    subject: Subject
    arrays: tuple[Any, ...]
    injection: Injection | None

    @property
    def name(self) -> str:
        return self.subject.name

    def bind(self, inputs: tuple[Any, ...]) -> tuple[Subject, tuple]:
        layer = MutantLayer(self.subject.layer, self.injection)
        return dataclasses.replace(self.subject, layer=layer), self.arrays
