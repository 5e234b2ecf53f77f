"""check_layer: a layer's backward pass against central differences, plus the layer contract.

Everything runs on a float64 copy of the layer (gradcheck.harness), so the user's layer is
bit-for-bit unchanged after any check. Finite differences (gradcheck.numerical) perturb inputs,
parameters and the initial state in place, and are compared here with the analytic gradients,
element by element (full, or sampled) or along random directions; suspected kinks are
re-measured, and patterns named (gradcheck.report). A full check costs 2 forward evaluations
per element plus a handful of calls for the contract checks (gradcheck.contract).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from gradcheck import contract
from gradcheck.harness import Harness, Target, directions, unfreeze
from gradcheck.numerical import Differences, directional_derivative, dot, numerical_gradient
from gradcheck.options import Settings
from gradcheck.report import Entry, Report, describe_pattern

__all__ = ["GradientMismatch", "assert_layer", "check", "check_layer"]

MODES = ("auto", "full", "fast")
#: At most this many suspected kinks per gradient are re-measured with a 10x smaller step.
_MAX_REFINED = 64
#: At most this many pieces per tensor when a projection is split to get around kinks.
_MAX_BISECTIONS = 48
#: Elements compared per chunk (keeps the comparison's temporaries small next to the tensor).
_CHUNK = 64


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


def check(subject: Any, *inputs: Any, **options: Any) -> Report:
    """Check any subject a case builder may return (a layer, or one made by
    :func:`gradcheck.function`, :func:`gradcheck.pair`, :func:`gradcheck.loss`,
    :func:`gradcheck.layer`) at ``inputs``."""
    __tracebackhide__ = True
    return check_layer(subject, *inputs, **options)


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
    contract: bool = True,
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
      contract: False skips the contract checks (gradients only).
      context: shown on the report's ``reproduce:`` line (case id, dims, seed).
    """
    __tracebackhide__ = True
    cfg = Settings(
        eps=eps,
        rtol=rtol,
        atol=atol,
        mode=mode,
        seed=seed,
        max_elements=max_elements,
        projections=projections,
        contract=contract,
        context=context,
    )
    settings = {
        k: getattr(cfg, k) for k in ("eps", "rtol", "atol", "mode", "max_elements", "projections")
    }
    settings["contract"] = cfg.contract
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31))
    _validate_layer(layer)
    _validate_inputs(layer, inputs)
    if state is not None and not (
        getattr(layer, "stateful", None) is True and callable(getattr(layer, "set_state", None))
    ):
        raise ValueError(
            f"state=... was given, but {type(layer).__name__} is not a stateful layer "
            "(stateful=True with set_state); leave state=None"
        )
    _validate_state(state)
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
) -> tuple[_Checker, list[Entry]]:
    frozen: list[np.ndarray] = []
    try:
        rng = np.random.default_rng(seed)
        h = _Checker(layer, inputs, settings, rng, state, frozen=frozen if share else None)
        h.prepare(dout)
        entries = h.gradient_entries()
        h.drop_analytic()
        h.facts["gradients_failed"] = not all(e.passed for e in entries)
        if settings["contract"]:
            entries += _unjudged_when_nonfinite(contract.run(h), h)
    finally:
        unfreeze(frozen)
    return h, entries


# --- validation -----------------------------------------------------------------------------


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


def _validate_state(state: Any) -> None:
    if state is None:
        return
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


