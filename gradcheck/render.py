"""A report as a picture: the table a notebook shows, heatmaps of where a gradient is wrong, and
one self-contained HTML page for a run of many cases.

A pattern such as "wrong only in gate block 1 of 4" or "only at the last time step" is read
slowly in words and seen at a glance in a picture of the relative error per element. So:

- :func:`report_html`: a report as a compact HTML table (``Report._repr_html_``, what Jupyter
  shows): one row per gradient, the contract folded under one row, the reproduce line
  selectable with one click; inline styles only, so that it renders wherever HTML does;
- :func:`heatmap_data`: the 2-D picture of a wrong gradient's relative errors (a 3-D or
  higher tensor laid out as tiles along the axis its pattern names, else along axis 0);
- :func:`plot`: one row of heatmaps per wrong gradient (matplotlib, the ``plot`` extra), with
  analytic and numeric side by side for small tensors (``Report.plot``);
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
import io
import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gradcheck.report import MAX_KEPT, Entry, Report

__all__ = ["CaseOutcome", "case_record", "heatmap_data", "plot", "report_html", "write_html"]

INSTALL = 'pip install "gradcheck-seq2seq[plot]"'
#: Up to this many elements, analytic and numeric values are drawn next to the errors.
SIDE_BY_SIDE = 1024
#: The darkest colour of a heatmap: relative errors at or below this (the values are kept in
#: float32, whose rounding is about 1e-7).
FLOOR = 1e-7

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


# --- the heatmap's layout -------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """How a tensor is drawn in 2-D: up to 2-D as is (a vector as one row); higher ranks as
    ``tiles`` side by side, one per index of ``axis``, each ``width`` columns (the last axis)
    by the other axes flattened; ``blocks`` gate blocks along the last axis (0: none)."""

    shape: tuple[int, ...]
    axis: int | None
    tiles: int
    width: int
    blocks: int


def _layout(shape: tuple[int, ...], pattern: str | None) -> _Layout:
    ndim = len(shape)
    named = re.search(r"(?:of|along) axis (\d+)", pattern or "")
    gates = re.search(r"gate block \d+ of (\d+) along axis (\d+)", pattern or "")
    blocks = int(gates[1]) if gates and int(gates[2]) == ndim - 1 else 0
    width = shape[-1] if ndim else 1
    if ndim <= 2:
        return _Layout(shape, None, 1, width, blocks)
    axis = int(named[1]) if named and int(named[1]) < ndim - 1 else 0
    return _Layout(shape, axis, shape[axis], width, blocks)


def _as_2d(values: np.ndarray, layout: _Layout) -> np.ndarray:
    if values.ndim <= 2:
        return values.reshape(-1, layout.width) if values.ndim else values.reshape(1, 1)
    moved = np.moveaxis(values, layout.axis, 0)
    rows = moved[0].size // layout.width
    tiles = moved.reshape(layout.tiles, rows, layout.width)
    return tiles.transpose(1, 0, 2).reshape(rows, layout.tiles * layout.width)


def _position(index: tuple[int, ...], layout: _Layout) -> tuple[int, int]:
    """Where element ``index`` of the tensor sits in :func:`_as_2d`'s picture (row, column)."""
    if len(index) <= 1:
        return 0, index[0] if index else 0
    if layout.axis is None:
        return index[0], index[1]
    rest = [i for k, i in enumerate(index) if k != layout.axis]
    shape = [n for k, n in enumerate(layout.shape) if k != layout.axis]
    row = int(np.ravel_multi_index(rest[:-1], shape[:-1]))
    return row, index[layout.axis] * layout.width + rest[-1]


def heatmap_data(entry: Entry) -> np.ndarray:
    """The relative error of each element of a wrong gradient as a 2-D array, as drawn: a 0-D
    or 1-D gradient as one row, 2-D as is, and a higher rank as tiles side by side, one per
    index of the axis its pattern names (a time step), else of axis 0; within a tile, the last
    axis runs along the columns. NaN where an element was not compared (a kink).

    Raises ValueError for an entry that keeps no errors (it passed, or was compared on a
    sample of elements or on random directions, or has more than MAX_KEPT elements)."""
    if entry.errors is None:
        raise ValueError(f"{entry.label or entry.name}: no heatmap: {_why_no_heatmap(entry)}")
    return _as_2d(entry.errors, _layout(entry.errors.shape, entry.pattern))


def _rows(entry: Entry) -> int:
    """How many rows the entry's picture has."""
    return heatmap_data(entry).shape[0]


