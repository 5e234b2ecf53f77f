"""The pictures of a report: the HTML table, the heatmaps and the page of a run. Each heatmap of a
known bug (one wrong gate block, one wrong time step) must be hot exactly where the bug is, in the
array and in the drawn PNG; a passing report draws nothing; the page holds every case, and only
failures carry heatmaps."""

from __future__ import annotations

import base64
import io
import json
import sys
from dataclasses import dataclass
from html.parser import HTMLParser

import numpy as np
import pytest

import gradcheck
from gradcheck import compare, heatmaps, render
from gradcheck.render import heatmap_data, report_html, write_html
from gradcheck.report import Entry

N, T, D, H = 3, 4, 2, 5


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def lstm_gates(h, Wh):
    """The gates of an LSTM step: h (N, H), Wh (H, 4H) -> (N, 4H), gate order f, g, i, o."""
    a = h @ Wh
    H = Wh.shape[0]
    return np.concatenate(
        [_sigmoid(a[:, :H]), np.tanh(a[:, H : 2 * H]), _sigmoid(a[:, 2 * H :])], 1
    )


def lstm_gates_vjp(dout, h, Wh, wrong_block=None):
    H = Wh.shape[0]
    y = lstm_gates(h, Wh)
    da = dout * y * (1 - y)  # sigmoid gates
    da[:, H : 2 * H] = dout[:, H : 2 * H] * (1 - y[:, H : 2 * H] ** 2)  # tanh gate g
    dWh = h.T @ da
    if wrong_block is not None:
        dWh[:, wrong_block * H : (wrong_block + 1) * H] = 0  # BUG: that gate's dWh never written
    return da @ Wh.T, dWh


def steps(xs, W):
    """tanh over time: xs (N, T, D), W (D, H) -> (N, T, H)."""
    return np.tanh(xs @ W)


def steps_vjp(dout, xs, W, wrong_last=False):
    dz = dout * (1 - steps(xs, W) ** 2)
    dxs = dz @ W.T
    if wrong_last:
        dxs[:, -1] *= 1.5  # BUG: the last time step's gradient scaled
    return dxs, np.einsum("ntd,nth->dh", xs, dz)


def _gate_report(wrong_block=1, **options):
    rng = np.random.default_rng(0)
    h, Wh = rng.standard_normal((N, H)), rng.standard_normal((H, 4 * H))

    def vjp(dout, h, Wh):
        return lstm_gates_vjp(dout, h, Wh, wrong_block)

    return gradcheck.check_function(lstm_gates, vjp, h, Wh, seed=0, **options)


def _step_report(wrong_last=True, **options):
    rng = np.random.default_rng(1)
    xs, W = rng.standard_normal((N, T, D)), rng.standard_normal((D, H))

    def vjp(dout, xs, W):
        return steps_vjp(dout, xs, W, wrong_last)

    return gradcheck.check_function(steps, vjp, xs, W, seed=0, **options)


def _row(report, name):
    return next(e for e in report.gradients if e.name == name)


# --- what an entry keeps ----------------------------------------------------------------------


def test_wrong_gradient_keeps_its_values_and_passing_ones_keep_none():
    report = _gate_report()
    Wh, h = _row(report, "Wh"), _row(report, "h")
    assert not Wh.passed and Wh.errors is not None
    assert Wh.errors.shape == Wh.analytic_values.shape == Wh.numeric_values.shape == (H, 4 * H)
    assert Wh.errors.dtype == np.float32
    assert not np.any(Wh.analytic_values[:, H : 2 * H])  # the zeroed block, as it was
    assert h.passed and h.errors is h.analytic_values is h.numeric_values is None
    assert all(e.errors is None for e in _gate_report(wrong_block=None).entries)


def test_to_dict_stays_json_and_leaves_the_values_out():
    d = json.loads(json.dumps(_gate_report().to_dict()))
    for entry in d["entries"]:
        assert not {"errors", "analytic_values", "numeric_values"} & set(entry)


def test_values_are_kept_only_element_by_element_and_up_to_the_cap(monkeypatch):
    fast = _row(_gate_report(mode="fast"), "Wh")
    assert not fast.passed and fast.errors is None
    with pytest.raises(ValueError, match="random directions"):
        heatmap_data(fast)
    monkeypatch.setattr(compare, "MAX_KEPT", 10)
    monkeypatch.setattr(heatmaps, "MAX_KEPT", 10)
    big = _row(_gate_report(), "Wh")
    assert not big.passed and big.errors is None
    with pytest.raises(ValueError, match="more than the 10"):
        heatmap_data(big)


