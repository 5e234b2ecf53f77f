"""Run what the docs show: snippets, commands and their output, and the tables scripts make.

Every Python snippet, command, command output and table of numbers in the Markdown files is
marked with an HTML comment on its own line (Markdown shows none of them); the pages are
README.md, CHANGELOG.md and every ``docs/**/*.md``. This script runs
what is marked and either checks that the page still shows what the code prints, or rewrites
the page so that it does. Standard library only::

    .venv/bin/python docs/build.py --check              # every page; exit 1 with a diff if stale
    .venv/bin/python docs/build.py --write              # rewrite outputs and quick tables
    .venv/bin/python docs/build.py --write --slow       # also re-run slow commands (benchmarks)
    .venv/bin/python docs/build.py --check docs/checking.md   # some pages only

The markers:

``<!-- run -->``
    before a ```` ```python ```` block: the block is run as a script (``python -``); it must
    exit 0.
``<!-- shell -->``, ``<!-- shell exit=1 -->``
    before a ```` ```bash ```` block: the block is run by ``bash -e``; it must exit 0 (or the
    status given).
``<!-- shell: CMD -->``, ``<!-- shell exit=1: CMD -->``
    runs ``CMD``. A fenced block right after the marker shows the command (```` ```console ````
    with ``$ gradcheck x.py`` for ``CMD`` ``.venv/bin/gradcheck x.py``: ``CMD`` must end with
    what it shows, ``$ `` left out); without one the page shows the output only.
``<!-- slow run -->``, ``<!-- slow shell -->``, ``<!-- slow shell: CMD -->``
    the same, run only with ``--slow`` (a training run of minutes, the test suite itself);
    ``--check`` checks that the scripts and modules of the repository it names exist.
``<!-- output -->``
    before a fenced block: what the last ``run`` or ``shell`` above it printed (stdout, then
    stderr).
``<!-- file: PATH -->``
    before a fenced block: the block is written to ``PATH`` (relative to the run directory)
    before anything on the page runs, so commands can use it.
``<!-- generated: CMD -->`` ... ``<!-- end generated -->``
    the lines between are what ``CMD`` prints (a Markdown table); re-run by ``--check``.
``<!-- generated slow: CMD -->`` ... ``<!-- end generated -->``
    the same for a command of minutes (a benchmark): re-run only by ``--write --slow``;
    ``--check`` checks that the script it names exists and that the region is not empty.

Where things run: each page gets a fresh temporary directory laid out like a clone of the
repository (a symbolic link to each top-level entry, ``.venv`` to the environment running this
script) with ``PYTHONPATH`` holding only ``gradcheck`` and ``layers``, so a snippet imports the
packages as an installed user does and a command such as ``.venv/bin/gradcheck
examples/custom_layer.py`` runs as written from the root of a clone. The steps and tables of a
page run at the same time, each in a process of its own, in that one directory: a step must not
depend on what another leaves behind (a file it needs comes from a ``file:`` block). Every
step runs with ``PYTHONDONTWRITEBYTECODE=1``, one BLAS thread (``OPENBLAS_NUM_THREADS=1``,
``OMP_NUM_THREADS=1``) and ``COLUMNS=100`` (for ``--help`` texts).

Comparing: before an output is compared with what the page shows, both are normalised by
:data:`NORMALISE` (trailing spaces and blank lines dropped, durations such as ``in 0.3s`` or
``1.6 s`` and rates such as ``1,218 ex/s`` replaced by placeholders, the run directory's path
by ``.``). ``--write`` keeps a block that matches after normalisation as it is, so rewriting a
page does not churn its timings, and writes what the code printed otherwise (the run
directory's path as ``.``, the timings as printed).
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["NORMALISE", "build", "main", "normalise", "pages", "parse"]

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gradcheck", "layers")
#: Top-level entries of the repository not linked into the run directory: what a fresh clone
#: does not have (``runs/`` holds training output), and ``.venv``, linked on its own.
_LEFT_OUT = (".git", ".venv", "runs", ".hypothesis", ".benchmarks", "__pycache__")
TIMEOUT = 600  # seconds for one step; slow steps get ten times this

#: (pattern, replacement) applied to a shown and a printed output before they are compared.
#: Durations and rates vary from run to run: ``in 0.3s`` (the CLI's and pytest's last line)
#: becomes ``in <time>``, ``1.6 s`` (the trainer's seconds) ``<time> s``, ``1,218 ex/s``
#: ``<rate> ex/s``.
NORMALISE = (
    (re.compile(r"\bin \d+(?:\.\d+)?s\b"), "in <time>"),
    (re.compile(r"\b\d+(?:\.\d+)? s\b"), "<time> s"),
    (re.compile(r"\b[\d,]+ ex/s\b"), "<rate> ex/s"),
)

_MARKER = re.compile(r"^<!--\s*(.*?)\s*-->\s*$")
_STEP = re.compile(r"^(slow )?(run|shell)(?: exit=(\d+))?(?::\s*(.+))?$")
_FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")
_SCRIPT = re.compile(r"(?:^|\s)(?:-m\s+([\w.]+)|([\w./-]+\.py))(?=\s|$)")


@dataclass
class Block:
    """A fenced code block: ``lines[start]`` is its opening fence, ``lines[end]`` its closing."""

    start: int
    end: int
    lang: str
    text: str


@dataclass
class Step:
    """A snippet or command to run, and the block showing its output (if any)."""

    kind: str  # "run" or "shell"
    code: str
    line: int  # 1-based line of the marker
    exit: int = 0
    slow: bool = False
    output: Block | None = None


@dataclass
class Region:
    """Lines between ``<!-- generated: CMD -->`` (at ``start``) and its end marker (``end``)."""

    command: str
    start: int
    end: int
    slow: bool


@dataclass
class Page:
    path: Path
    lines: list[str]
    steps: list[Step] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    regions: list[Region] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    marked: set[int] = field(default_factory=set)  # start lines of blocks that have a marker
    errors: list[str] = field(default_factory=list)


def parse(path: Path) -> Page:
    """The markers of a Markdown file, with the blocks they refer to."""
    lines = path.read_text(encoding="utf-8").split("\n")
    page = Page(path, lines)
    pending: tuple[str, int] | None = None  # a marker waiting for its block
    shows: Step | None = None  # a shell: CMD marker, which a block right after it may show
    region: tuple[str, int, bool] | None = None
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence:
            block = _block(lines, i, fence)
            page.blocks.append(block)
            if pending is not None:
                _attach(page, pending, block)
                page.marked.add(block.start)
                pending = None
            elif shows is not None:
                _check_shown(page, shows, block)
                page.marked.add(block.start)
            shows = None
            i = block.end + 1
            continue
        marker = _MARKER.match(lines[i].strip())
        where = f"{path.name}:{i + 1}"
        if lines[i].strip():
            shows = None
        if marker:
            text = marker.group(1)
            if pending is not None:
                page.errors.append(f"{where}: marker <!-- {pending[0]} --> has no block after it")
                pending = None
            step = _STEP.match(text)
            if text.startswith("generated"):
                head, _, command = text.partition(":")
                if region is not None or not command.strip():
                    page.errors.append(f"{where}: bad or nested generated marker: {text}")
                region = (command.strip(), i, head.strip() == "generated slow")
            elif text == "end generated":
                if region is None:
                    page.errors.append(f"{where}: <!-- end generated --> without a start")
                else:
                    page.regions.append(Region(region[0], region[1], i, region[2]))
                    region = None
            elif step and step.group(4):  # a command in the marker itself
                slow, kind, status, command = step.groups()
                page.steps.append(Step(kind, command, i + 1, int(status or 0), bool(slow)))
                shows = page.steps[-1]
            elif step or text in ("output",) or text.startswith("file:"):
                pending = (text, i)
        elif lines[i].strip() and pending is not None:
            page.errors.append(f"{where}: marker <!-- {pending[0]} --> is not before a block")
            pending = None
        i += 1
    if region is not None:
        page.errors.append(f"{path.name}:{region[1] + 1}: generated region never ends")
    return page


def _block(lines: list[str], i: int, fence: re.Match) -> Block:
    """The fenced block opening at line ``i`` (to the end of the file if never closed)."""
    mark = fence.group(1)
    for j in range(i + 1, len(lines)):
        close = lines[j].strip()
        if close.startswith(mark[0] * len(mark)) and not close.strip(mark[0]):
            return Block(i, j, fence.group(2).strip(), "\n".join(lines[i + 1 : j]))
    return Block(i, len(lines) - 1, fence.group(2).strip(), "\n".join(lines[i + 1 :]))


def _check_shown(page: Page, step: Step, block: Block) -> None:
    """A block right after ``<!-- shell: CMD -->`` shows the command: ``$ gradcheck x.py`` for
    ``.venv/bin/gradcheck x.py`` (the shown text, without ``$ ``, ends ``CMD``)."""
    shown = " ".join(line.strip().removeprefix("$ ") for line in block.text.split("\n"))
    if not shown.strip() or not step.code.strip().endswith(shown.strip()):
        page.errors.append(
            f"{page.path.name}:{block.start + 1}: the block shows {shown.strip()!r}, but the "
            f"marker above it runs {step.code!r}"
        )


def _attach(page: Page, pending: tuple[str, int], block: Block) -> None:
    text, i = pending
    where = f"{page.path.name}:{i + 1}"
    step = _STEP.match(text)
    if text == "output":
        if not page.steps or page.steps[-1].output is not None:
            page.errors.append(f"{where}: <!-- output --> with no run or shell above it")
        else:
            page.steps[-1].output = block
    elif text.startswith("file:"):
        page.files[text[len("file:") :].strip()] = block.text + "\n"
    elif step:
        slow, kind, status, _ = step.groups()
        page.steps.append(Step(kind, block.text, i + 1, int(status or 0), bool(slow)))


# --- running ------------------------------------------------------------------------------


def _environment(tmp: Path) -> dict[str, str]:
    """The run directory laid out like a clone, and the environment a step runs in."""
    for entry in ROOT.iterdir():
        if entry.name not in _LEFT_OUT and not entry.name.endswith(("_cache", ".egg-info")):
            (tmp / entry.name).symlink_to(entry)
    venv = Path(sys.prefix) if sys.prefix != sys.base_prefix else ROOT / ".venv"
    (tmp / ".venv").symlink_to(venv)
    site = tmp.parent / "site"
    site.mkdir()
    for name in PACKAGES:
        (site / name).symlink_to(ROOT / name)
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(site),
        PYTHONDONTWRITEBYTECODE="1",
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        COLUMNS="100",
        PATH=f"{tmp / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    )
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def _run(kind: str, code: str, slow: bool, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run a snippet (``python -``) or a command (``bash -e``); its exit status and output."""
    argv = [sys.executable, "-"] if kind == "run" else ["bash", "-e", "-"]
    try:
        done = subprocess.run(
            argv,
            input=code,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT * (10 if slow else 1),
        )
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {TIMEOUT * (10 if slow else 1)} s"
    return done.returncode, done.stdout + done.stderr


