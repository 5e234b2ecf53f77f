"""How small an error in one gradient element each check mode catches, on the book's models.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/resolution.py --markdown

For the bundled ``TimeLSTM`` (stateful, as the bundled case ``time_lstm_stateful`` builds it:
N=4 T=29 D=16, weights of the book's scale) and ``AttentionSeq2seq`` (the book's initialisation,
float64: N=4 V=59 D=16 Te=29 Td=10), at each hidden size H (``--sizes``, default 64 and the
book's 256) and each mode of :func:`gradcheck.check_layer` (``--modes``), the table gives:

- forwards: calls of the model's forward during one check of the correct model (counted by the
  wrapper below), and the seconds (wall clock) of that check;
- whether the correct model passes;
- per percentile p (``--percentiles``, default 50, 90, 99): the smallest δ caught when ONE
  element of the largest parameter tensor (``Wh`` of TimeLSTM, ``encoder.lstm.Wh`` of the
  seq2seq), the one whose |gradient| is at the p-th percentile of that tensor's, is multiplied
  by (1 + δ) after the model's own backward. δ runs down the ladder 1, 1e-1, ..., 1e-6; the
  smallest caught is the smallest δ that is caught with every larger one ("–": δ=1 is missed).

The bug is put in by a thin wrapper (:class:`ScaledElement`, after the project's own mutants,
:class:`gradcheck.mutants.MutantLayer`): forward is the model's own, backward is the model's own
followed by the one scaled element. Every check of one (model, size, mode) has the same forward,
inputs and seed, so they share one ``_numeric_cache``: the finite differences are taken by the
check of the correct model and reused, and a δ check costs little more than one backward. The δ
checks leave out the contract checks (``contract=False``; a scaled gradient element breaks no
contract rule, so only the gradient rows can catch it).

A full check costs at least two forwards per checked element, over a million for the seq2seq at
H=256: a full row whose forwards would exceed ``--max-full-forwards`` (default 250,000) is not
run. Its forward count is extrapolated from full checks of the same model at H=2 and H=4
(forwards = a * elements + b, fitted on the two) and its other cells read "not run".

The second table is the resolution that :func:`gradcheck.mutation_score` (the machinery of
``gradcheck --mutate``) reports at H=64 (``--mutation-size``): its "scaled" mutants multiply a
whole gradient by (1 + δ), δ from 1 to 1e-4, and the resolution is the smallest δ caught for
every gradient with every larger δ. At H=64 it takes under twenty seconds per mode in auto and
fast mode, both models together, and about two minutes in full mode (the mutation run keeps its
own cache, so it takes the full check's differences again).

Progress goes to stderr. Without ``--markdown`` the δ ladder of every row is printed as well.
The default run takes about seven minutes (one thread; most of it the auto checks at H=256 and
the full checks at H=64).
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import gradcheck
from gradcheck.mutants import MutantLayer
from layers import AttentionSeq2seq
from layers.cases import time_lstm_stateful

__all__ = ["DELTAS", "ScaledElement", "build", "main"]

MODELS = ("lstm", "seq2seq")
MODES = ("auto", "full", "fast")
#: The relative errors put into one gradient element, largest first.
DELTAS = (1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
#: What the table shows when even δ=1 is missed (an en dash).
MISSED = "\u2013"
#: The sizes besides H: the date task's lengths (question 29 tokens, answer 10 + start token).
DIMS = {"lstm": dict(N=4, T=29, D=16), "seq2seq": dict(N=4, V=59, D=16, Te=29, Td=10)}
#: The hidden sizes at which full mode's forwards are counted, to extrapolate from.
CALIBRATION_SIZES = (2, 4)


# --- the models and the bug -------------------------------------------------------------------


@dataclass
class Model:
    """A model to check: ``layer`` and ``inputs`` for ``check_layer``, ``dout`` (None: the
    scalar loss's 1.0), and ``target``, the index in ``params`` of the tensor whose elements are
    scaled (named ``target_name``)."""

    name: str
    H: int
    layer: Any
    inputs: tuple[Any, ...]
    dout: np.ndarray | None
    target: int
    target_name: str

    @property
    def elements(self) -> int:
        """The numbers a full check differences: float inputs, parameters, initial state."""
        n = sum(x.size for x in self.inputs if x.dtype.kind == "f")
        n += sum(p.size for p in self.layer.params)
        if getattr(self.layer, "stateful", False):
            n += sum(getattr(self.layer, s).size for s in ("h", "c") if hasattr(self.layer, s))
        return n

    def gradient(self) -> np.ndarray:
        """The target tensor's gradient, from one forward and backward of a copy of the model
        (from the state it holds, with the check's dout)."""
        twin = copy.deepcopy(self.layer)
        twin.forward(*self.inputs)
        twin.backward(1.0 if self.dout is None else self.dout)
        return np.array(twin.grads[self.target])


def build(name: str, H: int, rng: np.random.Generator) -> Model:
    """The model ``name`` at hidden size ``H``, float64, with its inputs drawn from ``rng``."""
    if name == "lstm":
        N, T, D = (DIMS["lstm"][k] for k in ("N", "T", "D"))
        layer, inputs = time_lstm_stateful(rng, N=N, T=T, D=D, H=H)
        dout = rng.standard_normal((N, T, H))
        return Model(name, H, layer, inputs, dout, 1, "Wh")
    if name == "seq2seq":
        N, V, D, Te, Td = (DIMS["seq2seq"][k] for k in ("N", "V", "D", "Te", "Td"))
        layer = AttentionSeq2seq(V, D, H, dtype=np.float64, rng=rng)
        inputs = (rng.integers(0, V, size=(N, Te)), rng.integers(0, V, size=(N, Td + 1)))
        target = list(layer.param_names).index("encoder.lstm.Wh")
        return Model(name, H, layer, inputs, None, target, "encoder.lstm.Wh")
    raise ValueError(f"model={name!r} is not one of {MODELS}")


class Counter:
    """Forward calls, shared by every copy the check makes of the wrapper (``__slots__``: no
    ``__dict__``, so the check's restore before each evaluation leaves the count alone)."""

    __slots__ = ("forwards",)

    def __init__(self) -> None:
        self.forwards = 0

    def __deepcopy__(self, memo: dict) -> Counter:
        return self


class ScaledElement(MutantLayer):
    """The model with one bug behind its back: after its own backward, element ``index`` (flat)
    of ``grads[k]`` is multiplied by (1 + ``delta``); ``delta=0`` is the correct model. Every
    forward is counted in ``counter``; params, grads, state and the rest read through."""

    def __init__(self, inner: Any, counter: Counter, k: int, index: int, delta: float) -> None:
        super().__init__(inner, None)
        self.counter, self.k, self.index, self.delta = counter, k, index, delta

    def forward(self, *inputs: Any) -> Any:
        self.counter.forwards += 1
        return self.inner.forward(*inputs)

    def backward(self, *douts: Any) -> Any:
        result = self.inner.backward(*douts)
        if self.delta:
            g = self.inner.grads[self.k]
            g[np.unravel_index(self.index, g.shape)] *= 1.0 + self.delta
        return result


# --- measuring --------------------------------------------------------------------------------


def percentile_element(g: np.ndarray, p: float) -> int:
    """The flat index of the element whose |g| is at the ``p``-th percentile of ``|g|``."""
    order = np.argsort(np.abs(g).reshape(-1), kind="stable")
    return int(order[round(p / 100 * (len(order) - 1))])


@dataclass
class Row:
    """One (model, H, mode): what the check of the correct model cost and said, and per
    percentile the δ ladder as far as it was run (δ -> caught)."""

    model: str
    H: int
    mode: str
    forwards: int | None = None
    seconds: float | None = None
    passed: bool | None = None
    estimated: int | None = None  # full mode not run: the extrapolated forwards
    ladders: dict[float, dict[float, bool]] = field(default_factory=dict)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _check(model: Model, wrapper: ScaledElement, mode: str, seed: int, **options: Any) -> Any:
    return gradcheck.check_layer(
        wrapper, *model.inputs, dout=model.dout, mode=mode, seed=seed, **options
    )


def measure(model: Model, mode: str, elements: dict[float, int], seed: int) -> Row:
    """The check of the correct model (timed, forwards counted), then the δ ladder for each
    percentile's element (``elements``: percentile -> flat index), down to the first δ
    missed, all with one cache of finite differences."""
    row = Row(model.name, model.H, mode)
    cache: dict = {}
    counter = Counter()
    correct = ScaledElement(model.layer, counter, model.target, 0, 0.0)
    started = time.perf_counter()
    report = _check(model, correct, mode, seed, _numeric_cache=cache)
    row.seconds = time.perf_counter() - started
    row.forwards, row.passed = counter.forwards, report.passed
    _say(
        f"  {model.name} H={model.H} {mode}: {'passes' if row.passed else 'FAILS'}, "
        f"{row.forwards:,} forwards in {row.seconds:.1f}s"
    )
    if not row.passed:
        return row
    for p, index in elements.items():
        ladder = row.ladders[p] = {}
        for delta in DELTAS:
            wrapper = ScaledElement(model.layer, Counter(), model.target, index, delta)
            report = _check(model, wrapper, mode, seed, _numeric_cache=cache, contract=False)
            ladder[delta] = not report.passed
            if report.passed:
                break
        _say(f"    p{p:g}: smallest δ caught {_delta(smallest_caught(ladder))}")
    return row


def smallest_caught(ladder: dict[float, bool]) -> float | None:
    """The smallest δ caught with every larger δ (None: δ=1 missed)."""
    out = None
    for delta in DELTAS:
        if not ladder.get(delta, False):
            break
        out = delta
    return out


def calibrate(name: str, seed: int) -> tuple[float, float]:
    """(a, b) of forwards = a * elements + b for a full check of the correct model, fitted on
    the model at the hidden sizes of :data:`CALIBRATION_SIZES`."""
    points = []
    for H in CALIBRATION_SIZES:
        model = build(name, H, np.random.default_rng(seed))
        counter = Counter()
        _check(model, ScaledElement(model.layer, counter, model.target, 0, 0.0), "full", seed)
        points.append((model.elements, counter.forwards))
    (n1, f1), (n2, f2) = points
    a = (f2 - f1) / (n2 - n1)
    return a, f1 - a * n1


def mutation_row(model: Model, mode: str, seed: int) -> dict[str, Any]:
    """What :func:`gradcheck.mutation_score` reports for the model in ``mode``."""
    score = gradcheck.mutation_score(model.layer, *model.inputs, mode=mode, seed=seed)
    return {
        "model": model.name,
        "H": model.H,
        "mode": mode,
        "resolution": score.resolution,
        "caught": score.caught,
        "mutants": len(score.results),
        "seconds": score.seconds,
        "error": score.error,
    }


# --- the tables -------------------------------------------------------------------------------


def _delta(delta: float | None) -> str:
    if delta is None:
        return MISSED
    return "1" if delta == 1 else f"1e{round(math.log10(delta))}"


def table(rows: list[Row], percentiles: list[float], targets: dict[str, str]) -> str:
    """The Markdown table of :func:`measure`'s rows."""
    head = "| model | H | mode | forwards | seconds | correct passes | "
    head += " | ".join(f"δ caught, p{p:g} of \\|g\\|" for p in percentiles) + " |"
    rule = "| --- | ---: | --- | ---: | ---: | --- |" + " ---: |" * len(percentiles)
    lines = [head, rule]
    for r in rows:
        name = f"{r.model} ({targets[r.model]})"
        if r.estimated is not None:
            cells = [f"≈ {r.estimated:,} (extrapolated)", "not run", "not run"]
            cells += ["not run"] * len(percentiles)
        else:
            cells = [f"{r.forwards:,}", f"{r.seconds:.1f}", "yes" if r.passed else "**no**"]
            if r.passed:
                cells += [_delta(smallest_caught(r.ladders[p])) for p in percentiles]
            else:
                cells += ["n/a"] * len(percentiles)
        lines.append(f"| {name} | {r.H} | {r.mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mutation_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| model | H | mode | resolution δ | mutants caught | seconds |",
        "| --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        if r["error"] is not None:
            lines.append(f"| {r['model']} | {r['H']} | {r['mode']} | {r['error']} | | |")
            continue
        lines.append(
            f"| {r['model']} | {r['H']} | {r['mode']} | {_delta(r['resolution'])} | "
            f"{r['caught']} of {r['mutants']} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines)


def _numbers(text: str, kind: type, what: str) -> list[Any]:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}={text!r}: comma-separated numbers") from None
    if not values:
        raise argparse.ArgumentTypeError(f"{what}={text!r} is empty")
    return values


def _names(choices: tuple[str, ...], what: str):
    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        wrong = [v for v in values if v not in choices]
        if wrong or not values:
            raise argparse.ArgumentTypeError(
                f"{what}={text!r}: comma-separated, from {','.join(choices)}"
            )
        return values

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=lambda t: _numbers(t, int, "--sizes"),
        default=[64, 256],
        help="hidden sizes H, comma-separated (default: 64,256)",
    )
    parser.add_argument(
        "--models",
        type=_names(MODELS, "--models"),
        default=list(MODELS),
        help="lstm, seq2seq or both, comma-separated (default: lstm,seq2seq)",
    )
    parser.add_argument(
        "--modes",
        type=_names(MODES, "--modes"),
        default=list(MODES),
        help="check modes, comma-separated (default: auto,full,fast)",
    )
    parser.add_argument(
        "--percentiles",
        type=lambda t: _numbers(t, float, "--percentiles"),
        default=[50.0, 90.0, 99.0],
        help="percentiles of |gradient| picking the scaled element (default: 50,90,99)",
    )
    parser.add_argument("--seed", type=int, default=0, help="models, inputs, checks (default: 0)")
    parser.add_argument(
        "--max-full-forwards",
        type=int,
        default=250_000,
        help="full-mode rows needing more forwards are not run (default: 250000)",
    )
    parser.add_argument(
        "--mutation-size",
        type=int,
        default=64,
        help="H of the mutation_score table; 0 leaves the table out (default: 64)",
    )
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="print only the tables and their notes (default: also every δ ladder)",
    )
    args = parser.parse_args(argv)
    if any(not 0 <= p <= 100 for p in args.percentiles):
        parser.error(f"--percentiles={args.percentiles} must be in [0, 100]")
    if any(H < 1 for H in args.sizes):
        parser.error(f"--sizes={args.sizes} must be >= 1")
    started = time.perf_counter()
    rows: list[Row] = []
    fits: dict[str, tuple[float, float]] = {}
    counted: list[str] = []  # the extrapolation against the full checks that ran
    targets, picked = {}, []
    for name in args.models:
        for H in args.sizes:
            _say(f"{name} H={H}")
            model = build(name, H, np.random.default_rng(args.seed))
            shape = model.layer.params[model.target].shape
            targets[name] = model.target_name
            g = model.gradient()
            elements = {p: percentile_element(g, p) for p in args.percentiles}
            picked.append(
                f"{name} H={H}, {model.target_name} {shape}: "
                + ", ".join(
                    f"p{p:g} {list(map(int, np.unravel_index(i, shape)))} "
                    f"|g| = {abs(g.reshape(-1)[i]):.1e}"
                    for p, i in elements.items()
                )
            )
            for mode in args.modes:
                estimate = None
                if mode == "full":
                    if name not in fits:
                        _say(f"  {name}: full checks at H={CALIBRATION_SIZES} to extrapolate from")
                        fits[name] = calibrate(name, args.seed)
                    a, b = fits[name]
                    estimate = round(a * model.elements + b)
                    if estimate > args.max_full_forwards:
                        _say(f"  {name} H={H} full: about {estimate:,} forwards, not run")
                        rows.append(Row(name, H, mode, estimated=estimate))
                        continue
                row = measure(model, mode, elements, args.seed)
                if estimate is not None:
                    counted.append(f"{name} H={H} {estimate:,} extrapolated, {row.forwards:,} made")
                rows.append(row)
    mutations = []
    if args.mutation_size:
        for name in args.models:
            model = build(name, args.mutation_size, np.random.default_rng(args.seed))
            for mode in args.modes:
                _say(f"mutation_score: {name} H={args.mutation_size} {mode}")
                mutations.append(mutation_row(model, mode, args.seed))
    seconds = time.perf_counter() - started

    dims = "; ".join(
        f"{n} N={DIMS[n]['N']} " + " ".join(f"{k}={v}" for k, v in DIMS[n].items() if k != "N")
        for n in args.models
    )
    print(f"numpy {np.__version__}, python {sys.version.split()[0]}; float64; {dims}.\n")
    print(table(rows, args.percentiles, targets))
    notes = [
        "forwards: calls of the model's forward in one check of the correct model; seconds: "
        "wall clock of that check (it also takes the finite differences the δ checks reuse).",
        "δ caught: one element of the largest weight, the one at that percentile of |gradient|, "
        "multiplied by (1 + δ) after backward; the smallest δ of "
        f"{', '.join(_delta(d) for d in DELTAS)} caught with every larger one "
        f"({MISSED}: δ=1 missed); every check with seed={args.seed}.",
        "the scaled elements: " + "; ".join(picked) + ".",
    ]
    if any(r.estimated is not None for r in rows):
        fitted = ", ".join(f"{n} {a:.3f} x elements + {b:,.0f}" for n, (a, b) in fits.items())
        notes.append(
            f"not run: full mode would make more than {args.max_full_forwards:,} forwards "
            "(--max-full-forwards; hours at these sizes). The count shown is extrapolated from "
            f"full checks of the same model at H={' and '.join(map(str, CALIBRATION_SIZES))}: "
            f"forwards = {fitted}."
        )
    if counted:
        notes.append("the extrapolation against full checks that ran: " + "; ".join(counted) + ".")
    print()
    for note in notes:
        print(f"- {note}")
    if mutations:
        print(
            f"\n`gradcheck.mutation_score` at H={args.mutation_size}, the same models and seed "
            "(its scaled mutants multiply a whole gradient by 1 + δ, δ from 1 to 1e-4):\n"
        )
        print(mutation_table(mutations))
    print(f"\nWhole run: {seconds:.0f}s.")
    if not args.markdown:
        print("\nδ ladders, down to the first δ missed:")
        for r in rows:
            for p, ladder in r.ladders.items():
                steps = ", ".join(
                    f"{_delta(d)} {'caught' if c else 'missed'}" for d, c in ladder.items()
                )
                print(f"  {r.model} H={r.H} {r.mode} p{p:g}: {steps}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
