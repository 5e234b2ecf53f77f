"""Heatmaps of where a gradient is wrong: the relative error per element, as a picture.

A pattern such as "wrong only in gate block 1 of 4" or "only at the last time step" is read
slowly in words and seen at a glance in a picture. :func:`heatmap_data` lays a wrong gradient's
relative errors out in 2-D (a 3-D or higher tensor as tiles along the axis its pattern names,
else along axis 0); :func:`plot` draws one row of heatmaps per wrong gradient (matplotlib, the
``plot`` extra), with analytic and numeric values side by side for small tensors
(``Report.plot``). The values come from what a gradient found wrong element by element keeps
(:class:`~gradcheck.report.Entry`, up to :data:`~gradcheck.report.MAX_KEPT` elements).
"""

from __future__ import annotations

import io
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck.report import MAX_KEPT, Entry, Report

__all__ = ["FLOOR", "INSTALL", "SIDE_BY_SIDE", "heatmap_data", "plot"]

INSTALL = 'pip install "gradcheck-seq2seq[plot]"'
#: Up to this many elements, analytic and numeric values are drawn next to the errors.
SIDE_BY_SIDE = 1024
#: The darkest colour of a heatmap: relative errors at or below this (the values are kept in
#: float32, whose rounding is about 1e-7).
FLOOR = 1e-7


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
    blocks bisected to one element or on random directions, or has more than MAX_KEPT
    elements)."""
    if entry.errors is None:
        raise ValueError(f"{entry.label or entry.name}: no heatmap: {why_no_heatmap(entry)}")
    return _as_2d(entry.errors, _layout(entry.errors.shape, entry.pattern))


def _rows(entry: Entry) -> int:
    """How many rows the entry's picture has."""
    return heatmap_data(entry).shape[0]


def why_no_heatmap(entry: Entry) -> str:
    size = int(np.prod(entry.shape)) if entry.shape is not None else 0
    if entry.passed:
        return "it agrees with the numeric gradient"
    if entry.status != "mismatch":
        return entry.message or entry.status
    if size > MAX_KEPT:
        return f"{size:,} elements, more than the {MAX_KEPT:,} whose values are kept"
    return (
        "compared in blocks bisected to one element or on random directions, not element by "
        "element; mode='full' compares every element on its own"
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


def has_matplotlib() -> bool:
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
    fig = draw(wrong, rtol=rtol, values=values, layer=report.layer)
    # a notebook shows a Figure made without pyplot only when pyplot's inline backend is on;
    # with this, IPython shows it as a PNG in any notebook (the inline backend, when on, wins)
    fig._repr_png_ = lambda: png(fig)
    return fig


def draw(entries: Sequence[Entry], *, rtol: float, values: bool | None, layer: str) -> Any:
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
            why = textwrap.fill(f"{name}: no heatmap: {why_no_heatmap(entry)}", 100)
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


def png(fig: Any) -> bytes:
    """The figure as PNG bytes (matplotlib's Agg canvas)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


# --- HTML -----------------------------------------------------------------------------------