def normalise(text: str, tmp: Path | None = None) -> str:
    """``text`` as compared: :func:`_clean`, then the placeholders of :data:`NORMALISE`."""
    text = _clean(text, tmp)
    for pattern, replacement in NORMALISE:
        text = pattern.sub(replacement, text)
    return text


def _clean(text: str, tmp: Path | None = None) -> str:
    """``text`` as written into a page: the run directory's path as ``.``, no trailing spaces
    or blank lines."""
    if tmp is not None:
        for path in {str(tmp), str(tmp.resolve())}:
            text = text.replace(path + "/", "").replace(path, ".")
    return "\n".join(line.rstrip() for line in text.strip("\n").split("\n"))


def _script_exists(command: str, *, required: bool) -> str | None:
    """A problem with the repository scripts and modules ``command`` names (``-m layers.train``,
    ``benchmarks/compare_torch.py``), or None; ``required``: it must name one."""
    named = 0
    for module, script in _SCRIPT.findall(command):
        if module and not (ROOT / module.split(".")[0]).exists():
            continue  # not the repository's (-m pytest, -m venv)
        named += 1
        path = ROOT / (module.replace(".", "/") if module else script)
        if not (path.with_suffix(".py").exists() or (path / "__init__.py").exists()):
            return f"names {module or script}, which does not exist"
    if required and not named:
        return f"names no script of the repository (a .py file or -m module): {command}"
    return None