def _why_no_heatmap(entry: Entry) -> str:
    size = int(np.prod(entry.shape)) if entry.shape is not None else 0
    if entry.passed:
        return "it agrees with the numeric gradient"
    if entry.status != "mismatch":
        return entry.message or entry.status
    if size > MAX_KEPT:
        return f"{size:,} elements, more than the {MAX_KEPT:,} whose values are kept"
    return (
        "compared on a sample of elements or on random directions, not element by element; "
        "mode='full' compares every element"
    )


# --- matplotlib -----------------------------------------------------------------------------


def _figure_class() -> Any:
    """matplotlib's Figure, drawn without pyplot (no window, no backend switched), or an
    ImportError that says what to install."""
    try:
        import matplotlib  # noqa: F401  (first: the package itself decides "installed")
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(f"heatmaps need matplotlib: {INSTALL}") from None
    return Figure


def _has_matplotlib() -> bool:
    try:
        _figure_class()
    except ImportError:
        return False
    return True


def plot(report: Report, *, values: bool | None = None) -> Any:
    """A matplotlib Figure with one row per wrong gradient: a heatmap of its relative error
    ``|analytic - numeric| / max(|analytic|, |numeric|)`` on a log scale (dark: agrees; bright:
    wrong; grey: not compared), the worst element outlined, gate blocks and tiles separated by
    white lines; ``values``: draw analytic and numeric next to it (default: for tensors of at
    most :data:`SIDE_BY_SIDE` elements). A wrong gradient without kept values gets a line
    saying why. Raises ImportError naming the extra to install when matplotlib is missing."""
    wrong = [e for e in report.gradients if not e.passed]
    rtol = float(report.settings.get("rtol", 0.0)) if report.settings else 0.0
    fig = _draw(wrong, rtol=rtol, values=values, layer=report.layer)
    # a notebook shows a Figure made without pyplot only when pyplot's inline backend is on;
    # with this, IPython shows it as a PNG in any notebook (the inline backend, when on, wins)
    fig._repr_png_ = lambda: _png(fig)
    return fig


def _draw(entries: Sequence[Entry], *, rtol: float, values: bool | None, layer: str) -> Any:
    Figure = _figure_class()  # (first: without matplotlib, the line saying what to install)
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm

    if not entries:
        fig = Figure(figsize=(6, 0.6))
        fig.text(0.02, 0.5, f"{layer}: no wrong gradient, nothing to draw", va="center")
        return fig
    sides = [
        e.errors is not None
        and (values if values is not None else e.errors.size <= SIDE_BY_SIDE)
        and e.analytic_values is not None
        for e in entries
    ]
    columns = 3 if any(sides) else 1
    heights = [0.8 if e.errors is None else 1.5 + 0.25 * min(_rows(e), 6) for e in entries]
    width = 5.5 * columns if columns > 1 else 7.5
    fig = Figure(figsize=(width, sum(heights)), layout="constrained")
    grid = fig.add_gridspec(len(entries), columns, height_ratios=heights)
    hot = colormaps["inferno"].with_extremes(bad="#9e9e9e")
    cool = colormaps["RdBu_r"].with_extremes(bad="#9e9e9e")
    for row, (entry, side) in enumerate(zip(entries, sides, strict=True)):
        name = f"{entry.label or entry.name} {entry.shape}"
        if entry.errors is None:
            ax = fig.add_subplot(grid[row, :])
            ax.axis("off")
            why = textwrap.fill(f"{name}: no heatmap: {_why_no_heatmap(entry)}", 100)
            ax.text(0, 0.5, why, va="center", fontsize=9)
            continue
        layout = _layout(entry.errors.shape, entry.pattern)
        ax = fig.add_subplot(grid[row, 0] if side else grid[row, :])
        data = np.clip(heatmap_data(entry), FLOOR, 1.0)  # (NaN stays NaN: grey)
        image = ax.imshow(
            data, cmap=hot, norm=LogNorm(FLOOR, 1.0), aspect="auto", interpolation="nearest"
        )
        bar = fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
        bar.set_label("relative error" + (" (line: rtol)" if rtol > 0 else ""), fontsize=8)
        if FLOOR < rtol < 1:
            bar.ax.axhline(rtol, color="#00e5ff", linewidth=1.5)
        title = f"{name}: {entry.wrong} of {entry.checked} elements wrong"
        if entry.pattern:
            title += "\n" + textwrap.fill(f"pattern: {entry.pattern}", 90 if side else 80)
        ax.set_title(title, loc="left", fontsize=9)
        _decorate(ax, layout, entry.index)
        if side:
            a = _as_2d(entry.analytic_values, layout)
            n = _as_2d(entry.numeric_values, layout)
            finite = np.abs(np.concatenate([a[np.isfinite(a)], n[np.isfinite(n)]]))
            top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
            for k, (what, v) in enumerate((("analytic", a), ("numeric", n)), 1):
                vax = fig.add_subplot(grid[row, k])
                shown = vax.imshow(
                    v, cmap=cool, vmin=-top, vmax=top, aspect="auto", interpolation="nearest"
                )
                vax.set_title(what, loc="left", fontsize=9)
                _decorate(vax, layout, None)
            fig.colorbar(shown, ax=vax, fraction=0.05, pad=0.02)
    return fig


