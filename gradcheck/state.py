"""The initial state of a stateful recurrent layer: which one a check starts from.

A layer with ``stateful=True`` and ``set_state`` is checked from the state given as ``state=``,
else the state it holds (a user may have called ``set_state``), else a random one drawn once
the first forward has shown its shape. The arrays set become checked quantities (``dh``,
``dc``), compared with the ``layer.dh``/``layer.dc`` that backward leaves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gradcheck.sandbox import Sandbox

__all__ = ["is_stateful", "set_initial_state", "validate_state"]


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


def set_initial_state(
    box: Sandbox, name: str, given: Any, rng: np.random.Generator, notes: list[str]
) -> dict[str, np.ndarray]:
    """Set the copy's initial state; return the arrays it holds, by the name of their gradient
    (``{"dh": h, "dc": c}``), registered in ``box.sources`` for restoring."""
    layer = box.layer
    if given is not None:
        h, c = (*given, None)[:2] if isinstance(given, tuple) else (given, None)
        h = np.array(h, dtype=np.float64)
        c = None if c is None else np.array(c, dtype=np.float64)
    elif getattr(layer, "h", None) is not None:
        h = np.array(layer.h, dtype=np.float64)
        c = getattr(layer, "c", None)
        c = None if c is None else np.array(c, dtype=np.float64)
        for part, a in (("h", h), ("c", c)):
            if a is not None and not np.all(np.isfinite(a)):
                raise ValueError(
                    f"{name}.{part} (the state the layer holds) contains NaN or Inf; call "
                    "reset_state() or set_state() with finite arrays, or pass state="
                )
    else:
        # learn the state's shape from one forward from zeros, then draw a random state
        box.call_forward()
        if not isinstance(getattr(layer, "h", None), np.ndarray):
            notes.append("stateful=True, but forward keeps no state in .h: dh not checked")
            return {}
        h = rng.standard_normal(np.shape(layer.h)) * 0.5
        c = getattr(layer, "c", None)
        c = None if c is None else rng.standard_normal(np.shape(c)) * 0.5
    if c is None:
        layer.set_state(h)
    else:
        layer.set_state(h, c)
    held = {}
    for part, saved in (("h", h), ("c", c)):
        array = getattr(layer, part, None)
        if isinstance(array, np.ndarray) and array.dtype == np.float64:
            held["d" + part] = array
            box.sources[id(array)] = saved.copy() if saved is not None else array.copy()
    return held