def build(path: Path, *, write: bool, slow: bool) -> list[str]:
    """Run one page's steps and regions; the problems found (``write``: after fixing them)."""
    page = parse(path)
    problems = list(page.errors)
    replace: dict[tuple[int, int], str] = {}  # (first, last) line range -> new text
    with tempfile.TemporaryDirectory(prefix="docs-") as top:
        tmp = Path(top) / "clone"
        tmp.mkdir()
        env = _environment(tmp)
        for name, text in page.files.items():
            target = (tmp / name).resolve()
            if not target.is_relative_to(tmp.resolve()) or (tmp / name).parent.is_symlink():
                problems.append(f"{path.name}: file: {name} would write into the repository")
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        steps = []
        for step in page.steps:
            if step.slow and not slow:
                if step.kind == "shell" and (problem := _script_exists(step.code, required=False)):
                    problems.append(f"{path.name}:{step.line}: slow {step.kind}: {problem}")
            else:
                steps.append(step)
        regions = []
        for region in page.regions:
            if region.slow and not (slow and write):
                where = f"{path.name}:{region.start + 1}"
                if problem := _script_exists(region.command, required=True):
                    problems.append(f"{where}: generated: {problem}")
                if not "\n".join(page.lines[region.start + 1 : region.end]).strip():
                    problems.append(f"{where}: generated region is empty; run --write --slow")
            else:
                regions.append(region)
        runs = [(s.kind, s.code, s.slow) for s in steps]
        runs += [("shell", r.command, r.slow) for r in regions]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            done = list(pool.map(lambda run: _run(*run, tmp, env), runs))
        for step, (status, out) in zip(steps, done, strict=False):
            where = f"{path.name}:{step.line}"
            if status != step.exit:
                problems.append(
                    f"{where}: {step.kind} exited with {status}, not {step.exit}:\n"
                    + _indent(step.code)
                    + "\n  printed:\n"
                    + _indent(out[-3000:])
                )
                continue
            if step.output is not None:
                shown = step.output.text
                if normalise(shown, tmp) != normalise(out, tmp):
                    block = step.output
                    replace[(block.start + 1, block.end - 1)] = _clean(out, tmp)
                    problems.append(_diff(where, shown, out, tmp, block.start + 2))
        for region, (status, out) in zip(regions, done[len(steps) :], strict=True):
            where = f"{path.name}:{region.start + 1}"
            shown = "\n".join(page.lines[region.start + 1 : region.end])
            if status != 0:
                problems.append(f"{where}: {region.command} exited with {status}:\n{_indent(out)}")
                continue
            if normalise(shown, tmp) != normalise(out, tmp):
                replace[(region.start + 1, region.end - 1)] = "\n" + _clean(out, tmp) + "\n"
                problems.append(_diff(where, shown, out, tmp, region.start + 2))
    if write and replace:
        lines = list(page.lines)
        for (first, last), text in sorted(replace.items(), reverse=True):
            lines[first : last + 1] = text.split("\n")
        path.write_text("\n".join(lines), encoding="utf-8")
        problems = [p for p in problems if not p.startswith("--- ")]
    return problems


