"""Data, optimisers, trainer and CLI: the models learn, generate and show where they look."""

import datetime
import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from layers import data, train
from layers.data import ADDITION_VOCAB, DATE_VOCAB, START, Vocab, addition_pairs, date_pairs, load
from layers.optim import SGD, Adam, clip_grads, global_norm
from layers.seq2seq import AttentionSeq2seq, PeekySeq2seq, Seq2seq
from layers.train import accuracy, main, train_epoch

MODELS = [
    pytest.param(Seq2seq, id="Seq2seq"),
    pytest.param(PeekySeq2seq, id="PeekySeq2seq"),
    pytest.param(AttentionSeq2seq, id="AttentionSeq2seq"),
]


# --- data -------------------------------------------------------------------------------------


def test_same_seed_gives_same_data_and_other_seed_other_data():
    assert date_pairs(300, rng=3) == date_pairs(300, rng=3)
    assert date_pairs(300, rng=3) != date_pairs(300, rng=4)
    assert addition_pairs(300, rng=3) == addition_pairs(300, rng=3)
    a, b = (load("date", train_size=200, test_size=50, seed=7) for _ in range(2))
    for name in ("x_train", "t_train", "x_test", "t_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


@pytest.mark.parametrize("task", ["date", "addition"])
def test_no_question_is_in_both_train_and_test(task):
    split = load(task, train_size=3000, test_size=1000, seed=0)
    train = {row.tobytes() for row in split.x_train}
    test = {row.tobytes() for row in split.x_test}
    assert len(train) == 3000 and len(test) == 1000
    assert not train & test


def test_date_answers_are_the_dates_the_questions_name():
    pairs = date_pairs(2000, rng=1)
    for question, answer in pairs:
        assert len(question) == data.DATE_QUESTION_LEN
        assert answer[0] == START and len(answer) == data.DATE_ANSWER_LEN
        day = datetime.date.fromisoformat(answer[1:])
        assert datetime.date(1970, 1, 1) <= day <= datetime.date(2017, 12, 31)
        # whatever the format, the question carries the day of the month and the year's digits
        assert str(day.day) in question and f"{day.year % 100:02d}" in question


def test_date_questions_come_in_many_formats_and_cases():
    questions = [q.strip() for q, _ in date_pairs(3000, rng=2)]
    assert any(q.islower() and "," in q for q in questions)  # september 27, 1994
    assert any(q.isupper() for q in questions)  # TUESDAY, SEPTEMBER 25, 1984
    assert any(q.istitle() for q in questions)  # August 19, 2003
    assert any(q.count("/") == 2 and len(q) <= 8 for q in questions)  # 2/10/93
    assert any(q.count(".") == 2 for q in questions)  # 09.27.94
    assert any(len(q) == 10 and q[4] == "-" for q in questions)  # ISO 1994-09-27
    weekdays = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    assert any(q.lower().startswith(weekdays) for q in questions)
    shapes = {
        "".join("9" if c.isdigit() else "a" if c.isalpha() else c for c in q) for q in questions
    }
    assert len(shapes) > 40


def test_addition_answers_are_the_sums():
    for question, answer in addition_pairs(1000, rng=0):
        a, b = (int(v) for v in question.strip().split("+"))
        assert 0 <= a <= 999 and 0 <= b <= 999
        assert answer == (START + str(a + b)).ljust(data.ADDITION_ANSWER_LEN)
        assert len(question) == data.ADDITION_QUESTION_LEN


def test_bad_data_requests_raise_with_the_value():
    with pytest.raises(ValueError, match=r"n=1000001 must be in 0\.\.1000000"):
        addition_pairs(1000 * 1000 + 1)
    with pytest.raises(ValueError, match="task='dates' must be one of"):
        load("dates", train_size=1, test_size=1)


def test_date_task_has_as_many_distinct_questions_as_it_says():
    # Questions of two days never coincide (each names its day), and which of one day's 75
    # renderings coincide depends on its month and day alone: count each day of a leap year
    # once, weighed by how many of the years 1970-2017 have that day.
    years = range(1970, 2018)
    total, day = 0, datetime.date(2000, 1, 1)
    while day.year == 2000:
        renderings = {
            data._date_question(day, fmt, case)
            for fmt in data._DATE_FORMATS
            for case in data._CASES
        }
        has_day = sum(day.month != 2 or day.day != 29 or y % 4 == 0 for y in years)
        total += len(renderings) * has_day
        day += datetime.timedelta(days=1)
    assert total == data.DATE_QUESTIONS == 962_160


def test_asking_for_more_date_questions_than_exist_fails_before_drawing(monkeypatch):
    def no_drawing(*args, **kwargs):
        raise AssertionError("drew questions for a request that cannot be met")

    monkeypatch.setattr(data, "_unique", no_drawing)
    with pytest.raises(ValueError, match=r"n=962161 must be in 0\.\.962160 \(there are 962,160"):
        date_pairs(data.DATE_QUESTIONS + 1)
    with pytest.raises(ValueError, match="is more than the 962,160 distinct questions of the date"):
        load("date", train_size=10_000_000, test_size=5000)


def test_vocab_encodes_and_decodes_back():
    texts = ["sep 27, 1994", "JAN 01, 2001"]
    ids = DATE_VOCAB.encode(texts)
    assert ids.shape == (2, 12) and ids.dtype == np.int64
    assert DATE_VOCAB.decode(ids) == texts
    assert DATE_VOCAB.decode(ids[0]) == texts[0]
    assert ADDITION_VOCAB.decode(ADDITION_VOCAB.encode(["1+2"])) == ["1+2"]
    with pytest.raises(ValueError, match="'#' is not in"):
        DATE_VOCAB.encode(["#"])
    with pytest.raises(ValueError, match="pad them"):
        DATE_VOCAB.encode(["a", "ab"])
    with pytest.raises(ValueError, match="repeated"):
        Vocab("aa")


def test_every_generated_character_is_in_the_vocabulary():
    for task, vocab in (("date", DATE_VOCAB), ("addition", ADDITION_VOCAB)):
        split = load(task, train_size=2000, test_size=10, seed=5)
        assert (
            split.x_train.max() < len(vocab)
            and split.t_train[:, 0].tolist() == [vocab[START]] * 2000
        )


# --- optimisers -------------------------------------------------------------------------------


def _params_and_grads(rng=0):
    rng = np.random.default_rng(rng)
    params = [
        rng.standard_normal((3, 4)).astype(np.float32),
        rng.standard_normal(4).astype(np.float32),
    ]
    grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
    return params, grads


@pytest.mark.parametrize("optimizer", [SGD(0.1), Adam(0.1)], ids=["SGD", "Adam"])
def test_optimiser_updates_the_parameter_arrays_in_place(optimizer):
    params, grads = _params_and_grads()
    held = list(params)  # what a layer holds: the same objects
    before = [p.copy() for p in params]
    optimizer.update(params, grads)
    for p, h, b in zip(params, held, before, strict=True):
        assert p is h and p.dtype == np.float32
        assert not np.array_equal(h, b)


def test_sgd_and_adam_take_the_textbook_steps():
    params, grads = _params_and_grads()
    before = [p.copy() for p in params]
    SGD(0.1).update(params, grads)
    np.testing.assert_allclose(params[0], before[0] - 0.1 * grads[0], rtol=1e-6)
    # Adam's first step moves every element by lr against the sign of its gradient
    params, grads = _params_and_grads()
    before = [p.copy() for p in params]
    Adam(0.01).update(params, grads)
    np.testing.assert_allclose(params[0], before[0] - 0.01 * np.sign(grads[0]), rtol=1e-4)


def test_clipping_bounds_the_global_norm_in_place():
    _, grads = _params_and_grads()
    for g in grads:
        g *= 10
    held = list(grads)
    norm = clip_grads(grads, 1.0)
    assert norm > 1.0
    assert global_norm(held) == pytest.approx(1.0, rel=1e-5)
    small = [g.copy() for g in held]
    clip_grads(held, 5.0)  # already below: untouched
    for g, s in zip(held, small, strict=True):
        np.testing.assert_array_equal(g, s)


def test_bad_options_raise_with_a_hint():
    with pytest.raises(ValueError, match="lr=0 must be > 0"):
        SGD(0)
    with pytest.raises(ValueError, match="beta1"):
        Adam(beta1=1.0)
    with pytest.raises(ValueError, match="max_norm=0"):
        clip_grads([], 0)


# --- models learn -----------------------------------------------------------------------------


@pytest.mark.parametrize("model_class", MODELS)
def test_model_overfits_one_small_batch(model_class):
    split = load("addition", train_size=8, test_size=1, seed=0)
    xs, ts = split.x_train, split.t_train
    model = model_class(len(ADDITION_VOCAB), 8, 32, rng=0)
    optimizer = Adam(0.02)
    for _ in range(150):
        loss = model.forward(xs, ts)
        model.backward()
        clip_grads(model.grads, 5.0)
        optimizer.update(model.params, model.grads)
    assert float(model.forward(xs, ts)) < 0.05
    assert accuracy(model, xs, ts, start_id=ADDITION_VOCAB[START]) == 1.0
    assert np.isfinite(loss)


def test_attention_model_learns_dates_well_beyond_chance():
    # A child process with one BLAS thread: on a loaded 2-core machine OpenBLAS's own threads
    # make these small products up to 10x slower (see README, "Training the book's models").
    argv = [sys.executable, "-m", "layers.train", "--task", "date", "--model", "attention"]
    argv += ["--reverse-input", "--train-size", "3000", "--test-size", "300", "--epochs", "5"]
    argv += ["--hidden-size", "64", "--batch-size", "32", "--lr", "0.01", "--seed", "0"]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    result = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
    accuracies = [float(x) for x in re.findall(r"test accuracy (\S+)%", result.stdout)]
    assert len(accuracies) == 5
    # Chance is 1/60 per character, about 1e-18 for a whole answer; the best constant answer
    # gets none right. After 5 short epochs (470 steps) the model gets most of them.
    assert accuracies[0] < 5 and accuracies[-1] > 30


class _RecordingModel:
    """Stands in for a model: records the batches it is trained on."""

    def __init__(self):
        self.params, self.grads, self.batches = [np.zeros(3)], [np.ones(3)], []

    def forward(self, xs, ts):
        self.batches.append(xs[:, 0].copy())
        return 2.0

    def backward(self):
        pass


def test_train_epoch_sees_every_example_once_in_shuffled_batches():
    xs = np.arange(10)[:, None]
    model = _RecordingModel()
    loss = train_epoch(model, SGD(1.0), xs, xs, batch_size=4, max_norm=0, rng=0)
    assert loss == 2.0
    assert [len(b) for b in model.batches] == [4, 4, 2]
    seen = np.concatenate(model.batches)
    assert sorted(seen) == list(range(10)) and list(seen) != list(range(10))
    np.testing.assert_array_equal(model.params[0], -3.0)  # three SGD steps of lr * 1


# --- saving and loading ----------------------------------------------------------------------


def _tiny_model(rng=0):
    return Seq2seq(len(ADDITION_VOCAB), 4, 8, rng=rng)


def _savez_on_a_full_disk(file, **arrays):
    """Stands in for np.savez on a full disk: the start of an archive, then ENOSPC."""
    file.write(b"PK\x03\x04" + bytes(64))
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_leaves_the_saved_params_whole_and_says_where(tmp_path, monkeypatch):
    path = tmp_path / "params.npz"
    model = _tiny_model()
    model.save_params(path)
    saved = [p.copy() for p in model.params]
    for p in model.params:
        p += 1  # a later epoch's params, which the full disk will not take
    monkeypatch.setattr(np, "savez", _savez_on_a_full_disk)
    with pytest.raises(OSError, match="No space left on device") as failure:
        model.save_params(path)
    message = str(failure.value)
    assert str(path) in message and "free some space" in message and "\n" not in message
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["params.npz"]  # no temporary file left behind
    fresh = _tiny_model(rng=1)
    fresh.load_params(path)
    for got, want in zip(fresh.params, saved, strict=True):
        np.testing.assert_array_equal(got, want)


def _damaged(good: bytes) -> dict[str, bytes]:
    middle = bytearray(good)
    middle[len(good) // 2] ^= 0xFF
    return {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "not an archive": bytes(range(256)) * 4,
        "a flipped byte": bytes(middle),
    }


@pytest.mark.parametrize("damage", ["empty", "truncated", "not an archive", "a flipped byte"])
def test_loading_a_damaged_file_names_it_and_leaves_the_model_unchanged(tmp_path, damage):
    good = tmp_path / "good.npz"
    _tiny_model(rng=1).save_params(good)
    path = tmp_path / "params.npz"
    path.write_bytes(_damaged(good.read_bytes())[damage])
    model = _tiny_model(rng=0)
    before = [p.copy() for p in model.params]
    with pytest.raises(ValueError) as failure:
        model.load_params(path)
    message = str(failure.value)
    assert message.startswith(f"{path}: not a complete parameter file")
    assert "save it again with model.save_params" in message and "\n" not in message
    assert "allow_pickle" not in message  # numpy's hint would invite unpickling the file
    for got, want in zip(model.params, before, strict=True):
        np.testing.assert_array_equal(got, want)


# --- generation and attention maps ------------------------------------------------------------


@pytest.mark.parametrize("model_class", MODELS)
@pytest.mark.parametrize("N, sample_size", [(1, 1), (5, 4), (3, 10)])
def test_generate_returns_ids_of_the_requested_shape(model_class, N, sample_size):
    xs = DATE_VOCAB.encode([q for q, _ in date_pairs(N, rng=0)])
    model = model_class(len(DATE_VOCAB), 8, 16, rng=0)
    out = model.generate(xs, DATE_VOCAB[START], sample_size)
    assert out.shape == (N, sample_size)
    assert out.dtype.kind in "iu"
    assert out.min() >= 0 and out.max() < len(DATE_VOCAB)


def test_attention_map_rows_sum_to_one():
    xs = DATE_VOCAB.encode([q for q, _ in date_pairs(4, rng=0)])
    model = AttentionSeq2seq(len(DATE_VOCAB), 8, 16, rng=0)
    model.generate(xs, DATE_VOCAB[START], 10)
    weights = np.asarray(model.attention_weights)
    assert weights.shape == (4, 10, data.DATE_QUESTION_LEN)
    assert (weights >= 0).all()
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)
    ts = DATE_VOCAB.encode([a for _, a in date_pairs(4, rng=0)])
    model.forward(xs, ts)  # training keeps the map too: (N, Td, Te) for Td = 10 inputs
    weights = np.asarray(model.attention_weights)
    assert weights.shape == (4, 10, data.DATE_QUESTION_LEN)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)


