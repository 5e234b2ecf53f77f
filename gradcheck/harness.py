"""The harness of a check: a float64 copy of the user's layer that can be evaluated over and over.

Everything runs on a float64 deep copy of the layer (float32 arrays mapped to float64 copies in
the copy's memo, so parts and composites still share their arrays); the user's layer is only
read, so it is bit-for-bit unchanged after any check, even one that raises or is interrupted.

Before every forward evaluation the copy's state is put back: the attributes and lists that the
first ("probe") forward rebinds, the arrays it writes in place, and every numpy random generator
the layer owns. The probe tells which those are, so a restore costs a few dict updates, not a
copy of the layer. The harness also runs the analytic forward and backward, keeps what the
contract checks need to know (``facts``), and counts forward and backward calls.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import types
import weakref
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradcheck import contract
from gradcheck.numerical import directional_derivative, dot, uniform_direction

__all__ = ["Harness", "Target", "directions", "unfreeze"]

_EPS64 = float(np.finfo(np.float64).eps)
#: How many times the rounding of the loss, divided by the step, the numeric gradient may be off.
_NOISE_FACTOR = 32.0

# --- the float64 copy and its restore plan -------------------------------------------------

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
class _Graph:
    """What a walk from a layer found: instances (with a ``__dict__``), containers, arrays and
    random generators, each once, in a stable order."""

    instances: list[Any] = field(default_factory=list)
    lists: list[list] = field(default_factory=list)
    dicts: list[dict] = field(default_factory=list)
    arrays: list[np.ndarray] = field(default_factory=list)
    generators: list[Any] = field(default_factory=list)


def _walk(root: Any) -> _Graph:
    graph, seen, stack = _Graph(), set(), [root]
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


def _float64_copy(
    layer: Any, *, frozen: list[np.ndarray] | None = None
) -> tuple[Any, dict[int, np.ndarray]]:
    """A deep copy of ``layer`` whose parameters, gradients and state (``h``, ``c``) are float64
    copies; float32 arrays map to float64 copies through the memo, so parts and composites
    still share them.

    When a ``frozen`` list is given, every other array (caches of an earlier forward, masks,
    constants) is not copied but shared with the user's layer and made read-only for the
    check: a forward overwrites such attributes rather than reading them, and one that writes
    into them raises, so the caller can start again without sharing. The arrays made
    read-only are appended to ``frozen`` as they are frozen; the caller unfreezes them (in a
    ``finally``).
    Returns the copy and a map from each copied array's id to the user's array it came from
    (for restoring and comparing).
    """
    share = frozen is not None
    graph = _walk(layer)
    own: set[int] = {id(a) for a in (*layer.params, *layer.grads)}
    for obj in graph.instances:
        attrs = vars(obj)
        for name in ("params", "grads"):
            if isinstance(attrs.get(name), (list, tuple)):
                own.update(id(a) for a in attrs[name])
        own.update(id(attrs[name]) for name in ("h", "c") if name in attrs)
    memo: dict[int, Any] = {}
    for a in graph.arrays:
        if share and id(a) not in own:
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
            f"check_layer copies the layer so yours is never changed, but copy.deepcopy("
            f"{type(layer).__name__}) failed: {exc}; keep only arrays, numbers, lists and "
            "sub-layers on the layer"
        ) from exc
    # deepcopy records every array it copied in memo, keyed by the original's id
    sources = {id(memo[id(a)]): a for a in graph.arrays if id(a) in memo and memo[id(a)] is not a}
    return twin, sources


def unfreeze(frozen: list[np.ndarray]) -> None:
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


def _param_labels(layer: Any) -> list[str]:
    """Each parameter's name: ``param_names`` when given, else the attribute path where the
    array is found (``affine.W``), else ``params[i]``."""
    names = getattr(layer, "param_names", None)
    if names is not None:
        return [str(n) for n in names]
    wanted = {id(p): i for i, p in enumerate(layer.params)}
    found: dict[int, str] = {}
    seen: set[int] = set()
    queue: list[tuple[Any, str]] = [(layer, "")]
    while queue and len(found) < len(wanted):
        obj, path = queue.pop(0)
        if id(obj) in seen or isinstance(obj, _SKIP):
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            if id(obj) in wanted and wanted[id(obj)] not in found:
                found[wanted[id(obj)]] = path
            continue
        if isinstance(obj, (list, tuple)):
            queue += [(v, f"{path}[{k}]") for k, v in enumerate(obj)]
        elif hasattr(obj, "__dict__") and isinstance(obj.__dict__, dict):
            prefix = f"{path}." if path else ""
            sub_names = getattr(obj, "param_names", None) if obj is not layer else None
            sub_params = getattr(obj, "params", None)
            if isinstance(sub_names, list) and isinstance(sub_params, list):
                for p, n in zip(sub_params, sub_names, strict=False):
                    if id(p) in wanted and wanted[id(p)] not in found:
                        found[wanted[id(p)]] = prefix + str(n)
            skip = ("params", "grads") if obj is layer else ("grads",)
            queue += [(v, prefix + k) for k, v in vars(obj).items() if k not in skip]
    return [found.get(i, f"params[{i}]") for i in range(len(layer.params))]


_signatures: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _parameters(method: Any) -> list[inspect.Parameter] | None:
    """The parameters of ``method`` as called (a bound method's without ``self``), or None when
    Python cannot tell. Kept per function: reading a signature costs about 15 µs, and the same
    layer class is checked over and over (a tiny check is a few hundred µs)."""
    func = getattr(method, "__func__", None)
    try:
        return list(_signatures[func])
    except (KeyError, TypeError):  # not seen yet, or not a method
        pass
    try:
        params = tuple(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return None
    with contextlib.suppress(TypeError):  # func is None or not weakly referable: not kept
        _signatures[func] = params
    return list(params)


def _input_labels(layer: Any, n: int) -> list[str]:
    params = _parameters(layer.forward) or []
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [f"input[{i}] {names[i]}" if i < len(names) else f"input[{i}]" for i in range(n)]


@dataclass
class Target:
    """One quantity whose gradient is checked: the float64 array perturbed in place."""

    name: str
    label: str
    array: np.ndarray
    analytic: Callable[[], Any]  # -> array, or None when the layer gives none
    is_param: bool = False


class Harness:
    """The float64 copy of a layer, with its inputs, dout and restore plan; counts calls."""

    def __init__(
        self,
        layer: Any,
        inputs: tuple[np.ndarray, ...],
        settings: dict[str, Any],
        rng: np.random.Generator,
        state: Any,
        *,
        frozen: list[np.ndarray] | None = None,
    ) -> None:
        self.original = layer
        self.user_inputs = inputs
        self.settings = settings
        self.rng = rng
        self.state_option = state
        self.name = type(layer).__name__
        self.forward_calls = 0
        self.backward_calls = 0
        self.facts: dict[str, Any] = {}  # what the contract checks need to know
        if settings["contract"] and any(p.dtype != np.float64 for p in layer.params):
            self.facts["native_dtype"] = contract.native_dtype_problems(layer, inputs)
            self.forward_calls, self.backward_calls = 1, 1
        self.layer, self.sources = _float64_copy(layer, frozen=frozen)
        self.inputs = [
            np.array(x, dtype=np.float64) if x.dtype.kind == "f" else np.array(x) for x in inputs
        ]
        self.float_inputs = [i for i, x in enumerate(inputs) if x.dtype.kind == "f"]
        for x, user_x in zip(self.inputs, inputs, strict=True):
            self.sources[id(x)] = user_x
        self.input_labels = _input_labels(layer, len(inputs))
        self.param_names = _param_labels(layer)
        self.notes: list[str] = []
        self._plan_dicts: list[tuple[dict, dict]] = []
        self._plan_lists: list[tuple[list, list]] = []
        self._plan_arrays: list[tuple[np.ndarray, np.ndarray]] = []
        self._plan_generators: list[tuple[Any, Any]] = []
        self.stateful = getattr(layer, "stateful", None) is True and callable(
            getattr(layer, "set_state", None)
        )
        self.h0: np.ndarray | None = None
        self.c0: np.ndarray | None = None
        self.state_arrays: dict[str, np.ndarray] = {}  # "dh" -> the h array the layer holds
        self.passed_douts: list[Any] | None = None
        self.first_projections: dict[int, tuple[int, float]] = {}  # id -> seed, central diff
        self.share_douts = False

    # -- calls ---------------------------------------------------------------------------------

    def restore(self) -> None:
        """Put back what the probe forward changed: rebound attributes, list contents, arrays
        written in place, random generators."""
        for d, saved in self._plan_dicts:
            d.clear()
            d.update(saved)
        self._restore_rest()

    def _restore_rest(self) -> None:
        for lst, saved in self._plan_lists:
            lst[:] = saved
        for a, source in self._plan_arrays:
            np.copyto(a, source, casting="unsafe")
        for g, saved in self._plan_generators:
            if isinstance(g, np.random.RandomState):
                g.set_state(saved)
            elif isinstance(g, np.random.Generator):
                g.bit_generator.state = saved
            else:
                g.state = saved

    def call_forward(self) -> Any:
        """forward on the current (restored or not) copy; counts the call."""
        self.forward_calls += 1
        return self.layer.forward(*self.inputs)

    def forward(self) -> Any:
        """A restored forward evaluation."""
        self.restore()
        self.forward_calls += 1
        return self.layer.forward(*self.inputs)

    def loss(self, out: Any) -> float:
        if self.scalar:
            return self.douts[0] * float(out)
        if isinstance(out, tuple):
            return float(sum(np.vdot(d, o) for d, o in zip(self.douts, out, strict=True)))
        return float(np.vdot(self.douts[0], out))

    def evaluate(self) -> float:
        """L = sum(dout * out) at the current inputs/params/state, after a restore."""
        self.restore()
        self.forward_calls += 1
        return self.loss(self.layer.forward(*self.inputs))

    def _fast_evaluate(self) -> Callable[[], float]:
        """:meth:`evaluate` with its lookups done once: the finite differences call it twice
        per element, and for a small layer the call overhead is what the checker adds."""
        dicts = [(d.clear, d.update, saved) for d, saved in self._plan_dicts]
        rest = (
            self._restore_rest
            if (self._plan_lists or self._plan_arrays or self._plan_generators)
            else None
        )
        forward, inputs, loss = self.layer.forward, self.inputs, self.loss
        if not self.scalar and len(self.douts) == 1:
            dout, vdot = self.douts[0], np.vdot

            def loss(out: Any) -> float:
                return float(vdot(dout, out))

        def evaluate() -> float:
            for clear, update, saved in dicts:
                clear()
                update(saved)
            if rest is not None:
                rest()
            self.forward_calls += 1
            return loss(forward(*inputs))

        return evaluate

    def backward(self, *, scale: float = 1.0) -> list[Any]:
        """backward(scale * dout) on the copy, for each of ``self.douts``; returns one gradient
        (or None) per input.

        backward gets copies of the douts (kept in ``passed_douts``, so a backward that edits
        dout is seen and cannot spoil later calls) until ``share_douts`` is set (the analytic
        pass saw backward leave dout alone); then the douts themselves, scaled in place and
        back (exact for a power of 2 such as the 2 of the linearity check), which saves a copy
        of the outputs' size at the peak of a check. Their digest is compared before and after
        the call, and if anything changed them (or a returned gradient is a view of them) they
        are made anew."""
        __tracebackhide__ = True
        if not getattr(self, "_backward_arity_checked", False):
            self._check_backward_arity(len(self.douts))
            self._backward_arity_checked = True
        self.backward_calls += 1
        if self.scalar or not self.share_douts:
            self.passed_douts = [
                d * scale if isinstance(d, np.ndarray) else scale * d for d in self.douts
            ]  # (d * 1.0 is a copy, bit for bit)
            return self._input_grads(self.layer.backward(*self.passed_douts))
        self._renew_changed_douts()
        douts, grads = self.douts, None
        try:
            if scale != 1.0:
                for d in douts:
                    d *= scale
            grads = self._input_grads(self.layer.backward(*douts))
            return grads
        finally:
            if scale != 1.0 and not _views_of(grads, douts):
                for d in douts:
                    d /= scale
            self._renew_changed_douts()

    def _renew_changed_douts(self) -> None:
        """New ``self.douts``, as :meth:`_make_douts` made them, if something changed them in
        place (the changed arrays are left to whatever holds them, say a returned gradient):
        drawn again from the same generator state, or converted again from the caller's."""
        if _digest(tuple(self.douts)) == self.douts_digest:
            return
        given, state = self._dout_source
        if given is None:
            again = np.random.Generator(type(self.rng.bit_generator)())
            again.bit_generator.state = state
            given = [again.standard_normal(np.shape(d)) for d in self.douts]
        self.douts = [np.array(d, dtype=np.float64) for d in given]

    def _check_backward_arity(self, k: int) -> None:
        """backward takes one dout per output: say so before Python's own TypeError does."""
        __tracebackhide__ = True
        params = _parameters(self.layer.backward)
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
            f"{self.name}.forward returned {k} output{'s' if k > 1 else ''}, so backward is "
            f"called with one dout per output: backward({names}); {self.name}.backward takes "
            f"{len(positional)} ({takes}); give it one argument per output of forward"
        )

    def zero_grads(self) -> None:
        for g in self.layer.grads:
            g[...] = 0

    # -- preparation ---------------------------------------------------------------------------

    def prepare(self, dout: Any) -> None:
        """Set the initial state, probe forward (learn what to restore), make dout, and run the
        analytic forward + backward whose gradients are checked."""
        if self.stateful:
            self._set_initial_state()
        self.facts["grads_before"] = [id(g) for g in self.layer.grads]
        self.facts["grads_list"] = id(self.layer.grads)
        graph = _walk(self.layer)
        # every part's own grads list too (a composite's decoder.affine): ids only, no copies
        self.facts["part_grads"] = _part_grads(self.layer, graph.instances)
        dicts = [(obj.__dict__, dict(obj.__dict__)) for obj in graph.instances]
        dicts += [(d, dict(d)) for d in graph.dicts]
        lists = [(lst, list(lst)) for lst in graph.lists]
        generators = [(g, _generator_state(g)) for g in graph.generators]
        watched = [a for a in graph.arrays if id(a) in self.sources]
        input_ids = {id(x) for x in self.inputs}
        watched = [a for a in watched if id(a) not in input_ids]
        # every input, integer ids too, bit for bit (a digest: no second copy of the inputs)
        inputs_digest = [_digest(x) for x in self.inputs]
        out = self._checked_output(self.call_forward())
        outs0 = out if isinstance(out, tuple) else (out,)
        self.out_dtypes = [np.asarray(o).dtype for o in outs0]
        digest0 = _digest(out)
        # the restore plan: only what the probe changed (generators always)
        self._plan_dicts = [(d, s) for d, s in dicts if _changed(d, s)]
        self._plan_lists = [(lst, s) for lst, s in lists if _changed_list(lst, s)]
        self._plan_generators = generators
        mutated = [a for a in watched if not np.array_equal(a, self.sources[id(a)])]
        self.facts["mutated_inputs"] = [
            i for i, x in enumerate(self.inputs) if _digest(x) != inputs_digest[i]
        ]
        mutated += [self.inputs[i] for i in self.facts["mutated_inputs"]]
        self._plan_arrays = [(a, self.sources[id(a)]) for a in mutated]
        self.facts["mutated_by_forward"] = {id(a) for a in mutated}
        self.scalar = not isinstance(out, (tuple, np.ndarray)) or (
            isinstance(out, np.ndarray) and out.ndim == 0
        )
        self.douts = self._make_douts(dout, out)
        self.douts_digest = _digest(tuple(self.douts))  # (later backwards get them uncopied)
        out = outs0 = None  # (only its digest is kept)
        # the analytic pass; what the output tells is taken before backward, so that the output
        # is not held through it (L's rounding, divided by the step: the numeric noise floor)
        out = self.forward()
        outs = out if isinstance(out, tuple) else (out,)
        scale = sum(
            float(np.sum(np.abs(np.asarray(d) * np.asarray(o))))
            for d, o in zip(self.douts, outs, strict=False)
        )
        self.L0 = self.loss(out)
        self.noise = _NOISE_FACTOR * _EPS64 * (scale + abs(self.L0)) / self.settings["eps"]
        self.facts["deterministic"] = _digest(out) == digest0
        out = outs = None
        self.zero_grads()
        self.input_grads = self.backward()
        self.facts["grads_after"] = [id(g) for g in self.layer.grads]
        self.facts["grads_list_after"] = id(self.layer.grads)
        self.facts["part_grads_after"] = [_grads_ids(obj) for obj, _ in self.facts["part_grads"]]
        self.facts["dout_modified"] = [
            k
            for k, (d, passed) in enumerate(zip(self.douts, self.passed_douts, strict=True))
            if not np.array_equal(d, passed)
        ]
        self.passed_douts = None  # (not held through the numeric phase)
        # later backwards get the douts uncopied, unless backward edited them or rebound a grad
        # (a grads[k] = dout would make the douts and the grads one array from then on)
        rebound = self.facts["grads_after"] != self.facts["grads_before"] or any(
            after != ids
            for (_, ids), after in zip(
                self.facts["part_grads"], self.facts["part_grads_after"], strict=True
            )
        )
        self.share_douts = not self.facts["dout_modified"] and not rebound
        # backward must not touch the inputs or params either; put back what it changed
        self.facts["mutated_inputs_backward"] = []
        for i, x in enumerate(self.inputs):
            if i not in self.facts["mutated_inputs"] and _digest(x) != inputs_digest[i]:
                self.facts["mutated_inputs_backward"].append(i)
                np.copyto(x, self.user_inputs[i], casting="unsafe")
                if i not in self.float_inputs:  # never perturbed: put back before every forward
                    self._plan_arrays.append((x, self.user_inputs[i]))
        self.facts["mutated_params"] = []
        for k, p in enumerate(self.layer.params):
            source = self.sources.get(id(p))
            if source is not None and not np.array_equal(p, source):
                self.facts["mutated_params"].append(k)
                np.copyto(p, source, casting="unsafe")
        self.param_grads = list(self.layer.grads)
        self.state_grads = {
            "dh": getattr(self.layer, "dh", None),
            "dc": getattr(self.layer, "dc", None),
        }
        self.float32_inside = False
        self.evaluate = self._fast_evaluate()  # type: ignore[method-assign]
        if self.facts["deterministic"] and self.settings["mode"] != "fast":
            self._probe_precision()  # (fast mode probes after its projections, with their help)

    def _probe_precision(self, measured: dict[int, tuple[int, float]] | None = None) -> None:
        """Is the float64 copy really computing in float64? Along one random direction, the
        derivative at step eps and at step eps/100 agree to rounding in float64; a layer that
        rounds to float32 inside gives rounding noise at the small step, or a loss flat at
        both steps where the analytic ``<grad, v>`` is not.
        The direction moves the float inputs and initial state (or, with none, the first
        parameter, which feeds everything after it). 4 forwards; sets ``float32_inside``.
        ``measured`` (fast mode, after the projections) maps each tensor's id to the seed and
        central difference of its first projection: the direction is then made of those, its
        step-eps derivative is their sum (a derivative is linear in the direction), and only
        the step eps/100 costs forwards (2)."""
        targets = [
            t
            for t in self.targets()
            if t.array.size and id(t.array) not in self.facts["mutated_by_forward"]
        ]
        targets = [t for t in targets if not t.is_param] or [t for t in targets if t.is_param][:1]
        if not targets:
            return
        arrays = [t.array for t in targets]
        eps = self.settings["eps"]
        known = measured is not None and all(id(a) in measured for a in arrays)
        if known:
            seeds = [measured[id(a)][0] for a in arrays]
        else:
            seeds = self.rng.integers(2**63, size=len(arrays))
        v = list(directions(seeds, None, arrays))

        def along(step: float) -> float:
            d = directional_derivative(self.evaluate, arrays, [v], eps=step, f0=self.L0)
            return float(d.central[0])

        big = sum(measured[id(a)][1] for a in arrays) if known else along(eps)
        small = along(eps / 100)
        message = None
        if abs(small - big) > 1e-2 * abs(big) + 1e3 * self.noise:
            message = (
                "the float64 copy computes in float32 (or coarser) inside: along a random "
                f"direction the loss's derivative is {big:.6g} at step {eps:g} but {small:.6g} "
                f"at step {eps / 100:g}; look for float32 buffers or astype(np.float32)"
            )
        elif big == small == 0:
            analytic = _analytic_along(targets, v)
            if analytic is not None and abs(analytic) > 1e3 * self.noise + self.settings["atol"]:
                message = (
                    "the float64 copy computes in float32 (or coarser) inside: along a random "
                    f"direction the loss does not change at all at step {eps:g} nor "
                    f"{eps / 100:g}, though <analytic gradient, v> = {analytic:.6g}; look for "
                    "float32 buffers or astype(np.float32)"
                )
        if message is not None:
            self.float32_inside = True
            self.facts["precision"] = message
            self.notes.append(message)

    def _set_initial_state(self) -> None:
        layer = self.layer
        given = self.state_option
        if given is not None:
            h, c = (*given, None)[:2] if isinstance(given, tuple) else (given, None)
            for name, a in (("h", h), ("c", c)):
                if a is not None and not isinstance(a, np.ndarray):
                    raise TypeError(f"state {name} is {type(a).__name__}; pass numpy arrays")
            h = np.array(h, dtype=np.float64)
            c = None if c is None else np.array(c, dtype=np.float64)
        elif getattr(layer, "h", None) is not None:
            h = np.array(layer.h, dtype=np.float64)
            c = getattr(layer, "c", None)
            c = None if c is None else np.array(c, dtype=np.float64)
            for name, a in (("h", h), ("c", c)):
                if a is not None and not np.all(np.isfinite(a)):
                    raise ValueError(
                        f"{self.name}.{name} (the state the layer holds) contains NaN or Inf; "
                        "call reset_state() or set_state() with finite arrays, or pass state="
                    )
        else:
            # learn the state's shape from one forward from zeros, then draw a random state
            self.call_forward()
            if not isinstance(getattr(layer, "h", None), np.ndarray):
                self.notes.append("stateful=True, but forward keeps no state in .h: dh not checked")
                return
            h = self.rng.standard_normal(np.shape(layer.h)) * 0.5
            c = getattr(layer, "c", None)
            c = None if c is None else self.rng.standard_normal(np.shape(c)) * 0.5
        if c is None:
            layer.set_state(h)
        else:
            layer.set_state(h, c)
        self.h0, self.c0 = h, c
        for name, saved in (("h", h), ("c", c)):
            held = getattr(layer, name, None)
            if isinstance(held, np.ndarray) and held.dtype == np.float64:
                self.state_arrays["d" + name] = held
                self.sources[id(held)] = saved.copy() if saved is not None else held.copy()

    def _checked_output(self, out: Any) -> Any:
        __tracebackhide__ = True
        name = self.name
        if out is None:
            raise TypeError(
                f"{name}.forward returned None; return the output (did you forget `return out`?)"
            )
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        if isinstance(out, list):
            raise TypeError(f"{name}.forward returned a list; return a tuple of arrays")
        for k, o in enumerate(outs):
            if isinstance(o, (float, np.floating)) or (
                isinstance(o, np.ndarray) and o.dtype.kind == "f"
            ):
                if not np.all(np.isfinite(o)):
                    raise ValueError(
                        f"{name}.forward output[{k}] contains NaN or Inf; check the inputs and "
                        "parameters (scale, log of 0, division by 0)"
                    )
                continue
            what = o.dtype if isinstance(o, np.ndarray) else type(o).__name__
            raise TypeError(
                f"{name}.forward output[{k}] is {what}; outputs must be float arrays or a float"
            )
        if len(outs) > 1 and any(not isinstance(o, np.ndarray) for o in outs):
            raise TypeError(f"{name}.forward returned a tuple with a scalar; return arrays")
        return out

    def _make_douts(self, dout: Any, out: Any) -> list[Any]:
        __tracebackhide__ = True
        if self.scalar:
            if dout is None:
                return [1.0]
            if not isinstance(dout, (int, float, np.number)) or isinstance(dout, bool):
                raise TypeError(f"dout={dout!r}: {self.name} returns a scalar; pass dout=1.0")
            return [float(dout)]
        outs = out if isinstance(out, tuple) else (out,)
        if dout is None:
            self._dout_source = (None, self.rng.bit_generator.state)  # to draw them again
            return [self.rng.standard_normal(o.shape) for o in outs]
        given = tuple(dout) if isinstance(dout, (tuple, list)) else (dout,)
        self._dout_source = (given, None)
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

    def _input_grads(self, result: Any) -> list[Any]:
        __tracebackhide__ = True
        n = len(self.inputs)
        got = (
            []
            if result is None
            else list(result)
            if isinstance(result, (tuple, list))
            else [result]
        )
        labels = ", ".join(self.input_labels)
        if len(got) > n:
            raise ValueError(
                f"{self.name}.backward returned {len(got)} gradients for {n} inputs ({labels}); "
                "return one per input, in argument order"
            )
        got += [None] * (n - len(got))
        for i in self.float_inputs:
            if got[i] is None:
                raise ValueError(
                    f"{self.name}.backward returned no gradient for float {self.input_labels[i]} "
                    f"({len([g for g in got if g is not None])} gradients for {n} inputs); "
                    "return one per input in argument order (None only for integer inputs)"
                )
            if isinstance(got[i], (float, np.floating)):  # a 0-d gradient as a number
                got[i] = np.asarray(got[i])
            if not isinstance(got[i], np.ndarray):
                raise TypeError(
                    f"{self.name}.backward returned {type(got[i]).__name__} for "
                    f"{self.input_labels[i]}; return numpy arrays"
                )
        return got

    # -- gradients -----------------------------------------------------------------------------

    def targets(self) -> list[Target]:
        out = []
        for i in self.float_inputs:
            out.append(
                Target(
                    f"input[{i}]",
                    self.input_labels[i],
                    self.inputs[i],
                    lambda i=i: self.input_grads[i],
                )
            )
        for k, (p, name) in enumerate(zip(self.layer.params, self.param_names, strict=True)):
            out.append(Target(name, name, p, lambda k=k: self.param_grads[k], is_param=True))
        for name, held in self.state_arrays.items():
            out.append(Target(name, name, held, lambda name=name: self.state_grads[name]))
        return out

    def drop_analytic(self) -> None:
        """After the gradient entries only the dtype and shape of the analytic input and state
        gradients are read (by the contract checks): hold stand-ins of no size (a broadcast
        scalar of that dtype and shape) instead, not the arrays, through the contract calls."""
        self.input_grads = [_stand_in(g) for g in self.input_grads]
        self.state_grads = {name: _stand_in(g) for name, g in self.state_grads.items()}

    def shapes(self) -> dict[str, tuple[int, ...]]:
        labels = [lab.split(" ", 1)[-1] for lab in self.input_labels]
        return {labels[i]: tuple(x.shape) for i, x in enumerate(self.user_inputs)}