def _diff(where: str, shown: str, printed: str, tmp: Path, first_line: int) -> str:
    diff = difflib.unified_diff(
        normalise(shown, tmp).split("\n"),
        normalise(printed, tmp).split("\n"),
        f"shown (from line {first_line})",
        "printed now",
        lineterm="",
    )
    return f"--- {where}: the page no longer shows what the code prints\n" + "\n".join(diff)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip("\n").split("\n"))


def pages() -> list[Path]:
    """Every Markdown page: README.md, CHANGELOG.md and docs/**/*.md."""
    found = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [p for p in found if p.exists()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--check", action="store_true", help="exit 1 with a diff if a page is stale")
    what.add_argument("--write", action="store_true", help="rewrite stale outputs and tables")
    parser.add_argument(
        "--slow", action="store_true", help="also run slow steps and slow generated tables"
    )
    parser.add_argument("paths", nargs="*", type=Path, help="pages (default: every page)")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.paths] or pages()
    with ThreadPoolExecutor(max_workers=max(1, min(len(paths), os.cpu_count() or 1))) as pool:
        results = list(pool.map(lambda p: build(p, write=args.write, slow=args.slow), paths))
    problems = [p for found in results for p in found]
    for problem in problems:
        print(problem, end="\n\n")
    if args.write:
        print(f"{len(paths)} page(s) built; {len(problems)} problem(s) left")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
