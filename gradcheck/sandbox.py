"""The sandbox: a float64 copy of the subject that can be evaluated over and over.

Every check runs on a float64 deep copy of the subject's layer (float32 arrays mapped to float64
copies in the copy's memo, so parts and composites still share their arrays); the user's layer is
only read, so it is bit-for-bit unchanged after any check, even one that raises or is interrupted.

Before every forward evaluation the copy's state is put back by a :class:`RestorePlan`: the
attributes and lists that the first ("probe") forward rebinds, the arrays it writes in place, and
every numpy random generator the layer owns. The probe tells which those are (see
:func:`gradcheck.analytic.run`), so a restore costs a few dict updates, not a copy of the layer.
The sandbox counts forward and backward calls.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["RestorePlan", "Sandbox", "Snapshot", "loss_of", "run_sharing_arrays", "sandbox", "walk"]

_SKIP = (
    str,
    bytes,
    int,
    float,
    complex,
    bool,
    type(None),
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    np.generic,
    np.ufunc,
    np.dtype,
)
_GENERATORS = (np.random.Generator, np.random.RandomState, np.random.BitGenerator)


@dataclass
class Graph:
    """What a walk from a layer found: instances (with a ``__dict__``), containers, arrays and
    random generators, each once, in a stable order."""

    instances: list[Any] = field(default_factory=list)
    lists: list[list] = field(default_factory=list)
    dicts: list[dict] = field(default_factory=list)
    arrays: list[np.ndarray] = field(default_factory=list)
    generators: list[Any] = field(default_factory=list)


def walk(root: Any) -> Graph:
    """Everything reachable from ``root`` through attributes, lists, tuples, sets and dicts."""
    graph, seen, stack = Graph(), set(), [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _SKIP):
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            graph.arrays.append(obj)
        elif isinstance(obj, _GENERATORS):
            graph.generators.append(obj)
        elif isinstance(obj, list):
            graph.lists.append(obj)
            stack.extend(reversed(obj))
        elif isinstance(obj, (tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            graph.dicts.append(obj)
            stack.extend(reversed(obj.values()))
        else:
            d = getattr(obj, "__dict__", None)
            if isinstance(d, dict):
                graph.instances.append(obj)
                stack.extend(reversed(d.values()))
    return graph


def _owned_arrays(layer: Any, graph: Graph) -> set[int]:
    """Ids of the arrays a check perturbs or reads back: every part's params and grads, and the
    recurrent state ``h``/``c``; these are always copied."""
    own: set[int] = {id(a) for a in (*layer.params, *layer.grads)}
    for obj in graph.instances:
        attrs = vars(obj)
        for name in ("params", "grads"):
            if isinstance(attrs.get(name), (list, tuple)):
                own.update(id(a) for a in attrs[name])
        own.update(id(attrs[name]) for name in ("h", "c") if name in attrs)
    return own


def _float64_copy(
    layer: Any, frozen: list[np.ndarray] | None
) -> tuple[Any, dict[int, Any], list[np.ndarray]]:
    """A deep copy of ``layer`` whose float arrays are float64 copies, a map from each copied
    array's id to the user's array it came from (for restoring and comparing), and the copied
    arrays (the sandbox keeps them alive, so that no id in the map is ever reused).

    With a ``frozen`` list, arrays the check neither perturbs nor reads back (caches of an
    earlier forward, masks, constants) are shared with the user's layer instead of copied, and
    made read-only for the check (appended to ``frozen``; :func:`sandbox` makes them writeable
    again). Saves a copy of every such array; a layer that writes into one raises, and
    :func:`sandbox` then starts again without sharing."""
    graph = walk(layer)
    own = _owned_arrays(layer, graph)
    memo: dict[int, Any] = {}
    for a in graph.arrays:
        if frozen is not None and id(a) not in own:
            memo[id(a)] = a
            if a.flags.writeable:
                frozen.append(a)
                a.flags.writeable = False
        elif a.dtype.kind == "f" and a.dtype != np.float64:
            memo[id(a)] = a.astype(np.float64)
    try:
        twin = copy.deepcopy(layer, memo)
    except Exception as exc:
        raise TypeError(
            f"the check copies the layer so yours is never changed, but copy.deepcopy("
            f"{type(layer).__name__}) failed: {exc}; keep only arrays, numbers, lists and "
            "sub-layers on the layer"
        ) from exc
    # deepcopy records every array it copied in memo, keyed by the original's id
    copies = [memo[id(a)] for a in graph.arrays if id(a) in memo and memo[id(a)] is not a]
    sources = {id(memo[id(a)]): a for a in graph.arrays if id(a) in memo and memo[id(a)] is not a}
    return twin, sources, copies


def _unfreeze(frozen: list[np.ndarray]) -> None:
    """Make the user's arrays writeable again. A view can only be made writeable after its
    base, so views whose base is still frozen wait for the next round."""
    pending = list(frozen)
    while pending:
        failed = []
        for a in pending:
            try:
                a.flags.writeable = True
            except ValueError:
                failed.append(a)
        if len(failed) == len(pending):
            raise RuntimeError(f"gradcheck could not make {len(failed)} array(s) writeable again")
        pending = failed


def _generator_state(g: Any) -> Any:
    if isinstance(g, np.random.RandomState):
        return g.get_state()
    if isinstance(g, np.random.Generator):
        return g.bit_generator.state
    return g.state


def _set_generator_state(g: Any, state: Any) -> None:
    if isinstance(g, np.random.RandomState):
        g.set_state(state)
    elif isinstance(g, np.random.Generator):
        g.bit_generator.state = state
    else:
        g.state = state


@dataclass(frozen=True)
class Snapshot:
    """The copy's attributes, dicts, lists and generators before the probe forward (shallow:
    the containers' contents, not copies of the arrays)."""

    dicts: list[tuple[dict, dict]]
    lists: list[tuple[list, list]]
    generators: list[tuple[Any, Any]]

    @classmethod
    def of(cls, layer: Any) -> Snapshot:
        graph = walk(layer)
        dicts = [(obj.__dict__, dict(obj.__dict__)) for obj in graph.instances]
        dicts += [(d, dict(d)) for d in graph.dicts]
        lists = [(lst, list(lst)) for lst in graph.lists]
        generators = [(g, _generator_state(g)) for g in graph.generators]
        return cls(dicts, lists, generators)

    def plan(self, written: list[tuple[np.ndarray, Any]]) -> RestorePlan:
        """The plan that undoes what happened since the snapshot: only the dicts and lists that
        changed, the ``written`` arrays (each with the values to put back), every generator."""
        dicts = [(d, s) for d, s in self.dicts if _changed(d, s)]
        lists = [(lst, s) for lst, s in self.lists if _changed_list(lst, s)]
        return RestorePlan(dicts, lists, list(written), self.generators)


