"""pytest plugin (entry point ``pytest11``): check layers in the tests you already have.

- the ``gradcheck`` fixture: ``gradcheck(layer, *inputs, **options)`` checks a layer with the
  session's settings and the test's marker, and fails the test with the report text;
- the marker ``@pytest.mark.gradcheck(rtol=1e-4, ...)``: :func:`gradcheck.check_layer` options
  for the fixture in one test (or class, or module: ``pytestmark``);
- options ``--gradcheck-mode``, ``--gradcheck-seed``, ``--gradcheck-examples``, ... (the same
  table as the command line's, :mod:`gradcheck.options`), kept in ``config.stash``;
- ``pytest --gradcheck MODULE``: each case MODULE registers with ``@gradcheck.case`` runs as a
  test (:mod:`gradcheck.plugin_cases`) at several drawn examples, like ``gradcheck MODULE``
  (with no test paths given, only those cases run); ``--gradcheck-html PATH`` also writes
  one HTML page of them, ``--gradcheck-mutate`` scores each case's check by the injected bugs
  it catches instead;
- a report header with the settings and a terminal summary of what was checked, only in runs
  that use gradcheck (an option given, or a test using the fixture, the marker or a case):
  installing the package changes nothing elsewhere.

Per-check records travel in ``item.user_properties``, so the summary is right under
pytest-xdist too. A case that raises fails with the user's frames and the message (the whole
traceback with ``--tb=long``); time limits come from pytest-timeout (``--timeout S``), crashes
are contained by pytest-xdist (``-n auto`` restarts a worker that died).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from gradcheck.cases import registered_cases
from gradcheck.mutation import parse_min_score
from gradcheck.options import OPTIONS, check_options, describe
from gradcheck.plugin_cases import (
    HTML_PROPERTY,
    PROPERTY,
    SETTINGS,
    CaseItem,
    CaseModule,
    module_file,
    record,
)
from gradcheck.render import write_html
from gradcheck.runner import (
    UsageError,
    check_output_path,
    import_target,
    validate_options,
)

__all__ = ["CaseItem", "CaseModule", "LayerChecker"]

_RECORDS = pytest.StashKey[list]()
_MODULES = pytest.StashKey[list]()
_GIVEN = pytest.StashKey[bool]()  # a gradcheck option was given: the header shows at once


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradcheck", "gradient checks of layers (gradcheck)")
    group.addoption(
        "--gradcheck",
        action="append",
        default=[],
        dest="gradcheck_modules",
        metavar="MODULE",
        help="run each case MODULE (a module name or a .py file) registers with "
        "@gradcheck.case as a test; with no test paths given, only those (default: none)",
    )
    for option in OPTIONS:
        kwargs = option.argparse_kwargs(f"gradcheck_{option.name}")
        group.addoption(f"--gradcheck-{option.name}", **{**kwargs, "default": None})
    group.addoption(
        "--gradcheck-html",
        dest="gradcheck_html",
        metavar="PATH",
        help="also write one self-contained HTML page of the --gradcheck cases to PATH "
        "(default: none)",
    )
    group.addoption(
        "--gradcheck-mutate",
        action="store_true",
        dest="gradcheck_mutate",
        help="score each --gradcheck case's check by the injected bugs it catches instead of "
        "checking it (default: off)",
    )
    group.addoption(
        "--gradcheck-min-score",
        type=parse_min_score,
        dest="gradcheck_min_score",
        metavar="SCORE",
        help="with --gradcheck-mutate: the share of mutants (0..1) each case must catch "
        "(default: 1.0)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "gradcheck(**options): gradcheck.check_layer options (rtol=, atol=, eps=, mode=, "
        "seed=, ...) for the gradcheck fixture in this test, e.g. gradcheck(rtol=1e-4)",
    )
    given = {o.name: config.getoption(f"gradcheck_{o.name}") for o in OPTIONS}
    settings = {o.name: o.default if given[o.name] is None else given[o.name] for o in OPTIONS}
    config.stash[SETTINGS] = settings
    config.stash[_RECORDS] = []
    config.pluginmanager.register(_Records(config), "gradcheck-records")
    targets = config.getoption("gradcheck_modules")
    config.stash[_GIVEN] = bool(targets) or any(v is not None for v in given.values())
    try:
        validate_options(check_options(settings))
        if config.getoption("gradcheck_html"):
            check_output_path("--gradcheck-html", config.getoption("gradcheck_html"))
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    mutate = config.getoption("gradcheck_mutate")
    if config.getoption("gradcheck_min_score") is not None and not mutate:
        raise pytest.UsageError(
            "--gradcheck-min-score needs --gradcheck-mutate; add it or leave the score out"
        )
    if mutate and config.getoption("gradcheck_html"):
        raise pytest.UsageError(
            "--gradcheck-html does not apply to --gradcheck-mutate; leave it out"
        )
    modules = []
    for target in targets:
        try:
            name = import_target(target)
            if not registered_cases(name):
                raise UsageError(
                    "registers no cases; decorate a builder "
                    "`(rng, **dims) -> (layer, inputs)` with @gradcheck.case"
                )
            for case in registered_cases(name):
                validate_options(check_options(settings), case)
        except UsageError as exc:
            raise pytest.UsageError(f"--gradcheck {target}: {exc}") from None
        modules.append(name)
    config.stash[_MODULES] = modules


def _header(config: pytest.Config) -> str:
    return f"gradcheck: {describe(config.stash[SETTINGS])}"


def pytest_report_header(config: pytest.Config) -> str | None:
    return _header(config) if config.stash[_GIVEN] else None


def _uses_gradcheck(item: pytest.Item) -> bool:
    return (
        isinstance(item, CaseItem)
        or "gradcheck" in getattr(item, "fixturenames", ())
        or item.get_closest_marker("gradcheck") is not None
    )


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> str | None:
    # the header's line, for a run that uses the fixture or marker without any option
    if not config.stash[_GIVEN] and any(_uses_gradcheck(item) for item in items):
        return _header(config)
    return None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # `pytest --gradcheck MODULE` alone runs MODULE's cases, not the default test paths.
    if config.stash.get(_MODULES, None) and config.args_source != pytest.Config.ArgsSource.ARGS:
        return True
    return None


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselect
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    for module in config.stash[_MODULES]:
        collector = CaseModule.from_parent(
            session, name=module, nodeid=module, path=module_file(module) or session.path
        )
        # the hooks pytest's own collection runs, so counts and collection errors show as usual
        session.ihook.pytest_collectstart(collector=collector)
        report = session.ihook.pytest_make_collect_report(collector=collector)
        session.ihook.pytest_collectreport(report=report)
        if report.passed:
            known = {item.nodeid for item in items}
            items += [x for x in report.result if isinstance(x, CaseItem) and x.nodeid not in known]


class LayerChecker:
    """The ``gradcheck`` fixture: check layers with this session's and this test's options.

    ``gradcheck(layer, *inputs, **options)`` fails the test with the report text (a
    ``GradientMismatch``) when a gradient or contract check fails, and returns the report.
    ``gradcheck.check(...)`` returns the report without failing. ``gradcheck.options`` are the
    :func:`gradcheck.check_layer` keywords in force: the ``--gradcheck-*`` options, then the
    ``@pytest.mark.gradcheck(...)`` markers (closest wins), then the call's own keywords.
    """

    def __init__(self, node: pytest.Item, options: dict[str, Any]) -> None:
        self._node = node
        self.options = options

    def __repr__(self) -> str:
        return "gradcheck(" + ", ".join(f"{k}={v!r}" for k, v in self.options.items()) + ")"

    def check(self, layer: Any, *inputs: Any, **options: Any) -> Any:
        """Check ``layer`` at ``inputs``; return the report, passed or not."""
        __tracebackhide__ = True
        from gradcheck.check import check

        options = {**self.options, **options}
        options.setdefault("context", self._node.nodeid)
        report = check(layer, *inputs, **options)
        self._node.user_properties.append((PROPERTY, record(report, self._node.nodeid)))
        return report

    def __call__(self, layer: Any, *inputs: Any, **options: Any) -> Any:
        """Check ``layer`` at ``inputs``; fail the test with the report text if it fails."""
        __tracebackhide__ = True
        from gradcheck.check import GradientMismatch

        report = self.check(layer, *inputs, **options)
        if not report.passed:
            raise GradientMismatch(report)
        return report


@pytest.fixture
def gradcheck(request: pytest.FixtureRequest) -> LayerChecker:
    """Check a layer: ``gradcheck(layer, x)`` fails the test with the report when a gradient
    is wrong. Options: ``--gradcheck-*``, then ``@pytest.mark.gradcheck(rtol=...)``."""
    settings = request.config.stash[SETTINGS]
    options = {"seed": settings["seed"], **check_options(settings)}
    for mark in reversed(list(request.node.iter_markers("gradcheck"))):  # closest last: wins
        if mark.args:
            raise TypeError(
                f"@pytest.mark.gradcheck{mark.args!r}: takes keywords only, "
                "e.g. @pytest.mark.gradcheck(rtol=1e-4)"
            )
        options.update(mark.kwargs)
    return LayerChecker(request.node, options)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class _Records:
    """Collects the per-check records of finished tests (from workers too, under xdist) and
    writes the ``--gradcheck-html`` page at the end of the session."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.pages: list[dict[str, Any]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.config.stash[_RECORDS].extend(
                value for key, value in report.user_properties if key == PROPERTY
            )
            self.pages += [value for key, value in report.user_properties if key == HTML_PROPERTY]

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        path = self.config.getoption("gradcheck_html")
        if not path or hasattr(self.config, "workerinput"):  # the controller writes the page
            return
        total = sum(isinstance(item, CaseItem) for item in session.items) or None
        try:
            write_html(
                self.pages, path, settings=describe(self.config.stash[SETTINGS]), total=total
            )
        except OSError as exc:
            line = f"gradcheck: error: --gradcheck-html {path}: {exc.strerror}"
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(line, red=True)
            else:
                print(line, file=sys.stderr)
            session.exitstatus = pytest.ExitCode.USAGE_ERROR


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    records = config.stash.get(_RECORDS, [])
    if not records:
        return
    layers = sorted({r["layer"] for r in records})
    quantities = sum(r["quantities"] for r in records)
    failed = sum(not r["passed"] for r in records)
    worst = max(
        (r for r in records if r["worst"] is not None), key=lambda r: r["worst"], default=None
    )
    terminalreporter.section("gradcheck")
    shown = ", ".join(layers[:8]) + (f", ... (+{len(layers) - 8})" if len(layers) > 8 else "")
    terminalreporter.write_line(
        f"{_plural(len(records), 'check')} of {_plural(len(layers), 'layer')} ({shown}): "
        f"{quantities} quantities (gradients and contract checks), {failed} failed"
    )
    if worst is not None:
        terminalreporter.write_line(
            f"worst relative error {worst['worst']:.1e}: {worst['layer']} {worst['worst_name']} "
            f"in {worst['where']}"
        )
    terminalreporter.write_line(_header(config))
