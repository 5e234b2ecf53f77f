"""The docs show what the code does: every marked snippet runs, every shown output is what the
code prints today, every table of numbers names the script that made it, and the pages speak
of the project alone. The markers are described in ``docs/build.py``.
"""

import importlib.util
import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from layers import train

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docs_build", ROOT / "docs" / "build.py")
build = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

PAGES = [pytest.param(p, id=str(p.relative_to(ROOT))) for p in build.pages()]

#: Pages written before the markers existed; their snippets are not yet all marked to run.
#: Strict: once a page passes, its entry must go.
_NOT_YET_MARKED: set[str] = set()
_NOT_YET_PLAIN: set[str] = set()
_NOT_YET_GENERATED: set[str] = set()


def _with_pending(pages, pending, reason):
    out = []
    for param in pages:
        (path,) = param.values
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if param.id in pending else []
        out.append(pytest.param(path, id=param.id, marks=marks))
    return out


@pytest.mark.parametrize("page", PAGES)
def test_page_shows_what_the_code_prints(page):
    problems = build.build(page, write=False, slow=False)
    assert not problems, (
        f"{page.relative_to(ROOT)} is stale; `python docs/build.py --write` rewrites it:\n\n"
        + "\n\n".join(problems)
    )


_CODE = {"python", "py", "bash", "sh", "shell", "console", "pycon"}


@pytest.mark.parametrize(
    "page", _with_pending(PAGES, _NOT_YET_MARKED, "snippets written before the markers")
)
def test_every_snippet_is_marked_to_run(page):
    parsed = build.parse(page)
    unmarked = [
        f"{page.name}:{b.start + 1}: a ```{b.lang} block with no <!-- run --> or <!-- shell -->"
        for b in parsed.blocks
        if b.lang.split()[0:1] and b.lang.split()[0] in _CODE and b.start not in parsed.marked
    ]
    assert not unmarked, "\n".join(unmarked)


_NUMBER = re.compile(r"^[-+]?[\d,]*\d(\.\d+)?\s*(%|x|s|ms|µs|KiB)?$")


@pytest.mark.parametrize(
    "page", _with_pending(PAGES, _NOT_YET_GENERATED, "tables typed before the markers")
)
def test_every_table_of_numbers_is_generated(page):
    """A table row with a cell that is a number (``12.3``, ``99.62 %``, ``6.70x``) lies inside
    a ``<!-- generated: CMD -->`` region, so the command that made it is on the page."""
    parsed = build.parse(page)
    inside = {i for r in parsed.regions for i in range(r.start, r.end)}
    in_blocks = {i for b in parsed.blocks for i in range(b.start, b.end + 1)}
    typed = [
        f"{page.name}:{i + 1}: {line.strip()[:80]}"
        for i, line in enumerate(parsed.lines)
        if line.lstrip().startswith("|")
        and i not in inside | in_blocks
        and any(_NUMBER.match(cell.strip()) for cell in line.strip().strip("|").split("|"))
    ]
    assert not typed, "numbers typed by hand; generate them (see docs/build.py):\n" + "\n".join(
        typed
    )


_PROCESS = re.compile(
    r"\bissue\s*#?\d|\bUTC\b|\bsessions?\b|\bagents?\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b",
    re.IGNORECASE,
)


@pytest.mark.parametrize(
    "page", _with_pending(PAGES, _NOT_YET_PLAIN, "written before the docs were made plain")
)
def test_page_speaks_of_the_project_alone(page):
    """Nothing about how, where or by whom the project was built: no issue numbers, commit
    hashes, clock times, sessions or agents."""
    found = [
        f"{page.name}:{n}: {match.group(0)!r} in {line.strip()[:100]}"
        for n, line in enumerate(page.read_text(encoding="utf-8").split("\n"), 1)
        for match in _PROCESS.finditer(line)
    ]
    assert not found, "\n".join(found)


