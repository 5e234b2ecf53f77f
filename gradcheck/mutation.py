"""Does the check catch bugs? Typical backward bugs injected, and what the settings catch.

A passing check says no mismatch was found at its settings, not that a bug would have been:
fast mode, ``auto``'s blocks, a loose ``rtol`` or tiny drawn shapes can pass a wrong
backward. Here each *mutant* is the subject's layer behind a thin wrapper: forward is the
layer's own; backward calls the layer's backward, then breaks one thing in a typical way (the
catalogue, :data:`BUG_CLASSES`) in what it returned (an input gradient), wrote (``grads[k]``,
in place) or left (``dh``, ``dc``). Nobody's source is edited. Each mutant runs through the
whole pipeline (sandbox, gradients, contract) under the check's own settings and is caught when
its report fails; the score is the share caught.

Cheap: a mutant changes only backward, so every forward evaluation of its check is one the
unmutated check of the same example made (same inputs, params, seed, so the same blocks and
elements and directions). Those finite differences are taken once and remembered
(:func:`gradcheck.differences.remembered`); and a mutant whose gradient rows already fail is not
run again for its contract rows.

    score = gradcheck.mutation_score(layer, x, mode="fast")
    print(score)                      # per bug class, caught of total; what was missed, why
    score.score, score.resolution     # 0.87, 0.01 (the smallest scale error (1 + δ) caught)
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from gradcheck import mutants
from gradcheck.cases import Case
from gradcheck.mutants import BUG_CLASSES, DELTAS
from gradcheck.options import Settings
from gradcheck.report import Report
from gradcheck.scores import MutantResult, MutationScore, MutationScoreTooLow
from gradcheck.subjects import Subject, subject_of

__all__ = [
    "BUG_CLASSES",
    "DELTAS",
    "MutantResult",
    "MutationScore",
    "MutationScoreTooLow",
    "assert_mutation_score",
    "mutate_case",
    "mutation_score",
    "parse_min_score",
    "run_mutation",
]

# --- running ----------------------------------------------------------------------------------


@dataclass
class _Tally:
    """Mutants over the examples of one case: caught if any example caught them."""

    mutants: dict[tuple, mutants.Mutant] = field(default_factory=dict)
    caught: dict[tuple, bool] = field(default_factory=dict)
    changed: dict[tuple, bool] = field(default_factory=dict)
    reasons: dict[tuple, tuple[int, str]] = field(default_factory=dict)
    raised: dict[tuple, str] = field(default_factory=dict)  # caught by raising: what it said
    layer: str = "?"
    examples: int = 0
    accumulates: bool = False
    error: str | None = None


def _quantities(subject: Subject, arrays: tuple, baseline: Report) -> list[mutants.Quantity]:
    rows = {e.name: e for e in baseline.gradients}
    out = [
        mutants.Quantity(name, "input", i, tuple(x.shape))
        for i, (name, x, checked) in enumerate(
            zip(subject.input_names, arrays, subject.checked, strict=True)
        )
        if checked and x.dtype.kind == "f" and x.size
    ]
    out += [
        mutants.Quantity(name, "param", k, tuple(p.shape))
        for k, (name, p) in enumerate(zip(subject.param_names, subject.layer.params, strict=True))
        if p.size
    ]
    out += [
        mutants.Quantity(name, "state", name, tuple(rows[name].shape))
        for name in ("dh", "dc")
        if name in rows and rows[name].checked
    ]
    return out


def _run_example(obj: Any, inputs: tuple, options: dict[str, Any], tally: _Tally) -> None:
    """The unmutated check of one example (it fills the cache), then every mutant not yet
    caught; what they show goes into ``tally``."""
    from gradcheck.check import check_layer

    subject, arrays = subject_of(obj, inputs)
    tally.layer = subject.name
    tally.accumulates = bool(subject.not_applicable.get("grads overwritten, not accumulated"))
    settings = Settings(**options)
    cache: dict = {}
    baseline = check_layer(
        mutants.Mutated(subject, arrays, None), *arrays, _numeric_cache=cache, **options
    )
    if not baseline.passed:
        tally.error = (
            "the unmutated check fails"
            + (f" ({baseline.context})" if baseline.context else "")
            + f": {str(baseline).splitlines()[0]}"
        )
        return
    tally.examples += 1
    floats = [i for i, x in enumerate(arrays) if x.dtype.kind == "f"]
    quantities = _quantities(subject, arrays, baseline)
    for m in mutants.catalogue(quantities, subject.layer.params, tally.accumulates):
        key = m.key
        tally.mutants.setdefault(key, m)
        if tally.caught.get(key):
            continue
        injection = mutants.Injection(m, len(arrays), floats)
        mutant = mutants.Mutated(subject, arrays, injection)
        try:
            gradients_only = {**options, "contract": False}
            report = check_layer(mutant, *arrays, _numeric_cache=cache, **gradients_only)
            if report.passed and settings.contract:
                report = check_layer(mutant, *arrays, _numeric_cache=cache, **options)
        except Exception as exc:  # the check could not run: a failing gate all the same
            tally.changed[key] = tally.caught[key] = True
            tally.raised[key] = f"the check raised {type(exc).__name__}: {exc}".splitlines()[0]
            continue
        tally.changed[key] = tally.changed.get(key, False) or injection.changed
        if not injection.changed:
            continue
        tally.caught[key] = not report.passed
        if report.passed:
            size = max(math.prod(q.shape) for q in m.targets)
            if size >= tally.reasons.get(key, (-1, ""))[0]:
                tally.reasons[key] = (size, _why_missed(m, report, settings))


def _why_missed(m: mutants.Mutant, report: Report, settings: Settings) -> str:
    """One line: why the check of ``m`` passed."""
    rows = {e.name: e for e in report.entries}
    contract_check = {
        "accumulated": "grads overwritten, not accumulated",
        "constant added": "backward linear in dout",
    }.get(m.bug_class)
    if contract_check is not None:
        row = rows.get(contract_check)
        if not settings.contract or contract_check in settings.skip or row is None:
            return f"the contract check {contract_check!r} did not run"
    name = m.targets[0].name
    e = rows.get(name)
    if e is None:
        return "every row passed"
    size = math.prod(e.shape or ())
    within = f"within rtol={settings.rtol:g} (max rel err of {name} {e.max_rel_error:.1e})"
    if m.bug_class == "scaled":
        return f"a relative error of δ={m.delta:g} is {within}"
    if e.message.startswith("blocks"):
        return (
            f"auto mode's blocks of {name} ({size:,} elements) agree {within} of each block's "
            "size: an error below the blocks' resolution (docs/auto-mode.md)"
        )
    if e.message.startswith("projections"):
        return f"fast mode's {settings.projections} random directions of {name} agree {within}"
    return f"every row passed: the worst error is {within}"


def _score(case: str, tally: _Tally, settings: dict[str, Any], seconds: float) -> MutationScore:
    if tally.error is not None:
        return MutationScore(
            case,
            (),
            0.0,
            None,
            tally.layer,
            tally.examples,
            settings,
            error=tally.error,
            seconds=seconds,
        )
    results, equivalent = [], []
    for key, m in tally.mutants.items():
        if not tally.changed.get(key):
            delta = f" δ={m.delta:g}" if m.delta is not None else ""
            equivalent.append(f"{m.bug_class} {m.target}{delta}")
            continue
        caught = bool(tally.caught.get(key))
        reason = tally.reasons.get(key, (0, ""))[1] if not caught else tally.raised.get(key, "")
        results.append(MutantResult(m.bug_class, m.target, m.delta, caught, reason))
    scaled = [r for r in results if r.bug_class == "scaled"]
    resolution = None
    for delta in DELTAS:
        if not all(r.caught for r in scaled if r.delta is not None and r.delta >= delta):
            break
        if any(r.delta == delta for r in scaled):
            resolution = delta
    present = {r.bug_class for r in results} | {m.bug_class for m in tally.mutants.values()}
    not_applicable = {
        name: mutants.NOT_APPLICABLE.get(name, "no gradient")
        for name in BUG_CLASSES
        if name not in present
    }
    if tally.accumulates and "accumulated" in not_applicable:
        not_applicable["accumulated"] = "gradients accumulate by design (accumulates=True)"
    score = sum(r.caught for r in results) / len(results) if results else 0.0
    return MutationScore(
        case,
        tuple(results),
        score,
        resolution,
        tally.layer,
        tally.examples,
        settings,
        not_applicable,
        tuple(equivalent),
        None,
        seconds,
    )


def _options(options: dict[str, Any]) -> dict[str, Any]:
    """The check options, validated, with a fixed seed (a fresh seed per check would give
    every mutant other douts and directions)."""
    settings = Settings.of(options)
    if settings.seed is None:
        options = {**options, "seed": int(np.random.default_rng().integers(2**31))}
    return options


def _shown(options: dict[str, Any]) -> dict[str, Any]:
    settings = Settings(**{k: v for k, v in options.items() if k != "seed"})
    return {
        k: v
        for k, v in settings.to_dict().items()
        if k in ("mode", "rtol", "atol", "eps", "max_elements", "projections", "contract", "skip")
    }


def mutation_score(subject: Any, *inputs: Any, **options: Any) -> MutationScore:
    """Inject the catalogue of backward bugs (:data:`BUG_CLASSES`) into ``subject`` (a layer,
    or what :func:`gradcheck.function`, :func:`gradcheck.pair`, :func:`gradcheck.loss`,
    :func:`gradcheck.layer` made) one at a time, check each mutant at ``inputs`` with
    ``options`` (those of :func:`gradcheck.check_layer`: mode, rtol, atol, eps, seed, ...)
    and return what was caught. The subject's own code is never changed."""
    __tracebackhide__ = True
    options = _options(options)
    started = time.perf_counter()
    tally = _Tally()
    _run_example(subject, inputs, options, tally)
    return _score(tally.layer, tally, _shown(options), time.perf_counter() - started)


