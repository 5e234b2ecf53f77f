"""check_generate: each property of a greedy ``generate`` has a buggy decoder it must blame (the
blog copy's three ``AttentionDecoder.generate`` bugs among them) and correct twins that pass
under the same call: the bundled decoders and models, and the book's one-row ``generate``."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import gradcheck
from gradcheck import GradientMismatch, assert_generate, check_generate
from layers import (
    AttentionDecoder,
    AttentionSeq2seq,
    Decoder,
    PeekyDecoder,
    PeekySeq2seq,
    Seq2seq,
)

V, D, H, Te = 7, 4, 6, 5


def _float64(obj, seed=0):
    """Standard normal weights, no output bias: scores that vary from row to row and step to
    step (at the book's scales the bias decides, and every id is the same)."""
    rng = np.random.default_rng(seed)
    for p in obj.params:
        p[...] = rng.standard_normal(p.shape)
    getattr(obj, "decoder", obj).affine.params[1][...] = 0.0
    return obj


def _state(cls, N, seed=0):
    rng = np.random.default_rng(seed)
    shape = (N, Te, H) if issubclass(cls, AttentionDecoder) else (N, H)
    return np.tanh(rng.standard_normal(shape))


def _entry(report, prefix):
    (entry,) = [e for e in report.entries if e.name.startswith(prefix)]
    return entry


def _failed(report):
    return [e.name.split(" (")[0] for e in report.failures]


# --- buggy decoders, one property each -----------------------------------------------------


class _BookAttentionDecoder(AttentionDecoder):
    """The book's one-row generate (N=1, a list of ids); ``bug`` puts back one of the blog
    copy's: ``enc_hs[:-1]`` for ``enc_hs[:, -1]``, ``[sample_id].reshape``, ``self.afine``."""

    bug: str | None = None

    def generate(self, enc_hs, start_id, sample_size):
        sampled = []
        sample_id = start_id
        h = enc_hs[:-1] if self.bug == "enc_hs[:-1]" else enc_hs[:, -1]
        self.lstm.set_state(h)
        for _ in range(sample_size):
            if self.bug == "list.reshape":
                x = np.array([sample_id].reshape((1, 1)))
            else:
                x = np.array([sample_id]).reshape((1, 1))
            out = self.embed.forward(x)
            dec_hs = self.lstm.forward(out)
            c = self.attention.forward(enc_hs, dec_hs)
            out = np.concatenate((c, dec_hs), axis=2)
            affine = self.afine if self.bug == "afine" else self.affine
            score = affine.forward(out)
            sample_id = np.argmax(score.flatten())
            sampled.append(sample_id)
        return sampled


def _book(bug=None):
    decoder = _float64(_BookAttentionDecoder(V, D, H, dtype=np.float64))
    decoder.bug = bug
    return decoder


class _FeedsStartBack(Decoder):
    """Feeds start_id to every step instead of the id just generated."""

    def generate(self, h, start_id, sample_size):
        self._start(h)
        ids = np.full((h.shape[0], 1), start_id)
        return np.concatenate([self._step(ids).argmax(axis=2) for _ in range(sample_size)], 1)


class _Samples(Decoder):
    """Draws each id from the softmax of the scores instead of taking the argmax."""

    def generate(self, h, start_id, sample_size):
        rng = np.random.default_rng(0)
        self._start(h)
        ids, sampled = np.full((h.shape[0], 1), start_id), []
        for _ in range(sample_size):
            scores = self._step(ids)[:, 0]
            p = np.exp(scores - scores.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            ids = np.array([[rng.choice(V, p=row)] for row in p])
            sampled.append(ids)
        return np.concatenate(sampled, axis=1)


class _TemperatureInPlace(Decoder):
    """Applies a temperature by dividing the affine weights in place."""

    def generate(self, h, start_id, sample_size):
        self.affine.params[0] /= 0.5
        return super().generate(h, start_id, sample_size)


class _BatchCentred(Decoder):
    """Starts from h minus the batch mean (forward and generate alike): rows see each other."""

    def _start(self, h):
        super()._start(h - h.mean(axis=0))


class _Tied(Decoder):
    """Scores are the output bias alone, ids 2 and 5 on top, ``gap`` apart; generate adds
    ``boost`` to id 5's score (as rounding of another order might) and takes the last of equal
    scores where argmax takes the first."""

    def __init__(self, gap, boost):
        super().__init__(V, D, H, dtype=np.float64, rng=0)
        W, b = self.affine.params
        W[...] = 0.0
        b[...] = [0.1, 0.2, 0.9, 0.3, 0.4, 0.9 - gap, 0.0]
        self.boost = boost

    def generate(self, h, start_id, sample_size):
        self._start(h)
        ids, sampled = np.full((h.shape[0], 1), start_id), []
        for _ in range(sample_size):
            scores = self._step(ids)
            scores[:, :, 5] += self.boost
            ids = V - 1 - scores[:, :, ::-1].argmax(axis=2)
            sampled.append(ids)
        return np.concatenate(sampled, axis=1)


class _ReturnsFloats(Decoder):
    def generate(self, h, start_id, sample_size):
        return super().generate(h, start_id, sample_size).astype(np.float64)


class _OffByOne(Decoder):
    """Returns ids one too high (a 1-based vocabulary): the last is no token id."""

    def generate(self, h, start_id, sample_size):
        return super().generate(h, start_id, sample_size) + 1


class _ReversedBatchModel(Seq2seq):
    """A model whose generate hands the decoder its state with the rows reversed."""

    def generate(self, xs, start_id, sample_size):
        return self.decoder.generate(self.encoder.forward(xs)[::-1], start_id, sample_size)


# --- positive controls ---------------------------------------------------------------------


DECODERS = [Decoder, PeekyDecoder, AttentionDecoder]
MODELS = [Seq2seq, PeekySeq2seq, AttentionSeq2seq]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls", DECODERS)
def test_bundled_decoders_pass(cls, dtype):
    decoder = cls(V, D, H, dtype=dtype, rng=0)
    if dtype == np.float64:
        _float64(decoder)
    report = assert_generate(decoder, _state(cls, 3), start_id=0, sample_size=6)
    assert [e.status for e in report.entries] == ["ok"] * 4
    assert (
        str(report).splitlines()[0] == f"{cls.__name__}.generate passes (start_id=0, sample_size=6)"
    )


@pytest.mark.parametrize("cls", MODELS)
def test_bundled_models_pass_with_xs_as_the_state(cls):
    model = _float64(cls(V, D, H, dtype=np.float64), seed=1)
    xs = np.random.default_rng(2).integers(0, V, (4, Te))
    report = assert_generate(model, xs, start_id=2, sample_size=5)
    text = str(report)
    assert "generate: greedy (argmax of decoder.forward at each step): ok" in text
    assert "generate: model unchanged: ok" in text
    assert "reproduce: seed=0, xs=(4, 5)" in text


def test_book_one_row_generate_returning_a_list_passes():
    report = assert_generate(_book(), _state(AttentionDecoder, 1), start_id=0, sample_size=6)
    rows = _entry(report, "rows independent")
    assert rows.status == "skipped" and "one row" in rows.message and "list" in rows.message


def test_report_reads_as_one_line_per_property():
    report = check_generate(
        _float64(Decoder(V, D, H, dtype=np.float64)),
        _state(Decoder, 2),
        start_id=0,
        sample_size=4,
        context="case=demo",
    )
    assert str(report).splitlines() == [
        "Decoder.generate passes (start_id=0, sample_size=4)",
        "  generate: ids shape (N, sample_size) of integers: ok",
        "  generate: greedy (argmax of forward at each step): ok",
        "  generate: rows independent of the batch: ok",
        "  generate: decoder unchanged: ok",
        "reproduce: seed=0, state=(2, 6), case=demo",
    ]
    d = json.loads(json.dumps(report.to_dict()))
    assert d["passed"] is True and d["headline"].startswith("Decoder.generate passes")
    assert {e["kind"] for e in d["entries"]} == {"generate"}


# --- negative controls: the blog copy's three generate bugs ---------------------------------


@pytest.mark.parametrize(
    ("bug", "exception"),
    [
        ("enc_hs[:-1]", "ValueError"),
        ("list.reshape", "AttributeError"),
        ("afine", "AttributeError"),
    ],
)
def test_blog_generate_bugs_fail_naming_generate(bug, exception):
    report = check_generate(_book(bug), _state(AttentionDecoder, 1), start_id=0, sample_size=6)
    assert not report.passed
    head = str(report).splitlines()[0]
    assert head == f"_BookAttentionDecoder.generate raised {exception} (start_id=0, sample_size=6)"
    ids = _entry(report, "ids shape")
    assert ids.status == "fail"
    assert ids.message.startswith(f"generate raised {exception} at ")  # file:line, message
    assert {"enc_hs[:-1]": "(0, 5, 6)", "list.reshape": "reshape", "afine": "afine"}[bug] in (
        ids.message
    )
    assert [e.status for e in report.entries[1:3]] == ["skipped", "skipped"]
    assert _entry(report, "decoder unchanged").status == "ok"


def test_assert_generate_raises_gradient_mismatch_with_the_report():
    with pytest.raises(GradientMismatch) as info:
        assert_generate(_book("afine"), _state(AttentionDecoder, 1), start_id=0, sample_size=3)
    assert "raised AttributeError" in str(info.value)
    assert info.value.report.failures[0].name.startswith("ids shape")


# --- negative controls: one property each --------------------------------------------------


def test_wrong_token_fed_back_is_not_greedy():
    report = check_generate(
        _float64(_FeedsStartBack(V, D, H, dtype=np.float64)),
        _state(Decoder, 3),
        start_id=0,
        sample_size=6,
    )
    assert _failed(report) == ["greedy"]
    message = _entry(report, "greedy").message
    assert message.startswith("row ") and "forward's argmax" in message
    assert "step 0 agrees" in message
    assert "is not greedy-consistent with forward" in str(report).splitlines()[0]


def test_sampling_instead_of_argmax_is_not_greedy():
    report = check_generate(
        _float64(_Samples(V, D, H, dtype=np.float64)),
        _state(Decoder, 3),
        start_id=0,
        sample_size=6,
    )
    assert "greedy" in _failed(report)
    assert "steps wrong" in _entry(report, "greedy").message


def test_generate_that_changes_a_parameter_is_blamed_and_yours_is_untouched():
    decoder = _float64(_TemperatureInPlace(V, D, H, dtype=np.float64))
    state = _state(Decoder, 2)
    before, state_before = copy.deepcopy(decoder.params), state.copy()
    report = check_generate(decoder, state, start_id=0, sample_size=4)
    unchanged = _entry(report, "decoder unchanged")
    assert unchanged.status == "fail"
    assert "of affine.W" in unchanged.message and "optimizer" in unchanged.message
    assert "changes the decoder's parameters" in str(report).splitlines()[0]
    for p, q in zip(before, decoder.params, strict=True):
        assert p.tobytes() == q.tobytes()  # bit for bit: the check ran on copies
    assert state.tobytes() == state_before.tobytes()


def test_rows_that_depend_on_the_batch_are_caught():
    report = check_generate(
        _float64(_BatchCentred(V, D, H, dtype=np.float64)),
        _state(Decoder, 4),
        start_id=0,
        sample_size=6,
    )
    assert _failed(report) == ["rows independent of the batch"]
    message = _entry(report, "rows independent").message
    assert " in the batch, " in message and " alone; " in message and "rows differ" in message
    assert "depends on the rest of the batch" in str(report).splitlines()[0]


def test_model_that_hands_the_decoder_the_wrong_rows_is_caught():
    model = _float64(_ReversedBatchModel(V, D, H, dtype=np.float64), seed=2)
    xs = np.random.default_rng(4).integers(0, V, (3, Te))
    report = check_generate(model, xs, start_id=0, sample_size=6)
    assert "greedy" in _failed(report)
    assert _entry(report, "model unchanged").status == "ok"


def test_float_ids_and_wrong_shapes_are_malformed():
    report = check_generate(
        _float64(_ReturnsFloats(V, D, H, dtype=np.float64)),
        _state(Decoder, 2),
        start_id=0,
        sample_size=3,
    )
    assert _entry(report, "ids shape").message == "got float64 (2, 3); ids must be integers"
    assert "returns malformed ids" in str(report).splitlines()[0]
    # the book's one-row generate given two rows: its list is for one row
    report = check_generate(_book(), _state(AttentionDecoder, 2), start_id=0, sample_size=3)
    message = _entry(report, "ids shape").message
    assert not report.passed
    assert "raised" in message or "a list is taken for one row (N=1)" in message


def test_ids_forward_cannot_take_fail_the_greedy_line():
    decoder = _float64(_OffByOne(V, D, H, dtype=np.float64))
    decoder.affine.params[1][V - 1] = 100.0  # every generated id is V - 1, so V is returned
    report = check_generate(decoder, _state(Decoder, 2), start_id=0, sample_size=3)
    assert _failed(report) == ["greedy"]
    message = _entry(report, "greedy").message
    assert message.startswith("forward on the generated ids raised ValueError at ")
    assert "is not a token id in [0, 7)" in message
    assert "gives ids forward cannot take" in str(report).splitlines()[0]


# --- ties ----------------------------------------------------------------------------------


def test_a_tie_within_rounding_is_a_note_not_a_failure():
    report = assert_generate(_Tied(0.0, 0.0), _state(Decoder, 2), start_id=0, sample_size=3)
    assert report.notes[0] == (
        "row 0 step 0: generated 5, forward's argmax 2: scores 0.9 and 0.9 tie within rounding "
        "(|diff| 0.0e+00 <= 2.0e-13), so either is greedy"
    )
    assert sum("tie within rounding" in n for n in report.notes) == 3
    assert report.notes[-1] == "and 3 more ties within rounding"
    # 1e-15 apart: a few ulps of 0.9, what another order of summation may give
    report = assert_generate(_Tied(1e-15, 2e-15), _state(Decoder, 1), start_id=0, sample_size=1)
    assert len(report.notes) == 1 and "|diff| 1.0e-15 <= " in report.notes[0]


def test_a_gap_beyond_rounding_is_a_failure():
    report = check_generate(_Tied(1e-9, 2e-9), _state(Decoder, 1), start_id=0, sample_size=2)
    assert _failed(report) == ["greedy"]
    assert "generated 5, forward's argmax 2" in _entry(report, "greedy").message


# --- options -------------------------------------------------------------------------------


def test_large_batches_check_max_rows_rows_drawn_with_the_seed():
    decoder = _float64(Decoder(V, D, H, dtype=np.float64))
    state = _state(Decoder, 10)
    a = check_generate(decoder, state, start_id=0, sample_size=3, max_rows=3, seed=1)
    b = check_generate(decoder, state, start_id=0, sample_size=3, max_rows=3, seed=1)
    message = _entry(a, "rows independent").message
    assert message == _entry(b, "rows independent").message
    assert message.startswith("rows ") and "of 10, drawn with seed=1; max_rows=3" in message
    assert len(message.split(" of ")[0].split(",")) == 3


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"start_id": -1}, ValueError, r"start_id=-1 must be a token id \[0, 7\)"),
        ({"start_id": 7}, ValueError, r"start_id=7 must be a token id \[0, 7\)"),
        ({"sample_size": 0}, ValueError, r"sample_size=0 must be >= 1; try sample_size=5"),
        ({"sample_size": 2.0}, TypeError, r"sample_size=2.0 must be an int"),
        ({"seed": -1}, ValueError, r"seed=-1 must be >= 0; try seed=0"),
        ({"max_rows": 0}, ValueError, r"max_rows=0 must be >= 1; try max_rows=8"),
        ({"context": 3}, TypeError, r"context=3 must be a str or None"),
        ({"eps": 1e-6}, TypeError, r"eps=1e-06 is not an option of check_generate"),
    ],
)
def test_bad_options_raise_before_anything_runs(kwargs, error, match):
    args = {"start_id": 0, "sample_size": 3, **kwargs}
    with pytest.raises(error, match=match):
        check_generate(Decoder(V, D, H, rng=0), _state(Decoder, 2), **args)


def test_misuse_says_what_to_pass():
    with pytest.raises(TypeError, match="state must be an ndarray"):
        check_generate(Decoder(V, D, H, rng=0), [[0.0] * H], start_id=0, sample_size=3)
    with pytest.raises(TypeError, match="has no generate method"):
        check_generate(object(), np.zeros((1, H)), start_id=0, sample_size=3)


def test_exported_from_gradcheck():
    assert gradcheck.check_generate is check_generate
    assert gradcheck.assert_generate is assert_generate
