"""Running registered cases safely: time limits, crashes, the progress hook, duplicate names.

Each test writes a tiny module of cases into its own directory; the layers hang, exit or
segfault on purpose. Isolated runs fork, so they stay quick.
"""

import importlib
import json
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest

from gradcheck import cases as case_registry
from gradcheck.cli import main
from gradcheck.limits import CAN_INTERRUPT
from gradcheck.results import case_record, schema
from gradcheck.runner import collect_cases, run_case
from tests.test_cli import _Terminal

#: the module (``gradcheck.check`` as an attribute is the function of that name)
check_module = importlib.import_module("gradcheck.check")

posix_only = pytest.mark.skipif(not CAN_INTERRUPT, reason="time limits need SIGALRM (POSIX)")

RISKY = '''
import os
import sys
import time

import numpy as np
import gradcheck


class Scale:
    """y = x * w; `trouble` makes forward hang, exit, or crash the interpreter."""

    def __init__(self, w, trouble=None):
        self.params, self.grads, self.param_names = [w], [np.zeros_like(w)], ["w"]
        self.trouble = trouble

    def forward(self, x):
        if self.trouble == "hang":
            spin()
        elif self.trouble == "os._exit":
            os._exit(3)
        elif self.trouble == "sys.exit":
            sys.exit(4)
        elif self.trouble == "segfault":
            import ctypes

            ctypes.string_at(0)
        self.x = x
        return x * self.params[0]

    def backward(self, dout):
        self.grads[0][...] = (dout * self.x).sum(axis=0)
        return dout * self.params[0]


def spin():
    while True:
        time.sleep(0.005)


def make(rng, trouble=None):
    return Scale(rng.standard_normal(2), trouble), (rng.standard_normal((2, 2)),)


@gradcheck.case(dims={"N": (1, 2)})
def first_fine(rng, N):
    return Scale(rng.standard_normal(2)), (rng.standard_normal((N, 2)),)


@gradcheck.case
def hangs(rng):
    return make(rng, "hang")


@gradcheck.case
def os_exits(rng):
    return make(rng, "os._exit")


@gradcheck.case
def sys_exits(rng):
    return make(rng, "sys.exit")


@gradcheck.case
def segfaults(rng):
    return make(rng, "segfault")


@gradcheck.case
def last_fine(rng):
    return make(rng)
'''


