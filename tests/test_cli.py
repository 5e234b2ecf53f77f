"""The ``gradcheck`` command: exit codes, rows, failure reports, JSON, --list, -k, file paths.

Each test writes a tiny module of cases into its own directory and calls ``main(argv)`` in
process; one test runs ``python -m gradcheck`` for real.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest

from gradcheck import cases as case_registry
from gradcheck import cli
from gradcheck.cli import main
from gradcheck.options import OPTIONS
from gradcheck.results import schema

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

LAYERS = '''
import numpy as np
import gradcheck


class Scale:
    """y = x * w, w broadcast over the batch. bug="double": dw twice too big;
    bug="first_row": dw from the first batch row only (right only when N == 1)."""

    def __init__(self, w, bug=None):
        self.params, self.grads, self.param_names = [w], [np.zeros_like(w)], ["w"]
        self.bug = bug

    def forward(self, x):
        self.x = x
        return x * self.params[0]

    def backward(self, dout):
        dw = (dout * self.x).sum(axis=0)
        if self.bug == "double":
            dw = 2 * dw
        elif self.bug == "first_row":
            dw = dout[0] * self.x[0]
        self.grads[0][...] = dw
        return dout * self.params[0]
'''


def _module(name, cases):
    return LAYERS + textwrap.dedent(cases).replace("MODULE", name)


GOOD = """
@gradcheck.case(dims={"N": (1, 3), "D": (1, 3)})
def scale(rng, N, D):
    return Scale(rng.standard_normal(D)), (rng.standard_normal((N, D)),)


@gradcheck.case
def scale_fixed(rng):
    return Scale(rng.standard_normal(2)), (rng.standard_normal((2, 2)),)
"""

BUGGY = """
@gradcheck.case(dims={"N": (1, 3), "D": (1, 3)})
def scale(rng, N, D):
    return Scale(rng.standard_normal(D)), (rng.standard_normal((N, D)),)


@gradcheck.case(dims={"N": (1, 4), "D": (1, 3)})
def scale_first_row(rng, N, D):
    return Scale(rng.standard_normal(D), bug="first_row"), (rng.standard_normal((N, D)),)
"""


@pytest.fixture
def write_module(tmp_path, monkeypatch):
    """Write ``name.py`` into a fresh directory (the working directory); forget it after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(case_registry, "_REGISTRY", dict(case_registry._REGISTRY))
    written = []

    def write(name, cases):
        path = tmp_path / f"{name}.py"
        path.write_text(_module(name, cases))
        written.append(name)
        return path

    yield write
    for name in written:
        sys.modules.pop(name, None)


def test_all_passing_module_exits_0_with_one_row_per_case(write_module, capsys):
    write_module("cli_good", GOOD)
    assert main(["cli_good", "--examples", "3"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("cli_good::")]
    assert len(rows) == 2
    assert all("Scale" in row and row.endswith("ok") for row in rows)
    assert "input[0], w" in rows[0]
    assert "2 cases: 2 passed" in out


def test_buggy_module_exits_1_and_names_layer_and_gradient(write_module, capsys):
    write_module("cli_buggy", BUGGY)
    assert main(["cli_buggy", "--examples", "10"]) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("cli_buggy::scale_first_row"))
    assert "Scale" in row and row.endswith("FAIL")
    failure = out[out.index("FAIL cli_buggy::scale_first_row") :]
    assert "Scale" in failure
    assert "w (" in failure  # the blamed gradient with its shape
    assert "1 failed (cli_buggy::scale_first_row)" in out
    assert "Traceback" not in out


def test_failure_shrinks_to_smallest_failing_dims(write_module, capsys):
    # the first_row bug shows only for N >= 2; shrinking must land on N = 2, D = 1
    write_module("cli_shrink", BUGGY)
    assert main(["cli_shrink", "-k", "first_row", "--examples", "20"]) == 1
    out = capsys.readouterr().out
    assert "smallest failing example scale_first_row(seed=0, N=2, D=1)" in out