def _examples(case: Case, examples: int, seed: int) -> list[Any]:
    """The case at its smallest dims (seed 0), then the examples
    :func:`gradcheck.runner.run_case` draws with the same ``examples`` and ``seed``
    (:func:`gradcheck.runner.drawing`, no shrinking)."""
    from hypothesis import given

    from gradcheck.runner import drawing
    from gradcheck.strategies import DrawnCase, layer_cases

    drawn: list[Any] = []
    smallest = case.smallest_dims()
    if all(k in smallest for k in case.dims):
        layer, inputs = case.build(0)
        drawn.append(DrawnCase(layer, inputs, case=case, dims=smallest, seed=0))

    @drawing(seed, examples, shrink=False)
    @given(layer_cases(case))
    def collect(example: Any) -> None:
        if all(repr(example) != repr(d) for d in drawn):
            drawn.append(example)

    collect()
    return drawn


def mutate_case(
    case: Case,
    *,
    examples: int = 10,
    seed: int = 0,
    on_example: Callable[[int], None] | None = None,
    **options: Any,
) -> MutationScore:
    """The mutation score of a registered case: the catalogue injected at the case's smallest
    dims and at the ``examples`` examples :func:`gradcheck.cli.run_case` draws from ``seed``,
    each judged with the case's own settings (its options take precedence over ``options``,
    as for a check). A mutant counts as caught when any example's check catches it.
    ``on_example(n)`` after each example. A case that cannot be built or checked unmutated
    gets a score of 0 with ``error`` saying why."""
    options = {**options, **case.options}
    started = time.perf_counter()
    tally = _Tally()
    try:
        drawn = _examples(case, examples, seed)
        for n, d in enumerate(drawn, 1):
            opts = _options({**options, "seed": d.seed, "context": d.context})
            _run_example(d.layer, d.inputs, opts, tally)
            if on_example is not None:
                on_example(n)
            if tally.error is not None:
                break
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # a builder bug or bad use: reported, not a crash
        tally.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return _score(case.id, tally, _shown(options), time.perf_counter() - started)


