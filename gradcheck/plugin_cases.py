"""``pytest --gradcheck MODULE``: each case a module registers, collected and run as a test.

A :class:`CaseModule` collects a module's cases; each :class:`CaseItem` checks its case at
``--gradcheck-examples`` drawn examples (or scores it with ``--gradcheck-mutate``), fails with
the report (or a few lines of the user's frames when the case raised), and leaves records in
``user_properties`` for the terminal summary and the HTML page, which survive pytest-xdist.
:mod:`gradcheck.plugin` registers the options and hooks.
"""

from __future__ import annotations

import inspect
import math
import re
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest

from gradcheck.cases import Case, registered_cases
from gradcheck.limits import is_user_code
from gradcheck.mutation import MutationScoreTooLow, assert_mutation_score
from gradcheck.options import check_options
from gradcheck.render import case_record
from gradcheck.runner import CaseResult, run_case

__all__ = ["HTML_PROPERTY", "PROPERTY", "SETTINGS", "CaseItem", "CaseModule", "record"]

#: The session's settings (the ``--gradcheck-*`` options), in ``config.stash``.
SETTINGS = pytest.StashKey[dict]()
#: ``user_properties`` keys of a check's record (terminal summary) and a case's page record.
PROPERTY = "gradcheck"
HTML_PROPERTY = "gradcheck-html"


def record(report: Any, where: str) -> dict[str, Any]:
    gradients = report.gradients
    worst_entry = max(
        (e for e in gradients if e.max_rel_error is not None and math.isfinite(e.max_rel_error)),
        key=lambda e: e.max_rel_error,
        default=None,
    )
    return {
        "layer": report.layer,
        "quantities": len(report.entries),
        "gradients": len(gradients),
        "worst": None if worst_entry is None else float(worst_entry.max_rel_error),
        "worst_name": None if worst_entry is None else worst_entry.name,
        "passed": bool(report.passed),
        "where": where,
    }


class CaseModule(pytest.Collector):
    """The cases one ``--gradcheck MODULE`` registers."""

    def collect(self) -> list[CaseItem]:
        return [CaseItem.from_case(self, case) for case in registered_cases(self.name)]


class CaseItem(pytest.Item):
    """One registered case, checked at ``--gradcheck-examples`` drawn examples."""

    def __init__(self, *, case: Case, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.result: CaseResult | None = None
        self.extra_keyword_matches.update({case.module, case.name, "gradcheck"})

    @classmethod
    def from_case(cls, parent: CaseModule, case: Case) -> CaseItem:
        path = _source_file(case) or parent.path
        try:
            relative = path.relative_to(parent.config.rootpath).as_posix()
        except ValueError:
            relative = path.as_posix()
        return cls.from_parent(
            parent, name=case.name, path=path, nodeid=f"{relative}::{case.name}", case=case
        )

    def runtest(self) -> None:
        from gradcheck.check import GradientMismatch

        settings = self.config.stash[SETTINGS]
        if self.config.getoption("gradcheck_mutate"):
            self._mutate(settings)
            return
        self.result = result = run_case(
            self.case,
            examples=settings["examples"],
            seed=settings["seed"],
            **check_options(settings),
        )
        if result.report is not None:
            self.user_properties.append((PROPERTY, record(result.report, self.nodeid)))
        if self.config.getoption("gradcheck_html"):
            self.user_properties.append((HTML_PROPERTY, case_record(result)))
        if result.timeout is not None:
            limit = _pytest_timeout_limit(result.exception)
            text = result.timeout.replace("timed out", limit, 1)
            pytest.fail(f"{self.case.id}: {text}", pytrace=False)
        if result.exception is not None:
            raise result.exception
        if result.error is not None:
            pytest.fail(f"{self.case.id}: {result.error}", pytrace=False)
        if not result.passed:
            raise GradientMismatch(result.report)

    def _mutate(self, settings: dict[str, Any]) -> None:
        min_score = self.config.getoption("gradcheck_min_score")
        try:
            assert_mutation_score(
                self.case,
                min_score=1.0 if min_score is None else min_score,
                examples=settings["examples"],
                seed=settings["seed"],
                **check_options(settings),
            )
        except MutationScoreTooLow as exc:
            pytest.fail(f"{self.case.id}: {exc}", pytrace=False)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> Any:
        from gradcheck.check import GradientMismatch

        exc = excinfo.value
        if isinstance(exc, GradientMismatch):
            return (
                f"{self.case.id}: smallest failing example {self.result.example}\n{exc}"
                f"{self.result.also_failed_line()}"
            )
        full = self.config.getoption("tbstyle", "auto") in ("long", "native")
        if self.result is not None and exc is self.result.exception and not full:
            return _short_failure(self.case, self.result.example, exc)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        try:
            line = inspect.getsourcelines(self.case.func)[1] - 1
        except (OSError, TypeError):
            line = None
        return self.path, line, self.case.id


def _pytest_timeout_limit(exc: BaseException | None) -> str:
    """``timed out after 60 s``, from pytest-timeout's ``Timeout (>60.0s)`` message."""
    cause = getattr(exc, "__cause__", None)
    found = re.search(r">([0-9.e+-]+)s", str(cause)) if cause is not None else None
    return f"timed out after {float(found.group(1)):g} s" if found else "timed out"


def _short_failure(case: Case, example: str | None, exc: BaseException) -> str:
    """The user's frames (the innermost three) and the message: what a raising builder or
    layer needs, without pytest's, pluggy's, hypothesis' and gradcheck's frames around it."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        if is_user_code(tb.tb_frame):
            code = tb.tb_frame.f_code
            frames.append(traceback.FrameSummary(code.co_filename, tb.tb_lineno, code.co_name))
        tb = tb.tb_next
    at = f" at {example}" if example else ""
    message = str(exc).strip()
    message = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    lines = [f"{case.id} raised {message}{at}\n"]
    lines += traceback.format_list(frames[-3:])
    lines.append("(the whole traceback: --tb=long)")
    return "".join(lines)


def module_file(name: str) -> Path | None:
    file = getattr(sys.modules.get(name), "__file__", None)
    return Path(file).resolve() if file else None


def _source_file(case: Case) -> Path | None:
    try:
        return Path(inspect.getsourcefile(case.func) or "").resolve()
    except TypeError:
        return None