def _decorate(ax: Any, layout: _Layout, index: tuple[int, ...] | None) -> None:
    """Tile and gate-block separators, axis labels (whole indices), the worst element outlined."""
    ndim = len(layout.shape)
    rows = int(np.prod(layout.shape)) // (layout.tiles * layout.width) if layout.shape else 1
    for t in range(layout.tiles):
        if t:
            ax.axvline(
                t * layout.width - 0.5, color="white", linewidth=2.5 if layout.tiles <= 10 else 1
            )
        for j in range(1, layout.blocks):
            x = t * layout.width + j * layout.width // layout.blocks - 0.5
            ax.axvline(x, color="white", linewidth=1, linestyle="--")
    if layout.axis is not None:
        shown, last = _ticks(layout.tiles, 8), layout.tiles - 1
        if shown[-1] != last:  # the last tile (the last time step) is always named
            if last - shown[-1] < (shown[1] - shown[0]) / 2:  # (too close to label both)
                shown.pop()
            shown.append(last)
        ax.set_xticks([t * layout.width + (layout.width - 1) / 2 for t in shown])
        ax.set_xticklabels([_slice_name(ndim, layout.axis, t) for t in shown], fontsize=7)
        rest = [k for k in range(ndim - 1) if k != layout.axis]
        ax.set_xlabel(f"tiles along axis {layout.axis}; axis {ndim - 1} within each", fontsize=8)
        ax.set_ylabel("axis " + ", ".join(map(str, rest)) + (" (flat)" if len(rest) > 1 else ""))
    elif layout.blocks:
        H = layout.width // layout.blocks
        ax.set_xticks([j * H + (H - 1) / 2 for j in range(layout.blocks)])
        ax.set_xticklabels([f"block {j}" for j in range(layout.blocks)], fontsize=7)
        ax.set_xlabel(f"axis {ndim - 1} ({layout.blocks} gate blocks)", fontsize=8)
        ax.set_ylabel("axis 0" if ndim == 2 else "")
    else:
        ax.set_xticks(_ticks(layout.width) if ndim else [])
        ax.set_xlabel(f"axis {ndim - 1}" if ndim else "", fontsize=8)
        ax.set_ylabel("axis 0" if ndim == 2 else "")
    ax.set_yticks(_ticks(rows) if ndim > 1 else [])
    if index is not None:
        r, c = _position(index, layout)
        ax.add_patch(_square(c, r))


def _ticks(n: int, most: int = 10) -> list[int]:
    """At most ``most`` whole-number ticks over ``range(n)``, evenly spaced from 0."""
    return list(range(0, n, max(1, -(-n // most))))


def _square(x: float, y: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="#00e5ff", linewidth=1.5)


def _slice_name(ndim: int, axis: int, t: int) -> str:
    """``[:, 2, :]``: the slice one tile shows."""
    return "[" + ", ".join(str(t) if k == axis else ":" for k in range(ndim)) + "]"


def _png(fig: Any) -> bytes:
    """The figure as PNG bytes (matplotlib's Agg canvas)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


# --- HTML -----------------------------------------------------------------------------------


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
    if not _has_matplotlib():
        return f'<p class="gc-no-plot">heatmaps need matplotlib: <code>{INSTALL}</code></p>'
    rtol = float(report.settings.get("rtol", 0.0)) if report.settings else 0.0
    parts = ['<div class="gc-heatmaps">']
    for entry in wrong:
        name = html.escape(entry.label or entry.name)
        if entry.errors is None:
            why = html.escape(_why_no_heatmap(entry))
            parts.append(f'<p class="gc-no-heatmap" style="{_SMALL}">{name}: no heatmap: {why}</p>')
            continue
        fig = _draw([entry], rtol=rtol, values=None, layer=report.layer)
        parts.append(
            f'<img class="gc-heatmap" data-quantity="{name}" alt="where {name} is wrong" '
            f'style="max-width:100%;display:block;margin:6px 0" '
            f'src="data:image/png;base64,{base64.b64encode(_png(fig)).decode()}">'
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
        "layer": "?" if report is None else report.layer,
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
