"""The ``--json`` results of a run: one document, versioned, with a JSON Schema beside it.

``results.schema.json`` (in this package) is the schema; :data:`SCHEMA_VERSION` its version,
raised whenever a field changes meaning or goes away (new fields may come in any version).
docs/cli-and-pytest.md describes every field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import fields
from importlib import resources
from typing import Any

from gradcheck.options import Settings

__all__ = ["SCHEMA_VERSION", "case_record", "document", "schema"]

SCHEMA_VERSION = 1

#: CaseResult.status -> the record's status
_STATUS = {"ok": "passed", "FAIL": "failed", "ERROR": "error", "TIMEOUT": "timeout"}

_ENTRY_FIELDS = (
    "name",
    "kind",
    "status",
    "label",
    "shape",
    "checked",
    "wrong",
    "kinks",
    "max_abs_error",
    "max_rel_error",
    "index",
    "analytic",
    "numeric",
    "pattern",
    "message",
)


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) that every ``--json`` document satisfies."""
    text = resources.files("gradcheck").joinpath("results.schema.json").read_text("utf-8")
    return json.loads(text)


def _plain(value: Any) -> Any:
    """``value`` as JSON has it: non-finite floats as null, tuples as lists, numpy scalars as
    Python numbers, anything else unknown as its repr."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a numpy scalar
        value = value.item()
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return repr(value)


def options_in_force(options: Mapping[str, Any]) -> dict[str, Any]:
    """The checker settings a case ran under: ``options`` over the checker's defaults (the seed
    and context of each example left out: they are per example)."""
    defaults = {f.name: f.default for f in fields(Settings) if f.name not in ("seed", "context")}
    merged = {**defaults, **{k: v for k, v in options.items() if k not in ("seed", "context")}}
    return {k: _plain(v) for k, v in merged.items()}


def case_record(result: Any) -> dict[str, Any]:
    """One case's record: status, time, seed, options, examples, every quantity, and the
    report's ``summary`` (a subject computing in float32 inside) and ``headline``, and
    ``also_failed``: quantities that failed at another example than the reported one."""
    return {
        "case": result.case.id,
        "module": result.case.module,
        "name": result.case.name,
        "layer": result.layer,
        "status": _STATUS[result.status],
        "passed": result.passed,
        "seconds": round(result.seconds, 6),
        "seed": result.seed,
        "options": options_in_force(result.options),
        "examples": result.examples,
        "example": result.example,
        "max_rel_error": _plain(result.worst),
        "quantities": [
            {f: _plain(getattr(e, f, None)) for f in _ENTRY_FIELDS}
            for e in result.quantities.values()
        ],
        "error": result.error if result.error is not None else result.timeout,
        "summary": None if result.report is None else result.report.summary,
        "headline": None if result.report is None else result.report.headline,
        "also_failed": dict(getattr(result, "also_failed", {})),
    }


def document(
    results: Sequence[Any],
    *,
    settings: Mapping[str, Any],
    seconds: float,
    interrupted: bool = False,
) -> dict[str, Any]:
    """The whole ``--json`` document: the run's settings, a summary and one record per case
    that completed (``interrupted``: Ctrl-C stopped the run before every case was checked)."""
    records = [case_record(r) for r in results]
    count = {s: sum(r["status"] == s for r in records) for s in _STATUS.values()}
    return {
        "schema": "gradcheck-results",
        "version": SCHEMA_VERSION,
        "settings": _plain(dict(settings)),
        "interrupted": interrupted,
        "summary": {
            "cases": len(records),
            "passed": count["passed"],
            "failed": count["failed"],
            "errors": count["error"],
            "timed_out": count["timeout"],
            "seconds": round(seconds, 6),
        },
        "cases": records,
    }
