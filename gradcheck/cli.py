"""``gradcheck MODULE...``: check every registered case of each module, one row per case.

Each case is checked at several drawn examples (hypothesis draws its dimensions within the
case's bounds and shrinks a failure to the smallest dimensions that still fail); a failure
prints the full report of that smallest example. Exit status: 0 all passed, 1 a case failed,
2 usage error (unknown module, bad option).

    gradcheck layers                    # every bundled layer and model
    gradcheck examples/custom_layer.py  # a file works as well as a module name
    gradcheck my_layers -k lstm --examples 20 --json out.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from hypothesis import HealthCheck, Phase, Verbosity, given
from hypothesis import seed as hypothesis_seed
from hypothesis import settings as hypothesis_settings

from gradcheck.cases import Case, registered_cases
from gradcheck.options import OPTIONS, check_options, describe

__all__ = ["CaseResult", "UsageError", "import_target", "main", "run_case"]


class UsageError(Exception):
    """Bad command-line use: an unknown module, a module without cases, a bad option."""


@dataclass
class CaseResult:
    """What checking one case at several drawn examples found.

    ``report`` is the report of the smallest failing example when the case failed, else of the
    example with the worst error. ``quantities`` maps each checked quantity (gradients, then
    contract checks) to its entry at its worst over the examples. ``exception`` is what the
    case raised when it could not be checked at all (a builder bug, bad use of the checker).
    """

    case: Case
    examples: int = 0
    report: Any = None
    example: str | None = None
    quantities: dict[str, Any] = field(default_factory=dict)
    exception: BaseException | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.exception is None and self.report is not None and self.report.passed

    @property
    def status(self) -> str:
        if self.exception is not None:
            return "ERROR"
        return "ok" if self.passed else "FAIL"

    @property
    def layer(self) -> str:
        return self.report.layer if self.report is not None else "?"

    @property
    def gradients(self) -> list[str]:
        return [n for n, e in self.quantities.items() if e.kind == "gradient"]

    @property
    def worst(self) -> float | None:
        errors = [e.max_rel_error for e in self.quantities.values() if e.kind == "gradient"]
        errors = [x for x in errors if x is not None and math.isfinite(x)]
        return max(errors) if errors else None

    def error_line(self) -> str:
        """The exception as one line: ``TypeError: ... (builder.py:12)``."""
        return _one_line(self.exception)

    def details(self) -> str:
        """The text to show for a failure: the report, or the exception."""
        head = f"{self.case.id} ({self.layer})"
        if self.exception is not None:
            example = f" at {self.example}" if self.example else ""
            return f"{head} raised{example}: {self.error_line()}"
        return f"{head}, smallest failing example {self.example}:\n{self.report}"

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` record of this case."""
        return {
            "case": self.case.id,
            "layer": self.layer,
            "passed": self.passed,
            "status": self.status,
            "examples": self.examples,
            "example": self.example,
            "max_rel_error": _finite(self.worst),
            "quantities": [
                {
                    "name": name,
                    "kind": e.kind,
                    "status": e.status,
                    "max_abs_error": _finite(e.max_abs_error),
                    "max_rel_error": _finite(e.max_rel_error),
                }
                for name, e in self.quantities.items()
            ],
            "error": self.error_line() if self.exception is not None else None,
        }


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _worse(new: Any, old: Any) -> bool:
    def key(e: Any) -> tuple[bool, float]:
        return (not e.passed, e.max_rel_error if e.max_rel_error is not None else -1.0)

    return old is None or key(new) > key(old)


