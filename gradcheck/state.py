"""The initial state of a stateful recurrent layer: which one a check starts from.

A layer with ``stateful=True`` and ``set_state`` is checked from the state given as ``state=``,
else the state it holds (a user may have called ``set_state``), else a random one drawn once
the first forward has shown its shape. The arrays set become checked quantities (``dh``,
``dc``), compared with the ``layer.dh``/``layer.dc`` that backward leaves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradcheck.douts import digest
from gradcheck.sandbox import Sandbox, Snapshot

__all__ = ["InitialState", "is_stateful", "set_initial_state", "validate_state"]


def is_stateful(layer: Any) -> bool:
    return getattr(layer, "stateful", None) is True and callable(getattr(layer, "set_state", None))


def validate_state(layer: Any, state: Any) -> None:
    """``state=`` is ``h`` or ``(h, c)`` of finite float arrays, for a stateful layer only."""
    __tracebackhide__ = True
    if state is None:
        return
    if not is_stateful(layer):
        raise ValueError(
            f"state=... was given, but {type(layer).__name__} is not a stateful layer "
            "(stateful=True with set_state); leave state=None"
        )
    if isinstance(state, list):
        raise TypeError("state= is a list; pass state=h or state=(h, c) (a tuple)")
    parts = state if isinstance(state, tuple) else (state,)
    if not 1 <= len(parts) <= 2:
        raise ValueError(f"state= is a tuple of {len(parts)} items; pass state=h or state=(h, c)")
    for name, a in zip(("h", "c"), parts, strict=False):
        if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
            what = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
            raise TypeError(f"state= {name} is {what}; pass float numpy arrays: state=(h, c)")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"state= {name} contains NaN or Inf; pass a finite state")


@dataclass(frozen=True)
class InitialState:
    """The state a check starts from: the arrays the layer holds, by the name of their gradient
    (``{"dh": h, "dc": c}``), and what is wrong with a part (``set_state`` ignored it, or
    forward does not depend on it), by the same names."""

    held: dict[str, np.ndarray] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


def set_initial_state(
    box: Sandbox, name: str, given: Any, rng: np.random.Generator, notes: list[str]
) -> InitialState:
    """Set the copy's initial state and verify it is used.

    The parts of the state (``h``, and ``c`` for an LSTM) are learnt from what a forward leaves
    on the layer, not assumed; each part starts from ``given`` (``state=``), else from what the
    layer holds, else at random (a part missing beside given ones: zeros, as ``set_state``'s
    ``c=None``). Then ``set_state`` must have set each part, and forward must depend on each:
    one more forward per part, from that part moved, must give other outputs."""
    layer = box.layer
    before = Snapshot.of(layer)  # the forwards below leave caches (and draws): put back after
    values = dict(zip(("h", "c"), _given_parts(given), strict=False))
    if not values:
        values = {part: getattr(layer, part, None) for part in ("h", "c")}
        values = {part: v for part, v in values.items() if v is not None}
        for part, a in values.items():
            if not np.all(np.isfinite(a)):
                raise ValueError(
                    f"{name}.{part} (the state the layer holds) contains NaN or Inf; call "
                    "reset_state() or set_state() with finite arrays, or pass state="
                )
    if values:
        _set_state(layer, values)
    box.call_forward()  # what a forward leaves shows the parts of the state
    parts = [part for part in ("h", "c") if isinstance(getattr(layer, part, None), np.ndarray)]
    if "h" not in parts:
        notes.append("stateful=True, but forward keeps no state in .h: dh not checked")
        return InitialState()
    shape = np.shape(layer.h)
    if not values:  # nothing given or held: a random state, every part
        values = {part: rng.standard_normal(np.shape(getattr(layer, part))) * 0.5 for part in parts}
    values = {
        part: np.array(values[part], dtype=np.float64) if part in values else np.zeros(shape)
        for part in parts
    }
    problems = _set_and_verify(box, values)
    before.plan([]).restore()  # (their caches would be held through the whole check)
    _set_state(layer, values)
    held = {}
    for part, saved in values.items():
        array = getattr(layer, part, None)
        unset = "did not set" in problems.get("d" + part, "")
        if isinstance(array, np.ndarray) and array.dtype == np.float64 and not unset:
            held["d" + part] = array
            box.register(array, saved.copy())
    return InitialState(held, problems)


def _given_parts(given: Any) -> tuple[np.ndarray, ...]:
    if given is None:
        return ()
    parts = given if isinstance(given, tuple) else (given,)
    return tuple(p for p in parts if p is not None)


def _set_state(layer: Any, values: dict[str, np.ndarray]) -> None:
    if "c" in values:
        layer.set_state(values["h"], values["c"])
    else:
        layer.set_state(values["h"])


def _set_and_verify(box: Sandbox, values: dict[str, np.ndarray]) -> dict[str, str]:
    """``set_state`` each part; problems, by gradient name, where it was not set or forward
    does not depend on it. Leaves the layer set to ``values``."""
    layer = box.layer
    _set_state(layer, values)
    problems = {}
    for part, value in values.items():
        held = getattr(layer, part, None)
        if not (
            isinstance(held, np.ndarray) and held.shape == value.shape and np.allclose(held, value)
        ):
            args = "h, c" if "c" in values else "h"
            problems["d" + part] = (
                f"set_state({args}) did not set {part}: the layer's .{part} is not the {part} "
                f"it was given; set self.{part} in set_state"
            )
    base = digest(box.call_forward())
    for part in values:
        if "d" + part in problems:
            continue
        moved = dict(values)
        moved[part] = values[part] + 0.5 + values[part]
        _set_state(layer, moved)
        if digest(box.call_forward()) == base:
            problems["d" + part] = (
                f"forward does not depend on the state {part} it was given (set_state then "
                f"forward from another {part} gave the same output); start from self.{part}"
            )
    _set_state(layer, values)
    return problems
