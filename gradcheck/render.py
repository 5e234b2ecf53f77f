"""A report as HTML: the table a notebook shows, and one self-contained page for a run of many
cases, with the heatmaps of :mod:`gradcheck.heatmaps` inline.

- :func:`report_html`: a report as a compact HTML table (``Report._repr_html_``, what Jupyter
  shows): one row per gradient, the contract folded under one row, the reproduce line
  selectable with one click; inline styles only, so that it renders wherever HTML does;
- :func:`write_html`: one HTML file for a run of many cases (the command line's ``--html``,
  the plugin's ``--gradcheck-html``): every case and its status, and for a failure its report
  and heatmaps as inline PNG images. No scripts, no external resources: a CI artifact that
  opens anywhere.

Heatmaps need the values per element that a gradient found wrong element by element keeps
(:class:`~gradcheck.report.Entry`, up to :data:`~gradcheck.report.MAX_KEPT` elements).
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from gradcheck import heatmaps
from gradcheck.heatmaps import heatmap_data, plot
from gradcheck.report import Entry, Report

__all__ = ["CaseOutcome", "case_record", "heatmap_data", "plot", "report_html", "write_html"]

_COLOURS = {"ok": "#1a7f37", "kink": "#9a6700", "skipped": "#6e7781", "fail": "#cf222e"}


class CaseOutcome(Protocol):
    """What :func:`write_html` reads of one checked case (``gradcheck.cli.CaseResult`` has it):
    ``case.id``, ``status`` (``"ok"``, ``"FAIL"`` or ``"ERROR"``), ``report`` (a Report, or
    None when the case raised), ``example`` (the drawn example, or None), ``details()`` (the
    text the terminal prints for a failure) and ``seconds``."""

    @property
    def case(self) -> Any: ...
    @property
    def status(self) -> str: ...
    @property
    def report(self) -> Report | None: ...
    @property
    def example(self) -> str | None: ...
    @property
    def seconds(self) -> float: ...
    def details(self) -> str: ...


def _status_class(status: str) -> str:
    return status if status in _COLOURS else "fail"


def _status(status: str) -> str:
    kind = _status_class(status)
    return (
        f'<span class="gc-status gc-{kind}" style="color:{_COLOURS[kind]};font-weight:600">'
        f"{html.escape(status)}</span>"
    )


_CELL = "padding:2px 8px;text-align:left;vertical-align:top;border-bottom:1px solid #d0d7de"
_SMALL = "color:#6e7781;font-size:90%"


def _row(cells: Iterable[str], tag: str = "td", nowrap: int = 0) -> str:
    """One table row; the first ``nowrap`` cells are kept on one line."""
    styled = [
        f'<{tag} style="{_CELL}{";white-space:nowrap" if k < nowrap else ""}">{c}</{tag}>'
        for k, c in enumerate(cells)
    ]
    return "<tr>" + "".join(styled) + "</tr>"


def _where(entry: Entry) -> str:
    if entry.status != "mismatch":
        return ""
    unit = "directions" if entry.message.startswith("projections") else "elements"
    count = f"{entry.wrong} of {entry.checked} {unit} wrong"
    if entry.index is None:
        return (
            f"along a random direction: &lt;analytic, v&gt; {_num(entry.analytic)}, "
            f"numeric {_num(entry.numeric)}; {count}"
        )
    return (
        f"{list(entry.index)}: analytic {_num(entry.analytic)}, numeric {_num(entry.numeric)}"
        f"; {count}"
    )


def _num(value: float | None) -> str:
    return "None" if value is None else f"{value:.4g}"


def _error(entry: Entry) -> str:
    if entry.kind != "gradient" or entry.status in ("skipped", "not judged") or not entry.checked:
        return ""
    text = f"rel {entry.max_rel_error:.1e}"
    return text + (f", abs {entry.max_abs_error:.1e}" if entry.status == "mismatch" else "")


def _entry_row(entry: Entry) -> str:
    notes = [html.escape(entry.pattern)] if entry.pattern else []
    if entry.message:
        notes.append(f'<span style="{_SMALL}">{html.escape(entry.message)}</span>')
    shape = "" if entry.shape is None else str(entry.shape)
    return _row(
        [
            f"<code>{html.escape(entry.label or entry.name)}</code>",
            html.escape(shape),
            _status(entry.status),
            _error(entry),
            _where(entry),
            "<br>".join(notes),
        ],
        nowrap=4,
    )


def _contract_row(entries: list[Entry]) -> str:
    failed = [e for e in entries if not e.passed]
    skipped = sum(e.status == "skipped" for e in entries)
    held = len(entries) - len(failed) - skipped
    summary = f"contract: {_plural(len(entries), 'check')}"
    if failed:
        summary += f", {len(failed)} failed ({', '.join(e.name for e in failed)})"
    summary += f", {held} held" if failed or skipped else ", all held"
    summary += f", {skipped} skipped" if skipped else ""
    inner = "".join(
        _row([html.escape(e.name), _status(e.status), html.escape(e.message)]) for e in entries
    )
    colour = _COLOURS["fail" if failed else "ok"]
    return (
        f'<tr class="gc-contract"><td colspan="6" style="{_CELL}">'
        f"<details{' open' if failed else ''}>"
        f'<summary style="cursor:pointer;color:{colour}">{html.escape(summary)}</summary>'
        f'<table style="border-collapse:collapse;margin:4px 0 4px 16px;font-size:inherit">'
        f"{inner}</table>"
        "</details></td></tr>"
    )


def report_html(report: Report, *, heatmaps: bool = False) -> str:
    """The report as an HTML fragment: its headline, a table (quantity, shape, status, worst
    error, where, pattern) with the contract folded under one row (open when a check fails),
    notes, and the reproduce line; ``heatmaps``: a PNG heatmap of each wrong gradient below it
    (or a line saying which extra to install). Inline styles only: it renders in Jupyter,
    VS Code and a browser alike."""
    text = str(report)
    headline = text.split("\n", 1)[0]
    kind = "ok" if report.passed else "fail"
    parts = [
        f'<div class="gradcheck gc-report gc-{kind}" style="font-family:system-ui,sans-serif;'
        'font-size:13px;line-height:1.4">',
        f'<div class="gc-headline" style="font-weight:600;color:{_COLOURS[kind]}">'
        f"{html.escape(headline)}</div>",
    ]
    if report.summary:
        parts.append(f'<div style="{_SMALL}">{html.escape(report.summary)}</div>')
    rows = [e for e in report.entries if e.kind != "contract"]
    head = ["quantity", "shape", "status", "worst error", "where", "pattern"]
    parts.append(
        '<table class="gc-table" style="border-collapse:collapse;margin:6px 0;font-size:inherit">'
    )
    parts.append("<thead>" + _row(head, "th") + "</thead><tbody>")
    parts += [_entry_row(e) for e in rows]
    if report.contract:
        parts.append(_contract_row(report.contract))
    parts.append("</tbody></table>")
    for note in report.notes:
        parts.append(f'<div style="{_SMALL}">note: {html.escape(note)}</div>')
    if report.headline is None:
        parts.append(
            f'<div style="{_SMALL}">calls: {report.forward_calls} forward, '
            f"{report.backward_calls} backward; worst rel err {report.max_rel_error:.1e}</div>"
        )
    parts.append(
        '<pre class="gc-reproduce" title="click to select" style="user-select:all;'
        'background:#f6f8fa;color:#1f2328;padding:4px 8px;margin:6px 0;white-space:pre-wrap">'
        f"{html.escape(report.reproduce_line())}</pre>"
    )
    if heatmaps:
        parts.append(_heatmaps(report))
    parts.append("</div>")
    return "\n".join(parts)


def _heatmaps(report: Report) -> str:
    wrong = [e for e in report.gradients if not e.passed]
    if not wrong:
        return ""
    if not heatmaps.has_matplotlib():
        install = heatmaps.INSTALL
        return f'<p class="gc-no-plot">heatmaps need matplotlib: <code>{install}</code></p>'
    rtol = float(report.settings.get("rtol", 0.0)) if report.settings else 0.0
    parts = ['<div class="gc-heatmaps">']
    for entry in wrong:
        name = html.escape(entry.label or entry.name)
        if entry.errors is None:
            why = html.escape(heatmaps.why_no_heatmap(entry))
            parts.append(f'<p class="gc-no-heatmap" style="{_SMALL}">{name}: no heatmap: {why}</p>')
            continue
        fig = heatmaps.draw([entry], rtol=rtol, values=None, layer=report.layer)
        parts.append(
            f'<img class="gc-heatmap" data-quantity="{name}" alt="where {name} is wrong" '
            f'style="max-width:100%;display:block;margin:6px 0" '
            f'src="data:image/png;base64,{base64.b64encode(heatmaps.png(fig)).decode()}">'
        )
    parts.append("</div>")
    return "\n".join(parts)


_PAGE_STYLE = """
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 24px; color: #1f2328; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 0 0 6px; }
table.gc-cases { border-collapse: collapse; margin: 12px 0 20px; }
table.gc-cases th, table.gc-cases td { padding: 3px 10px; text-align: left;
  border-bottom: 1px solid #d0d7de; }
td.gc-number { text-align: right; font-variant-numeric: tabular-nums; }
section.gc-case { border: 1px solid #d0d7de; border-radius: 6px; padding: 10px 14px;
  margin: 0 0 14px; }
section.gc-case-FAIL, section.gc-case-ERROR { border-left: 5px solid #cf222e; }
section.gc-case-ok { border-left: 5px solid #1a7f37; }
pre { font-size: 12px; overflow-x: auto; }
.gc-muted { color: #6e7781; }
"""


def case_record(result: CaseOutcome) -> dict[str, Any]:
    """One case of the page, rendered where its result lives, as plain data (str, float,
    None): ``case``, ``status``, ``layer``, ``max_rel_error``, ``seconds`` and ``html``, its
    section with the heatmaps inline. A pytest-xdist worker can send it to the controller (in
    ``item.user_properties``), which passes the records to :func:`write_html`."""
    report = result.report
    return {
        "case": result.case.id,
        "status": result.status,
        "layer": getattr(result, "layer", "?") if report is None else report.layer,
        "max_rel_error": None if report is None else float(report.max_rel_error),
        "seconds": float(result.seconds or 0.0),
        "html": _case_section(result),
    }


def write_html(
    results: Sequence[CaseOutcome | dict[str, Any]],
    path: str | Path,
    *,
    title: str = "gradcheck",
    settings: str | None = None,
    total: int | None = None,
) -> Path:
    """Write one self-contained HTML page for a run of cases to ``path`` and return it: a table
    of every case (status, worst error, seconds), then a section per case, failures first
    in their order of the run: a failure's report table and a heatmap of each wrong gradient
    (inline PNG), its text as the terminal prints it, folded; a passing case's report, folded;
    an error's message. ``results``: case results, or their :func:`case_record`.
    ``settings``: a line saying how the cases were checked; ``total``: the number of cases the
    run was to check (an interrupted run writes what it completed and says so). Inline CSS, no
    scripts, nothing fetched: it opens offline, as a CI artifact."""
    path = Path(path)
    records = [r if isinstance(r, dict) else case_record(r) for r in results]
    failed = [r for r in records if r["status"] != "ok"]
    seconds = sum(r["seconds"] for r in records)
    summary = f"{_plural(len(records), 'case')}: {len(records) - len(failed)} passed"
    if failed:
        summary += f", {len(failed)} failed"
    summary += f" in {seconds:.1f}s"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}: {html.escape(summary)}</title>",
        f"<style>{_PAGE_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if settings:
        parts.append(f'<p class="gc-muted">{html.escape(settings)}</p>')
    if total is not None and total > len(records):
        parts.append(
            f'<p class="gc-interrupted" style="color:{_COLOURS["kink"]};font-weight:600">'
            f"interrupted: {len(records)} of {total} cases checked</p>"
        )
    parts.append(f'<p class="gc-summary">{html.escape(summary)}</p>')
    parts.append('<table class="gc-cases"><thead><tr><th>case</th><th>layer</th>')
    parts.append("<th>status</th><th>worst rel err</th><th>seconds</th></tr></thead><tbody>")
    for r in records:
        worst = "" if r["max_rel_error"] is None else f"{r['max_rel_error']:.1e}"
        parts.append(
            f'<tr class="gc-case-row" data-case="{html.escape(r["case"])}">'
            f'<td><a href="#{_anchor(r["case"])}">{html.escape(r["case"])}</a></td>'
            f"<td>{html.escape(r['layer'])}</td><td>{_status(r['status'])}</td>"
            f'<td class="gc-number">{worst}</td>'
            f'<td class="gc-number">{r["seconds"]:.2f}</td></tr>'
        )
    parts.append("</tbody></table>")
    parts += [r["html"] for r in failed]
    parts += [r["html"] for r in records if r["status"] == "ok"]
    parts.append("</body></html>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def _anchor(case_id: str) -> str:
    """The section's id: the case id, whitespace and quotes made ``_``, escaped."""
    return html.escape("case-" + re.sub(r"[\s\"']", "_", case_id))


def _case_section(result: CaseOutcome) -> str:
    status, report = result.status, result.report
    case_id = html.escape(result.case.id)
    parts = [
        f'<section class="gc-case gc-case-{html.escape(status)}" id="{_anchor(result.case.id)}" '
        f'data-case="{case_id}" data-status="{html.escape(status)}">',
        f"<h2><code>{case_id}</code> {_status(status)}</h2>",
    ]
    if status == "ok":
        if report is not None:
            example = f" (worst example: {result.example})" if result.example else ""
            parts.append(
                f"<details><summary>report{html.escape(example)}</summary>"
                f"{report_html(report)}</details>"
            )
    elif report is not None and status == "FAIL":
        if result.example:
            parts.append(
                f'<p class="gc-muted">smallest failing example: '
                f"<code>{html.escape(result.example)}</code></p>"
            )
        parts.append(report_html(report, heatmaps=True))
        parts.append(
            f"<details><summary>as text</summary><pre>{html.escape(result.details())}</pre>"
            "</details>"
        )
    else:
        parts.append(f"<pre>{html.escape(result.details())}</pre>")
    parts.append("</section>")
    return "\n".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
