"""check_layer: a layer's backward pass against central differences, plus the layer contract.

Everything runs on a float64 deep copy of the layer (float32 arrays mapped to float64 copies in
the copy's memo, so parts and composites still share their arrays); the user's layer is only
read, so it is bit-for-bit unchanged after any check, even one that raises or is interrupted.

Before every forward evaluation the copy's state is put back: the attributes and lists that the
first ("probe") forward rebinds, the arrays it writes in place, and every numpy random generator
the layer owns. The probe tells which those are, so a restore costs a few dict updates, not a
copy of the layer. Finite differences then perturb inputs, parameters and the initial state in
place (gradcheck.numerical), so a full check costs 2 forward evaluations per element plus a
handful of calls for the contract checks (gradcheck.contract).
"""

from __future__ import annotations

import copy
import inspect
import types
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradcheck import contract
from gradcheck.numerical import Differences, directional_derivative, numerical_gradient
from gradcheck.report import Entry, Report, describe_pattern

__all__ = ["GradientMismatch", "assert_layer", "check_layer"]

MODES = ("auto", "full", "fast")
_EPS64 = float(np.finfo(np.float64).eps)
#: How many times the rounding of the loss, divided by the step, the numeric gradient may be off.
_NOISE_FACTOR = 32.0
#: At most this many suspected kinks per gradient are re-measured with a 10x smaller step.
_MAX_REFINED = 64
#: At most this many pieces per tensor when a projection is split to get around kinks.
_MAX_BISECTIONS = 48
#: Elements compared per chunk (keeps the comparison's temporaries small next to the tensor).
_CHUNK = 256


class GradientMismatch(AssertionError):
    """Raised by :func:`assert_layer`; ``.report`` holds the report, ``str()`` is its text."""

    def __init__(self, report: Report) -> None:
        super().__init__(str(report))
        self.report = report


def assert_layer(layer: Any, *inputs: Any, **options: Any) -> Report:
    """Like :func:`check_layer`, but raise :class:`GradientMismatch` unless the check passes.
    Returns the report when it does."""
    __tracebackhide__ = True
    report = check_layer(layer, *inputs, **options)
    if not report.passed:
        raise GradientMismatch(report)
    return report


def check_layer(
    layer: Any,
    *inputs: Any,
    dout: Any = None,
    seed: int | None = 0,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-8,
    mode: str = "auto",
    state: Any = None,
    max_elements: int = 1000,
    projections: int = 2,
    contract_checks: bool = True,
    context: str | None = None,
) -> Report:
    """Check ``layer.backward`` against central differences of ``L = sum(dout * forward(*inputs))``
    in float64, for every float input, every parameter and (stateful layers) the initial state;
    then check the layer contract. Never raises for a wrong gradient: read ``report.passed``.

    Options (keyword-only):
      dout: the output gradient (an array, or a tuple for several outputs); random normal by
        default, ``1.0`` for a scalar loss.
      seed: seeds dout, the random initial state and the sampled elements (None: a fresh seed,
        shown in the report).
      eps: finite-difference step; rtol, atol: an element passes when
        ``|analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|) + noise``, where
        noise is the rounding of the loss divided by the step.
      mode: "full" every element; "fast" ``projections`` random directions per tensor;
        "auto" full up to ``max_elements`` per tensor, beyond that ``max_elements`` sampled
        elements plus ``projections`` directions.
      state: initial state of a stateful recurrent layer, ``h`` or ``(h, c)``; default: the
        state the layer holds, or a random one when it holds none.
      contract_checks: False skips the contract checks (gradients only).
      context: shown on the report's ``reproduce:`` line (case id, dims, seed).
    """
    __tracebackhide__ = True
    settings = _validate_options(
        eps=eps,
        rtol=rtol,
        atol=atol,
        mode=mode,
        seed=seed,
        max_elements=max_elements,
        projections=projections,
        context=context,
    )
    settings["contract"] = bool(contract_checks)
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31))
    _validate_layer(layer)
    _validate_inputs(layer, inputs)
    try:
        h, entries = _run(layer, inputs, settings, seed, state, dout, share=True)
    except ValueError as exc:
        if "read-only" not in str(exc):
            raise
        # the layer writes into an array it held before the check: copy everything instead
        h, entries = _run(layer, inputs, settings, seed, state, dout, share=False)
    return Report(
        layer=type(layer).__name__,
        entries=entries,
        seed=seed,
        settings=settings,
        shapes=h.shapes(),
        forward_calls=h.forward_calls,
        backward_calls=h.backward_calls,
        context=context,
        notes=h.notes,
    )