@pytest.fixture
def risky(tmp_path, monkeypatch):
    """The module ``risky`` (see RISKY) in the working directory; forgotten after the test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(case_registry, "_REGISTRY", dict(case_registry._REGISTRY))
    (tmp_path / "risky.py").write_text(RISKY)
    yield "risky"
    sys.modules.pop("risky", None)


def _rows(out):
    """{case id: status} from the table the command prints (before its first blank line)."""
    lines = out.split("\n\n")[0].splitlines()[2:]
    return {line.split()[0]: line.split()[-1] for line in lines}


def _case(name):
    (found,) = [c for c in collect_cases(["risky"]) if c.name == name]
    return found


@posix_only
def test_hanging_layer_times_out_naming_the_layer_and_line(risky):
    result = run_case(_case("hangs"), examples=3, timeout=0.2)
    assert result.status == "TIMEOUT" and not result.passed
    assert result.timeout.startswith("timed out after 0.2 s in spin (risky.py:")
    assert "called from Scale.forward (risky.py:" in result.timeout


@posix_only
def test_cli_timeout_reports_the_case_and_goes_on(risky, capsys):
    assert main(["risky", "-k", "fine", "-k", "hangs", "--timeout", "1", "--examples", "2"]) == 1
    out = capsys.readouterr().out
    assert list(_rows(out).values()) == ["ok", "TIMEOUT", "ok"]  # the next case still ran
    assert "risky::hangs timed out after 1 s in spin (risky.py:" in out
    assert "1 failed (risky::hangs)" in out


def test_sys_exit_in_a_layer_is_that_cases_error(risky, capsys):
    assert main(["risky", "-k", "sys_exits", "-k", "last_fine", "--examples", "2"]) == 1
    out = capsys.readouterr().out
    assert "risky::sys_exits at sys_exits(seed=0): SystemExit: 4 (" in out
    assert "/risky.py:" in out and " in Scale.forward)" in out
    assert out.count(" ok\n") == 1


@pytest.mark.skipif(sys.platform == "win32", reason="segfaults are tested on POSIX")
def test_isolate_turns_exits_and_crashes_into_errors_and_goes_on(risky, capsys):
    argv = ["risky", "--isolate", "-k", "exits", "-k", "segfaults", "-k", "last_fine"]
    assert main([*argv, "--examples", "2", "--rtol", "1e-4", "--json", "out.json"]) == 1
    out = capsys.readouterr().out
    assert _rows(out) == {
        "risky::os_exits": "ERROR",
        "risky::sys_exits": "ERROR",
        "risky::segfaults": "ERROR",
        "risky::last_fine": "ok",
    }
    assert "risky::os_exits: its process exited with status 3" in out
    assert "risky::segfaults: its process was killed by SIGSEGV" in out
    document = json.loads(Path("out.json").read_text())
    jsonschema.validate(document, schema())
    records = {r["name"]: r for r in document["cases"]}
    assert records["segfaults"]["status"] == "error"
    assert "SIGSEGV" in records["segfaults"]["error"]
    assert all(r["options"]["rtol"] == 1e-4 for r in records.values())


@posix_only
def test_isolated_hanging_case_times_out_with_where_it_was(risky, capsys):
    assert main(["risky", "--isolate", "--timeout", "0.3", "-k", "hangs"]) == 1
    assert "risky::hangs timed out after 0.3 s in spin (risky.py:" in capsys.readouterr().out


_REAL_CHECK_LAYER = check_module.check_layer


def _fake_check(calls):
    """A ``check`` that records its options and reports progress 3 of 10 when given a hook."""

    def check(subject, *inputs, progress=None, **options):
        calls.append(options)
        if progress is not None:
            progress(3, 10)
        return _REAL_CHECK_LAYER(subject, *inputs, **options)

    return check


def test_run_case_calls_check_with_case_options_unchanged(risky, monkeypatch):
    calls = []
    monkeypatch.setattr(check_module, "check", _fake_check(calls))
    case = _case("last_fine")
    case = case_registry.Case(case.name, case.func, case.module, options={"rtol": 0.5})
    result = run_case(case, examples=2, mode="full")
    assert result.passed
    assert calls and all(c["rtol"] == 0.5 and c["mode"] == "full" for c in calls)


def test_progress_inside_a_check_reaches_on_progress(risky):
    seen = []
    run_case(_case("last_fine"), examples=1, on_progress=lambda d, t: seen.append((d, t)))
    assert seen and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert all(0 < d <= t for d, t in seen)


def test_progress_line_moves_inside_a_check(risky, monkeypatch):
    from gradcheck import cli

    def check(subject, *inputs, progress=None, **options):
        for done in (4, 8):
            progress(done, 8)
        return _REAL_CHECK_LAYER(subject, *inputs, **options)

    monkeypatch.setattr(check_module, "check", check)
    monkeypatch.setattr(cli._Progress, "delay", 0.0)
    monkeypatch.setattr(cli._Progress, "every", 0.0)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["risky", "-k", "last_fine", "--examples", "1"]) == 0
    assert "[1/1] risky::last_fine (4/8 evaluations)" in terminal.text
    assert "(8/8 evaluations)" in terminal.text


def test_two_cases_with_one_name_are_an_error_naming_both(risky, tmp_path, capsys):
    (tmp_path / "twice.py").write_text(
        RISKY
        + textwrap.dedent(
            """
            @gradcheck.case(name="first_fine")
            def another(rng):
                return make(rng)
            """
        )
    )
    try:
        assert main(["twice"]) == 2
    finally:
        sys.modules.pop("twice", None)
    err = capsys.readouterr().err
    assert "two cases named 'first_fine' in module twice" in err
    assert "first_fine (twice.py:" in err and "another (twice.py:" in err


LAYER_IN_A_FOLDER = """
import numpy as np


class Softmax:
    params, grads = [], []

    def forward(self, x):
        self.x = x
        return x / self.missing

    def backward(self, dout):
        return dout
"""

CASES_OF_THE_FOLDER = """
import numpy as np
import gradcheck
from layers import Softmax