def directions(
    seeds: np.ndarray, shape: tuple[int, ...] | None, like: list[np.ndarray] | None = None
) -> Iterator[np.ndarray]:
    """Random float32 directions, uniform in [-1, 1) per element (float32: half the memory of
    the tensor they move; the step is still formed in float64), one alive at a time, each from its
    seed (so the same ones can be drawn again); of ``shape``, or of each array's shape in
    ``like``. Uniform rather than normal: as good a direction, and 3x cheaper to draw (drawing
    was a quarter of a fast check of a 20 µs layer)."""
    for k, seed in enumerate(seeds):
        size = shape if like is None else like[k].shape
        v = uniform_direction(int(seed), size)
        yield v
        v = None  # (so that drawing the next one does not keep two alive)


def _views_of(grads: list[Any] | None, douts: list[Any]) -> bool:
    """Whether a returned gradient may share memory with a dout (an identity backward)."""
    return grads is not None and any(
        isinstance(g, np.ndarray) and np.may_share_memory(g, d) for g in grads for d in douts
    )


def _stand_in(g: Any) -> Any:
    """An array of ``g``'s dtype and shape that holds no memory (``g`` itself if not an array)."""
    if not isinstance(g, np.ndarray):
        return g
    return np.broadcast_to(np.zeros((), dtype=g.dtype), g.shape)