def test_unknown_module_exits_2_with_one_line_message(write_module, capsys):
    assert main(["no_such_module_xyz"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert "no_such_module_xyz" in lines[0]
    assert "Traceback" not in captured.err


def test_module_that_fails_to_import_exits_2_naming_the_error(write_module, capsys):
    (write_module("cli_broken", GOOD)).write_text("import numpy\n1 / 0\n")
    assert main(["cli_broken"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "ZeroDivisionError" in err and "cli_broken.py:2" in err


def test_module_without_cases_exits_2(write_module, capsys):
    write_module("cli_empty", "")
    assert main(["cli_empty"]) == 2
    assert "registers no cases" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["--examples", "0"], "try 10"),
        (["--mode", "slowest"], "invalid choice"),
        (["--seed", "x"], "try seed=0"),
        (["--rtol", "-1"], "try rtol=1e-5"),
        (["--atol", "-1"], "try atol=0"),
        (["--eps", "0"], "try eps=1e-6"),
        (["--eps", "0.5"], "eps=0.5 is too large for a derivative; try eps=1e-6"),
        (["--eps", "nan"], "must be finite"),
        (["--timeout", "0"], "must be a number of seconds > 0"),
        (["--nope"], "unrecognized"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_bad_option_exits_2_before_any_work_with_a_hint_for_that_option(
    write_module, capsys, argv, hint
):
    write_module("cli_opts", GOOD)
    assert main(["cli_opts", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("gradcheck: error:") and len(captured.err.splitlines()) == 1
    assert hint in captured.err


@pytest.mark.parametrize("option", ["--rtol", "--atol"])
def test_zero_rtol_or_atol_alone_is_accepted_as_the_api_does(write_module, capsys, option):
    write_module("cli_zero", GOOD)
    assert main(["cli_zero", option, "0", "--examples", "2"]) == 0


def test_case_option_the_checker_refuses_is_a_usage_error_naming_the_case(write_module, capsys):
    write_module(
        "cli_case_eps",
        """
        @gradcheck.case(eps=0.5)
        def coarse(rng):
            return Scale(rng.standard_normal(2)), (rng.standard_normal((2, 2)),)
        """,
    )
    assert main(["cli_case_eps"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "cli_case_eps::coarse: eps=0.5 is too large for a derivative" in captured.err


def test_no_arguments_exits_2(capsys):
    assert main([]) == 2
    assert "MODULE" in capsys.readouterr().err


def test_help_exits_0_and_every_option_shows_its_default(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for option in OPTIONS:
        assert f"--{option.name}" in out
        assert option.help_text().endswith(")") and "(default: " in option.help_text()


def _validated(path):
    """The JSON document at ``path``, after checking it against the published schema."""
    document = json.loads(path.read_text())
    jsonschema.validate(document, schema())
    return document


def test_json_has_one_record_per_case_with_quantities(write_module, tmp_path, capsys):
    write_module("cli_json", BUGGY)
    path = tmp_path / "out.json"
    assert main(["cli_json", "--examples", "5", "--seed", "3", "--json", str(path)]) == 1
    document = _validated(path)
    assert (document["version"], document["interrupted"]) == (1, False)
    assert document["summary"] == {
        **document["summary"],
        **{"cases": 2, "passed": 1, "failed": 1, "errors": 0, "timed_out": 0},
    }
    records = document["cases"]
    assert [r["case"] for r in records] == ["cli_json::scale", "cli_json::scale_first_row"]
    good, bad = records
    assert (good["layer"], good["status"], bad["status"]) == ("Scale", "passed", "failed")
    assert good["seed"] == 3 and good["seconds"] > 0 and good["examples"] == 5
    assert good["options"]["rtol"] == 1e-5 and good["options"]["mode"] == "auto"
    names = {q["name"]: q for q in bad["quantities"]}
    assert {"input[0]", "w"} <= set(names)
    assert names["w"]["status"] == "mismatch"
    assert names["w"]["max_rel_error"] > 1e-3
    assert names["w"]["shape"] == [1] and names["w"]["index"] == [0]
    assert good["max_rel_error"] < 1e-6


def test_json_records_errors_and_case_options(write_module, tmp_path, capsys):
    write_module(
        "cli_json_err",
        """
        @gradcheck.case(dims={"N": (1, 2)}, rtol=1e-3)
        def loose(rng, N):
            return Scale(rng.standard_normal(2)), (rng.standard_normal((N, 2)),)


        @gradcheck.case
        def broken(rng):
            raise RuntimeError("builder bug")
        """,
    )
    path = tmp_path / "out.json"
    assert main(["cli_json_err", "--examples", "2", "--json", str(path)]) == 1
    loose, broken = _validated(path)["cases"]
    assert loose["options"]["rtol"] == 1e-3
    assert broken["status"] == "error" and broken["error"].startswith("RuntimeError: builder bug")


def test_list_prints_cases_and_checks_nothing(write_module, capsys):
    write_module("cli_list", BUGGY)
    assert main(["cli_list", "--list"]) == 0  # the buggy case is listed, not checked
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["cli_list::scale", "cli_list::scale_first_row"]
    assert "N=1..3" in out[0]


def test_k_selects_cases_by_id(write_module, capsys):
    write_module("cli_k", BUGGY)
    assert main(["cli_k", "-k", "scale", "--list"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["cli_k", "-k", "SCALE_FIRST"]) == 1
    assert main(["cli_k", "-k", "nothing_matches"]) == 2
    assert "matches no case" in capsys.readouterr().err


def test_repeated_k_selects_cases_matching_any_pattern(write_module, capsys):
    write_module("cli_kk", GOOD + BUGGY.replace("def scale(", "def other("))
    assert main(["cli_kk", "-k", "fixed", "-k", "first_row", "--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == ["cli_kk::scale_fixed", "cli_kk::scale_first_row"]


def test_file_path_is_accepted_like_a_module(write_module, tmp_path, monkeypatch, capsys):
    path = write_module("cli_path", GOOD)
    monkeypatch.chdir(tmp_path.parent)
    assert main([str(path), "--examples", "2"]) == 0
    assert "cli_path::scale" in capsys.readouterr().out
    assert main([str(tmp_path / "missing.py")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_builder_that_raises_is_an_error_row_and_exits_1(write_module, capsys):
    write_module(
        "cli_raises",
        """
        @gradcheck.case(dims={"N": (1, 2)})
        def broken(rng, N):
            raise RuntimeError("builder bug")
        """,
    )
    assert main(["cli_raises"]) == 1
    out = capsys.readouterr().out
    assert "ERROR" in out and "RuntimeError: builder bug" in out


def test_python_m_gradcheck_runs_the_same_command(tmp_path):
    (tmp_path / "cli_sub.py").write_text(_module("cli_sub", BUGGY))
    done = subprocess.run(
        [sys.executable, "-m", "gradcheck", "cli_sub", "--examples", "3"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "cli_sub::scale_first_row" in done.stdout
    assert "\r" not in done.stdout  # no progress line when stdout is not a terminal


class _Terminal:
    """A stdout that says it is a terminal."""

    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass

    def isatty(self):
        return True


def test_progress_line_only_on_a_terminal(write_module, monkeypatch, capsys):
    write_module("cli_tty", GOOD)
    monkeypatch.setattr(cli._Progress, "delay", 0.0)  # as if the run took over a second
    assert main(["cli_tty", "--examples", "2"]) == 0
    assert "\r" not in capsys.readouterr().out  # captured: not a terminal
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["cli_tty", "--examples", "2"]) == 0
    assert "\r\033[K[1/2] cli_tty::scale example 1" in terminal.text
    rows = terminal.text.split("\r\033[K")
    assert any(row.startswith("cli_tty::scale_fixed") for row in rows)  # line cleared first


def test_case_options_take_precedence_over_command_line(write_module, capsys):
    write_module(
        "cli_case_opts",
        """
        @gradcheck.case(dims={"N": (1, 2)}, rtol=0.9, atol=0.9)
        def loose(rng, N):
            return Scale(rng.standard_normal(2), bug="double"), (rng.standard_normal((N, 2)),)
        """,
    )
    assert main(["cli_case_opts", "--rtol", "1e-9"]) == 0


def test_bundled_example_passes_and_a_broken_copy_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(case_registry, "_REGISTRY", dict(case_registry._REGISTRY))
    source = (EXAMPLES / "custom_layer.py").read_text()
    right = "return inv_std * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)"
    assert right in source
    (tmp_path / "broken_norm.py").write_text(
        source.replace(right, "return inv_std * (dxhat - mean_dxhat)")
    )
    try:
        assert main([str(EXAMPLES / "custom_layer.py"), "--examples", "3"]) == 0
        assert main([str(tmp_path / "broken_norm.py")]) == 1
    finally:
        sys.modules.pop("custom_layer", None)
        sys.modules.pop("broken_norm", None)
    out = capsys.readouterr().out
    assert "smallest failing example layer_norm(seed=0, N=1, T=1, D=2)" in out
    assert "LayerNorm.backward disagrees" in out
    assert "input[0] x (1, 1, 2): max |analytic - numeric|" in out


def test_json_into_a_missing_directory_exits_2_before_checking(write_module, tmp_path, capsys):
    write_module("cli_json_dir", GOOD)
    assert main(["cli_json_dir", "--json", str(tmp_path / "nowhere" / "out.json")]) == 2
    captured = capsys.readouterr()
    assert "no such directory" in captured.err and captured.out == ""


def test_json_path_that_is_a_directory_exits_2_before_checking(write_module, tmp_path, capsys):
    write_module("cli_json_isdir", GOOD)
    assert main(["cli_json_isdir", "--json", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "is a directory" in captured.err and captured.out == ""


HANGS = """
import time


@gradcheck.case
def first(rng):
    return Scale(rng.standard_normal(2)), (rng.standard_normal((2, 2)),)


@gradcheck.case
def hangs(rng):
    while True:
        time.sleep(0.01)


@gradcheck.case
def never_reached(rng):
    return Scale(rng.standard_normal(2)), (rng.standard_normal((2, 2)),)
"""


def test_ctrl_c_prints_what_completed_writes_json_and_exits_130(tmp_path):
    (tmp_path / "cli_sigint.py").write_text(_module("cli_sigint", HANGS))
    # a default SIGINT handler even where the test runner's parent ignores SIGINT
    code = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from gradcheck.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    argv = ["cli_sigint", "--examples", "2", "--json", "out.json", "--html", "out.html"]
    process = subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        while not any(line.startswith("cli_sigint::first") for line in lines):
            line = process.stdout.readline()
            assert line, f"ended early: {''.join(lines)}{process.stderr.read()}"
            lines.append(line)
        time.sleep(0.2)  # well inside the hanging case
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "1 case: 1 passed" in out
    assert "interrupted in cli_sigint::hangs; 2 cases not checked" in err
    assert "Traceback" not in err
    document = _validated(tmp_path / "out.json")
    assert document["interrupted"] is True
    assert [r["case"] for r in document["cases"]] == ["cli_sigint::first"]
    page = _Page.read(tmp_path / "out.html")
    assert page.rows == ["cli_sigint::first"]
    assert "interrupted: 1 of 3 cases checked" in page.text


def test_command_line_leaves_no_hypothesis_folder_in_the_working_directory(tmp_path):
    (tmp_path / "cli_litter.py").write_text(_module("cli_litter", GOOD))
    cache = tmp_path / "cache"
    done = subprocess.run(
        [sys.executable, "-m", "gradcheck", "cli_litter", "--examples", "20"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "XDG_CACHE_HOME": str(cache), "HYPOTHESIS_STORAGE_DIRECTORY": ""},
    )
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / ".hypothesis").exists()


class _Page(HTMLParser):
    """An HTML page's case rows, case sections (id -> status) and text."""

    def __init__(self):
        super().__init__()
        self.rows, self.sections, self.chunks = [], {}, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "gc-case-row" in (attrs.get("class") or ""):
            self.rows.append(attrs["data-case"])
        if tag == "section" and "data-case" in attrs:
            self.sections[attrs["data-case"]] = attrs["data-status"]

    def handle_data(self, data):
        self.chunks.append(data)

    @property
    def text(self):
        return "".join(self.chunks)

    @classmethod
    def read(cls, path):
        page = cls()
        page.feed(path.read_text(encoding="utf-8"))
        page.close()
        return page


def test_html_page_has_every_case_and_the_failing_report(write_module, tmp_path, capsys):
    write_module("cli_html", BUGGY)
    path = tmp_path / "run.html"
    assert main(["cli_html", "--examples", "10", "--html", str(path)]) == 1
    page = _Page.read(path)
    assert page.rows == ["cli_html::scale", "cli_html::scale_first_row"]
    assert page.sections == {"cli_html::scale": "ok", "cli_html::scale_first_row": "FAIL"}
    assert "smallest failing example" in page.text and "scale_first_row(seed=0" in page.text
    assert "interrupted" not in page.text


def test_html_page_of_a_passing_run_shows_no_failure(write_module, tmp_path, capsys):
    write_module("cli_html_ok", GOOD)
    path = tmp_path / "run.html"
    assert main(["cli_html_ok", "--examples", "2", "--html", str(path)]) == 0
    page = _Page.read(path)
    assert set(page.sections.values()) == {"ok"} and len(page.rows) == 2
    assert "smallest failing example" not in page.text


@pytest.mark.parametrize("where", ["missing", "directory"])
def test_html_path_is_checked_before_any_work(write_module, tmp_path, capsys, where):
    write_module("cli_html_bad", GOOD)
    path = tmp_path / "nowhere" / "x.html" if where == "missing" else tmp_path
    assert main(["cli_html_bad", "--html", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert captured.err.startswith("gradcheck: error: --html ")


def test_html_write_error_exits_2_with_one_line(write_module, tmp_path, monkeypatch, capsys):
    write_module("cli_html_oserror", GOOD)

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli, "write_html", fail)
    assert main(["cli_html_oserror", "--examples", "2", "--html", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"gradcheck: error: --html {tmp_path / 'x.html'}: No space left on device"


def test_mutate_with_a_weak_tolerance_exits_1_and_normal_settings_exit_0(
    write_module, tmp_path, capsys
):
    write_module("cli_mutate", GOOD)
    path = tmp_path / "scores.json"
    argv = ["cli_mutate", "--mutate", "-k", "scale_fixed", "--examples", "1"]
    assert main([*argv, "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("gradcheck --mutate: 1 case;")
    assert [s["case"] for s in json.loads(path.read_text())] == ["cli_mutate::scale_fixed"]
    assert main([*argv, "--rtol", "1"]) == 1
    assert "below min_score=1" in capsys.readouterr().out


def test_mutate_min_score_zero_accepts_a_weak_check(write_module, capsys):
    write_module("cli_mutate_min", GOOD)
    argv = ["cli_mutate_min", "--mutate", "-k", "scale_fixed", "--examples", "1", "--rtol", "1"]
    assert main([*argv, "--min-score", "0"]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--min-score", "0.5"], "--min-score needs --mutate"),
        (["--mutate", "--min-score", "2"], "must be in [0, 1]"),
        (["--mutate", "--html", "x.html"], "--html does not apply to --mutate"),
    ],
)
def test_mutate_usage_errors_exit_2(write_module, capsys, argv, message):
    write_module("cli_mutate_usage", GOOD)
    assert main(["cli_mutate_usage", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err


ROWS = """
class Embed:
    \"\"\"Rows of W picked by integer ids: the ids have no gradient.\"\"\"

    def __init__(self, W):
        self.params, self.grads, self.param_names = [W], [np.zeros_like(W)], ["W"]

    def forward(self, idx):
        self.idx = idx
        return self.params[0][idx]

    def backward(self, dout):
        self.grads[0][...] = 0
        np.add.at(self.grads[0], self.idx, dout)


class Noisy(Scale):
    def forward(self, x):
        return super().forward(x) + 1e-3 * np.random.random(x.shape)  # noqa: NPY002


class Half(Scale):
    \"\"\"Right, but its output goes through a float32 buffer.\"\"\"

    def forward(self, x):
        out = np.empty(x.shape, dtype=np.float32)
        out[...] = super().forward(x)
        return out


@gradcheck.case
def embed(rng):
    return Embed(rng.standard_normal((5, 3))), (np.array([0, 2, 2, 4]),)


@gradcheck.case
def noisy(rng):
    return Noisy(rng.standard_normal(3)), (rng.standard_normal((2, 3)),)


@gradcheck.case
def half(rng):
    return Half(rng.standard_normal(3)), (rng.standard_normal((2, 3)),)


@gradcheck.case
def plain(rng):
    return Scale(rng.standard_normal(3)), (rng.standard_normal((2, 3)),)
"""


def test_rows_show_only_compared_gradients_and_float32_precision(write_module, tmp_path, capsys):
    write_module("cli_rows", ROWS)
    assert main(["cli_rows", "--examples", "2", "--json", str(tmp_path / "o.json")]) == 1
    out = capsys.readouterr().out
    table = out[: out.index("\n\n")].splitlines()
    rows = {line.split()[0]: line.split() for line in table if line.startswith("cli_rows::")}
    assert rows["cli_rows::embed"][1:3] == ["Embed", "W"]  # not input[0]: integer ids
    assert rows["cli_rows::embed"][-1] == "ok"
    assert rows["cli_rows::noisy"][1:] == ["Noisy", "FAIL"]  # nothing judged: no err
    assert rows["cli_rows::half"][-2:] == ["ok", "(float32)"]
    assert rows["cli_rows::plain"][1:3] == ["Scale", "input[0],"]
    assert rows["cli_rows::plain"][-1] == "ok"
    records = {r["name"]: r for r in _validated(tmp_path / "o.json")["cases"]}
    assert "computes in float32 inside" in records["half"]["summary"]
    assert records["plain"]["summary"] is None and records["plain"]["headline"] is None
    messages = {q["name"]: q["message"] for q in records["embed"]["quantities"]}
    assert messages["input[0]"] == "not checked: integer input"


def test_mutate_json_write_error_exits_2_with_one_line(write_module, tmp_path, monkeypatch, capsys):
    from gradcheck import mutation

    write_module("cli_mutate_oserror", GOOD)

    class Full(type(tmp_path)):
        def write_text(self, *args, **kwargs):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(mutation, "Path", Full)
    path = tmp_path / "scores.json"
    argv = ["cli_mutate_oserror", "--mutate", "-k", "scale_fixed", "--examples", "1"]
    assert main([*argv, "--json", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"gradcheck: error: --json {path}: No space left on device"
