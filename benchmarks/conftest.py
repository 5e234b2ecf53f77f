"""Collect ``bench_*.py`` here, so ``python -m pytest benchmarks --benchmark-enable`` runs them.

pytest's default ``python_files`` (``test_*.py``) would skip them when given the directory; files
named on the command line are collected by pytest itself, so they are left to it (no duplicates).
"""

import pytest


def pytest_collect_file(file_path, parent):
    if (
        file_path.suffix == ".py"
        and file_path.name.startswith("bench_")
        and not parent.session.isinitpath(file_path)
    ):
        return pytest.Module.from_parent(parent, path=file_path)
    return None
