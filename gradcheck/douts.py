"""The output gradients of a check (``dout``), and every backward call made with them.

``L = sum(dout * out)`` is the scalar whose derivative is checked; ``dout`` is drawn at random
(or given by the caller) once per check. Backward gets copies of the douts until the analytic
pass has shown that backward leaves them alone; from then on it gets the douts themselves
(:meth:`Douts.backward`), which saves a copy of the outputs' size at the peak of a check.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from gradcheck.sandbox import Sandbox
from gradcheck.subjects import signature_parameters

__all__ = ["Douts", "digest"]


def digest(out: Any) -> list[tuple[Any, ...]]:
    """What identifies an output bit for bit (shape, dtype, CRC-32 of its bytes), so that two
    outputs can be compared without keeping the first one around."""
    outs = out if isinstance(out, tuple) else (out,)
    return [
        (o.shape, o.dtype.str, zlib.crc32(np.ascontiguousarray(o).view(np.uint8)))
        if isinstance(o, np.ndarray)
        else (float(o).hex(),)
        for o in outs
    ]


class Douts:
    """The douts of one check: drawn from ``rng`` (random normal) or converted from the
    caller's ``given``, one per output; ``[1.0]`` (or the given number) for a scalar loss."""

    def __init__(self, name: str, out: Any, given: Any, rng: np.random.Generator) -> None:
        __tracebackhide__ = True
        self.name = name
        self.scalar = not isinstance(out, (tuple, np.ndarray)) or (
            isinstance(out, np.ndarray) and out.ndim == 0
        )
        self.shared = False  # set once the analytic pass saw backward leave them alone
        self._redraw: tuple[Any, Any] = (None, None)
        self.arrays = self._make(out, given, rng)
        self.digest = digest(tuple(self.arrays))
        self.passed: list[Any] | None = None  # the copies the last unshared backward got

    def _make(self, out: Any, given: Any, rng: np.random.Generator) -> list[Any]:
        __tracebackhide__ = True
        if self.scalar:
            if given is None:
                return [1.0]
            if not isinstance(given, (int, float, np.number)) or isinstance(given, bool):
                raise TypeError(f"dout={given!r}: {self.name} returns a scalar; pass dout=1.0")
            return [float(given)]
        outs = out if isinstance(out, tuple) else (out,)
        if given is None:
            self._redraw = (None, rng.bit_generator.state)  # to draw them again
            return [rng.standard_normal(o.shape) for o in outs]
        given = tuple(given) if isinstance(given, (tuple, list)) else (given,)
        self._redraw = (given, None)
        if len(given) != len(outs):
            raise ValueError(
                f"dout has {len(given)} arrays but {self.name}.forward returns {len(outs)} "
                "outputs; pass one dout per output as a tuple"
            )
        douts = []
        for k, (d, o) in enumerate(zip(given, outs, strict=True)):
            if not isinstance(d, np.ndarray):
                raise TypeError(f"dout[{k}] is {type(d).__name__}; pass a numpy array")
            if d.shape != o.shape:
                raise ValueError(
                    f"dout[{k}].shape={d.shape} but output[{k}].shape={o.shape}; they must match"
                )
            douts.append(np.array(d, dtype=np.float64))
        return douts

    def backward(self, box: Sandbox, *, scale: float = 1.0) -> Any:
        """``backward(scale * dout)`` on the sandbox's copy; returns what backward returned.

        Unshared, backward gets copies (kept in ``passed``, so a backward that edits dout is
        seen and cannot spoil later calls). Shared, it gets the douts themselves, scaled in
        place and back (exact for a power of 2 such as the 2 of the linearity check); their
        digest is compared after the call, and if anything changed them (or a returned
        gradient is a view of them) they are made anew."""
        __tracebackhide__ = True
        if self.scalar or not self.shared:
            self.passed = [
                d * scale if isinstance(d, np.ndarray) else scale * d for d in self.arrays
            ]
            return box.call_backward(*self.passed)  # (d * 1.0 is a copy, bit for bit)
        self._renew_if_changed()
        douts, result = self.arrays, None
        try:
            if scale != 1.0:
                for d in douts:
                    d *= scale
            result = box.call_backward(*douts)
            return result
        finally:
            if scale != 1.0 and not _views_of(result, douts):
                for d in douts:
                    d /= scale
            self._renew_if_changed()

    def _renew_if_changed(self) -> None:
        """New arrays, made as :meth:`_make` made them, if something changed them in place (the
        changed ones are left to whatever holds them, say a returned gradient): drawn again
        from the same generator state, or converted again from the caller's."""
        if digest(tuple(self.arrays)) == self.digest:
            return
        given, state = self._redraw
        if given is None:
            again = np.random.Generator(np.random.PCG64())  # (default_rng's bit generator)
            again.bit_generator.state = state
            given = [again.standard_normal(np.shape(d)) for d in self.arrays]
        self.arrays = [np.array(d, dtype=np.float64) for d in given]

    def modified(self) -> list[int]:
        """Which douts the last unshared backward changed in place."""
        return [
            k
            for k, (d, passed) in enumerate(zip(self.arrays, self.passed or [], strict=False))
            if not np.array_equal(d, passed)
        ]


def check_backward_arity(box: Sandbox, name: str, k: int) -> None:
    """backward takes one dout per output: say so before Python's own TypeError does."""
    __tracebackhide__ = True
    params = signature_parameters(box.layer.backward)
    if params is None:
        return
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    if len(required) <= k <= len(positional):
        return
    names = ", ".join(f"dout{j}" for j in range(k)) if k > 1 else "dout"
    takes = ", ".join(p.name for p in positional)
    raise TypeError(
        f"{name}.forward returned {k} output{'s' if k > 1 else ''}, so backward is called "
        f"with one dout per output: backward({names}); {name}.backward takes {len(positional)} "
        f"({takes}); give it one argument per output of forward"
    )


def _views_of(result: Any, douts: list[Any]) -> bool:
    """Whether a returned gradient may share memory with a dout (an identity backward)."""
    grads = result if isinstance(result, (tuple, list)) else [result]
    return any(
        isinstance(g, np.ndarray) and np.may_share_memory(g, d) for g in grads for d in douts
    )