class _Checker(Harness):
    """The harness plus the comparison of its analytic and numeric gradients."""

    def gradient_entries(self) -> list[Entry]:
        entries = [self._check_target(t) for t in self.targets()]
        if self.settings["mode"] == "fast" and self.facts["deterministic"]:
            self._probe_precision(self.first_projections)
        return entries

    def _check_target(self, t: Target) -> Entry:
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
        if np.may_share_memory(analytic, t.array):  # a gradient that is the array perturbed
            analytic = analytic.copy()
        n = t.array.size
        full = s["mode"] == "full" or (s["mode"] == "auto" and n <= s["max_elements"])
        compared = []
        if full:
            compared.append(self._compare_elements(t, analytic, None))
        else:
            if s["mode"] == "auto":
                idx = np.sort(self.rng.choice(n, size=s["max_elements"], replace=False))
                compared.append(self._compare_elements(t, analytic, idx))
            # one direction alive at a time (<analytic, v> taken while it is), each from its
            # seed, so a direction to split is drawn again rather than kept
            seeds = self.rng.integers(2**63, size=s["projections"])
            along: list[float] = []
            d = directional_derivative(
                self.evaluate,
                t.array,
                _projected(directions(seeds, shape), analytic, along),
                eps=s["eps"],
                f0=self.L0,
            )
            self.first_projections[id(t.array)] = (int(seeds[0]), float(d.central[0]))
            compared.append(self._compare_directions(t, analytic, np.array(along), d, seeds))
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

    def _all_agree(self, a: np.ndarray, n: np.ndarray) -> tuple[list[float], list[float]] | None:
        """The absolute and relative errors of each direction when every numeric value is
        finite and within :meth:`_tolerance` of its analytic one (which is finite), else None.
        :meth:`_tolerance` and :meth:`_rel` in plain floats, operation for operation: for the
        two or so directions per tensor a dozen tiny numpy calls cost more than the rest."""
        s = self.settings
        base, rtol = s["atol"] + self.noise, s["rtol"]
        floor = base / rtol if rtol > 0 else 1e-300
        errors, relative = [], []
        for x, y in zip(a.tolist(), n.tolist(), strict=True):
            error, big = abs(x - y), max(abs(x), abs(y))
            if not math.isfinite(y) or error > base + rtol * big:
                return None
            errors.append(error)
            relative.append(error / max(big, floor))
        return (errors, relative) if errors else None

    def _compare_elements(
        self, t: Target, analytic: np.ndarray, indices: np.ndarray | None
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
        undefined = np.zeros(count, dtype=bool)  # forward NaN/Inf at x +- eps: no numeric value
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
            finite_a = np.isfinite(a)
            finite = finite_a & np.isfinite(n)
            tol = self._tolerance(a, n)
            err = np.where(finite, np.abs(a - n), np.inf)  # NaN compares False: make it inf
            bad = ~finite | (err > tol)
            suspect = (
                bad & finite & _within(a, d.left, d.right, tol) & (np.abs(d.left - d.right) > tol)
            )
            if suspect.any():
                suspect = self._refine_kinks(t, a, idx, suspect, d.left, d.right, tol, votes)
            kink[lo:hi] = suspect
            undefined[lo:hi] = finite_a & ~finite  # analytic fine, numeric NaN/Inf
            wrong[lo:hi] = bad & ~suspect & ~undefined[lo:hi]
            valid = ~suspect & finite
            if valid.any():
                rel = self._rel(a, n)
                max_abs = max(max_abs, float(err[valid].max()))
                max_rel = max(max_rel, float(rel[valid].max()))
                k = int(np.where(valid, rel, -1.0).argmax())
                if rel[k] > worst_ok[0]:
                    worst_ok = (float(rel[k]), lo + k)
                    worst_numeric[lo + k] = float(n[k])
            if wrong[lo:hi].any():
                k = int(np.where(wrong[lo:hi], err, -1.0).argmax())
                if err[k] > worst_wrong[0]:
                    worst_wrong = (float(err[k]), lo + k)
                    worst_numeric[lo + k] = float(n[k])
        entry = Entry(t.name, "gradient", "ok", shape=shape, label=t.label)
        entry.checked, entry.wrong, entry.kinks = count, int(wrong.sum()), int(kink.sum())
        entry.max_abs_error, entry.max_rel_error = max_abs, max_rel
        if entry.wrong:
            entry.status = "mismatch"
            k = worst_wrong[1]
        elif undefined.any():
            entry.status = "fail"
            k = int(np.argmax(undefined))
        else:
            entry.status = "kink" if entry.kinks else "ok"
            k = worst_ok[1]
        flat_k = k if indices is None else int(indices[k])
        entry.index = tuple(int(i) for i in np.unravel_index(flat_k, shape))
        entry.analytic = float(flat_analytic[flat_k])
        entry.numeric = worst_numeric.get(k, float(numeric[k]))
        notes = []
        if not np.isfinite(entry.analytic):
            entry.max_abs_error = entry.max_rel_error = np.inf
            count_bad = int(np.count_nonzero(~np.isfinite(flat_analytic)))
            notes.append(
                f"analytic gradient is {_nonfinite(entry.analytic)} at {list(entry.index)}"
                + (f" ({count_bad} non-finite elements)" if count_bad > 1 else "")
            )
            self.facts.setdefault("nonfinite_gradients", []).append(t.name)
        if undefined.any():
            first = int(np.argmax(undefined))
            first = first if indices is None else int(indices[first])
            where = tuple(int(i) for i in np.unravel_index(first, shape))
            text = _undefined_message(t, where, self.settings["eps"])
            if int(undefined.sum()) > 1:
                text += f" ({int(undefined.sum())} elements like this)"
            notes.append(text)
        if indices is not None:
            notes.insert(0, f"{count} sampled elements of {t.array.size}")
        entry.message = "; ".join(notes)
        if entry.kinks:
            note = f"{entry.kinks} element(s) at a non-differentiable point, not compared"
            entry.message = f"{entry.message}; {note}" if entry.message else note
        if entry.status == "mismatch" and np.isfinite(entry.analytic) and not undefined.any():
            if indices is None:
                mask = wrong.reshape(shape)
                numeric64 = numeric.reshape(shape).astype(np.float64)
                entry.pattern = describe_pattern(analytic, numeric64, mask)
            elif not np.any(flat_analytic[indices[wrong]]):
                entry.pattern = "zero where it should not be (analytic 0 at every wrong element)"
        return entry

    def _refine_kinks(
        self,
        t: Target,
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
        self, t: Target, analytic: np.ndarray, a: np.ndarray, d: Differences, seeds: np.ndarray
    ) -> Entry:
        n = d.central
        entry = Entry(t.name, "gradient", "ok", shape=tuple(t.array.shape), label=t.label)
        entry.message = f"projections: {len(n)} random directions <grad, v>"
        flat_analytic = analytic.reshape(-1)
        if not np.all(np.isfinite(a)):  # a NaN/Inf element: blame it directly, by its index
            flat_k = int(np.argmax(~np.isfinite(flat_analytic)))
            count_bad = int(np.count_nonzero(~np.isfinite(flat_analytic)))
            entry.status = "mismatch"
            entry.index = tuple(int(i) for i in np.unravel_index(flat_k, analytic.shape))
            entry.analytic = float(flat_analytic[flat_k])
            one = numerical_gradient(
                self.evaluate, t.array, eps=self.settings["eps"], indices=[flat_k], f0=self.L0
            )
            entry.numeric = float(one.central[0])
            entry.max_abs_error = entry.max_rel_error = np.inf
            entry.checked, entry.wrong = len(n), int(np.count_nonzero(~np.isfinite(a)))
            entry.message += (
                f"; analytic gradient is {_nonfinite(entry.analytic)} at {list(entry.index)}"
                + (f" ({count_bad} non-finite elements)" if count_bad > 1 else "")
            )
            self.facts.setdefault("nonfinite_gradients", []).append(t.name)
            return entry
        agreed = self._all_agree(a, n)
        if agreed is not None:  # the usual case, in plain floats: the same values as below
            errors, relative = agreed
            k = errors.index(max(errors))
            entry.analytic, entry.numeric = float(a[k]), float(n[k])
            entry.max_abs_error, entry.max_rel_error = errors[k], max(relative)
            entry.checked = len(n)
            return entry
        finite = np.isfinite(n)
        tol = self._tolerance(a, n)
        err = np.where(finite, np.abs(a - n), np.inf)  # NaN compares False: make it inf
        bad = ~finite | (err > tol)
        jump = np.abs(d.left - d.right)
        kinky = bad & finite & (jump > tol)
        undefined = ~finite  # forward NaN/Inf at x +- eps * v
        wrong = bad & ~kinky & ~undefined
        rel = np.where(finite, self._rel(a, n), np.inf)
        k = int(np.argmax(np.where(kinky | undefined, -1, err)))
        entry.analytic, entry.numeric = float(a[k]), float(n[k])
        entry.max_abs_error = float(np.max(err[~kinky & ~undefined], initial=0.0))
        entry.max_rel_error = float(np.max(rel[~kinky & ~undefined], initial=0.0))
        undefined_at: tuple[int, ...] | None = None
        kinks: set[tuple[int, int]] = set()  # pieces [lo, hi) at a kink (one element each,
        budget = [_MAX_BISECTIONS]  # unless the budget ran out first)
        for j in np.flatnonzero(kinky | undefined):
            # a kink (or a NaN) on the way: split the direction until the pieces are smooth or
            # one element
            v = next(directions(seeds[j : j + 1], analytic.shape)).reshape(-1)
            found = self._bisect(t, analytic.reshape(-1), v, 0, v.size, budget)
            for status, lo, hi, a_sub, n_sub in found:
                if status == "undefined":
                    undefined_at = tuple(int(i) for i in np.unravel_index(lo, analytic.shape))
                    continue
                rel_sub = float(self._rel(np.array(a_sub), np.array(n_sub)))
                if status == "kink":
                    if undefined[j]:
                        continue  # the budget ran out before the NaN was found
                    kinks.add((lo, hi))
                    continue
                entry.max_rel_error = max(entry.max_rel_error, rel_sub)
                if status == "ok":
                    continue
                wrong[j] = True
                if hi - lo == 1:  # one element: its own values, not scaled by v
                    a_sub, n_sub = a_sub / float(v[lo]), n_sub / float(v[lo])
                e = abs(a_sub - n_sub)
                if e >= entry.max_abs_error or entry.index is None:
                    entry.max_abs_error = e
                    entry.analytic, entry.numeric = a_sub, n_sub
                    if hi - lo == 1:
                        entry.index = tuple(int(i) for i in np.unravel_index(lo, analytic.shape))
        entry.checked, entry.wrong, entry.kinks = len(n), int(wrong.sum()), len(kinks)
        if undefined.any():
            entry.message += "; " + _undefined_message(t, undefined_at, self.settings["eps"])
        if wrong.any():
            entry.status = "mismatch"
        elif undefined.any():
            entry.status = "fail"
            if undefined_at is not None:
                entry.index = undefined_at
                entry.analytic = float(
                    flat_analytic[np.ravel_multi_index(undefined_at, analytic.shape)]
                )
                entry.numeric = float("nan")
        elif kinks:
            entry.status = "kink"
            entry.message += (
                f"; {len(kinks)} element(s) at a non-differentiable point, not compared; "
                "the directions split around them agree"
            )
        return entry

    def _bisect(
        self, t: Target, analytic: np.ndarray, v: np.ndarray, lo: int, hi: int, budget: list[int]
    ) -> list[tuple[str, int, int, float, float]]:
        """Check direction ``v`` restricted to flat elements [lo, hi), halving every piece that
        disagrees until the piece is one element: there a kink is unambiguous (its one-sided
        slopes differ and the analytic value lies between them), where on a whole projection
        several kinks can cancel. Stops at the first wrong element. Returns
        ``(status, lo, hi, analytic, numeric)`` for each piece that agrees ("ok"), each kink
        and the mismatch (or the element where forward turns NaN/Inf: "undefined") found;
        pieces left when the budget runs out count as kinks (unresolved)."""
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
            a = dot(analytic[lo:hi], v[lo:hi])
            d = directional_derivative(
                self.evaluate,
                t.array,
                [sub.reshape(t.array.shape)],
                eps=self.settings["eps"],
                f0=self.L0,
            )
            n = float(d.central[0])
            tol = float(self._tolerance(np.array(a), np.array(n)))
            if np.isfinite(n) and abs(a - n) <= tol:  # an agreeing piece counts for the error
                out.append(("ok", lo, hi, a, n))
                continue
            if hi - lo > 1:
                mid = (lo + hi) // 2
                pending += [(lo, mid), (mid, hi)]
            elif not np.isfinite(n):  # forward NaN/Inf when this element moves by eps
                out.append(("undefined", lo, hi, a, n))
                return out
            elif abs(float(d.left[0] - d.right[0])) > tol and _within(
                np.array(a), d.left, d.right, np.array(tol)
            ):
                out.append(("kink", lo, hi, a, n))
            else:
                out.append(("mismatch", lo, hi, a, n))
                return out
        return out


def _projected(
    vs: Iterator[np.ndarray], analytic: np.ndarray, along: list[float]
) -> Iterator[np.ndarray]:
    """Pass each direction on, appending ``<analytic, v>`` to ``along`` first: one draw per
    direction instead of one for the numeric and one for the analytic side."""
    for v in vs:
        along.append(dot(analytic, v))
        yield v
        v = None  # (so that drawing the next one does not keep two alive)


def _merge(entry: Entry, parts: list[Entry]) -> Entry:
    """One entry from the element check and the projection check of one tensor."""
    if len(parts) == 1:  # made for the same tensor (name, shape, label) as entry: it is the one
        return parts[0]
    worst = max(parts, key=lambda e: (e.status == "mismatch", e.status == "fail", e.max_rel_error))
    entry.status = (
        "mismatch"
        if any(e.status == "mismatch" for e in parts)
        else "fail"
        if any(e.status == "fail" for e in parts)
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


#: Contract checks that compare gradients with each other: NaN never equals NaN, so with a
#: non-finite analytic gradient they cannot judge anything (the gradient entry has the blame).
_COMPARE_GRADIENTS = ("backward linear in dout", "grads overwritten, not accumulated")


def _unjudged_when_nonfinite(entries: list[Entry], h: _Checker) -> list[Entry]:
    nonfinite = h.facts.get("nonfinite_gradients")
    if not nonfinite:
        return entries
    for e in entries:
        if e.name in _COMPARE_GRADIENTS and e.status == "fail":
            e.status = "skipped"
            e.message = f"not judged: the analytic gradient of {', '.join(nonfinite)} is NaN/Inf"
    return entries


def _nonfinite(value: float) -> str:
    """ "NaN", "Inf" or "-Inf": how a non-finite value is named in messages."""
    return "NaN" if np.isnan(value) else "Inf" if value > 0 else "-Inf"


def _undefined_message(t: Target, index: tuple[int, ...] | None, eps: float) -> str:
    where = f"{t.name}{list(index)}" if index is not None else f"{t.name} + eps * v"
    return (
        f"forward is NaN/Inf at {where}±eps (eps={eps:g}), so the numeric derivative is "
        "undefined there; move the input away from the domain edge or lower eps"
    )


def _within(a: np.ndarray, left: np.ndarray, right: np.ndarray, tol: np.ndarray) -> np.ndarray:
    lo, hi = np.minimum(left, right), np.maximum(left, right)
    return (a >= lo - tol) & (a <= hi + tol)
