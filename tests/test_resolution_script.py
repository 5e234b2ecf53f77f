"""benchmarks/resolution.py runs and prints its tables: at tiny sizes, never timed.

The script is loaded from its file (``benchmarks/`` is not a package on the test path) and its
``main`` called in this process, with the models' sequence lengths and vocabulary made tiny so
that every check takes milliseconds.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "resolution.py"
TINY = {"lstm": dict(N=2, T=3, D=3), "seq2seq": dict(N=2, V=5, D=3, Te=3, Td=2)}


@pytest.fixture
def resolution(monkeypatch):
    spec = importlib.util.spec_from_file_location("resolution", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "resolution", module)  # (its dataclasses look it up)
    spec.loader.exec_module(module)
    for name, dims in TINY.items():
        monkeypatch.setitem(module.DIMS, name, dims)
    return module


def _rows(out: str, head: str) -> list[list[str]]:
    """The cells of the Markdown table whose header starts with ``head``."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(head))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_resolution_table_has_its_columns_and_the_correct_models_pass(resolution, capsys):
    argv = ["--sizes", "4", "--percentiles", "90", "--modes", "auto,fast", "--markdown"]
    assert resolution.main([*argv, "--mutation-size", "4"]) == 0
    out = capsys.readouterr().out
    header = "| model | H | mode | forwards | seconds | correct passes | δ caught, p90 of \\|g\\| |"
    assert header in out, out
    rows = _rows(out, "| model | H | mode | forwards")
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("lstm (Wh)", "4", "auto"),
        ("lstm (Wh)", "4", "fast"),
        ("seq2seq (encoder.lstm.Wh)", "4", "auto"),
        ("seq2seq (encoder.lstm.Wh)", "4", "fast"),
    ]
    for row in rows:
        assert row[5] == "yes", out  # the correct model passes
        assert int(row[3].replace(",", "")) > 0
        assert row[6] == resolution.MISSED or row[6] == "1" or row[6].startswith("1e-"), out
    mutation = _rows(out, "| model | H | mode | resolution δ")
    assert [(r[0], r[2]) for r in mutation] == [
        ("lstm", "auto"),
        ("lstm", "fast"),
        ("seq2seq", "auto"),
        ("seq2seq", "fast"),
    ]
    assert "δ ladders" not in out  # (--markdown: the tables only)


def test_full_rows_beyond_the_budget_are_extrapolated_not_run(resolution, capsys):
    # 74 and 7,218 elements: a budget of 3,000 forwards runs the first, whatever few forwards
    # per element a full check takes, and not the second
    argv = ["--models", "lstm", "--sizes", "2,40", "--modes", "full", "--percentiles", "50"]
    assert resolution.main([*argv, "--max-full-forwards", "3000", "--mutation-size", "0"]) == 0
    out = capsys.readouterr().out
    small, large = _rows(out, "| model | H | mode | forwards")
    assert small[5] == "yes" and "extrapolated" not in small[3], out
    assert "(extrapolated)" in large[3] and large[4:] == ["not run"] * 3, out
    assert "the extrapolation against full checks that ran: lstm H=2" in out
    assert "δ ladders, down to the first δ missed:" in out
    assert "mutation_score" not in out
