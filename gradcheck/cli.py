"""``gradcheck MODULE...``: check every registered case of each module, one row per case.

Each case is checked at several drawn examples (hypothesis draws its dimensions within the
case's bounds and shrinks a failure to the smallest dimensions that still fail); a failure
prints the full report of that smallest example. Exit status: 0 all passed, 1 a case failed
(or raised, or timed out), 2 usage error (unknown module, bad option), 130 interrupted.

    gradcheck layers                    # every bundled layer and model
    gradcheck examples/custom_layer.py  # a file works as well as a module name
    gradcheck my_layers -k lstm --examples 20 --json out.json
    gradcheck their_layers --timeout 60 --isolate   # code that may hang or crash
    gradcheck my_layers --html report.html   # one page of the run, with heatmaps
    gradcheck my_layers --mutate --min-score 0.9   # does the check catch injected bugs?
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from gradcheck.cases import Case
from gradcheck.limits import CAN_INTERRUPT, run_isolated
from gradcheck.mutation import parse_min_score, run_mutation
from gradcheck.options import OPTIONS, check_options, describe
from gradcheck.render import write_html
from gradcheck.results import document
from gradcheck.runner import (
    CaseResult,
    UsageError,
    check_output_path,
    collect_cases,
    import_target,
    run_case,
    validate_options,
)

__all__ = ["CaseResult", "UsageError", "collect_cases", "import_target", "main", "run_case"]


class _Progress:
    """A ``[3/40] case example 2 (120/400 evaluations)`` line, redrawn in place, on a terminal
    only, after the first second."""

    delay = 1.0  # seconds before the first line: short runs print only their rows
    every = 0.1  # seconds between redraws from inside a check

    def __init__(self, out: TextIO, total: int) -> None:
        self.out, self.total = out, total
        self.enabled = out.isatty()
        self.started = time.perf_counter()
        self.shown = False
        self.index, self.case, self.example, self.inside = 0, None, 0, ""
        self.drawn = 0.0

    def start(self, index: int, case: Case) -> None:
        self.index, self.case, self.example, self.inside = index, case, 0, ""
        self._draw()

    def on_example(self, n: int) -> None:
        self.example, self.inside = n, ""
        self._draw()

    def on_progress(self, done: int, total: int) -> None:
        self.inside = f" ({done}/{total} evaluations)"
        if time.perf_counter() - self.drawn > self.every:
            self._draw()

    def _draw(self) -> None:
        elapsed = time.perf_counter() - self.started
        if self.enabled and self.case is not None and elapsed > self.delay:
            at = f" example {self.example}" if self.example else ""
            self.out.write(
                f"\r\033[K[{self.index}/{self.total}] {self.case.id}{at}{self.inside}"
                f" ... {elapsed:.0f}s"
            )
            self.out.flush()
            self.shown, self.drawn = True, time.perf_counter()

    def clear(self) -> None:
        if self.shown:
            self.out.write("\r\033[K")
            self.shown = False


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _names(names: Sequence[str], width: int) -> str:
    """``input[0], W, b``; when too long, the count first: ``13: encoder.embed.W, ...``."""
    text = ", ".join(names)
    if len(text) <= width:
        return text
    text = f"{len(names)}: {text}"
    return text[: width - 3] + "..."


def _row(columns: Sequence[str], widths: Sequence[int]) -> str:
    cells = [c.ljust(w) for c, w in zip(columns[:-1], widths, strict=False)]
    return "  ".join([*cells, columns[-1]]).rstrip()


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; try --timeout 60") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text} must be a number of seconds > 0; try 60")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gradcheck",
        description="Check every case registered with @gradcheck.case in each MODULE: "
        "gradients against central differences and the layer contract.",
        epilog="Exit status: 0 all passed, 1 a case failed, raised or timed out, "
        "2 usage error, 130 interrupted (Ctrl-C).",
    )
    parser.add_argument(
        "modules",
        nargs="+",
        metavar="MODULE",
        help="a module name (layers, my_pkg.my_layers) or a path to a .py file",
    )
    for option in OPTIONS:
        parser.add_argument(f"--{option.name}", **option.argparse_kwargs(option.name))
    parser.add_argument(
        "-k",
        dest="patterns",
        action="append",
        metavar="PATTERN",
        help="only the cases whose id (module::name) contains PATTERN, ignoring case; "
        "repeat for any of several (default: all)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help="stop a case after SECONDS, report where it was, go on with the next "
        "(default: no limit)",
    )
    parser.add_argument(
        "--isolate",
        action="store_true",
        help="run each case in a process of its own: a crash or exit is that case's ERROR "
        "(default: off)",
    )
    parser.add_argument(
        "--json",
        dest="json_path",
        metavar="PATH",
        help="also write the results to PATH, as docs/cli-and-pytest.md describes (default: none)",
    )
    parser.add_argument(
        "--html",
        dest="html_path",
        metavar="PATH",
        help="also write one self-contained HTML page of the run to PATH (default: none)",
    )
    parser.add_argument(
        "--mutate",
        action="store_true",
        help="score each case's check by the injected bugs it catches, instead of checking "
        "(default: off)",
    )
    parser.add_argument(
        "--min-score",
        type=parse_min_score,
        metavar="SCORE",
        help="with --mutate: exit 1 when a case catches fewer than this share of the "
        "mutants, 0..1 (default: 1.0)",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the cases and their dims, check nothing"
    )
    return parser


def _cache_dir() -> Path:
    """Where hypothesis may keep its files for the command line: a user cache directory."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "gradcheck" / "hypothesis"


@contextmanager
def _hypothesis_home() -> Iterator[None]:
    # hypothesis keeps files (a cache of the constants in user code) under ./.hypothesis
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(_cache_dir())
    try:
        yield
    finally:
        set_hypothesis_home_dir(None)