# --- the heatmap is hot where the bug is -----------------------------------------------------


def _hot(data, rtol=1e-5):
    return np.nan_to_num(data, nan=0.0) > 100 * rtol


def test_heatmap_of_one_wrong_gate_block_is_hot_in_that_block_only():
    entry = _row(_gate_report(wrong_block=1), "Wh")
    assert "gate block 1 of 4" in entry.pattern
    data = heatmap_data(entry)
    assert data.shape == (H, 4 * H)
    hot_columns = np.flatnonzero(_hot(data).any(axis=0))
    assert list(hot_columns) == list(range(H, 2 * H))
    assert _hot(data[:, H : 2 * H]).mean() >= 0.8  # (an element whose value is ~0 may agree)


def test_heatmap_of_one_wrong_time_step_is_hot_in_the_last_tile_only():
    entry = _row(_step_report(), "xs")
    assert "axis 1" in entry.pattern and "(the last)" in entry.pattern
    data = heatmap_data(entry)
    assert data.shape == (N, T * D)  # tiles along time, D columns each
    hot_columns = np.flatnonzero(_hot(data).any(axis=0))
    assert list(hot_columns) == list(range((T - 1) * D, T * D))
    assert _hot(data[:, (T - 1) * D :]).all()


def test_layout_tiles_every_element_once_where_its_position_says():
    shape = (2, 3, 4, 5)
    entry = Entry(
        "x", "gradient", "mismatch", shape=shape, pattern="wrong only at index 2 of axis 1"
    )
    entry.errors = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    data = heatmap_data(entry)
    layout = heatmaps._layout(shape, entry.pattern)
    assert (layout.axis, layout.tiles, layout.width) == (1, 3, 5)
    assert data.shape == (2 * 4, 3 * 5)
    assert sorted(data.ravel()) == sorted(entry.errors.ravel())
    for index in np.ndindex(shape):
        assert data[heatmaps._position(index, layout)] == entry.errors[index]


def _hot_columns_in_png(fig):
    """The fraction of the heatmap's width, left and right, where its PNG is hot (the top of
    inferno: bright yellow; white lines and the cyan outline are not hot)."""
    from matplotlib.image import imread

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi)
    pixels = imread(io.BytesIO(buffer.getvalue()))[..., :3]
    box = fig.axes[0].get_window_extent()  # the errors' axes, in the pixels just drawn
    height = pixels.shape[0]
    crop = pixels[
        int(height - box.y1) + 2 : int(height - box.y0) - 2, int(box.x0) + 2 : int(box.x1) - 2
    ]
    r, g, b = crop[..., 0], crop[..., 1], crop[..., 2]
    columns = np.flatnonzero(((r > 0.8) & (g > 0.8) & (b < 0.8)).any(axis=0))
    width = crop.shape[1]
    return columns.min() / width, (columns.max() + 1) / width


def test_drawn_heatmap_of_a_wrong_gate_block_is_hot_over_that_quarter():
    pytest.importorskip("matplotlib")
    fig = _gate_report(wrong_block=1).plot(values=False)
    left, right = _hot_columns_in_png(fig)
    assert left == pytest.approx(0.25, abs=0.02) and right == pytest.approx(0.5, abs=0.02)


def test_drawn_heatmap_of_a_wrong_last_step_is_hot_over_the_last_tile():
    pytest.importorskip("matplotlib")
    fig = _step_report().plot(values=False)
    left, right = _hot_columns_in_png(fig)
    assert left == pytest.approx((T - 1) / T, abs=0.02) and right == pytest.approx(1, abs=0.02)


def test_plot_draws_analytic_and_numeric_beside_a_small_tensor():
    pytest.importorskip("matplotlib")
    report = _gate_report()
    titles = [ax.get_title(loc="left") for ax in report.plot().axes]
    assert "analytic" in titles and "numeric" in titles
    titles = [ax.get_title(loc="left") for ax in report.plot(values=False).axes]
    assert "analytic" not in titles


def test_plot_shows_in_a_notebook_without_pyplot():
    pytest.importorskip("matplotlib")
    assert _gate_report().plot()._repr_png_().startswith(b"\x89PNG")  # what IPython displays


