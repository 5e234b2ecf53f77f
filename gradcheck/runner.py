"""Running registered cases: what ``gradcheck MODULE`` and ``pytest --gradcheck MODULE`` share.

:func:`collect_cases` imports modules (or ``.py`` files) and returns their cases;
:func:`run_case` checks one case at several drawn examples (hypothesis draws its dimensions and
shrinks a failure to the smallest that still fail) and returns a :class:`CaseResult`, never
raising for what the case's code does: a wrong gradient is FAIL, an exception ERROR, a case
past its time limit TIMEOUT. Only Ctrl-C (KeyboardInterrupt) goes through.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given
from hypothesis import seed as hypothesis_seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from gradcheck.cases import Case, registered_cases
from gradcheck.limits import CaseTimeout, is_user_code, time_limit, where_in_traceback
from gradcheck.options import Settings

__all__ = [
    "CaseResult",
    "UsageError",
    "check_output_path",
    "collect_cases",
    "import_target",
    "one_line",
    "run_case",
    "validate_options",
]


class UsageError(Exception):
    """Bad use, found before any work: an unknown module, a module without cases, a bad option."""


@dataclass
class CaseResult:
    """What checking one case at several drawn examples found.

    ``report`` is the report of the smallest failing example when the case failed, else of the
    example with the worst error. ``quantities`` maps each checked quantity (gradients, then
    contract checks) to its entry at its worst over the examples. ``error`` is the one-line
    exception when the case could not be checked at all (a builder bug, a crash), ``timeout``
    says when and where a case past its time limit was stopped; ``exception`` holds what was
    raised in this process for either. ``options`` are the checker options the case ran under.
    ``also_failed`` maps each quantity that failed at some example but passed in the reported
    one to the first example it failed at (``seed=3 N=3 T=1``): shrinking keeps one failure,
    this keeps the others in sight. ``subject`` names what the case built (its layer's class,
    its function) when a check raised before its report.
    """

    case: Case
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    examples: int = 0
    report: Any = None
    example: str | None = None
    quantities: dict[str, Any] = field(default_factory=dict)
    exception: BaseException | None = None
    error: str | None = None
    timeout: str | None = None
    seconds: float = 0.0
    subject: str | None = None
    also_failed: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status == "ok"

    @property
    def status(self) -> str:
        """``ok``, ``FAIL`` (a check failed), ``ERROR`` (could not check), ``TIMEOUT``."""
        if self.timeout is not None:
            return "TIMEOUT"
        if self.error is not None:
            return "ERROR"
        return "ok" if self.report is not None and self.report.passed else "FAIL"

    @property
    def layer(self) -> str:
        """The checked subject's name (``TimeLSTM``), also when its check raised; ``?`` when
        the builder itself raised."""
        if self.report is not None:
            return self.report.layer
        return self.subject or "?"

    @property
    def gradients(self) -> list[str]:
        """The gradients compared against differences: not those skipped (an integer input),
        not judged (a forward that is not deterministic), nor a "nothing checked" row."""
        return [n for n, e in self.quantities.items() if _compared(e)]

    @property
    def worst(self) -> float | None:
        """The worst relative error of a compared gradient; None when none was compared."""
        errors = [e.max_rel_error for e in self.quantities.values() if _compared(e)]
        errors = [x for x in errors if x is not None and math.isfinite(x)]
        return max(errors) if errors else None

    @property
    def float32(self) -> bool:
        """The report says the subject computes in float32 inside and was judged at float32
        precision (not held to float64 by ``dtype='strict'``)."""
        report = self.report
        return bool(
            report is not None
            and report.summary
            and getattr(report, "settings", {}).get("dtype") != "strict"
        )

    def details(self) -> str:
        """The text to show for a failure: the report, the exception or the time-out."""
        at = f" at {self.example}" if self.example else ""
        if self.timeout is not None:
            return f"{self.case.id} {self.timeout}{at}"
        if self.error is not None:
            return f"{self.case.id}{at}: {self.error}"
        return (
            f"{self.case.id} ({self.layer}), smallest failing example {self.example}:\n"
            f"{self.report}{self.also_failed_line()}"
        )

    def also_failed_line(self) -> str:
        """``\nalso failed at other sizes: Wh (at seed=1 N=2 T=3), dc (at ...)``, or ``""``."""
        if not self.also_failed:
            return ""
        shown = ", ".join(f"{name} (at {at})" for name, at in self.also_failed.items())
        return f"\nalso failed at other sizes: {shown}"


def _compared(entry: Any) -> bool:
    return (
        entry.kind == "gradient"
        and entry.status not in ("skipped", "not judged")
        and entry.name != "nothing checked"
    )


def _worse(new: Any, old: Any) -> bool:
    def key(e: Any) -> tuple[bool, float]:
        return (not e.passed, e.max_rel_error if e.max_rel_error is not None else -1.0)

    return old is None or key(new) > key(old)


def _from_pytest_timeout(exc: BaseException) -> bool:
    # pytest-timeout fails the test from its SIGALRM handler; hypothesis would take that for a
    # failing example, shrink, and run the hanging code again with no alarm left
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__") == "pytest_timeout":
            return True
        tb = tb.tb_next
    return False


def drawing(seed: int, examples: int, *, shrink: bool = True) -> Callable[[Any], Any]:
    """The hypothesis seed and settings of every run of a registered case (the command line,
    pytest, mutation runs), so that they all draw the same examples: ``examples`` drawn from
    ``seed``, no example database, quiet, a failure shrunk to its smallest example when
    ``shrink``."""
    phases = (Phase.explicit, Phase.generate) + ((Phase.shrink,) if shrink else ())

    def decorate(test: Any) -> Any:
        settings = hypothesis_settings(
            max_examples=examples,
            database=None,
            deadline=None,
            derandomize=False,
            print_blob=False,
            report_multiple_bugs=False,
            verbosity=Verbosity.quiet,
            phases=phases,
            suppress_health_check=list(HealthCheck),
        )
        return hypothesis_seed(seed)(settings(test))

    return decorate


def run_case(
    case: Case,
    *,
    examples: int = 10,
    seed: int = 0,
    timeout: float | None = None,
    on_example: Callable[[int], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> CaseResult:
    """Check ``case`` at ``examples`` drawn examples; a failure shrinks to its smallest dims.

    ``seed`` makes the draws repeatable; ``options`` go to :func:`gradcheck.check.check` (the
    case's own options, e.g. a looser ``rtol`` it registered, take precedence). ``timeout``:
    seconds for the whole case (None: no limit). ``on_example(n)`` is called after each checked
    example (n counts them, shrinking included); ``on_progress(done, total)`` inside a check,
    with the forward evaluations done and planned, where the checker reports them.
    """
    from gradcheck.check import GradientMismatch, check
    from gradcheck.strategies import layer_cases

    options = {**options, **case.options}
    result = CaseResult(case, seed=seed, options=dict(options))
    if on_progress is not None:
        options["progress"] = on_progress
    worst_error, current, calls, built = -1.0, None, 0, None
    failed_at: dict[str, str] = {}  # quantity -> the first example it failed at
    drawn_cases = layer_cases(case)
    started = time.perf_counter()

    @drawing(seed, examples)
    @given(st.data())
    def run(data: Any) -> None:
        nonlocal worst_error, current, calls, built
        current = None  # a builder that raises while drawing has no repr
        try:
            drawn = data.draw(drawn_cases)
            current = repr(drawn)
            layer, inputs = built = drawn
            report = check(layer, *inputs, seed=drawn.seed, context=drawn.context, **options)
        except BaseException as exc:
            if _from_pytest_timeout(exc):
                raise CaseTimeout(None, where_in_traceback(exc.__traceback__)) from exc
            raise
        calls += 1
        if on_example is not None:
            on_example(calls)
        if not report.passed:
            at = " ".join([f"seed={drawn.seed}", *(f"{k}={v}" for k, v in drawn.dims.items())])
            for entry in report.entries:
                if not entry.passed:
                    failed_at.setdefault(entry.name, at)
            raise GradientMismatch(report)
        result.examples += 1
        for entry in report.entries:
            if _worse(entry, result.quantities.get(entry.name)):
                result.quantities[entry.name] = entry
        error = report.max_rel_error if math.isfinite(report.max_rel_error) else 0.0
        if error > worst_error:
            worst_error = error
            result.report, result.example = report, current

    try:
        with time_limit(timeout):
            run()
    except GradientMismatch as exc:
        # hypothesis re-raises what the smallest failing example raised, after shrinking
        result.report, result.example = exc.report, current
        result.quantities = {e.name: e for e in exc.report.entries}
        shown = {e.name for e in exc.report.entries if not e.passed}
        result.also_failed = {n: at for n, at in failed_at.items() if n not in shown}
    except CaseTimeout as exc:
        result.exception, result.timeout, result.example = exc, str(exc), current
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a builder bug, bad use, sys.exit: reported, not a crash
        result.exception, result.error, result.example = exc, one_line(exc), current
    if result.report is None and built is not None:
        result.subject = _subject_name(*built)
    result.seconds = time.perf_counter() - started
    return result


def _subject_name(layer: Any, inputs: Any) -> str | None:
    """The name a report would give the subject: its class (or function) name."""
    from gradcheck.subjects import Convention, subject_of

    try:
        return subject_of(layer, tuple(inputs))[0].name
    except Exception:  # (binding raised: name what the user wrote, not our wrapper)
        if isinstance(layer, Convention):
            return layer.name
        return getattr(layer, "__name__", None) or type(layer).__name__


_SETTING_NAMES = frozenset(f.name for f in fields(Settings))


def validate_options(options: Mapping[str, Any], case: Case | None = None) -> None:
    """Raise :class:`UsageError` when ``options`` (with ``case``'s own on top) are settings
    the checker refuses: the same ranges and hints as the API's."""
    merged = {**options, **(case.options if case is not None else {})}
    try:
        Settings(**{k: v for k, v in merged.items() if k in _SETTING_NAMES})
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{case.id}: {exc}" if case is not None else str(exc)) from None


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
            raise UsageError(f"importing {name!r} failed: {one_line(exc)}") from None
        except Exception as exc:
            raise UsageError(f"importing {name!r} failed: {one_line(exc)}") from None
    return name


def _short_path(filename: str) -> str:
    """``common/layers.py``: the file with its directory, so a user's ``layers.py`` is not
    taken for a package named ``layers``."""
    path = Path(filename)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def one_line(exc: BaseException) -> str:
    """The exception as one line, with where the user's code raised it:
    ``TypeError: ... (common/layers.py:78 in SoftmaxWithLoss.forward)`` (the innermost frame
    of the user's code; the innermost frame when none is)."""
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} ({_short_path(exc.filename or '?')}:{exc.lineno})"
    frames, tb = [], exc.__traceback__
    while tb is not None:
        frames.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    user = [pair for pair in frames if is_user_code(pair[0])]
    where = ""
    if user or frames:
        frame, line = (user or frames)[-1]
        code = frame.f_code
        owner = frame.f_locals.get("self") if "self" in code.co_varnames else None
        name = code.co_qualname if owner is None else f"{type(owner).__name__}.{code.co_name}"
        inside = "" if name == "<module>" else f" in {name}"
        where = f" ({_short_path(code.co_filename)}:{line}{inside})"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}{where}"


def check_output_path(option: str, path: str) -> None:
    """Raise :class:`UsageError` when ``path`` (given as ``option``) cannot be written: a
    directory, in a missing directory, or not writable. Checked before any work."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{option} {path}: is a directory; give a file name")
    parent = target.resolve().parent
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: no such directory {parent}")
    if not os.access(target if target.exists() else parent, os.W_OK):
        raise UsageError(f"{option} {path}: not writable")


def collect_cases(
    targets: Sequence[str], patterns: Sequence[str] | str | None = None
) -> list[Case]:
    """Import each target and return its cases: all of them, or those whose id contains any
    of ``patterns`` (ignoring case)."""
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
    if isinstance(patterns, str):
        patterns = [patterns]
    if patterns:
        cases = [c for c in cases if any(p.lower() in c.id.lower() for p in patterns)]
        if not cases:
            shown = " ".join(f"-k {p!r}" for p in patterns)
            raise UsageError(f"{shown} matches no case; see --list")
    return cases