@gradcheck.case
def layer_raises(rng):
    return Softmax(), (rng.standard_normal((2, 3)),)


@gradcheck.case
def builder_raises(rng):
    raise RuntimeError("no layer")
"""


@pytest.fixture
def folder_cases(tmp_path, monkeypatch):
    """``common/layers.py`` with a layer whose forward raises, and ``common/folder_cases.py``."""
    monkeypatch.setattr(case_registry, "_REGISTRY", dict(case_registry._REGISTRY))
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "layers.py").write_text(LAYER_IN_A_FOLDER)
    (tmp_path / "common" / "folder_cases.py").write_text(CASES_OF_THE_FOLDER)
    monkeypatch.syspath_prepend(str(tmp_path / "common"))
    saved = sys.modules.pop("layers", None)
    yield {c.name: c for c in collect_cases(["folder_cases"])}
    sys.modules.pop("folder_cases", None)
    sys.modules.pop("layers", None)
    if saved is not None:
        sys.modules["layers"] = saved


def test_error_names_the_file_with_its_folder_and_the_method_and_the_layer(folder_cases):
    result = run_case(folder_cases["layer_raises"], examples=1)
    assert result.status == "ERROR"
    assert result.error.startswith("AttributeError: ")
    assert result.error.endswith(" (common/layers.py:10 in Softmax.forward)")
    assert result.layer == "Softmax"


def test_a_builder_that_raises_has_no_layer_and_names_the_builder(folder_cases):
    result = run_case(folder_cases["builder_raises"], examples=1)
    assert result.error.endswith(" (common/folder_cases.py:14 in builder_raises)")
    assert result.layer == "?"


TWO_BUGS = '''
import numpy as np
import gradcheck


class Mix:
    """y = a * x + b * x**2 for x (N, T). bugs: da from the first step only (wrong when
    T >= 2), db from the first two rows only (wrong when N >= 3)."""

    def __init__(self, rng, bugs):
        a, b = rng.standard_normal(1), rng.standard_normal(1)
        self.params, self.grads = [a, b], [np.zeros(1), np.zeros(1)]
        self.param_names, self.bugs = ["a", "b"], bugs

    def forward(self, x):
        self.x = x
        return self.params[0] * x + self.params[1] * x**2

    def backward(self, dout):
        x = self.x
        ga, gb = dout * x, dout * x**2
        if "a" in self.bugs:
            ga = ga[:, :1]
        if "b" in self.bugs:
            gb = gb[:2]
        self.grads[0][...] = ga.sum()
        self.grads[1][...] = gb.sum()
        return dout * (self.params[0] + 2 * self.params[1] * x)


@gradcheck.case(dims={"N": (1, 4), "T": (1, 4)})
def both(rng, N, T):
    return Mix(rng, "ab"), (rng.standard_normal((N, T)),)


@gradcheck.case(dims={"N": (1, 4), "T": (1, 4)})
def only_a(rng, N, T):
    return Mix(rng, "a"), (rng.standard_normal((N, T)),)
'''


@pytest.fixture
def two_bugs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(case_registry, "_REGISTRY", dict(case_registry._REGISTRY))
    (tmp_path / "two_bugs.py").write_text(TWO_BUGS)
    yield {c.name: c for c in collect_cases(["two_bugs"])}
    sys.modules.pop("two_bugs", None)


def test_a_quantity_failing_only_at_other_sizes_is_listed_besides_the_shrunk_report(two_bugs):
    result = run_case(two_bugs["both"], examples=30)
    shown = {e.name for e in result.report.entries if not e.passed}
    assert len(shown) == 1 and shown | set(result.also_failed) == {"a", "b"}
    ((other, at),) = result.also_failed.items()
    dims = dict(part.split("=") for part in at.split())
    assert int(dims["N"]) >= 3 if other == "b" else int(dims["T"]) >= 2
    assert f"also failed at other sizes: {other} (at {at})" in result.details()
    record = case_record(result)
    assert record["also_failed"] == {other: at}


def test_a_single_bug_lists_nothing_else(two_bugs):
    result = run_case(two_bugs["only_a"], examples=30)
    assert result.status == "FAIL" and result.also_failed == {}
    assert "also failed" not in result.details()
    assert case_record(result)["also_failed"] == {}