def _changed(d: dict, saved: dict) -> bool:
    return d.keys() != saved.keys() or any(d[k] is not v for k, v in saved.items())


def _changed_list(lst: list, saved: list) -> bool:
    return len(lst) != len(saved) or any(a is not b for a, b in zip(lst, saved, strict=True))


@dataclass(frozen=True)
class RestorePlan:
    """What to put back before every forward evaluation. ``arrays`` may grow (an integer
    input that backward wrote into is added after the analytic pass)."""

    dicts: list[tuple[dict, dict]] = field(default_factory=list)
    lists: list[tuple[list, list]] = field(default_factory=list)
    arrays: list[tuple[np.ndarray, Any]] = field(default_factory=list)
    generators: list[tuple[Any, Any]] = field(default_factory=list)

    def restore(self) -> None:
        for d, saved in self.dicts:
            d.clear()
            d.update(saved)
        self.restore_rest()

    def restore_rest(self) -> None:
        """Everything but the dicts (what :func:`Sandbox.loss_function` calls after its own
        inlined dict updates)."""
        for lst, saved in self.lists:
            lst[:] = saved
        for a, source in self.arrays:
            np.copyto(a, source, casting="unsafe")
        for g, saved in self.generators:
            _set_generator_state(g, saved)


class Sandbox:
    """The float64 copy of a subject's layer (``layer``; the user's is ``original``) and of its
    inputs; restores before every evaluation and counts calls. ``sources`` maps each copied
    array's id to the user's array it came from."""

    def __init__(
        self, subject: Any, inputs: tuple[np.ndarray, ...], frozen: list[np.ndarray] | None
    ) -> None:
        self.subject = subject
        self.original = subject.layer
        self.layer, self.sources, self._alive = _float64_copy(subject.layer, frozen)
        self.user_inputs = inputs
        self.inputs = [
            np.array(x, dtype=np.float64) if x.dtype.kind == "f" else np.array(x) for x in inputs
        ]
        for x, user_x in zip(self.inputs, inputs, strict=True):
            self.register(x, user_x)
        self.plan = RestorePlan()
        self.forward_calls = 0
        self.backward_calls = 0
        self.on_call: Callable[[int], None] | None = None  # told the forward count after each

    def register(self, array: np.ndarray, source: Any) -> None:
        """Record that ``array`` (in the copy) starts as ``source``; the array is kept alive,
        so that its id stays its own even when the layer lets go of it (a forward rebinding
        ``self.h``): ``sources`` is keyed by id."""
        self.sources[id(array)] = source
        self._alive.append(array)

    def call_forward(self) -> Any:
        """forward on the copy as it is (not restored); counts the call."""
        __tracebackhide__ = True
        self.forward_calls += 1
        if self.on_call is not None:
            self.on_call(self.forward_calls)
        return self.layer.forward(*self.inputs)

    def forward(self) -> Any:
        """A restored forward evaluation."""
        __tracebackhide__ = True
        self.plan.restore()
        return self.call_forward()

    def call_backward(self, *douts: Any) -> Any:
        """backward on the copy; counts the call."""
        __tracebackhide__ = True
        self.backward_calls += 1
        return self.layer.backward(*douts)

    def zero_grads(self) -> None:
        for g in self.layer.grads:
            g[...] = 0

    def loss_function(self, douts: list[Any], scalar: bool) -> Callable[[], float]:
        """``L = sum(dout * forward(...))`` after a restore, as a closure with its lookups done
        once: the finite differences call it twice per element, and for a small layer the call
        overhead is what the checker adds (a third of a check of a 20 µs layer)."""
        dicts = [(d.clear, d.update, saved) for d, saved in self.plan.dicts]
        plan = self.plan
        rest = plan.restore_rest if (plan.lists or plan.arrays or plan.generators) else None
        forward, inputs = self.layer.forward, self.inputs
        loss = loss_of(douts, scalar)

        def evaluate() -> float:
            for clear, update, saved in dicts:
                clear()
                update(saved)
            if rest is not None:
                rest()
            self.forward_calls += 1
            if self.on_call is not None:
                self.on_call(self.forward_calls)
            return loss(forward(*inputs))

        return evaluate