def run_case(
    case: Case,
    *,
    examples: int = 10,
    seed: int = 0,
    on_example: Callable[[int], None] | None = None,
    **options: Any,
) -> CaseResult:
    """Check ``case`` at ``examples`` drawn examples; a failure shrinks to its smallest dims.

    ``seed`` makes the draws repeatable; ``options`` go to :func:`gradcheck.check_layer`
    (the case's own options, e.g. a looser ``rtol`` it registered, take precedence).
    ``on_example(n)`` is called after each checked example (n counts them, shrinking included).
    """
    from gradcheck.check import GradientMismatch, check_layer
    from gradcheck.strategies import layer_cases

    result = CaseResult(case)
    options = {**options, **case.options}
    worst_error, current, calls = -1.0, None, 0
    started = time.perf_counter()

    @hypothesis_seed(seed)
    @hypothesis_settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=False,
        print_blob=False,
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    @given(layer_cases(case))
    def check(drawn: Any) -> None:
        nonlocal worst_error, current, calls
        current = repr(drawn)
        layer, inputs = drawn
        report = check_layer(layer, *inputs, seed=drawn.seed, context=drawn.context, **options)
        calls += 1
        if on_example is not None:
            on_example(calls)
        if not report.passed:
            raise GradientMismatch(report)
        result.examples += 1
        for entry in report.entries:
            if _worse(entry, result.quantities.get(entry.name)):
                result.quantities[entry.name] = entry
        error = report.max_rel_error if math.isfinite(report.max_rel_error) else 0.0
        if error > worst_error:
            worst_error = error
            result.report, result.example = report, current
        current = None  # a builder that raises while drawing the next example has no repr

    try:
        check()
    except GradientMismatch as exc:
        # hypothesis re-raises what the smallest failing example raised, after shrinking
        result.report, result.example = exc.report, current
        result.quantities = {e.name: e for e in exc.report.entries}
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a builder bug or bad use: reported, not a crash
        result.exception, result.example = exc, current
    result.seconds = time.perf_counter() - started
    return result


@contextmanager
def _on_path(directory: str) -> Iterator[None]:
    # Import user modules as `python -m` would: from the current (or the file's) directory.
    added = directory not in sys.path
    if added:
        sys.path.insert(0, directory)
    try:
        yield
    finally:
        if added and directory in sys.path:
            sys.path.remove(directory)


def import_target(target: str) -> str:
    """Import a module name (``layers``) or a file (``examples/custom_layer.py``); return the
    module name whose cases to check. Raises :class:`UsageError` with a one-line message."""
    path = Path(target)
    if target.endswith(".py") or os.sep in target or "/" in target:
        if not path.is_file():
            raise UsageError(f"{target}: no such file; pass a module name or a path to a .py file")
        if path.suffix != ".py":
            raise UsageError(f"{target}: not a .py file")
        name, directory = path.stem, str(path.resolve().parent)
        existing = sys.modules.get(name)
        if existing is not None:
            existing_file = getattr(existing, "__file__", None)
            if existing_file is None or Path(existing_file).resolve() != path.resolve():
                raise UsageError(
                    f"{target}: a module named {name!r} is already imported from "
                    f"{existing_file}; rename the file"
                )
    else:
        if not all(part.isidentifier() for part in target.split(".")):
            raise UsageError(f"{target!r} is not a module name or a path to a .py file")
        name, directory = target, os.getcwd()
    with _on_path(directory):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
                raise UsageError(f"no module named {name!r} (looked in {directory})") from None
            raise UsageError(f"importing {name!r} failed: {_one_line(exc)}") from None
        except Exception as exc:
            raise UsageError(f"importing {name!r} failed: {_one_line(exc)}") from None
    return name


def _one_line(exc: BaseException) -> str:
    tb, where = exc.__traceback__, ""
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        where = f" ({Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno})"
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} ({Path(exc.filename or '?').name}:{exc.lineno})"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}{where}"


def collect_cases(targets: Sequence[str], pattern: str | None = None) -> list[Case]:
    """Import each target and return its cases (those whose id contains ``pattern``)."""
    cases: list[Case] = []
    for target in targets:
        name = import_target(target)
        found = registered_cases(name)
        if not found:
            raise UsageError(
                f"{target}: registers no cases; decorate a builder "
                "`(rng, **dims) -> (layer, inputs)` with @gradcheck.case"
            )
        cases += [c for c in found if c not in cases]
    if pattern is not None:
        cases = [c for c in cases if pattern.lower() in c.id.lower()]
        if not cases:
            raise UsageError(f"-k {pattern!r} matches no case; see --list")
    return cases