def assert_mutation_score(
    case: Case, *, min_score: float = 1.0, examples: int = 10, seed: int = 0, **options: Any
) -> MutationScore:
    """:func:`mutate_case`, raising :class:`MutationScoreTooLow` (an AssertionError, with the
    table) when the score is below ``min_score`` or the case could not be scored. For the
    pytest plugin and tests."""
    __tracebackhide__ = True
    score = mutate_case(case, examples=examples, seed=seed, **options)
    if score.error is not None or score.score < min_score:
        raise MutationScoreTooLow(score, min_score)
    return score


def parse_min_score(text: str) -> float:
    """``--min-score``'s argparse ``type``: a number in [0, 1]."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; try 0.9") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value:g} must be in [0, 1]; try 0.9")
    return value


def run_mutation(
    cases: Sequence[Case],
    *,
    examples: int = 10,
    seed: int = 0,
    min_score: float = 1.0,
    json_path: str | None = None,
    out: TextIO | None = None,
    **options: Any,
) -> int:
    """``gradcheck --mutate MODULE``: the mutation score of each case, printed as a table per
    case and a summary line; ``json_path`` also gets one :meth:`MutationScore.to_dict` record
    per case. Returns the exit status: 1 when a score is below ``min_score`` (or a case could
    not be scored), else 0."""
    out = sys.stdout if out is None else out
    if not 0.0 <= min_score <= 1.0:
        raise ValueError(f"min_score={min_score:g} must be in [0, 1]; try min_score=1.0")
    shown = " ".join(f"{k}={v}" for k, v in options.items() if v is not None)
    print(
        f"gradcheck --mutate: {len(cases)} case{'s' * (len(cases) != 1)}; "
        f"{shown + ' ' if shown else ''}seed={seed} examples={examples} min_score={min_score:g}",
        file=out,
    )
    started = time.perf_counter()
    scores = []
    for c in cases:
        score = mutate_case(c, examples=examples, seed=seed, **options)
        scores.append(score)
        print(f"\n{score}", file=out, flush=True)
    low = [s for s in scores if s.error is not None or s.score < min_score]
    total = sum(len(s.results) for s in scores)
    caught = sum(s.caught for s in scores)
    summary = f"{caught}/{total} mutants caught over {len(scores)} case{'s' * (len(scores) != 1)}"
    if low:
        summary += f"; below min_score={min_score:g}: {', '.join(s.case for s in low)}"
    print(f"\n{summary} in {time.perf_counter() - started:.1f}s", file=out)
    if json_path:
        Path(json_path).write_text(json.dumps([s.to_dict() for s in scores], indent=2) + "\n")
    return 1 if low else 0
