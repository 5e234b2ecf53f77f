"""The pytest plugin, run in inner pytest sessions (``pytester``) on tiny layers.

Fixture and marker, outcome counts, the failure message, the header and summary, the
``--gradcheck-*`` options and ``pytest --gradcheck MODULE`` collection.
"""

import tomllib
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import pytest

from gradcheck import cases as case_registry

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent

LAYERS = '''
import numpy as np
import gradcheck


class Scale:
    """y = x * w, w broadcast over the batch; dw multiplied by `factor` (1.0: right)."""

    def __init__(self, w, factor=1.0):
        self.params, self.grads, self.param_names = [w], [np.zeros_like(w)], ["w"]
        self.factor = factor

    def forward(self, x):
        self.x = x
        return x * self.params[0]

    def backward(self, dout):
        self.grads[0][...] = self.factor * (dout * self.x).sum(axis=0)
        return dout * self.params[0]


def scale_and_input(factor=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return Scale(rng.standard_normal(3), factor), rng.standard_normal((2, 3))


@gradcheck.case(dims={"N": (1, 3), "D": (1, 3)})
def scale(rng, N, D):
    return Scale(rng.standard_normal(D)), (rng.standard_normal((N, D)),)


@gradcheck.case(dims={"N": (1, 3), "D": (1, 3)})
def scale_wrong(rng, N, D):
    return Scale(rng.standard_normal(D), factor=-1.0), (rng.standard_normal((N, D)),)
'''


@pytest.fixture
def pt(pytester, monkeypatch):
    """A pytester with the tiny layers as module ``tiny_layers``; the registry is restored."""
    monkeypatch.setattr(case_registry, "_REGISTRY", dict(case_registry._REGISTRY))
    pytester.makepyfile(tiny_layers=LAYERS)
    pytester.syspathinsert()
    return pytester


TESTS = """
import pytest
from tiny_layers import scale_and_input


def test_right(gradcheck):
    layer, x = scale_and_input()
    report = gradcheck(layer, x)
    assert report.passed


def test_wrong(gradcheck):
    layer, x = scale_and_input(factor=1.5)
    gradcheck(layer, x)


def test_check_returns_a_failing_report_without_raising(gradcheck):
    layer, x = scale_and_input(factor=1.5)
    assert not gradcheck.check(layer, x).passed


@pytest.mark.gradcheck("positional")
def test_bad_marker(gradcheck):
    pass
"""


def test_fixture_outcomes_count_pass_fail_and_error(pt):
    pt.makepyfile(test_layers=TESTS)
    result = pt.runpytest()
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at setup of test_bad_marker*", "*keywords only*"])


def test_failing_check_shows_report_naming_layer_and_gradient_not_internals(pt):
    pt.makepyfile(test_layers=TESTS)
    result = pt.runpytest("-k", "test_wrong")
    result.assert_outcomes(failed=1, deselected=3)
    out = result.stdout.str()
    failure = out[out.index("test_wrong") :]
    assert "GradientMismatch" in failure
    assert "Scale" in failure
    assert "w (3,)" in failure
    assert "gradcheck/check.py" not in failure  # the checker's frames are hidden
    assert "gradcheck/plugin.py" not in failure
    assert "def check_layer" not in failure


def test_marker_overrides_tolerances_per_test(pt):
    pt.makepyfile(
        test_marker="""
        import pytest
        from tiny_layers import scale_and_input

        def test_default_tolerance_fails(gradcheck):
            gradcheck(*scale_and_input(factor=1.001))

        @pytest.mark.gradcheck(rtol=0.01)
        def test_loose_marker_passes(gradcheck):
            assert gradcheck.options["rtol"] == 0.01
            gradcheck(*scale_and_input(factor=1.001))

        @pytest.mark.gradcheck(rtol=0.01)
        class TestClass:
            @pytest.mark.gradcheck(rtol=1e-9)
            def test_closest_marker_wins(self, gradcheck):
                assert gradcheck.options["rtol"] == 1e-9
                gradcheck(*scale_and_input(factor=1.001))

        @pytest.mark.gradcheck(rtol=0.01)
        def test_call_keyword_beats_marker(gradcheck):
            gradcheck(*scale_and_input(factor=1.001), rtol=1e-9)
        """
    )
    result = pt.runpytest()
    result.assert_outcomes(passed=1, failed=3)
    assert "FAILED test_marker.py::test_default_tolerance_fails" in result.stdout.str()
    assert "FAILED test_marker.py::TestClass::test_closest_marker_wins" in result.stdout.str()
    assert "FAILED test_marker.py::test_call_keyword_beats_marker" in result.stdout.str()