class _Progress:
    """A ``[3/40] case`` line, redrawn in place, on a terminal only, after the first second."""

    delay = 1.0  # seconds before the first line: short runs print only their rows

    def __init__(self, out: TextIO, total: int) -> None:
        self.out, self.total = out, total
        self.enabled = out.isatty()
        self.started = time.perf_counter()
        self.shown = False

    def show(self, index: int, case: Case, example: int = 0) -> None:
        elapsed = time.perf_counter() - self.started
        if self.enabled and elapsed > self.delay:
            at = f" example {example}" if example else ""
            self.out.write(f"\r\033[K[{index}/{self.total}] {case.id}{at} ... {elapsed:.0f}s")
            self.out.flush()
            self.shown = True

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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gradcheck",
        description="Check every case registered with @gradcheck.case in each MODULE: "
        "gradients against central differences and the layer contract.",
        epilog="Exit status: 0 all passed, 1 a case failed, 2 usage error.",
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
        dest="pattern",
        metavar="PATTERN",
        help="only the cases whose id (module::name) contains PATTERN, ignoring case "
        "(default: all)",
    )
    parser.add_argument(
        "--json",
        dest="json_path",
        metavar="PATH",
        help="also write one JSON record per case to PATH (default: none)",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the cases and their dims, check nothing"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 passed, 1 failed, 2 usage error)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage and a one-line error
        return 0 if exc.code == 0 else 2
    settings = {option.name: getattr(args, option.name) for option in OPTIONS}
    out = sys.stdout
    try:
        cases = collect_cases(args.modules, args.pattern)
    except UsageError as exc:
        print(f"gradcheck: error: {exc}", file=sys.stderr)
        return 2

    if args.json_path and not Path(args.json_path).resolve().parent.is_dir():
        print(f"gradcheck: error: --json {args.json_path}: no such directory", file=sys.stderr)
        return 2
    width = max(len("case"), *(len(c.id) for c in cases))
    if args.list:
        for c in cases:
            bounds = " ".join(f"{k}={_spec(v)}" for k, v in c.dims.items())
            options = " ".join(f"{k}={v}" for k, v in c.options.items())
            print(_row([c.id, bounds, options], [width, 30]), file=out)
        return 0

    print(f"gradcheck: {_plural(len(cases), 'case')}; {describe(settings)}", file=out)
    widths = [width, 19, 40, 9]
    print(_row(["case", "layer", "checked", "worst err", "status"], widths), file=out)
    progress = _Progress(out, len(cases))
    results = []
    started = time.perf_counter()
    try:
        for index, c in enumerate(cases, 1):
            progress.show(index, c)
            result = run_case(
                c,
                examples=settings["examples"],
                seed=settings["seed"],
                on_example=lambda n, i=index, c=c: progress.show(i, c, n),
                **check_options(settings),
            )
            results.append(result)
            progress.clear()
            worst = "" if result.worst is None else f"{result.worst:.1e}"
            print(
                _row(
                    [
                        c.id,
                        result.layer,
                        _names(result.gradients, widths[2]),
                        worst.rjust(widths[3]),
                        result.status,
                    ],
                    widths,
                ),
                file=out,
                flush=True,
            )
    except KeyboardInterrupt:
        progress.clear()
        print("gradcheck: interrupted", file=sys.stderr)
        return 130
    failed = [r for r in results if not r.passed]
    for r in failed:
        print(f"\n{'_' * 20} {r.status} {r.case.id} {'_' * 20}", file=out)
        print(r.details(), file=out)
    seconds = time.perf_counter() - started
    summary = f"{_plural(len(results), 'case')}: {len(results) - len(failed)} passed"
    if failed:
        summary += f", {len(failed)} failed ({', '.join(r.case.id for r in failed)})"
    print(f"\n{summary} in {seconds:.1f}s", file=out)
    if args.json_path:
        records = [r.to_dict() for r in results]
        try:
            Path(args.json_path).write_text(json.dumps(records, indent=2) + "\n")
        except OSError as exc:
            print(f"gradcheck: error: --json {args.json_path}: {exc.strerror}", file=sys.stderr)
            return 2
    return 1 if failed else 0


def _spec(spec: Any) -> str:
    if isinstance(spec, tuple):
        return f"{spec[0]}..{spec[1]}"
    return str(spec)