def test_plot_of_a_passing_report_draws_no_heatmap():
    pytest.importorskip("matplotlib")
    fig = _gate_report(wrong_block=None).plot()
    assert not fig.axes
    assert "no wrong gradient" in fig.texts[0].get_text()


def test_without_matplotlib_plot_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(ImportError, match=r'pip install "gradcheck-seq2seq\[plot\]"'):
        _gate_report().plot()


# --- the notebook's table ------------------------------------------------------------------------


class _Tree(HTMLParser):
    """Every start tag with its attributes, the text, and whether tags balance."""

    VOID = frozenset({"meta", "img", "br", "link", "input", "hr"})

    def __init__(self, text):
        super().__init__()
        self.tags, self.text, self.stack, self.unbalanced = [], [], [], []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.unbalanced.append(tag)

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag, **attrs):
        return [
            a
            for t, a in self.tags
            if t == tag and all(k in a and v in a[k].split() for k, v in attrs.items())
        ]


def test_report_html_is_a_table_with_the_contract_folded_and_the_reproduce_line():
    report = _gate_report()
    page = report._repr_html_()
    assert page == report_html(report)
    tree = _Tree(page)
    assert not tree.unbalanced and not tree.stack
    text = "".join(tree.text)
    for column in ("quantity", "shape", "status", "worst error", "where", "pattern"):
        assert column in text
    assert "gate block 1 of 4" in text and "[" in text
    assert tree.find("span", **{"class": "gc-fail"}) and tree.find("span", **{"class": "gc-ok"})
    (details,) = tree.find("details")
    assert "open" not in details  # every contract check holds: folded
    assert "contract: 5 checks, all held" in text
    assert tree.find("pre", **{"class": "gc-reproduce"})
    assert report.reproduce_line() in text
    assert not tree.find("img")  # the notebook table is compact: heatmaps come from plot()


def test_report_html_opens_the_contract_when_a_check_fails():
    def f(x):
        return 2 * x

    def vjp(dout, x):
        dout *= 2  # BUG: writes into dout
        return dout

    report = gradcheck.check_function(f, vjp, np.ones((2, 3)), seed=0)
    assert any(not e.passed for e in report.contract)
    (details,) = _Tree(report_html(report)).find("details")
    assert "open" in details


def test_report_html_with_heatmaps_only_for_a_failing_report():
    pytest.importorskip("matplotlib")
    failing = _Tree(report_html(_gate_report(), heatmaps=True))
    (image,) = failing.find("img", **{"class": "gc-heatmap"})
    assert image["data-quantity"] == "Wh" and image["src"].startswith("data:image/png;base64,")
    passing = _Tree(report_html(_gate_report(wrong_block=None), heatmaps=True))
    assert not passing.find("img") and not passing.find("div", **{"class": "gc-heatmaps"})


# --- the page of a run -------------------------------------------------------------------------


@dataclass
class _Case:
    id: str


@dataclass
class _Outcome:
    """Anything with these attributes will do (gradcheck.cli.CaseResult has them)."""

    case: _Case
    status: str
    report: object
    example: str | None = None
    seconds: float = 0.1

    def details(self) -> str:
        if self.report is None:
            return f"{self.case.id} raised: RuntimeError: builder broken (cases.py:3)"
        return f"{self.case.id}, smallest failing example {self.example}:\n{self.report}"


def _run():
    return [
        _Outcome(_Case("mod::gates_ok"), "ok", _gate_report(wrong_block=None), "gates_ok(N=3)"),
        _Outcome(_Case("mod::gates_bug"), "FAIL", _gate_report(), "gates_bug(N=3, H=5)"),
        _Outcome(_Case("mod::steps_bug"), "FAIL", _step_report(), "steps_bug(T=4)"),
        _Outcome(_Case("mod::<broken>"), "ERROR", None, None),
    ]


def _sections(tree):
    return {a["data-case"]: a for t, a in tree.tags if t == "section"}


def test_page_holds_every_case_with_its_status_and_only_failures_have_heatmaps(tmp_path):
    pytest.importorskip("matplotlib")
    results = _run()
    page = write_html(results, tmp_path / "run.html").read_text(encoding="utf-8")
    tree = _Tree(page)
    assert not tree.unbalanced and not tree.stack
    sections = _sections(tree)
    rows = {a["data-case"] for a in tree.find("tr", **{"class": "gc-case-row"})}
    assert set(sections) == rows == {r.case.id for r in results}
    for r in results:
        assert sections[r.case.id]["data-status"] == r.status
        assert f"gc-case-{r.status}" in sections[r.case.id]["class"]
    images = _images_by_case(page)
    assert images == {"mod::gates_bug": ["Wh"], "mod::steps_bug": ["xs"]}
    assert "RuntimeError: builder broken" in "".join(tree.text)
    assert "&lt;broken&gt;" in page  # ids are escaped
    assert "4 cases: 1 passed, 3 failed" in "".join(tree.text)


