"""Train a seq2seq model on the book's date or addition task and report exact-match accuracy.

    python -m layers.train --task date --out runs/date

Options not given follow the book's script for the task: ch. 8's ``train.py`` for dates (the
attention model, the question fed reversed, H=256, 10 epochs) and ch. 7's ``train_seq2seq.py``
for addition (the plain model, the question as written, H=128, 25 epochs); ``--help`` lists them.
Each epoch shuffles the training set, steps through it in mini-batches (forward, backward, clip
the global gradient norm, optimiser step), then greedily decodes the whole test split in batches
and counts the answers that are right in every character. Progress goes to stderr: a bar redrawn
in place on a terminal, one line per epoch anywhere else. The last line printed is
``test accuracy: XX.XX%``. With ``--out DIR`` the run saves ``params.npz`` and ``history.json``
after every epoch (each written to a temporary file, then renamed over the last, so a full disk
or Ctrl-C leaves the previous epoch's pair whole; Ctrl-C prints one line and exits with 130),
and at the end, when matplotlib is installed (``pip install -e .[plot]``), ``training.png`` and,
for the attention model, ``attention_<i>.png`` heatmaps of a few test questions.
"""

import argparse
import json
import math
import os
import sys
import time
from errno import ENOSPC
from pathlib import Path

import numpy as np

from layers.data import DISTINCT_QUESTIONS, START, TASKS, Vocab, load
from layers.optim import SGD, Adam, clip_grads
from layers.seq2seq import AttentionSeq2seq, PeekySeq2seq, Seq2seq

__all__ = ["MODELS", "accuracy", "greedy_answers", "main", "train_epoch"]

MODELS = {"seq2seq": Seq2seq, "peeky": PeekySeq2seq, "attention": AttentionSeq2seq}
_EVAL_BATCH = 1000
_PROG = "python -m layers.train"

# The book's script for each task: ch08/train.py trains attention on dates with the questions
# reversed; ch07/train_seq2seq.py trains the plain model on addition as written (reversing is
# the first improvement the chapter tries). Both: D=16, batch 128, Adam 1e-3, clip 5.0.
_BOOK_DEFAULTS = {
    "date": dict(model="attention", reverse_input=True, hidden_size=256, epochs=10),
    "addition": dict(model="seq2seq", reverse_input=False, hidden_size=128, epochs=25),
}