def _run(
    layer: Any,
    inputs: tuple[np.ndarray, ...],
    settings: dict[str, Any],
    seed: int,
    state: Any,
    dout: Any,
    *,
    share: bool,
) -> tuple[_Harness, list[Entry]]:
    frozen: list[np.ndarray] = []
    try:
        rng = np.random.default_rng(seed)
        h = _Harness(layer, inputs, settings, rng, state, frozen=frozen if share else None)
        h.prepare(dout)
        entries = h.gradient_entries()
        h.facts["gradients_failed"] = not all(e.passed for e in entries)
        if settings["contract"]:
            entries += contract.run(h)
    finally:
        _unfreeze(frozen)
    return h, entries


# --- validation -----------------------------------------------------------------------------


def _validate_options(**o: Any) -> dict[str, Any]:
    for name, fix in (("eps", "1e-6"), ("rtol", "1e-5"), ("atol", "1e-8")):
        value = o[name]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
            raise TypeError(f"{name}={value!r} must be a number; try {name}={fix}")
        if not np.isfinite(value):
            raise ValueError(f"{name}={value} must be finite; try {name}={fix}")
    if not o["eps"] > 0:
        raise ValueError(f"eps={o['eps']} must be > 0; try eps=1e-6")
    if o["eps"] > 0.1:
        raise ValueError(f"eps={o['eps']} is too large for a derivative; try eps=1e-6")
    for name in ("rtol", "atol"):
        if o[name] < 0:
            raise ValueError(f"{name}={o[name]} must be >= 0; try {name}=1e-5")
    if o["rtol"] == 0 and o["atol"] == 0:
        raise ValueError("rtol=0 and atol=0 accept no rounding at all; try rtol=1e-5")
    if o["mode"] not in MODES:
        raise ValueError(f"mode={o['mode']!r} must be one of {MODES}; try mode='auto'")
    seed = o["seed"]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"seed={seed!r} must be an int or None; try seed=0")
    if seed is not None and seed < 0:
        raise ValueError(f"seed={seed} must be >= 0; try seed=0")
    for name, fix in (("max_elements", "1000"), ("projections", "2")):
        value = o[name]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name}={value!r} must be an int; try {name}={fix}")
        if value < 1:
            raise ValueError(f"{name}={value} must be >= 1; try {name}={fix}")
    if o["context"] is not None and not isinstance(o["context"], str):
        raise TypeError(f"context={o['context']!r} must be a str or None")
    return {
        "eps": float(o["eps"]),
        "rtol": float(o["rtol"]),
        "atol": float(o["atol"]),
        "mode": o["mode"],
        "max_elements": int(o["max_elements"]),
        "projections": int(o["projections"]),
    }


