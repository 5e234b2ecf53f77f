"""A Markdown table of training runs, from the ``history.json`` that ``python -m layers.train
--out DIR`` saves: test exact match (%) after each epoch, one column per run, then each run's
full command line. Standard library only::

    .venv/bin/python docs/training_results.py runs/a/history.json runs/b/history.json

docs/training.md shows its output for the runs saved under docs/results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

__all__ = ["OPTIONS", "command", "main", "table"]

#: ``python -m layers.train`` options in the order ``--help`` lists them (``out`` left out).
OPTIONS = (
    "task",
    "model",
    "epochs",
    "batch_size",
    "hidden_size",
    "wordvec_size",
    "reverse_input",
    "seed",
    "train_size",
    "test_size",
    "optimizer",
    "lr",
    "clip",
)


def command(settings: dict) -> str:
    """The command line that repeats a run, every option spelt out."""
    parts = ["python -m layers.train"]
    for name in OPTIONS:
        value = settings[name]
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else f"--no-{flag[2:]}")
        else:
            parts.append(f"{flag} {value}")
    return " ".join(parts)


def _label(settings: dict) -> str:
    order = "reversed" if settings["reverse_input"] else "as written"
    return f"{settings['model']}, {order}, seed {settings['seed']}"


def table(runs: list[dict]) -> str:
    """Accuracy per epoch (rows) and run (columns), the median CPU seconds of an epoch's
    training, then the command of each run."""
    epochs = max(len(run["epochs"]) for run in runs)
    lines = [
        "| epoch | " + " | ".join(_label(run["settings"]) for run in runs) + " |",
        "| ---: |" + " ---: |" * len(runs),
    ]
    for k in range(epochs):
        cells = [
            f"{100 * run['epochs'][k]['accuracy']:.2f}" if k < len(run["epochs"]) else "-"
            for run in runs
        ]
        lines.append(f"| {k + 1} | " + " | ".join(cells) + " |")
    cpu = [statistics.median(e["train_cpu_seconds"] for e in run["epochs"]) for run in runs]
    lines.append("| CPU s per epoch, median | " + " | ".join(f"{s:.1f}" for s in cpu) + " |")
    lines += ["", "Each run's command:", ""]
    lines += [f"- {_label(run['settings'])}: `{command(run['settings'])}`" for run in runs]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("histories", nargs="+", type=Path, help="history.json files")
    args = parser.parse_args(argv)
    runs = []
    for path in args.histories:
        try:
            runs.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as e:
            print(f"{path}: {e}", file=sys.stderr)
            return 2
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