def test_command_line_options_reach_the_fixture(pt):
    pt.makepyfile(
        test_opts="""
        def test_options(gradcheck):
            assert gradcheck.options["seed"] == 7
            assert gradcheck.options["mode"] == "full"
            assert gradcheck.options["rtol"] == 0.5
        """
    )
    result = pt.runpytest("--gradcheck-seed=7", "--gradcheck-mode=full", "--gradcheck-rtol=0.5")
    result.assert_outcomes(passed=1)


def test_bad_option_value_is_a_usage_error(pt):
    result = pt.runpytest("--gradcheck-examples=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--gradcheck-examples*must be >= 1*"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--gradcheck-eps=0.5"], "*eps=0.5 is too large for a derivative; try eps=1e-6*"),
        (["--gradcheck-atol=-1"], "*atol=-1 must be >= 0; try atol=0*"),
    ],
)
def test_option_values_the_checker_refuses_are_usage_errors(pt, options, message):
    result = pt.runpytest(*options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_header_prints_settings_and_seed(pt):
    pt.makepyfile(test_nothing="def test_nothing(): pass")
    result = pt.runpytest("--gradcheck-seed=3", "--gradcheck-examples=4")
    result.stdout.fnmatch_lines(["gradcheck: mode=auto seed=3 examples=4 rtol=* atol=* eps=*"])


def test_summary_counts_layers_quantities_and_worst_error(pt):
    pt.makepyfile(test_layers=TESTS)
    result = pt.runpytest("-k", "right or wrong")
    result.stdout.fnmatch_lines(
        [
            "*= gradcheck =*",
            "2 checks of 1 layer (Scale): * quantities *, 1 failed",
            "worst relative error *: Scale w in test_layers.py::test_wrong",
        ]
    )


def test_no_summary_when_nothing_was_checked(pt):
    pt.makepyfile(test_nothing="def test_nothing(): pass")
    assert "= gradcheck =" not in pt.runpytest().stdout.str()


def test_gradcheck_option_runs_registered_cases_as_tests(pt):
    pt.makepyfile(test_other="def test_other(): pass")  # not collected: no test paths given
    result = pt.runpytest("--gradcheck", "tiny_layers", "--gradcheck-examples=3", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*tiny_layers.py::scale PASSED*", "*tiny_layers.py::scale_wrong FAILED*"]
    )
    out = result.stdout.str()
    failure = out[out.index("_ tiny_layers::scale_wrong _") :]
    assert "tiny_layers::scale_wrong: smallest failing example scale_wrong(seed=0, N=1, D=1)" in (
        failure
    )
    assert "sign" in failure.lower() or "w (1,)" in failure
    assert "Traceback" not in failure and "hypothesis" not in failure


def test_gradcheck_option_with_test_paths_runs_both_and_k_selects(pt):
    pt.makepyfile(test_other="def test_other(): pass")
    result = pt.runpytest("--gradcheck", "tiny_layers", "test_other.py")
    result.assert_outcomes(passed=2, failed=1)
    result = pt.runpytest("--gradcheck", "tiny_layers", "-k", "scale and not wrong")
    result.assert_outcomes(passed=1, deselected=1)


def test_gradcheck_option_accepts_a_file_path(pt):
    result = pt.runpytest("--gradcheck", "tiny_layers.py", "-k", "not wrong")
    result.assert_outcomes(passed=1, deselected=1)


def test_gradcheck_option_with_unknown_module_is_a_usage_error(pt):
    result = pt.runpytest("--gradcheck", "no_such_module_xyz")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--gradcheck no_such_module_xyz: no module named*"])


def test_bundled_pytest_example_passes(pytester, monkeypatch):
    monkeypatch.setattr(case_registry, "_REGISTRY", dict(case_registry._REGISTRY))
    examples = Path(__file__).resolve().parent.parent / "examples"
    for name in ("custom_layer.py", "test_custom_layer.py"):
        pytester.path.joinpath(name).write_text((examples / name).read_text())
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["2 checks of 1 layer (LayerNorm): *, 0 failed"])