def loss_of(douts: list[Any], scalar: bool) -> Callable[[Any], float]:
    """The scalar ``sum(dout * out)`` whose derivative is checked."""
    if scalar:
        dout = douts[0]
        return lambda out: dout * float(out)
    if len(douts) == 1:
        dout, vdot = douts[0], np.vdot
        return lambda out: float(vdot(dout, out))
    return lambda out: float(sum(np.vdot(d, o) for d, o in zip(douts, out, strict=True)))


@contextmanager
def sandbox(
    subject: Any, inputs: tuple[np.ndarray, ...], frozen: list[np.ndarray] | None
) -> Iterator[Sandbox]:
    """A :class:`Sandbox` of ``subject`` (a :class:`~gradcheck.subjects.Subject`). With a
    ``frozen`` list, arrays the check never perturbs are shared read-only with the user's layer
    (see :func:`_float64_copy`) and made writeable again on the way out, whatever happens."""
    try:
        yield Sandbox(subject, inputs, frozen)
    finally:
        if frozen:
            _unfreeze(frozen)


def run_sharing_arrays(run: Callable[[list[np.ndarray] | None], Any]) -> Any:
    """``run(frozen=[])`` (share what can be shared), and when that raises after some of the
    user's arrays were shared read-only, ``run(None)`` once, with private copies: the layer may
    write into an array it held before the check (a cache it updates in place), which sharing
    forbids. Sharing saves a copy of every array the check never perturbs; a layer that fails
    for another reason fails the second run the same way, and that exception is raised."""
    __tracebackhide__ = True
    frozen: list[np.ndarray] = []
    try:
        return run(frozen)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception:
        if not frozen:
            raise
    return run(None)