def _validate_layer(layer: Any) -> None:
    name = type(layer).__name__
    for method in ("forward", "backward"):
        if not callable(getattr(layer, method, None)):
            raise TypeError(
                f"{name} has no {method}() method; check_layer takes a layer with "
                "forward(*inputs), backward(dout), params and grads (CONTRACT.md)"
            )
    for attr in ("params", "grads"):
        value = getattr(layer, attr, None)
        if not isinstance(value, (list, tuple)):
            raise TypeError(
                f"{name}.{attr} is {type(value).__name__}, not a list; a layer without "
                f"parameters sets self.params = self.grads = [] in __init__"
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


def _validate_inputs(layer: Any, inputs: tuple[Any, ...]) -> None:
    name = type(layer).__name__
    if not inputs:
        raise TypeError(f"check_layer({name}) got no inputs; pass them as check_layer(layer, x)")
    for i, x in enumerate(inputs):
        if not isinstance(x, np.ndarray):
            raise TypeError(
                f"input[{i}] is {type(x).__name__}, not a numpy array; pass np.asarray(...)"
            )
        if x.dtype.kind not in "fiub":
            raise TypeError(f"input[{i}] has dtype {x.dtype}; inputs are float or int arrays")
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            where = [int(k) for k in np.argwhere(~np.isfinite(x))[0]]
            raise ValueError(
                f"input[{i}] contains NaN or Inf (first at {where}); check with finite inputs"
            )


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
    still share them. With ``share``, every other array (caches of an earlier forward, masks,
    constants) is not copied but shared with the user's layer and made read-only for the
    check: a forward overwrites such attributes rather than reading them, and one that writes
    into them raises, and the check starts again without sharing.

    Sharing is on when a ``frozen`` list is given: the user's arrays made read-only are
    appended to it as they are frozen, and the caller unfreezes them (in a ``finally``).
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


def _unfreeze(frozen: list[np.ndarray]) -> None:
    for a in frozen:
        a.flags.writeable = True


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


def _input_labels(layer: Any, n: int) -> list[str]:
    try:
        params = list(inspect.signature(layer.forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [f"input[{i}] {names[i]}" if i < len(names) else f"input[{i}]" for i in range(n)]


@dataclass
class _Target:
    """One quantity whose gradient is checked: the float64 array perturbed in place."""

    name: str
    label: str
    array: np.ndarray
    analytic: Callable[[], Any]  # -> array, or None when the layer gives none
    is_param: bool = False


class _Harness:
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

    def backward(self, douts: list[Any]) -> list[Any]:
        """backward(*douts) on the copy, given copies of douts (kept in ``passed_douts``, so
        a backward that edits dout is seen and cannot spoil later calls); returns one
        gradient (or None) per input."""
        __tracebackhide__ = True
        self.backward_calls += 1
        self.passed_douts = [
            np.array(d, copy=True) if isinstance(d, np.ndarray) else d for d in douts
        ]
        result = self.layer.backward(*self.passed_douts)
        return self._input_grads(result)

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
        dicts = [(obj.__dict__, dict(obj.__dict__)) for obj in graph.instances]
        dicts += [(d, dict(d)) for d in graph.dicts]
        lists = [(lst, list(lst)) for lst in graph.lists]
        generators = [(g, _generator_state(g)) for g in graph.generators]
        watched = [a for a in graph.arrays if id(a) in self.sources]
        watched += self.inputs
        out = self._checked_output(self.call_forward())
        outs0 = out if isinstance(out, tuple) else (out,)
        self.out_dtypes = [np.asarray(o).dtype for o in outs0]
        digest0 = _digest(out)
        # the restore plan: only what the probe changed (generators always)
        self._plan_dicts = [(d, s) for d, s in dicts if _changed(d, s)]
        self._plan_lists = [(lst, s) for lst, s in lists if _changed_list(lst, s)]
        self._plan_generators = generators
        mutated = [a for a in watched if not np.array_equal(a, self.sources[id(a)])]
        self._plan_arrays = [(a, self.sources[id(a)]) for a in mutated]
        self.facts["mutated_by_forward"] = {id(a) for a in mutated}
        self.facts["mutated_inputs"] = [
            i for i, x in enumerate(self.inputs) if id(x) in self.facts["mutated_by_forward"]
        ]
        self.scalar = not isinstance(out, (tuple, np.ndarray)) or (
            isinstance(out, np.ndarray) and out.ndim == 0
        )
        self.douts = self._make_douts(dout, out)
        out = outs0 = None  # (only its digest is kept)
        # the analytic pass
        out = self.forward()
        self.zero_grads()
        self.input_grads = self.backward(self.douts)
        self.facts["grads_after"] = [id(g) for g in self.layer.grads]
        self.facts["grads_list_after"] = id(self.layer.grads)
        self.facts["dout_modified"] = [
            k
            for k, (d, passed) in enumerate(zip(self.douts, self.passed_douts, strict=True))
            if not np.array_equal(d, passed)
        ]
        # backward must not touch the inputs or params either; put back what it changed
        self.facts["mutated_inputs_backward"] = []
        for i in self.float_inputs:
            if i not in self.facts["mutated_inputs"] and not np.array_equal(
                self.inputs[i], self.user_inputs[i]
            ):
                self.facts["mutated_inputs_backward"].append(i)
                np.copyto(self.inputs[i], self.user_inputs[i], casting="unsafe")
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
        # L's rounding, divided by the step: the numeric gradient's noise floor
        outs = out if isinstance(out, tuple) else (out,)
        scale = sum(
            float(np.sum(np.abs(np.asarray(d) * np.asarray(o))))
            for d, o in zip(self.douts, outs, strict=False)
        )
        self.L0 = self.loss(out)
        self.noise = _NOISE_FACTOR * _EPS64 * (scale + abs(self.L0)) / self.settings["eps"]
        self.float32_inside = False
        self.evaluate = self._fast_evaluate()  # type: ignore[method-assign]
        self.facts["deterministic"] = _digest(out) == digest0
        out = outs = None  # (don't hold outputs through the numeric phase)
        if self.facts["deterministic"]:
            self._probe_precision()

    def _probe_precision(self) -> None:
        """Is the float64 copy really computing in float64? Along one random direction, the
        derivative at step eps and at step eps/100 agree to rounding in float64; a layer that
        rounds to float32 inside gives rounding noise (or a flat zero) at the small step.
        The direction moves the float inputs and initial state (or, with none, the first
        parameter, which feeds everything after it). 4 forwards; sets ``float32_inside``."""
        targets = [
            t
            for t in self.targets()
            if t.array.size and id(t.array) not in self.facts["mutated_by_forward"]
        ]
        arrays = [t.array for t in targets if not t.is_param] or [
            t.array for t in targets if t.is_param
        ][:1]
        if not arrays:
            return
        saved = [a.copy() for a in arrays]
        seeds = self.rng.integers(2**63, size=len(arrays))

        def loss_at(step: float) -> float:
            for a, a0, v in zip(arrays, saved, _directions(seeds, None, arrays), strict=True):
                np.add(a0, step * v, out=a)
            return self.evaluate()

        eps = self.settings["eps"]
        try:
            big = (loss_at(eps) - loss_at(-eps)) / (2 * eps)
            small = (loss_at(eps / 100) - loss_at(-eps / 100)) / (2 * eps / 100)
        finally:
            for a, a0 in zip(arrays, saved, strict=True):
                np.copyto(a, a0)
        if abs(small - big) > 1e-2 * abs(big) + 1e3 * self.noise:
            self.float32_inside = True
            message = (
                "the float64 copy computes in float32 (or coarser) inside: along a random "
                f"direction the loss's derivative is {big:.6g} at step {eps:g} but {small:.6g} "
                f"at step {eps / 100:g}; look for float32 buffers or astype(np.float32)"
            )
            self.facts["precision"] = message
            self.notes.append(message)

    def _set_initial_state(self) -> None:
        layer = self.layer
        given = self.state_option
        if given is not None:
            h, c = given if isinstance(given, tuple) else (given, None)
            for name, a in (("h", h), ("c", c)):
                if a is not None and not isinstance(a, np.ndarray):
                    raise TypeError(f"state {name} is {type(a).__name__}; pass numpy arrays")
            h = np.array(h, dtype=np.float64)
            c = None if c is None else np.array(c, dtype=np.float64)
        elif getattr(layer, "h", None) is not None:
            h = np.array(layer.h, dtype=np.float64)
            c = getattr(layer, "c", None)
            c = None if c is None else np.array(c, dtype=np.float64)
        else:
            # learn the state's shape from one forward from zeros, then draw a random state
            self.call_forward()
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
            return [self.rng.standard_normal(o.shape) for o in outs]
        given = dout if isinstance(dout, tuple) else (dout,)
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
            if not isinstance(got[i], np.ndarray):
                raise TypeError(
                    f"{self.name}.backward returned {type(got[i]).__name__} for "
                    f"{self.input_labels[i]}; return numpy arrays"
                )
        return got

    # -- gradients -----------------------------------------------------------------------------

    def targets(self) -> list[_Target]:
        out = []
        for i in self.float_inputs:
            out.append(
                _Target(
                    f"input[{i}]",
                    self.input_labels[i],
                    self.inputs[i],
                    lambda i=i: self.input_grads[i],
                )
            )
        for k, (p, name) in enumerate(zip(self.layer.params, self.param_names, strict=True)):
            out.append(_Target(name, name, p, lambda k=k: self.param_grads[k], is_param=True))
        for name, held in self.state_arrays.items():
            out.append(_Target(name, name, held, lambda name=name: self.state_grads[name]))
        return out

    def gradient_entries(self) -> list[Entry]:
        return [self._check_target(t) for t in self.targets()]

    def _check_target(self, t: _Target) -> Entry:
        s = self.settings
        shape = tuple(t.array.shape)
        analytic = t.analytic()
        entry = Entry(t.name, "gradient", "ok", shape=shape, label=t.label)
        if id(t.array) in self.facts["mutated_by_forward"]:
            entry.status = "skipped"
            entry.message = "forward writes into it in place, so it cannot be perturbed"
            return entry
        if t.array.size == 0:
            entry.status = "skipped"
            entry.message = "empty"
            return entry
        missing = analytic is None
        if missing:  # e.g. an LSTM that keeps dh but no dc: compare against zeros
            analytic = np.zeros(shape)
        analytic = np.asarray(analytic)
        if analytic.shape != shape:
            entry.status = "fail"
            entry.message = f"gradient has shape {analytic.shape}, expected {shape} exactly"
            return entry
        analytic = analytic.astype(np.float64, copy=False)
        n = t.array.size
        full = s["mode"] == "full" or (s["mode"] == "auto" and n <= s["max_elements"])
        compared = []
        if full:
            compared.append(self._compare_elements(t, analytic, None))
        else:
            if s["mode"] == "auto":
                idx = np.sort(self.rng.choice(n, size=s["max_elements"], replace=False))
                compared.append(self._compare_elements(t, analytic, idx))
            # one direction alive at a time, regenerated from its seed for <analytic, v>
            seeds = self.rng.integers(2**63, size=s["projections"])
            d = directional_derivative(
                self.evaluate, t.array, _directions(seeds, shape), eps=s["eps"], f0=self.L0
            )
            a = np.array([np.vdot(analytic, v) for v in _directions(seeds, shape)])
            compared.append(self._compare_directions(t, analytic, a, d, seeds))
        entry = _merge(entry, compared)
        if missing:
            note = f"the layer keeps no {t.name} after backward (compared as zeros)"
            if entry.status != "ok":
                note += f"; set self.{t.name} in backward"
            entry.message = f"{note}; {entry.message}" if entry.message else note
        return entry

    def _tolerance(self, a: np.ndarray, n: np.ndarray) -> np.ndarray:
        s = self.settings
        return s["atol"] + self.noise + s["rtol"] * np.maximum(np.abs(a), np.abs(n))

    def _rel(self, a: np.ndarray, n: np.ndarray) -> np.ndarray:
        s = self.settings
        floor = (s["atol"] + self.noise) / s["rtol"] if s["rtol"] > 0 else 1e-300
        return np.abs(a - n) / np.maximum(np.maximum(np.abs(a), np.abs(n)), floor)

    def _compare_elements(
        self, t: _Target, analytic: np.ndarray, indices: np.ndarray | None
    ) -> Entry:
        """Central differences at every element (``indices=None``) or at the flat ``indices``,
        compared with ``analytic`` in chunks of _CHUNK elements, so that the comparison's
        temporaries stay small next to the tensor; only the numeric values are kept whole
        (for the pattern)."""
        shape = tuple(t.array.shape)
        flat_analytic = analytic.reshape(-1)
        count = t.array.size if indices is None else len(indices)
        numeric = np.empty(count, dtype=np.float32)  # only for the pattern: 1e-3 is plenty
        worst_numeric = {}  # position -> the exact float64 value, for the worst elements
        wrong = np.zeros(count, dtype=bool)
        kink = np.zeros(count, dtype=bool)
        worst_wrong = (-1.0, 0)  # (abs error, position)
        worst_ok = (-1.0, 0)  # (rel error, position)
        max_abs = max_rel = 0.0
        votes = [0, 0]  # suspected kinks re-measured: [confirmed, measured]
        for lo in range(0, count, _CHUNK):
            hi = min(lo + _CHUNK, count)
            idx = np.arange(lo, hi) if indices is None else indices[lo:hi]
            d = numerical_gradient(
                self.evaluate, t.array, eps=self.settings["eps"], indices=idx, f0=self.L0
            )
            a, n = flat_analytic[idx], d.central
            numeric[lo:hi] = n
            tol = self._tolerance(a, n)
            err = np.abs(a - n)
            bad = err > tol
            suspect = bad & _within(a, d.left, d.right, tol) & (np.abs(d.left - d.right) > tol)
            if suspect.any():
                suspect = self._refine_kinks(t, a, idx, suspect, d.left, d.right, tol, votes)
            kink[lo:hi] = suspect
            wrong[lo:hi] = bad & ~suspect
            valid = ~suspect
            if valid.any():
                rel = self._rel(a, n)
                max_abs = max(max_abs, float(err[valid].max()))
                max_rel = max(max_rel, float(rel[valid].max()))
                k = int(np.argmax(np.where(valid, rel, -1.0)))
                if rel[k] > worst_ok[0]:
                    worst_ok = (float(rel[k]), lo + k)
                    worst_numeric[lo + k] = float(n[k])
            if wrong[lo:hi].any():
                k = int(np.argmax(np.where(wrong[lo:hi], err, -1.0)))
                if err[k] > worst_wrong[0]:
                    worst_wrong = (float(err[k]), lo + k)
                    worst_numeric[lo + k] = float(n[k])
        entry = Entry(t.name, "gradient", "ok", shape=shape, label=t.label)
        entry.checked, entry.wrong, entry.kinks = count, int(wrong.sum()), int(kink.sum())
        entry.max_abs_error, entry.max_rel_error = max_abs, max_rel
        if entry.wrong:
            entry.status = "mismatch"
            k = worst_wrong[1]
        else:
            entry.status = "kink" if entry.kinks else "ok"
            k = worst_ok[1]
        flat_k = k if indices is None else int(indices[k])
        entry.index = tuple(int(i) for i in np.unravel_index(flat_k, shape))
        entry.analytic = float(flat_analytic[flat_k])
        entry.numeric = worst_numeric.get(k, float(numeric[k]))
        if indices is not None:
            entry.message = f"{count} sampled elements of {t.array.size}"
        if entry.kinks:
            note = f"{entry.kinks} element(s) at a non-differentiable point, not compared"
            entry.message = f"{entry.message}; {note}" if entry.message else note
        if entry.status == "mismatch":
            if indices is None:
                mask = wrong.reshape(shape)
                numeric64 = numeric.reshape(shape).astype(np.float64)
                entry.pattern = describe_pattern(analytic, numeric64, mask)
            elif not np.any(flat_analytic[indices[wrong]]):
                entry.pattern = "zero where it should not be (analytic 0 at every wrong element)"
        return entry

    def _refine_kinks(
        self,
        t: _Target,
        a: np.ndarray,
        indices: np.ndarray,
        kink: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        tol: np.ndarray,
        votes: list[int],
    ) -> np.ndarray:
        """Re-measure suspected kinks with a 10x smaller step. At a kink the jump between the
        one-sided slopes stays the same (or the kink leaves the step and the gradient matches);
        on a smooth curve the jump shrinks 10x with the step, and where the loss is rounding
        noise (a layer computing in float32) it grows 10x: both are wrong gradients, not kinks.
        Suspects beyond the first _MAX_REFINED (per tensor, counted in ``votes``) get the
        majority verdict of those measured."""
        if self.float32_inside:
            return np.zeros_like(kink)
        where = np.flatnonzero(kink)
        order = where[np.argsort(-np.abs(left - right)[where])]
        room = max(_MAX_REFINED - votes[1], 0)
        suspects, rest = order[:room], order[room:]
        out = np.zeros_like(kink)
        if len(suspects):
            eps = self.settings["eps"] / 10
            d = numerical_gradient(self.evaluate, t.array, eps=eps, indices=indices[suspects])
            for j, k in enumerate(suspects):
                n_small = d.central[j]
                tol_small = (
                    self.settings["atol"]
                    + 10 * self.noise
                    + self.settings["rtol"] * max(abs(a[k]), abs(n_small))
                )
                resolved = abs(a[k] - n_small) <= tol_small
                ratio = abs(d.left[j] - d.right[j]) / abs(left[k] - right[k])
                out[k] = bool(resolved or 0.3 <= ratio <= 3)
            votes[0] += int(out[suspects].sum())
            votes[1] += len(suspects)
        if len(rest):
            out[rest] = votes[1] == 0 or votes[0] / votes[1] > 0.5
        return out

    def _compare_directions(
        self, t: _Target, analytic: np.ndarray, a: np.ndarray, d: Differences, seeds: np.ndarray
    ) -> Entry:
        n = d.central
        tol = self._tolerance(a, n)
        err = np.abs(a - n)
        bad = err > tol
        jump = np.abs(d.left - d.right)
        kinky = bad & (jump > tol)
        wrong = bad & ~kinky
        rel = self._rel(a, n)
        entry = Entry(t.name, "gradient", "ok", shape=tuple(t.array.shape), label=t.label)
        entry.message = f"projections: {len(n)} random directions <grad, v>"
        k = int(np.argmax(np.where(kinky, -1, err)))
        entry.analytic, entry.numeric = float(a[k]), float(n[k])
        entry.max_abs_error = float(np.max(err[~kinky], initial=0.0))
        entry.max_rel_error = float(np.max(rel[~kinky], initial=0.0))
        kinks = 0
        budget = [_MAX_BISECTIONS]
        for j in np.flatnonzero(kinky):
            # a kink on the way: split the direction until the pieces are smooth or one element
            v = next(_directions(seeds[j : j + 1], analytic.shape)).reshape(-1)
            found = self._bisect(t, analytic.reshape(-1), v, 0, v.size, budget)
            for status, lo, hi, a_sub, n_sub in found:
                if status == "kink":
                    kinks += 1
                    continue
                wrong[j] = True
                e = abs(a_sub - n_sub)
                rel_sub = float(self._rel(np.array(a_sub), np.array(n_sub)))
                entry.max_rel_error = max(entry.max_rel_error, rel_sub)
                if e >= entry.max_abs_error or entry.index is None:
                    entry.max_abs_error = e
                    entry.analytic, entry.numeric = a_sub, n_sub
                    if hi - lo == 1:
                        entry.index = tuple(int(i) for i in np.unravel_index(lo, analytic.shape))
        entry.checked, entry.wrong, entry.kinks = len(n), int(wrong.sum()), kinks
        if wrong.any():
            entry.status = "mismatch"
        elif kinks:
            entry.status = "kink"
            entry.message += f"; {kinks} element(s) at a non-differentiable point, not compared"
        return entry

    def _bisect(
        self, t: _Target, analytic: np.ndarray, v: np.ndarray, lo: int, hi: int, budget: list[int]
    ) -> list[tuple[str, int, int, float, float]]:
        """Check direction ``v`` restricted to flat elements [lo, hi), halving every piece that
        disagrees until the piece is one element: there a kink is unambiguous (its one-sided
        slopes differ and the analytic value lies between them), where on a whole projection
        several kinks can cancel. Stops at the first wrong element. Returns
        ``(status, lo, hi, analytic, numeric)`` for each kink or mismatch found; pieces left
        when the budget runs out count as kinks (unresolved)."""
        out: list[tuple[str, int, int, float, float]] = []
        mid = (lo + hi) // 2
        pending = [(lo, mid), (mid, hi)] if hi - lo > 1 else [(lo, hi)]
        while pending:
            lo, hi = pending.pop()
            if budget[0] <= 0:
                out.append(("kink", lo, hi, 0.0, 0.0))
                continue
            budget[0] -= 1
            sub = np.zeros(v.size)
            sub[lo:hi] = v[lo:hi]
            a = float(np.dot(analytic[lo:hi], v[lo:hi]))
            d = directional_derivative(
                self.evaluate,
                t.array,
                [sub.reshape(t.array.shape)],
                eps=self.settings["eps"],
                f0=self.L0,
            )
            n = float(d.central[0])
            tol = float(self._tolerance(np.array(a), np.array(n)))
            if abs(a - n) <= tol:
                continue
            if hi - lo > 1:
                mid = (lo + hi) // 2
                pending += [(lo, mid), (mid, hi)]
            elif abs(float(d.left[0] - d.right[0])) > tol and _within(
                np.array(a), d.left, d.right, np.array(tol)
            ):
                out.append(("kink", lo, hi, a, n))
            else:
                out.append(("mismatch", lo, hi, a, n))
                return out
        return out

    def shapes(self) -> dict[str, tuple[int, ...]]:
        labels = [lab.split(" ", 1)[-1] for lab in self.input_labels]
        return {labels[i]: tuple(x.shape) for i, x in enumerate(self.user_inputs)}


def _directions(
    seeds: np.ndarray, shape: tuple[int, ...] | None, like: list[np.ndarray] | None = None
) -> Iterator[np.ndarray]:
    """Random normal directions, one alive at a time, each from its seed (so the same ones
    can be drawn again); of ``shape``, or of each array's shape in ``like``."""
    for k, seed in enumerate(seeds):
        size = shape if like is None else like[k].shape
        yield np.random.default_rng(int(seed)).standard_normal(size)


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


def _merge(entry: Entry, parts: list[Entry]) -> Entry:
    """One entry from the element check and the projection check of one tensor."""
    worst = max(parts, key=lambda e: (e.status == "mismatch", e.max_rel_error))
    entry.status = (
        "mismatch"
        if any(e.status == "mismatch" for e in parts)
        else "kink"
        if any(e.status == "kink" for e in parts)
        else "ok"
    )
    for key in ("index", "analytic", "numeric", "pattern"):
        setattr(entry, key, getattr(worst, key))
    entry.max_abs_error = max(e.max_abs_error for e in parts)
    entry.max_rel_error = max(e.max_rel_error for e in parts)
    entry.checked = worst.checked
    entry.wrong = worst.wrong
    entry.kinks = sum(e.kinks for e in parts)
    entry.message = "; ".join(e.message for e in parts if e.message)
    if worst.message.startswith("projections") and entry.message != worst.message:
        entry.message = (
            worst.message
            + "; "
            + "; ".join(e.message for e in parts if e is not worst and e.message)
        )
    return entry


def _within(a: np.ndarray, left: np.ndarray, right: np.ndarray, tol: np.ndarray) -> np.ndarray:
    lo, hi = np.minimum(left, right), np.maximum(left, right)
    return (a >= lo - tol) & (a <= hi + tol)


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
