"""The benchmarks run in CI only as a smoke test: every body once, at small sizes, never timed.

They run in a subprocess because ``benchmarks/`` is not on the test path and pytest-benchmark
does not time under xdist anyway; what is asserted is that they run and check what they say.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
    return result.stdout


def test_benchmark_bodies_run_once_at_small_sizes():
    out = _run(
        "-m",
        "pytest",
        "benchmarks",
        "--benchmark-disable",
        "-k",
        "not medium",
        "-q",
        "-p",
        "no:cacheprovider",
    )
    assert " passed" in out and "failed" not in out


def test_compare_torch_prints_its_tables_at_tiny_sizes():
    out = _run("benchmarks/compare_torch.py", "--sizes", "tiny", "--repeat", "1")
    for model in ("lstm", "attention", "seq2seq"):
        assert f"| {model} (" in out, out
    assert "torch slow / ours full" in out
    assert "(full - fwd+bwd) / params" in out


def test_mutation_cost_prints_its_table_for_one_case():
    out = _run("benchmarks/mutation_cost.py", "-k", "::affine", "--examples", "1", "--uncached")
    assert "| affine | " in out and "| **all** |" in out
