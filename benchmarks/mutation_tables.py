"""The tables of ``docs/mutation.md``: what each mode and setting catches of the bug catalogue.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/mutation_tables.py > /tmp/tables.md

1. Every bundled case (``layers.cases``) in full, auto and fast mode at the normal settings
   (``gradcheck --mutate layers``: 10 drawn examples, seed 0): score and resolution.
2. Tensors beyond auto's 1,000-element budget: a few cases built once at larger dims, in each
   mode.
3. Weaker settings on every bundled case (auto mode): looser ``rtol``, no contract; caught of
   total per bug class, summed over the cases, and what was missed.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import layers.cases  # noqa: F401  (registers the bundled cases)
from gradcheck.cases import registered_cases
from gradcheck.mutation import BUG_CLASSES, MutationScore, mutate_case, mutation_score

MODES = ("full", "auto", "fast")

#: Cases at dims where some tensor has more than 1,000 elements (auto samples it).
LARGER = (
    ("affine", dict(N=8, D=128, H=128)),
    ("time_lstm", dict(N=4, T=8, D=32, H=32)),
    ("time_attention", dict(N=4, Te=40, Td=30, H=16)),
)

#: Weaker settings, each on top of auto mode.
WEAKER = (
    {},
    {"rtol": 1e-4},
    {"rtol": 1e-3},
    {"rtol": 1e-2},
    {"rtol": 1.0},
    {"contract": False},
)


def _resolution(score: MutationScore) -> str:
    return "none" if score.resolution is None else f"{score.resolution:g}"


def _cell(score: MutationScore) -> str:
    if score.error is not None:
        return "error"
    return f"{score.caught}/{len(score.results)}, δ {_resolution(score)}"


def bundled(examples: int, seed: int) -> None:
    print("| case | layer | full | auto | fast |")
    print("|---|---|---|---|---|")
    totals: dict[str, list[int]] = {m: [0, 0] for m in MODES}
    missed: list[str] = []
    for c in registered_cases("layers"):
        scores = {m: mutate_case(c, examples=examples, seed=seed, mode=m) for m in MODES}
        for m, s in scores.items():
            totals[m][0] += s.caught
            totals[m][1] += len(s.results)
            missed += [f"{c.name} ({m}): {r.line()}" for r in s.missed]
        layer = scores["full"].layer
        print(f"| {c.name} | {layer} | " + " | ".join(_cell(scores[m]) for m in MODES) + " |")
    print("| **all** | | " + " | ".join(f"{totals[m][0]}/{totals[m][1]}" for m in MODES) + " |")
    print()
    print("Missed:" if missed else "Missed: none.")
    for line in missed:
        print(f"- {line}")


def larger(seed: int) -> None:
    cases = {c.name: c for c in registered_cases("layers")}
    print("| case at dims | mode | caught | resolution | missed |")
    print("|---|---|---|---|---|")
    for name, dims in LARGER:
        layer, inputs = cases[name].build(seed, **dims)
        sizes = " ".join(f"{k}={v}" for k, v in dims.items())
        for m in MODES:
            s = mutation_score(layer, *inputs, mode=m, seed=seed)
            why = "; ".join(r.line() for r in s.missed) or "none"
            print(
                f"| {name} {sizes} | {m} | {s.caught}/{len(s.results)} | {_resolution(s)} | {why} |"
            )


def weaker(examples: int, seed: int) -> None:
    """One row per setting; only the bug classes some setting misses get a column, the
    others are listed caught in full under the table."""
    rows = []
    for options in WEAKER:
        scores = [
            mutate_case(c, examples=examples, seed=seed, **options)
            for c in registered_cases("layers")
        ]
        counts: dict[str, list[int]] = {n: [0, 0] for n in BUG_CLASSES}
        for s in scores:
            for n, (c, t) in s.by_class().items():
                counts[n][0] += c
                counts[n][1] += t
        rows.append((options, scores, counts))
    shown = [n for n in BUG_CLASSES if any(c[n][0] < c[n][1] for _, _, c in rows)]
    print("| settings (auto mode) | score | resolution | " + " | ".join(shown) + " |")
    print("|---|---|---|" + "---|" * len(shown))
    for options, scores, counts in rows:
        caught = sum(s.caught for s in scores)
        total = sum(len(s.results) for s in scores)
        resolutions = Counter(_resolution(s) for s in scores)
        res = ", ".join(f"{r} ({k} cases)" for r, k in resolutions.most_common())
        label = " ".join(f"{k}={v}" for k, v in options.items()) or "normal"
        cells = [f"{counts[n][0]}/{counts[n][1]}" for n in shown]
        print(f"| {label} | {caught / total:.3f} | {res} | " + " | ".join(cells) + " |")
    full = [n for n in BUG_CLASSES if n not in shown]
    normal = rows[0][2]
    print()
    print(
        "Caught in full under every setting: "
        + ", ".join(f"{n} {normal[n][0]}/{normal[n][1]}" for n in full)
        + "."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("bundled", "larger", "weaker"))
    args = parser.parse_args(argv)
    sections: dict[str, Any] = {
        "bundled": lambda: bundled(args.examples, args.seed),
        "larger": lambda: larger(args.seed),
        "weaker": lambda: weaker(args.examples, args.seed),
    }
    for name, run in sections.items():
        if args.only in (None, name):
            print(f"<!-- {name} -->")
            run()
            print()


if __name__ == "__main__":
    main()