# --- command line -----------------------------------------------------------------------------

_TINY = ["--train-size", "64", "--test-size", "16", "--epochs", "2", "--batch-size", "32"]
_TINY += ["--hidden-size", "16", "--wordvec-size", "8"]


def test_cli_trains_saves_and_plots_attention(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    argv = ["--task", "date", "--model", "attention", "--reverse-input", "--out", str(tmp_path)]
    assert main(argv + _TINY) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert lines[-1].startswith("test accuracy: ") and lines[-1].endswith("%")
    assert "epoch 2/2" in err and "ex/s" in err and "loss" in err
    assert sum(line.startswith("epoch ") for line in lines) == 2
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "attention_0.png",
        "attention_1.png",
        "attention_2.png",
        "history.json",
        "params.npz",
        "training.png",
    ]
    model = AttentionSeq2seq(len(DATE_VOCAB), 8, 16, rng=1)
    model.load_params(tmp_path / "params.npz")


def test_cli_without_matplotlib_says_so_and_skips_plots(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    argv = ["--task", "addition", "--model", "peeky", "--out", str(tmp_path)]
    assert main(argv + _TINY) == 0
    out, err = capsys.readouterr()
    assert "matplotlib is not installed" in err
    assert out.strip().splitlines()[-1].startswith("test accuracy: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json", "params.npz"]


def test_cli_runs_as_a_module():
    argv = [sys.executable, "-m", "layers.train", "--task", "addition", "--model", "seq2seq"]
    result = subprocess.run(argv + _TINY, capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1].startswith("test accuracy: ")


def test_cli_rejects_bad_options(capsys):
    with pytest.raises(SystemExit):
        main(["--task", "date", "--model", "attention", "--epochs", "0"])
    assert "--epochs=0 must be >= 1" in capsys.readouterr().err


def test_cli_rejects_an_unusable_out_before_training(tmp_path, capsys):
    taken = tmp_path / "a_file"
    taken.write_text("")
    with pytest.raises(SystemExit):
        main(["--task", "addition", "--model", "seq2seq", "--out", str(taken)])
    captured = capsys.readouterr()
    assert f"--out={taken}: cannot create the folder" in captured.err
    assert "examples/s" not in captured.err and captured.out == ""  # no training happened


def test_cli_turns_an_impossible_data_request_into_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        main(["--task", "addition", "--model", "seq2seq", "--train-size", "1000000"])
    assert "--train-size=1000000 --test-size=" in capsys.readouterr().err


def _no_data(*args, **kwargs):
    raise AssertionError("the data was drawn before the options were checked")


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--seed", "-1", "--seed=-1 must be >= 0"),
        ("--lr", "inf", "--lr=inf must be a finite number > 0"),
        ("--lr", "nan", "--lr=nan must be a finite number > 0"),
        ("--clip", "nan", "--clip=nan must be a finite number >= 0"),
        ("--clip", "-1", "--clip=-1.0 must be a finite number >= 0"),
        ("--test-size", "0", "--test-size=0 must be >= 1"),
        ("--batch-size", "0", "--batch-size=0 must be >= 1"),
        ("--hidden-size", "0", "--hidden-size=0 must be >= 1"),
        (
            "--train-size",
            "10000000",
            "--train-size=10000000 --test-size=5000: together more "
            "than the 962,160 distinct questions of the date task",
        ),
    ],
)
def test_each_bad_option_is_named_in_its_error_before_any_work(
    option, value, message, capsys, monkeypatch
):
    monkeypatch.setattr(train, "load", _no_data)
    with pytest.raises(SystemExit) as exit_:
        main(["--task", "date", option, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"python -m layers.train: error: {message}")
    named = set(re.findall(r"--[a-z-]+", message))
    others = {"--seed", "--lr", "--clip", "--test-size", "--batch-size", "--hidden-size"} - named
    assert not any(other in err[-1] for other in others)


@pytest.mark.parametrize(
    "argv, model, reverse_input, hidden_size, epochs",
    [
        (["--task", "date"], "attention", True, 256, 10),  # ch08/train.py
        (["--task", "addition"], "seq2seq", False, 128, 25),  # ch07/train_seq2seq.py
        (["--task", "date", "--no-reverse-input", "--model", "peeky"], "peeky", False, 256, 10),
        (["--task", "addition", "--reverse-input", "--epochs", "3"], "seq2seq", True, 128, 3),
    ],
)
def test_defaults_follow_the_books_script_for_each_task(
    argv, model, reverse_input, hidden_size, epochs
):
    args = train._parse_args(argv)
    assert (args.model, args.reverse_input) == (model, reverse_input)
    assert (args.hidden_size, args.epochs) == (hidden_size, epochs)
    assert (args.wordvec_size, args.batch_size, args.lr, args.clip) == (16, 128, 1e-3, 5.0)


def test_help_states_the_defaults_of_each_task(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--reverse-input, --no-reverse-input" in out
    assert "default on for date, off for addition" in out
    assert "default attention for date, seq2seq for addition" in out
    assert "default 10 for date, 25 for addition" in out
    assert "ch08/train.py for date, ch07/train_seq2seq.py for addition" in out


def test_progress_goes_to_a_log_as_one_line_per_epoch(capsys):
    assert main(["--task", "addition", "--model", "seq2seq", *_TINY]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    assert re.findall(r"(?m)^epoch \d/2 \[#+\] 64/64 loss \S+ \S+ ex/s$", err) == [
        line for line in err.splitlines() if line.startswith("epoch")
    ]
    assert sum(line.startswith("epoch") for line in err.splitlines()) == 2


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_redrawn_in_place_on_a_terminal():
    stream = _Terminal()
    progress = train._Progress("epoch 1/1", 100, stream=stream)
    progress.last -= 1.0  # as if a second had passed since the last redraw
    progress.update(40, 2.0)
    progress.update(50, 2.0)  # too soon after the last: not drawn
    assert stream.getvalue().startswith("\repoch 1/1 [") and stream.getvalue().count("\r") == 1
    progress.end_line()  # a Ctrl-C here: what follows starts its own line
    progress.update(100, 1.5, final=True)
    assert stream.getvalue().count("\r") == 2 and stream.getvalue().count("\n") == 2


def test_a_ctrl_c_while_the_bar_is_written_still_ends_its_line():
    class InterruptedTerminal(_Terminal):
        interrupts = 1

        def flush(self):
            if self.interrupts:
                self.interrupts -= 1
                raise KeyboardInterrupt

    stream = InterruptedTerminal()
    progress = train._Progress("epoch 1/1", 100, stream=stream)
    progress.last -= 1.0
    with pytest.raises(KeyboardInterrupt):
        progress.update(40, 2.0)
    progress.end_line()
    assert stream.getvalue().startswith("\repoch 1/1 [") and stream.getvalue().endswith("\n")


def _saved_epochs(out) -> int:
    """How many epochs the saved pair holds; checks params.npz loads into the date default."""
    model = AttentionSeq2seq(len(DATE_VOCAB), 8, 16, rng=1)
    model.load_params(out / "params.npz")
    return len(json.loads((out / "history.json").read_text())["epochs"])


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_saves_the_last_completed_epoch_and_exits_130(tmp_path):
    # A child process, as a user's: SIGINT after epoch 1 is on disk. The child gets SIGINT's
    # default action back (a shell starts background jobs with SIGINT ignored).
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "layers.train", "--task", "date", "--model", "attention"]
    argv += ["--out", str(out)]
    argv += ["--train-size", "256", "--test-size", "16", "--epochs", "10000"]
    argv += ["--hidden-size", "16", "--wordvec-size", "8", "--batch-size", "32"]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    child = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 30
        while not (out / "params.npz").exists():
            assert child.poll() is None and time.monotonic() < deadline, "epoch 1 never saved"
            time.sleep(0.01)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 130
    *progress, last = stderr.splitlines()
    assert all(re.match(r"epoch \d+/10000 \[#+\] 256/256 loss", line) for line in progress)
    saved = _saved_epochs(out)
    assert saved >= 1
    # in the next epoch, or in the one it was saving (that save is then finished)
    assert re.fullmatch(
        rf"interrupted in epoch ({saved + 1}|{saved}) of 10000: epoch {saved} is saved in "
        rf"{re.escape(str(out))} \(params.npz, history.json\)",
        last,
    ), last
    assert sorted(os.listdir(out)) == ["history.json", "params.npz"]


def test_ctrl_c_while_an_epoch_is_being_saved_finishes_that_save(tmp_path, capsys, monkeypatch):
    # Each epoch renames three files: save_params' own temporary file, then params.npz and
    # history.json. A Ctrl-C between the last two must not leave them from different epochs.
    replace, renames = os.replace, []

    def interrupted_replace(source, target):
        renames.append(target)
        if len(renames) == 6:
            raise KeyboardInterrupt
        replace(source, target)

    monkeypatch.setattr(os, "replace", interrupted_replace)
    argv = ["--task", "date", "--model", "attention", "--out", str(tmp_path), *_TINY]
    assert main([*argv, "--epochs", "3"]) == 130
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == f"interrupted in epoch 2 of 3: epoch 2 is saved in {tmp_path} " + (
        "(params.npz, history.json)"
    )
    monkeypatch.undo()
    assert _saved_epochs(tmp_path) == 2
    assert sorted(os.listdir(tmp_path)) == ["history.json", "params.npz"]


@pytest.mark.parametrize(
    "out, interrupted_call, said",
    [
        (False, 2, "interrupted in epoch 2 of 2: nothing saved (no --out)"),
        (True, 1, "interrupted in epoch 1 of 2: no epoch was complete, nothing saved"),
    ],
)
def test_ctrl_c_says_when_nothing_is_saved(
    out, interrupted_call, said, tmp_path, capsys, monkeypatch
):
    calls = []

    def train_until_ctrl_c(*args, **kwargs):
        calls.append(1)
        if len(calls) == interrupted_call:
            raise KeyboardInterrupt
        return train_epoch(*args, **kwargs)

    monkeypatch.setattr(train, "train_epoch", train_until_ctrl_c)
    argv = ["--task", "addition", "--model", "seq2seq", *_TINY]
    argv += ["--out", str(tmp_path)] if out else []
    assert main(argv) == 130
    assert capsys.readouterr().err.splitlines()[-1] == said
    assert os.listdir(tmp_path) == []


def test_a_full_disk_stops_training_with_one_line_and_keeps_the_last_epoch(
    tmp_path, capsys, monkeypatch
):
    savez = np.savez
    calls = []

    def full_after_one_epoch(file, **arrays):
        calls.append(file)
        if len(calls) == 1:
            return savez(file, **arrays)
        return _savez_on_a_full_disk(file, **arrays)

    monkeypatch.setattr(np, "savez", full_after_one_epoch)
    argv = ["--task", "date", "--model", "attention", "--out", str(tmp_path), *_TINY]
    assert main([*argv, "--epochs", "3"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (
        f"python -m layers.train: error: cannot save epoch 2 to {tmp_path / 'params.npz'} and "
        "history.json (No space left on device); they still hold epoch 1: free some space or "
        "pass another --out"
    )
    assert all(line.startswith("epoch ") for line in err[:-1])
    monkeypatch.undo()
    assert _saved_epochs(tmp_path) == 1
    assert sorted(os.listdir(tmp_path)) == ["history.json", "params.npz"]