def _images_by_case(page):
    """{case id: [quantity of each heatmap]} from the sections of the page."""
    found, current = {}, None

    class Walk(HTMLParser):
        def handle_starttag(self, tag, attrs):
            nonlocal current
            attrs = dict(attrs)
            if tag == "section":
                current = attrs["data-case"]
            if tag == "img":
                found.setdefault(current, []).append(attrs["data-quantity"])
                png = base64.b64decode(attrs["src"].split(",", 1)[1])
                assert png.startswith(b"\x89PNG")

    Walk().feed(page)
    return found


def test_page_is_self_contained(tmp_path):
    pytest.importorskip("matplotlib")
    page = write_html(_run(), tmp_path / "run.html").read_text(encoding="utf-8")
    lowered = page.lower()
    for reference in ("http://", "https://", "<script", "<link", "@import", "url("):
        assert reference not in lowered
    assert not [a for t, a in _Tree(page).tags if t == "img" and not a["src"].startswith("data:")]


def test_interrupted_run_says_how_far_it_got(tmp_path):
    results = _run()[:2]
    page = write_html(results, tmp_path / "run.html", total=7, settings="mode=auto").read_text()
    text = "".join(_Tree(page).text)
    assert "interrupted: 2 of 7 cases checked" in text and "mode=auto" in text
    complete = write_html(results, tmp_path / "all.html", total=2).read_text()
    assert "interrupted" not in complete


def test_page_without_matplotlib_says_which_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    page = write_html(_run(), tmp_path / "run.html").read_text()
    tree = _Tree(page)
    assert not tree.find("img")
    assert len(tree.find("p", **{"class": "gc-no-plot"})) == 2  # one per failing report
    assert 'pip install "gradcheck-seq2seq[plot]"' in "".join(tree.text)


def test_the_docs_picture_shows_the_bug_it_says():
    """docs/make_pictures.py's LSTM step (gate g through the sigmoid's derivative): its weights
    are hot in gate block 1 only, as docs/reports.md says of the picture."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "docs" / "make_pictures.py"
    spec = importlib.util.spec_from_file_location("_make_pictures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.buggy_report()
    H = 5
    for name in ("Wx", "Wh"):
        hot = np.flatnonzero(_hot(heatmap_data(_row(report, name))).any(axis=0))
        assert list(hot) == list(range(H, 2 * H)), name
    assert _hot(heatmap_data(_row(report, "input[1]"))).all()


def test_report_html_of_a_check_that_is_not_of_gradients_lists_its_properties():
    report = gradcheck.Report(
        layer="Decoder",
        entries=[
            Entry("greedy", "generate", "ok"),
            Entry("decoder unchanged", "generate", "fail", message="params changed: W"),
        ],
        seed=0,
        settings={},
        shapes={},
        headline="Decoder.generate disagrees with its forward",
    )
    tree = _Tree(report_html(report, heatmaps=True))
    text = "".join(tree.text)
    assert "Decoder.generate disagrees with its forward" in text
    assert "decoder unchanged" in text and "params changed: W" in text
    assert not tree.find("details") and not tree.find("img") and "calls:" not in text


def test_page_from_records_is_the_page_from_results(tmp_path):
    """A pytest-xdist worker renders its cases to plain records; the controller writes the
    same page from them."""
    pytest.importorskip("matplotlib")
    results = _run()
    records = json.loads(json.dumps([render.case_record(r) for r in results]))
    from_records = write_html(records, tmp_path / "records.html").read_text()
    assert from_records == write_html(results, tmp_path / "results.html").read_text()


def test_every_link_of_the_case_table_leads_to_its_section(tmp_path):
    results = _run()
    tree = _Tree(write_html(results, tmp_path / "run.html").read_text())
    ids = {a["id"] for t, a in tree.tags if t == "section"}
    links = [a["href"] for a in tree.find("a")]
    assert len(links) == len(results) and {link[1:] for link in links} == ids