def test_tests_named_in_the_layers_page_exist():
    text = (ROOT / "docs" / "layers.md").read_text(encoding="utf-8")
    named = []
    for cell in re.findall(r"`(tests/[\w/]+\.py)::(\w+)`((?:, `::\w+`)*)", text):
        path, first, more = cell
        named += [(path, name) for name in [first, *re.findall(r"::(\w+)", more)]]
    assert len(named) >= 10
    missing = [
        f"{path}::{name}"
        for path, name in named
        if not re.search(rf"^def {name}\(", (ROOT / path).read_text(encoding="utf-8"), re.M)
    ]
    assert not missing, missing


def test_a_stale_output_is_reported_with_its_page_and_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- run -->\n```python\nprint('now', 1 + 1)\n```\n\n<!-- output -->\n```\nnow 3\n```\n"
    )
    problems = build.build(page, write=False, slow=False)
    assert len(problems) == 1 and problems[0].startswith("--- page.md:1:"), problems
    assert "-now 3" in problems[0] and "+now 2" in problems[0]
    assert not build.build(page, write=True, slow=False)
    assert "now 2" in page.read_text() and not build.build(page, write=False, slow=False)


def test_durations_are_compared_as_a_placeholder():
    assert build.normalise("1 case: 1 passed in 0.3s") == build.normalise("1 case: 1 passed in 12s")
    assert build.normalise("in 0.3s") == "in <time>"
    assert build.normalise("loss 0.3s") == "loss 0.3s"  # "s" alone: only after "in "
    assert build.normalise("train 1.6 s, 1,218 ex/s") == "train <time> s, <rate> ex/s"


def test_a_failing_snippet_and_a_missing_script_are_problems(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- run -->\n```python\nraise SystemExit(3)\n```\n\n"
        "<!-- generated slow: .venv/bin/python benchmarks/nothing_here.py -->\n| a |\n"
        "<!-- end generated -->\n"
    )
    problems = "\n".join(build.build(page, write=False, slow=False))
    assert "page.md:1: run exited with 3, not 0" in problems
    assert "page.md:6: generated: names benchmarks/nothing_here.py, which does not" in problems


def test_each_saved_run_names_the_command_that_repeats_it():
    """docs/training.md's tables print each run's command from its saved settings; parsed by
    the trainer, that command gives back exactly those settings."""
    spec = importlib.util.spec_from_file_location(
        "docs_results", ROOT / "docs" / "training_results.py"
    )
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    saved = sorted((ROOT / "docs" / "results").glob("*.json"))
    assert saved
    for path in saved:
        settings = json.loads(path.read_text(encoding="utf-8"))["settings"]
        argv = shlex.split(results.command(settings))[3:]  # after "python -m layers.train"
        parsed = vars(train._parser().parse_args(argv))
        assert {k: parsed[k] for k in results.OPTIONS} == {k: settings[k] for k in results.OPTIONS}


def test_a_command_shown_is_the_command_run(tmp_path):
    page = tmp_path / "page.md"
    shown = "<!-- shell: .venv/bin/python -c 'print(2)' -->\n"
    shown += "```console\n$ python -c 'print({})'\n```\n"
    page.write_text(shown.format(2) + "\n<!-- output -->\n```\n2\n```\n")
    assert not build.build(page, write=False, slow=False)
    page.write_text(shown.format(3))
    (problem,) = build.build(page, write=False, slow=False)
    assert problem.startswith("page.md:2: the block shows \"python -c 'print(3)'\""), problem


#: Pages other pages already link to that are written separately; once one exists, its links
#: are checked like any other and it must leave this list.
_PAGES_TO_COME: set[str] = set()
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_lead_to_a_page_and_heading(page):
    broken = []
    for target in _LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        name = str(linked.relative_to(ROOT)) if linked.is_relative_to(ROOT) else str(linked)
        if not linked.exists():
            if name not in _PAGES_TO_COME:
                broken.append(f"{target}: no such file")
            continue
        if anchor and linked.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), re.M)
            if anchor not in {_anchor(h) for h in headings}:
                broken.append(f"{target}: no heading #{anchor} in {name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_pages_to_come_are_not_here_yet():
    here = sorted(p for p in _PAGES_TO_COME if (ROOT / p).exists())
    assert not here, f"{here} exist now: take them out of _PAGES_TO_COME"