def _per_task(name: str, show=str) -> str:
    return ", ".join(f"{show(book[name])} for {task}" for task, book in _BOOK_DEFAULTS.items())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=_PROG,
        description=__doc__.split("\n\n")[0],
        epilog="Defaults given per task follow the book's script for the task: ch08/train.py "
        "for date, ch07/train_seq2seq.py for addition.",
    )
    p.add_argument("--task", choices=sorted(TASKS), required=True)
    p.add_argument("--model", choices=list(MODELS), help=f"default {_per_task('model')}")
    p.add_argument(
        "--epochs", type=int, help=f"passes over the training set; default {_per_task('epochs')}"
    )
    p.add_argument("--batch-size", type=int, default=128, help="default 128")
    p.add_argument("--hidden-size", type=int, help=f"H; default {_per_task('hidden_size')}")
    p.add_argument("--wordvec-size", type=int, default=16, help="D; default 16")
    p.add_argument(
        "--reverse-input",
        action=argparse.BooleanOptionalAction,
        help="feed the questions reversed; default "
        + _per_task("reverse_input", lambda on: "on" if on else "off"),
    )
    p.add_argument(
        "--seed", type=int, default=0, help="data, initial weights, shuffling; default 0"
    )
    p.add_argument("--train-size", type=int, default=45000, help="default 45000")
    p.add_argument("--test-size", type=int, default=5000, help="default 5000")
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam", help="default adam")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate; default 0.001")
    p.add_argument(
        "--clip", type=float, default=5.0, help="max global gradient norm, 0 for none; default 5.0"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for params.npz and history.json (saved after every epoch) and the plots",
    )
    return p


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, each checked before any work starts, the per-task defaults filled in."""
    p = _parser()
    args = p.parse_args(argv)
    for name, value in _BOOK_DEFAULTS[args.task].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("epochs", "batch_size", "hidden_size", "wordvec_size", "train_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}={getattr(args, name)} must be >= 1")
    if args.test_size < 1:
        p.error(f"--test-size={args.test_size} must be >= 1 (accuracy is measured on it)")
    distinct = DISTINCT_QUESTIONS[args.task]
    if args.train_size + args.test_size > distinct:
        p.error(
            f"--train-size={args.train_size} --test-size={args.test_size}: together more than "
            f"the {distinct:,} distinct questions of the {args.task} task; ask for fewer"
        )
    if args.seed < 0:
        p.error(f"--seed={args.seed} must be >= 0; try --seed 0")
    if not (math.isfinite(args.lr) and args.lr > 0):
        p.error(f"--lr={args.lr} must be a finite number > 0; try --lr 0.001")
    if not (math.isfinite(args.clip) and args.clip >= 0):
        p.error(f"--clip={args.clip} must be a finite number >= 0 (0 turns clipping off)")
    if args.out is not None:  # before training, not after it: a bad --out would lose the model
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            p.error(f"--out={args.out}: cannot create the folder ({exc.strerror})")
    return args


class _Progress:
    """Progress of one epoch on stderr: on a terminal a bar redrawn in place at most every
    0.2 s; anywhere else (a log file, a pipe) only the epoch's last state, as one line."""

    def __init__(self, label: str, total: int, stream=None, width: int = 30):
        self.label, self.total, self.width = label, total, width
        self.stream = sys.stderr if stream is None else stream
        self.live = getattr(self.stream, "isatty", lambda: False)()
        self.mid_line = False  # a redrawn bar waits for its end of line
        self.start = self.last = time.perf_counter()

    def update(self, done: int, loss: float, *, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and (not self.live or now - self.last < 0.2):
            return
        self.last = now
        filled = self.width * done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        rate = done / max(now - self.start, 1e-9)
        line = f"{self.label} [{bar}] {done}/{self.total} loss {loss:.4f} {rate:,.0f} ex/s"
        self.mid_line = self.live  # before writing: a Ctrl-C may come while the line goes out
        self.stream.write(("\r" if self.live else "") + line + ("\n" if final else ""))
        self.stream.flush()
        self.mid_line = self.live and not final

    def end_line(self) -> None:
        """End a half-drawn bar, so that what is written next starts a line of its own."""
        if self.mid_line:
            self.stream.write("\n")
            self.stream.flush()
            self.mid_line = False


class _Checkpoint:
    """``params.npz`` and ``history.json`` in ``out``, rewritten after every epoch.

    Both are written to temporary files first and renamed over the previous pair only when both
    are complete on disk (a rename replaces a file whole), so a failed write or a Ctrl-C leaves
    the last saved epoch as it was. ``saved`` counts the epochs the files on disk hold.
    """

    names = ("params.npz", "history.json")

    def __init__(self, out: Path, model, settings: dict, vocab: Vocab):
        self.out, self.model, self.settings, self.vocab = out, model, settings, vocab
        self.saved = 0

    def save(self, history: list[dict]) -> None:
        params, record = (self.out / f".{name}.{os.getpid()}.tmp" for name in self.names)
        try:
            self.model.save_params(params)
            with open(record, "w") as f:
                json.dump(
                    dict(settings=self.settings, vocab=self.vocab.chars, epochs=history),
                    f,
                    indent=2,
                )
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            for temporary, name in zip((params, record), self.names, strict=True):
                os.replace(temporary, self.out / name)
        finally:
            params.unlink(missing_ok=True)
            record.unlink(missing_ok=True)
        self.saved = len(history)

    def failure(self, epoch: int, exc: OSError) -> str:
        """One line for a failed save: which files, why, what they hold now, what to do."""
        held = f"they still hold epoch {self.saved}" if self.saved else "nothing was saved yet"
        return (
            f"cannot save epoch {epoch} to {self.out / self.names[0]} and {self.names[1]}"
            f" ({_reason(exc)}); {held}: {_fix(exc)}"
        )


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


def _fix(exc: OSError) -> str:
    return "free some space or pass another --out" if exc.errno == ENOSPC else "pass another --out"


def train_epoch(
    model, optimizer, xs, ts, *, batch_size: int, max_norm: float, rng, progress=None
) -> float:
    """One shuffled pass over (xs, ts) in mini-batches; returns the example-weighted mean loss."""
    order = np.random.default_rng(rng).permutation(len(xs))
    total_loss, done = 0.0, 0
    for start in range(0, len(xs), batch_size):
        batch = order[start : start + batch_size]
        loss = float(model.forward(xs[batch], ts[batch]))
        model.backward()
        if max_norm:
            clip_grads(model.grads, max_norm)
        optimizer.update(model.params, model.grads)
        total_loss += loss * len(batch)
        done += len(batch)
        if progress is not None:
            progress.update(done, total_loss / done, final=done == len(xs))
    return total_loss / done


def greedy_answers(model, xs, *, start_id: int, length: int, batch_size: int = _EVAL_BATCH):
    """Greedy answers for all questions xs (N, Tq), in batches -> ids (N, length)."""
    parts = [
        model.generate(xs[i : i + batch_size], start_id, length)
        for i in range(0, len(xs), batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, length), dtype=np.int64)


def accuracy(model, xs, ts, *, start_id: int, batch_size: int = _EVAL_BATCH) -> float:
    """Fraction of questions whose greedy answer equals ts[:, 1:] in every character."""
    guess = greedy_answers(
        model, xs, start_id=start_id, length=ts.shape[1] - 1, batch_size=batch_size
    )
    return float(np.mean(np.all(guess == ts[:, 1:], axis=1)))


def _figure_class():
    """matplotlib's Figure, or None without matplotlib. A bare Figure draws to files only: no
    pyplot, no backend switched, no window, nothing changed for a caller who uses pyplot."""
    try:
        import matplotlib  # noqa: F401  (first: the package itself decides "installed")
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure


def _plot_history(Figure, history: list[dict], path: Path) -> None:
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(9, 3.5))
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [h["loss"] for h in history], marker="o")
    ax_loss.set(xlabel="epoch", ylabel="mean training loss", title="loss")
    ax_acc.plot(epochs, [100 * h["accuracy"] for h in history], marker="o", color="tab:green")
    ax_acc.set(xlabel="epoch", ylabel="exact match (%)", title="test accuracy", ylim=(-2, 102))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.set_xticks(epochs if len(epochs) <= 12 else epochs[:: len(epochs) // 12 + 1])
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _plot_attention(Figure, weights, question: str, answer: str, path: Path) -> None:
    """Heatmap of one question's attention: decoder steps (rows) x encoder steps (columns)."""
    fig = Figure(figsize=(0.3 * len(question) + 1.5, 0.3 * len(answer) + 1.5))
    ax = fig.subplots()
    ax.imshow(weights, cmap="gray", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(question)), [c if c != " " else "␣" for c in question])
    ax.set_yticks(range(len(answer)), list(answer))
    ax.set(xlabel="encoder input (question)", ylabel="decoder output (answer)")
    ax.set_title(f"{question.strip()!r} -> {answer.strip()!r}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _save_attention_maps(Figure, model, xs, vocab: Vocab, *, start_id, length, reverse, out, n=3):
    answers = model.generate(xs[:n], start_id, length)
    maps = np.asarray(model.attention_weights)  # (n, length, Tq), of the call just made
    for i in range(len(answers)):
        question, weights = vocab.decode(xs[i]), maps[i]
        if reverse:  # show the question in reading order, columns following it
            question, weights = question[::-1], weights[:, ::-1]
        _plot_attention(
            Figure, weights, question, vocab.decode(answers[i]), out / f"attention_{i}.png"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the trainer; returns the exit status: 0, 1 when saving failed, 130 on Ctrl-C."""
    args = _parse_args(argv)
    history: list[dict] = []
    checkpoint = progress = None
    stage = "before training"
    try:
        split = load(
            args.task, train_size=args.train_size, test_size=args.test_size, seed=args.seed
        )
        vocab = split.vocab
        x_train, x_test = split.x_train, split.x_test
        if args.reverse_input:
            x_train, x_test = x_train[:, ::-1].copy(), x_test[:, ::-1].copy()
        start_id, answer_len = vocab[START], split.t_test.shape[1] - 1

        model_class = MODELS[args.model]
        model = model_class(
            len(vocab),
            args.wordvec_size,
            args.hidden_size,
            rng=np.random.default_rng([args.seed, 1]),
        )
        optimizer = Adam(args.lr) if args.optimizer == "adam" else SGD(args.lr)
        shuffle_rng = np.random.default_rng([args.seed, 2])
        print(
            f"{model_class.__name__} on {args.task}: {len(x_train)} train / {len(x_test)} test,"
            f" V={len(vocab)} D={args.wordvec_size} H={args.hidden_size}, batch {args.batch_size},"
            f" {args.optimizer} lr={args.lr}, clip {args.clip or 'off'},"
            f" {'reversed' if args.reverse_input else 'plain'} input, seed {args.seed}",
            flush=True,
        )
        if args.out is not None:
            settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
            checkpoint = _Checkpoint(args.out, model, settings, vocab)

        for epoch in range(1, args.epochs + 1):
            stage = f"in epoch {epoch} of {args.epochs}"
            progress = _Progress(f"epoch {epoch}/{args.epochs}", len(x_train))
            tic, cpu_tic = time.perf_counter(), time.process_time()
            loss = train_epoch(
                model,
                optimizer,
                x_train,
                split.t_train,
                batch_size=args.batch_size,
                max_norm=args.clip,
                rng=shuffle_rng,
                progress=progress,
            )
            train_seconds = time.perf_counter() - tic
            cpu_seconds = time.process_time() - cpu_tic  # all threads; less than wall when shared
            tic = time.perf_counter()
            acc = accuracy(model, x_test, split.t_test, start_id=start_id)
            eval_seconds = time.perf_counter() - tic
            history.append(
                dict(
                    epoch=epoch,
                    loss=loss,
                    accuracy=acc,
                    train_seconds=train_seconds,
                    train_cpu_seconds=cpu_seconds,
                    eval_seconds=eval_seconds,
                )
            )
            print(
                f"epoch {epoch}: loss {loss:.4f}, test accuracy {100 * acc:.2f}%,"
                f" train {train_seconds:.1f} s (cpu {cpu_seconds:.1f} s),"
                f" eval {eval_seconds:.1f} s",
                flush=True,
            )
            if checkpoint is not None:
                try:
                    checkpoint.save(history)
                except OSError as exc:
                    print(f"{_PROG}: error: {checkpoint.failure(epoch, exc)}", file=sys.stderr)
                    return 1

        stage = f"after epoch {args.epochs} of {args.epochs}"
        guesses = model.generate(x_test[:3], start_id, answer_len)
        for i, guess in enumerate(guesses):
            question = vocab.decode(split.x_test[i]).strip()
            expected = vocab.decode(split.t_test[i, 1:])
            mark = "ok" if vocab.decode(guess) == expected else "WRONG"
            print(f"  {question!r} -> {vocab.decode(guess).strip()!r} ({mark})")
        if args.out is not None:
            try:
                _save_plots(args, model, x_test, vocab, start_id, answer_len, history)
            except OSError as exc:
                print(
                    f"{_PROG}: error: cannot draw the plots in {args.out} ({_reason(exc)});"
                    f" params.npz and history.json hold all {args.epochs} epochs: {_fix(exc)}",
                    file=sys.stderr,
                )
                return 1
    except KeyboardInterrupt:
        if progress is not None:
            progress.end_line()
        print(_after_interrupt(args, stage, checkpoint, history), file=sys.stderr)
        return 130
    print(f"test accuracy: {100 * history[-1]['accuracy']:.2f}%")
    return 0


def _after_interrupt(args, stage: str, checkpoint: _Checkpoint | None, history: list[dict]):
    """Finish a save the interrupt cut short; returns one line saying what is on disk."""
    if checkpoint is None:
        return f"interrupted {stage}: nothing saved (no --out)"
    if checkpoint.saved < len(history):  # the interrupt came while an epoch was being saved
        try:
            checkpoint.save(history)
        except OSError as exc:
            return f"interrupted {stage}; {checkpoint.failure(len(history), exc)}"
    if not checkpoint.saved:
        return f"interrupted {stage}: no epoch was complete, nothing saved"
    return (
        f"interrupted {stage}: epoch {checkpoint.saved} is saved in {args.out}"
        " (params.npz, history.json)"
    )


def _save_plots(args, model, x_test, vocab: Vocab, start_id: int, answer_len: int, history):
    Figure = _figure_class()
    if Figure is None:
        print(
            "matplotlib is not installed: skipping the plots (pip install -e '.[plot]')",
            file=sys.stderr,
        )
        return
    _plot_history(Figure, history, args.out / "training.png")
    if args.model == "attention":
        _save_attention_maps(
            Figure,
            model,
            x_test,
            vocab,
            start_id=start_id,
            length=answer_len,
            reverse=args.reverse_input,
            out=args.out,
        )


if __name__ == "__main__":
    sys.exit(main())
