"""What a mutation run costs next to the check it judges, per bundled case (a Markdown table).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/mutation_cost.py --mode full
    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/mutation_cost.py --mode fast -k lstm

For each case of ``layers.cases``: the seconds of :func:`gradcheck.cli.run_case` (the check
``gradcheck layers`` runs: ``--examples`` drawn examples) and of
:func:`gradcheck.mutation.mutate_case` at the same settings (the case's smallest dims plus the
same drawn examples, every mutant of the catalogue), and their ratio, the *multiple*. With
``--uncached`` also the mutation run without the remembered finite differences (every mutant's
check differences again, as one check per mutant would), to show what the cache saves. Each
time is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Callable
from typing import Any

import layers.cases  # noqa: F401  (registers the bundled cases)
from gradcheck.cases import registered_cases
from gradcheck.mutation import mutate_case
from gradcheck.runner import run_case


def _best(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def _uncached(run: Callable[[], Any]) -> Any:
    """``run()`` with ``check_layer`` ignoring the remembered differences."""
    module = importlib.import_module("gradcheck.check")  # (gradcheck.check is a function)
    original = module.check_layer

    def check_layer(*args: Any, _numeric_cache: Any = None, **options: Any) -> Any:
        return original(*args, **options)

    module.check_layer = check_layer
    try:
        return run()
    finally:
        module.check_layer = original


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="full", choices=("full", "auto", "fast"))
    parser.add_argument("--examples", type=int, default=10, help="drawn examples (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (default: 0)")
    parser.add_argument("--repeat", type=int, default=1, help="best of N runs (default: 1)")
    parser.add_argument("-k", dest="pattern", help="only cases whose id contains PATTERN")
    parser.add_argument("--uncached", action="store_true", help="also time without the cache")
    args = parser.parse_args(argv)
    cases = [c for c in registered_cases("layers") if not args.pattern or args.pattern in c.id]
    options = dict(examples=args.examples, seed=args.seed, mode=args.mode)
    head = "| case | mutants | check (s) | mutation run (s) | multiple |"
    rule = "|---|--:|--:|--:|--:|"
    if args.uncached:
        head += " uncached (s) | multiple uncached |"
        rule += "--:|--:|"
    print(f"mode={args.mode} examples={args.examples} seed={args.seed} repeat={args.repeat}\n")
    print(head)
    print(rule)
    totals = [0.0, 0.0, 0.0]
    if cases:  # (imports, hypothesis and numpy warmed up before the first timing)
        run_case(cases[0], examples=2, mode=args.mode)
        mutate_case(cases[0], examples=2, mode=args.mode)
    for c in cases:
        check_s, _ = _best(lambda c=c: run_case(c, **options), args.repeat)
        mutate_s, score = _best(lambda c=c: mutate_case(c, **options), args.repeat)
        row = (
            f"| {c.name} | {len(score.results)} | {check_s:.2f} | {mutate_s:.2f} | "
            f"{mutate_s / check_s:.1f} |"
        )
        totals[0] += check_s
        totals[1] += mutate_s
        if args.uncached:
            plain_s, _ = _best(lambda c=c: _uncached(lambda: mutate_case(c, **options)), 1)
            totals[2] += plain_s
            row += f" {plain_s:.2f} | {plain_s / check_s:.1f} |"
        print(row, flush=True)
    row = f"| **all** | | {totals[0]:.1f} | {totals[1]:.1f} | {totals[1] / totals[0]:.1f} |"
    if args.uncached:
        row += f" {totals[2]:.1f} | {totals[2] / totals[0]:.1f} |"
    print(row)


if __name__ == "__main__":
    main()