def _prepare(args: argparse.Namespace, settings: dict[str, Any]) -> list[Case]:
    """Every check that can fail before any work: options, the JSON path, the cases."""
    validate_options(check_options(settings))
    if args.timeout is not None and not (CAN_INTERRUPT or args.isolate):
        raise UsageError("--timeout needs SIGALRM (POSIX) to stop a case; add --isolate")
    if args.min_score is not None and not args.mutate:
        raise UsageError("--min-score needs --mutate; add --mutate or leave --min-score out")
    if args.mutate and (args.html_path or args.isolate or args.timeout is not None):
        given = "--html" if args.html_path else "--isolate" if args.isolate else "--timeout"
        raise UsageError(f"{given} does not apply to --mutate; leave it out")
    if args.json_path:
        check_output_path("--json", args.json_path)
    if args.html_path:
        check_output_path("--html", args.html_path)
    cases = collect_cases(args.modules, args.patterns)
    for c in cases:
        validate_options(check_options(settings), c)
    return cases


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 passed, 1 failed, 2 usage error,
    130 interrupted)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage and a one-line error
        return 0 if exc.code == 0 else 2
    settings = {option.name: getattr(args, option.name) for option in OPTIONS}
    try:
        cases = _prepare(args, settings)
    except UsageError as exc:
        print(f"gradcheck: error: {exc}", file=sys.stderr)
        return 2
    out = sys.stdout
    width = max(len("case"), *(len(c.id) for c in cases))
    if args.list:
        for c in cases:
            bounds = " ".join(f"{k}={_spec(v)}" for k, v in c.dims.items())
            options = " ".join(f"{k}={v}" for k, v in c.options.items())
            print(_row([c.id, bounds, options], [width, 30]), file=out)
        return 0
    if args.mutate:
        try:
            with _hypothesis_home():
                return run_mutation(
                    cases,
                    examples=settings["examples"],
                    seed=settings["seed"],
                    min_score=1.0 if args.min_score is None else args.min_score,
                    json_path=args.json_path,
                    out=out,
                    **check_options(settings),
                )
        except OSError as exc:  # writing the JSON at the end
            print(f"gradcheck: error: --json {args.json_path}: {exc.strerror}", file=sys.stderr)
            return 2

    extra = (f" timeout={args.timeout:g}s" if args.timeout else "") + (
        " isolate" if args.isolate else ""
    )
    print(f"gradcheck: {_plural(len(cases), 'case')}; {describe(settings)}{extra}", file=out)
    widths = [width, 19, 40, 9]
    print(_row(["case", "layer", "checked", "worst err", "status"], widths), file=out)
    progress = _Progress(out, len(cases))
    results: list[CaseResult] = []
    running: Case | None = None
    interrupted = False
    started = time.perf_counter()
    with _hypothesis_home():
        try:
            for index, running in enumerate(cases, 1):
                progress.start(index, running)
                result = _run(args, settings, running, progress)
                results.append(result)
                running = None
                progress.clear()
                print(_result_row(result, widths), file=out, flush=True)
        except KeyboardInterrupt:
            progress.clear()
            interrupted = True
    seconds = time.perf_counter() - started
    failed = [r for r in results if not r.passed]
    for r in failed:
        print(f"\n{'_' * 20} {r.status} {r.case.id} {'_' * 20}", file=out)
        print(r.details(), file=out)
    summary = f"{_plural(len(results), 'case')}: {len(results) - len(failed)} passed"
    if failed:
        summary += f", {len(failed)} failed ({', '.join(r.case.id for r in failed)})"
    print(f"\n{summary} in {seconds:.1f}s", file=out, flush=True)
    if interrupted:
        during = f" in {running.id}" if running is not None else ""
        left = _plural(len(cases) - len(results), "case")
        print(f"gradcheck: interrupted{during}; {left} not checked", file=sys.stderr)
    if args.json_path:
        run_settings = {**settings, "timeout": args.timeout, "isolate": args.isolate}
        run_settings["patterns"] = list(args.patterns or [])
        records = document(results, settings=run_settings, seconds=seconds, interrupted=interrupted)
        try:
            Path(args.json_path).write_text(json.dumps(records, indent=2) + "\n")
        except OSError as exc:
            print(f"gradcheck: error: --json {args.json_path}: {exc.strerror}", file=sys.stderr)
            return 2
    if args.html_path:
        try:
            shown = f"{describe(settings)}{extra}"
            write_html(results, args.html_path, settings=shown, total=len(cases))
        except OSError as exc:
            print(f"gradcheck: error: --html {args.html_path}: {exc.strerror}", file=sys.stderr)
            return 2
    if interrupted:
        return 130
    return 1 if failed else 0


def _run(
    args: argparse.Namespace, settings: dict[str, Any], case: Case, progress: _Progress
) -> CaseResult:
    run = run_case if not args.isolate else lambda c, **kw: run_isolated(args.modules, c, **kw)
    return run(
        case,
        examples=settings["examples"],
        seed=settings["seed"],
        timeout=args.timeout,
        on_example=progress.on_example,
        on_progress=progress.on_progress,
        **check_options(settings),
    )


def _result_row(result: CaseResult, widths: Sequence[int]) -> str:
    worst = "" if result.worst is None else f"{result.worst:.1e}"
    columns = [
        result.case.id,
        result.layer,
        _names(result.gradients, widths[2]),
        worst.rjust(widths[3]),
        "ok (float32)" if result.passed and result.float32 else result.status,
    ]
    return _row(columns, widths)


def _spec(spec: Any) -> str:
    if isinstance(spec, tuple):
        return f"{spec[0]}..{spec[1]}"
    return str(spec)