def _analytic_along(targets: list[Target], v: list[np.ndarray]) -> float | None:
    """<analytic gradient, v> over the targets, or None when a gradient is missing or unusable
    (the gradient checks report that)."""
    total = 0.0
    for t, u in zip(targets, v, strict=True):
        g = t.analytic()
        if not isinstance(g, np.ndarray) or g.shape != u.shape or not np.all(np.isfinite(g)):
            return None
        total += dot(g.astype(np.float64, copy=False), u)
    return total


def _digest(out: Any) -> list[tuple[Any, ...]]:
    """What identifies an output bit for bit (shape, dtype, CRC-32 of its bytes), so that two
    outputs can be compared without keeping the first one around."""
    outs = out if isinstance(out, tuple) else (out,)
    return [
        (o.shape, o.dtype.str, zlib.crc32(np.ascontiguousarray(o).view(np.uint8)))
        if isinstance(o, np.ndarray)
        else (float(o).hex(),)
        for o in outs
    ]


def _grads_ids(obj: Any) -> tuple[int, list[int]] | None:
    """The id of ``obj.grads`` (a list) and of each of its arrays; None when it has none."""
    grads = vars(obj).get("grads")
    if not isinstance(grads, list):
        return None
    return id(grads), [id(g) for g in grads]


def _part_grads(root: Any, instances: list[Any]) -> list[tuple[Any, tuple[int, list[int]]]]:
    """Each part below ``root`` with a grads list of its own (not ``root``'s list, which the
    top-level facts cover), with :func:`_grads_ids`: what backward must leave bound."""
    seen = {id(getattr(root, "grads", None))}
    parts = []
    for obj in instances:
        ids = None if obj is root else _grads_ids(obj)
        if ids is not None and ids[0] not in seen:
            seen.add(ids[0])
            parts.append((obj, ids))
    return parts


def _changed(d: dict, saved: dict) -> bool:
    return d.keys() != saved.keys() or any(d[k] is not v for k, v in saved.items())


def _changed_list(lst: list, saved: list) -> bool:
    return len(lst) != len(saved) or any(a is not b for a, b in zip(lst, saved, strict=True))


def _generator_state(g: Any) -> Any:
    if isinstance(g, np.random.RandomState):
        return g.get_state()
    if isinstance(g, np.random.Generator):
        return g.bit_generator.state
    return g.state