GATE = """
import os
import time

import numpy as np
import gradcheck
from tiny_layers import Scale


def build(N):
    raise RuntimeError("builder bug")


@gradcheck.case(dims={"N": (1, 2)})
def fine(rng, N):
    return Scale(rng.standard_normal(2)), (rng.standard_normal((N, 2)),)


@gradcheck.case
def wrong(rng):
    return Scale(rng.standard_normal(2), factor=-1.0), (rng.standard_normal((2, 2)),)


@gradcheck.case(dims={"N": (1, 2)})
def broken(rng, N):
    return build(N)


class Stuck(Scale):
    def forward(self, x):
        while True:
            time.sleep(0.01)


@gradcheck.case
def hangs(rng):
    return Stuck(rng.standard_normal(2)), (rng.standard_normal((2, 2)),)


class Exits(Scale):
    def forward(self, x):
        os._exit(3)


@gradcheck.case
def exits(rng):
    return Exits(rng.standard_normal(2)), (rng.standard_normal((2, 2)),)
"""


@pytest.fixture
def gate(pt):
    pt.makepyfile(gate_layers=GATE)
    return pt


def test_raising_builder_fails_in_a_few_lines_naming_its_frame(gate):
    result = gate.runpytest("--gradcheck", "gate_layers.py", "-k", "broken")
    result.assert_outcomes(failed=1, deselected=4)
    out = result.stdout.str()
    failure = out[out.index("_ gate_layers::broken _") :]
    failure = failure[: failure.index("\n=")]  # up to the next section
    assert failure.splitlines()[1].startswith(
        "gate_layers::broken raised RuntimeError: builder bug"
    )
    assert 'gate_layers.py", line 10, in build' in failure
    assert "hypothesis" not in failure and "pluggy" not in failure and "gradcheck/" not in failure
    assert len(failure.splitlines()) < 12
    long = gate.runpytest("--gradcheck", "gate_layers.py", "-k", "broken", "--tb=long")
    assert "hypothesis" in long.stdout.str()  # the whole traceback when asked for


def test_pytest_timeout_stops_a_hanging_case_and_says_where(gate):
    result = gate.runpytest("--gradcheck", "gate_layers.py", "-k", "hangs or fine", "--timeout=1")
    result.assert_outcomes(passed=1, failed=1, deselected=3)
    result.stdout.fnmatch_lines(
        ["*gate_layers::hangs: timed out after 1 s in Stuck.forward (gate_layers.py:*)*"]
    )


def test_ci_gate_one_testcase_per_case_with_the_report_in_the_failure(gate):
    xml = gate.path / "out.xml"
    result = gate.runpytest(
        "--gradcheck", "gate_layers.py", "-n", "2", "--timeout", "2", "--junitxml", str(xml)
    )
    result.assert_outcomes(passed=1, failed=4)  # the crashed worker was replaced; all ran
    cases = {c.get("name"): c for c in ElementTree.parse(xml).getroot().iter("testcase")}
    assert set(cases) == {"fine", "wrong", "broken", "hangs", "exits"}
    assert list(cases["fine"].iter("failure")) == []

    def message(name):
        (node,) = [*cases[name].iter("failure"), *cases[name].iter("error")]
        return node.get("message")

    assert "Scale.backward disagrees with central differences" in message("wrong")
    assert "w (2,)" in message("wrong")
    assert "RuntimeError: builder bug" in message("broken")
    assert "timed out after 2 s in Stuck.forward" in message("hangs")
    assert "crashed" in message("exits")


def test_runs_that_do_not_use_gradcheck_show_nothing_of_it(pt):
    pt.makepyfile(test_plain="def test_plain(): pass")
    result = pt.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "gradcheck: " not in out and "= gradcheck =" not in out


def test_a_test_using_the_fixture_shows_the_settings_after_collection(pt):
    pt.makepyfile(test_layers=TESTS)
    result = pt.runpytest("-k", "test_right")
    result.stdout.fnmatch_lines(["collected 4 items*", "gradcheck: mode=auto seed=0 *"])


def test_the_package_does_not_bring_pytest_benchmark_into_every_environment():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("pytest-benchmark")]
    assert any(d.startswith("pytest-benchmark") for d in project["optional-dependencies"]["test"])


class _Page(HTMLParser):
    """An HTML page's case sections: case id -> status."""

    def __init__(self):
        super().__init__()
        self.sections, self.chunks = {}, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and "data-case" in attrs:
            self.sections[attrs["data-case"]] = attrs["data-status"]

    def handle_data(self, data):
        self.chunks.append(data)


def _page(path):
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page.sections, "".join(page.chunks)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_gradcheck_html_writes_one_page_with_every_case(pt, workers):
    args = ["--gradcheck", "tiny_layers", "--gradcheck-examples=3", "--gradcheck-html=run.html"]
    result = pt.runpytest_subprocess(*args, *workers)
    result.assert_outcomes(passed=1, failed=1)
    sections, text = _page(pt.path / "run.html")
    assert sections == {"tiny_layers::scale": "ok", "tiny_layers::scale_wrong": "FAIL"}
    assert "smallest failing example" in text and "scale_wrong(seed=0" in text
    assert "interrupted" not in text


def test_no_page_without_gradcheck_html(pt):
    pt.runpytest("--gradcheck", "tiny_layers", "--gradcheck-examples=2")
    assert not list(pt.path.glob("*.html"))


def test_gradcheck_html_into_a_missing_directory_is_a_usage_error(pt):
    result = pt.runpytest("--gradcheck", "tiny_layers", "--gradcheck-html=nowhere/run.html")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--gradcheck-html nowhere/run.html: no such directory*"])


def test_gradcheck_mutate_fails_a_weak_check_and_passes_a_normal_one(pt):
    args = ["--gradcheck", "tiny_layers", "-k", "scale and not wrong", "--gradcheck-mutate"]
    result = pt.runpytest(*args, "--gradcheck-examples=1")
    result.assert_outcomes(passed=1, deselected=1)
    result = pt.runpytest(*args, "--gradcheck-examples=1", "--gradcheck-rtol=1")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(["*tiny_layers::scale: mutation score below min_score=1*"])
    result = pt.runpytest(
        *args, "--gradcheck-examples=1", "--gradcheck-rtol=1", "--gradcheck-min-score=0"
    )
    result.assert_outcomes(passed=1, deselected=1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--gradcheck-min-score=0.5"], "--gradcheck-min-score needs --gradcheck-mutate"),
        (["--gradcheck-mutate", "--gradcheck-min-score=2"], "must be in [[]0, 1[]]"),
        (["--gradcheck-mutate", "--gradcheck-html=x.html"], "--gradcheck-html does not apply"),
    ],
)
def test_mutate_options_that_do_not_fit_are_usage_errors(pt, options, message):
    result = pt.runpytest("--gradcheck", "tiny_layers", *options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


TWO_BUGS = '''
import numpy as np
import gradcheck


class Mix:
    """y = a * x + b * x**2; da from the first step only, db from the first two rows only."""

    def __init__(self, rng):
        self.params = [rng.standard_normal(1), rng.standard_normal(1)]
        self.grads, self.param_names = [np.zeros(1), np.zeros(1)], ["a", "b"]

    def forward(self, x):
        self.x = x
        return self.params[0] * x + self.params[1] * x**2

    def backward(self, dout):
        self.grads[0][...] = (dout * self.x)[:, :1].sum()
        self.grads[1][...] = (dout * self.x**2)[:2].sum()
        return dout * (self.params[0] + 2 * self.params[1] * self.x)


@gradcheck.case(dims={"N": (1, 4), "T": (1, 4)})
def both(rng, N, T):
    return Mix(rng), (rng.standard_normal((N, T)),)
'''


def test_failure_message_lists_quantities_that_failed_at_other_sizes(pt):
    pt.makepyfile(two_bugs=TWO_BUGS)
    result = pt.runpytest("--gradcheck", "two_bugs", "--gradcheck-examples=30")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["also failed at other sizes: * (at seed=* N=* T=*)"])
    # a single wrong quantity: nothing else to list
    result = pt.runpytest("--gradcheck", "tiny_layers", "--gradcheck-examples=30")
    assert "also failed" not in result.stdout.str()


def test_gradcheck_html_that_cannot_be_written_at_the_end_is_one_line_and_a_usage_error(pt):
    (pt.path / "out").mkdir()
    pt.makepyfile(test_rm="import shutil\ndef test_rm(): shutil.rmtree('out')")
    result = pt.runpytest(
        "--gradcheck",
        "tiny_layers",
        "-k",
        "not wrong or rm",
        "test_rm.py",
        "--gradcheck-html=out/page.html",
        "-p",
        "no:randomly",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["gradcheck: error: --gradcheck-html out/page.html: *"])
