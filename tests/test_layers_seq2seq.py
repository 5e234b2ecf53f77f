"""The encoders, decoders and seq2seq models: gradients against finite differences (at fixed sizes
and fuzzed), and one regression test per bug of the blog copy of the book's attention model (each
would fail on it). The fuzz test draws each case's dimensions within its bounds (size 1 included)
and a seed for the weights and inputs; a failure shrinks to the smallest dimensions.

Blog bugs: (1) TimeAttention unpacks ``hs_enc`` itself and loops over the wrong length, (2) the
decoder's initial-state gradient never reaches the encoder, (3) ``generate`` slices the batch,
(4) ``generate`` crashes or never returns, (5) AttentionDecoder inherits an (H, V) affine,
(6) attention weights are not kept. Book: hard-coded float32 buffers. Every decoder's and
model's ``generate`` is also checked by ``gradcheck.assert_generate`` (greedy with respect to
forward, row by row, parameters unchanged); its own negative controls, the blog's three
``generate`` bugs among them, are in tests/test_generate.py.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gradcheck
from gradcheck import assert_generate, assert_layer
from gradcheck.strategies import dims, layer_cases
from layers import (
    AttentionDecoder,
    AttentionEncoder,
    AttentionSeq2seq,
    Decoder,
    Encoder,
    PeekyDecoder,
    PeekySeq2seq,
    Seq2seq,
)
from tests.families import (
    build,
    family_cases,
)

CASES = family_cases("seq2seq")
MODELS = [Seq2seq, PeekySeq2seq, AttentionSeq2seq]
# Every dimension different (N >= 2, T >= 3; with V = 7 and N * T > 7 token ids repeat), Te > Td
# and Te < Td, and the edge N = T = 1.
DIMS = [
    pytest.param({"N": 2, "Te": 5, "Td": 3, "D": 4, "H": 6, "V": 7}, id="Te>Td"),
    pytest.param({"N": 2, "Te": 3, "Td": 5, "D": 4, "H": 6, "V": 7}, id="Te<Td"),
    pytest.param({"N": 1, "Te": 1, "Td": 1, "D": 2, "H": 3, "V": 4}, id="N=T=1"),
]


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("case", CASES)
def test_backward_matches_finite_differences(case, dims):
    layer, inputs = build(case, dims)
    rtol = 1e-6 if type(layer) in MODELS else 1e-7  # a model's loss sums many more terms
    report = assert_layer(layer, *inputs, rtol=rtol, atol=1e-10, mode="full")
    assert report.max_rel_error < rtol
    checked = {e.name for e in report.gradients}
    assert set(layer.param_names) <= checked


@pytest.mark.parametrize("case", CASES)
@given(data=st.data())
def test_fuzzed_backward_matches_finite_differences(case, data):
    layer, inputs = drawn = data.draw(layer_cases(case))
    assert_layer(layer, *inputs, seed=drawn.seed, context=drawn.context, **case.options)


# --- blog bug 2: the encoder's gradient through the decoder's initial state ---


class _BlogAttentionDecoder(AttentionDecoder):
    """The blog copy's backward: the LSTM's dh never reaches denc_hs[:, -1]."""

    def backward(self, dscores):
        _, denc_hs = super().backward(dscores)
        denc_hs[:, -1] -= self.lstm.dh
        return None, denc_hs


class _BlogAttentionSeq2seq(AttentionSeq2seq):
    decoder_class = _BlogAttentionDecoder


def _float64(model, seed=0):
    rng = np.random.default_rng(seed)
    for p in model.params:
        p[...] = 0.5 * rng.standard_normal(p.shape)
    return model


def test_attention_decoder_sends_initial_state_gradient_to_the_encoder():
    rng = np.random.default_rng(5)
    decoder = _float64(AttentionDecoder(7, 4, 6, dtype=np.float64))
    xs, enc_hs = rng.integers(0, 7, (2, 3)), np.tanh(rng.standard_normal((2, 5, 6)))
    report = gradcheck.check_layer(decoder, xs, enc_hs, rtol=1e-7, atol=1e-10, mode="full")
    assert report.passed, str(report)
    decoder.forward(xs, enc_hs)
    decoder.backward(rng.standard_normal((2, 3, 7)))
    assert np.abs(decoder.lstm.dh).max() > 1e-3  # the initial-state path carries gradient
    # ... and the blog's version, identical but for that path, is caught on enc_hs.
    buggy = _float64(_BlogAttentionDecoder(7, 4, 6, dtype=np.float64))
    report = gradcheck.check_layer(buggy, xs, enc_hs, rtol=1e-7, atol=1e-10, mode="full")
    assert not report.passed
    assert [e.name for e in report.gradients if e.status == "mismatch"] == ["input[1]"]


def test_blog_attention_model_is_caught_on_encoder_gradients():
    rng = np.random.default_rng(6)
    xs, ts = rng.integers(0, 7, (2, 5)), rng.integers(0, 7, (2, 4))
    report = gradcheck.check_layer(
        _float64(_BlogAttentionSeq2seq(7, 4, 6, dtype=np.float64)), xs, ts, rtol=1e-6, mode="full"
    )
    wrong = {e.name for e in report.gradients if e.status == "mismatch"}
    assert wrong and all(name.startswith("encoder.") for name in wrong)


@pytest.mark.parametrize("cls", MODELS)
def test_every_encoder_parameter_receives_gradient(cls):
    rng = np.random.default_rng(7)
    model = cls(7, 4, 6, dtype=np.float64, rng=0)
    model.forward(rng.integers(0, 7, (3, 5)), rng.integers(0, 7, (3, 4)))
    model.backward()
    for name, grad in zip(model.param_names, model.grads, strict=True):
        if name.startswith("encoder.") and not name.endswith(".b"):  # book biases start at 0
            assert np.abs(grad).max() > 0, name


# --- blog bugs 3, 4: generate ---


@pytest.mark.parametrize("cls", MODELS)
def test_generate_runs_each_row_as_if_alone(cls):
    rng = np.random.default_rng(8)
    model = _float64(cls(7, 4, 6, dtype=np.float64), seed=1)
    xs = rng.integers(0, 7, (4, 5))
    sampled = model.generate(xs, 0, 6)
    assert sampled.shape == (4, 6)
    assert np.issubdtype(sampled.dtype, np.integer)
    assert ((sampled >= 0) & (sampled < 7)).all()
    rows = np.concatenate([model.generate(xs[i : i + 1], 0, 6) for i in range(4)])
    np.testing.assert_array_equal(sampled, rows)
    assert_generate(model, xs, start_id=0, sample_size=6)


@pytest.mark.parametrize("cls", MODELS)
def test_generate_is_greedy_decoding_of_forward(cls):
    # Feeding the generated answer back through forward's decoder gives the same argmax ids.
    rng = np.random.default_rng(9)
    model = _float64(cls(7, 4, 6, dtype=np.float64), seed=2)
    xs = rng.integers(0, 7, (3, 4))
    sampled = model.generate(xs, 2, 5)
    decoder_xs = np.concatenate([np.full((3, 1), 2), sampled[:, :-1]], axis=1)
    scores = model.decoder.forward(decoder_xs, model.encoder.forward(xs))
    np.testing.assert_array_equal(scores.argmax(axis=2), sampled)
    assert_generate(model, xs, start_id=2, sample_size=5)


DECODERS = [Decoder, PeekyDecoder, AttentionDecoder]


def _decoder_state(cls, rng, N, Te, H):
    shape = (N, Te, H) if cls is AttentionDecoder else (N, H)
    return np.tanh(rng.standard_normal(shape))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls", [*DECODERS, *MODELS])
def test_generate_passes_the_generate_check(cls, dtype):
    # The book's weights in float32 (what a user trains) and spread float64 ones: greedy with
    # respect to forward at every step, each row as if alone, parameters untouched.
    rng = np.random.default_rng(14)
    part = cls(7, 4, 6, dtype=dtype, rng=0)
    if dtype == np.float64:
        _float64(part, seed=3)
    state = rng.integers(0, 7, (4, 5)) if cls in MODELS else _decoder_state(cls, rng, 4, 5, 6)
    report = assert_generate(part, state, start_id=1, sample_size=8)
    assert [e.status for e in report.entries] == ["ok"] * 4


@pytest.mark.parametrize("cls", [*DECODERS, *MODELS])
@given(drawn=dims("N", "Te", "D", "H", "V", max_N=5, max_Te=5), data=st.data())
def test_fuzzed_generate_passes_the_generate_check(cls, drawn, data):
    N, Te, D, H, V = drawn.values()
    seed = data.draw(st.integers(0, 2**16), label="seed")
    rng = np.random.default_rng(seed)
    part = _float64(cls(V, D, H, dtype=np.float64), seed=seed)
    state = rng.integers(0, V, (N, Te)) if cls in MODELS else _decoder_state(cls, rng, N, Te, H)
    start_id = data.draw(st.integers(0, V - 1), label="start_id")
    context = f"N={N} Te={Te} D={D} H={H} V={V} seed={seed}"
    assert_generate(part, state, start_id=start_id, sample_size=Te + 2, context=context)


@pytest.mark.parametrize("cls", MODELS)
def test_backward_after_generate_asks_for_a_forward_first(cls):
    # generate leaves one-token caches: a backward on them would check dscores against the
    # last step and return gradients of nothing the caller computed
    rng = np.random.default_rng(3)
    model = cls(7, 4, 6, rng=0)
    xs, ts = rng.integers(0, 7, (2, 5)), rng.integers(0, 7, (2, 4))
    model.forward(xs, ts)
    model.generate(xs, 0, 3)
    with pytest.raises(RuntimeError, match=r"call forward before backward.*generate"):
        model.backward()
    model.forward(xs, ts)
    model.backward()  # a forward makes it usable again


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("sample_size", [0, 1, 3])
def test_generate_stops_at_the_requested_length(cls, sample_size):
    model = cls(5, 2, 3, rng=0)
    sampled = model.generate(np.zeros((2, 4), dtype=np.int64), 1, sample_size)
    assert sampled.shape == (2, sample_size)


# --- blog bug 5: the attention decoder's affine reads context and state side by side ---


def test_attention_decoder_affine_is_2h_by_v():
    model = AttentionSeq2seq(11, 4, 6, rng=0)
    assert not isinstance(model.decoder, Decoder)
    assert model.decoder.affine.params[0].shape == (12, 11)
    assert model.param_names[-2:] == ["decoder.affine.W", "decoder.affine.b"]
    assert model.params[-2].shape == (12, 11)


def test_peeky_decoder_shapes():
    decoder = PeekyDecoder(11, 4, 6, rng=0)
    assert decoder.lstm.params[0].shape == (10, 24)
    assert decoder.affine.params[0].shape == (12, 11)


# --- blog bug 6: attention weights kept ---


def test_attention_model_keeps_the_map_of_its_last_call():
    rng = np.random.default_rng(10)
    model = AttentionSeq2seq(7, 4, 6, dtype=np.float64, rng=0)
    assert model.attention_weights is None
    xs = rng.integers(0, 7, (3, 5))
    model.forward(xs, rng.integers(0, 7, (3, 4)))
    assert model.attention_weights.shape == (3, 3, 5)  # (N, Td, Te)
    np.testing.assert_allclose(model.attention_weights.sum(axis=2), 1.0, rtol=1e-12)
    model.generate(xs, 0, 8)
    weights = model.attention_weights
    assert weights.shape == (3, 8, 5)
    np.testing.assert_allclose(weights.sum(axis=2), 1.0, rtol=1e-12)
    # Row 1's map is the map of generating row 1 alone.
    model.generate(xs[1:2], 0, 8)
    np.testing.assert_allclose(model.attention_weights[0], weights[1], rtol=1e-12)


# --- the contract: dtypes, params as the parts' arrays, dotted names ---


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_model_computes_in_its_dtype(cls, dtype):
    rng = np.random.default_rng(11)
    model = cls(7, 4, 6, dtype=dtype, rng=0)
    xs, ts = rng.integers(0, 7, (2, 5)), rng.integers(0, 7, (2, 4))
    loss = model.forward(xs, ts)
    model.backward()
    assert np.asarray(loss).dtype == dtype
    assert all(p.dtype == dtype for p in model.params)
    assert all(g.dtype == dtype for g in model.grads)
    scores = model.decoder.forward(ts[:, :-1], model.encoder.forward(xs))
    assert scores.dtype == dtype
    if cls is AttentionSeq2seq:
        model.generate(xs, 0, 2)
        assert model.attention_weights.dtype == dtype


@pytest.mark.parametrize("cls", MODELS)
def test_params_are_the_parts_own_arrays_with_dotted_names(cls):
    model = cls(7, 4, 6, rng=0)
    parts = {"encoder": model.encoder, "decoder": model.decoder}
    assert len(model.params) == len(model.grads) == len(model.param_names)
    for name, param, grad in zip(model.param_names, model.params, model.grads, strict=True):
        part, layer, pname = name.split(".")
        sub = getattr(parts[part], layer)
        i = sub.param_names.index(pname)
        assert param is sub.params[i] and grad is sub.grads[i]
    assert model.param_names[:4] == [
        "encoder.embed.W",
        "encoder.lstm.Wx",
        "encoder.lstm.Wh",
        "encoder.lstm.b",
    ]


@pytest.mark.parametrize("cls", MODELS)
def test_initial_weights_follow_the_book_and_the_seed(cls):
    a, b = cls(50, 16, 64, rng=3), cls(50, 16, 64, rng=np.random.default_rng(3))
    for pa, pb in zip(a.params, b.params, strict=True):
        np.testing.assert_array_equal(pa, pb)
    embed = a.encoder.embed.params[0]
    assert 0.005 < embed.std() < 0.02  # standard normal / 100
    assert 0.1 < a.encoder.lstm.params[0].std() * 4 < 2  # / sqrt(D) = / 4
    assert not a.encoder.lstm.params[2].any()  # zero bias
    assert not np.array_equal(embed, cls(50, 16, 64, rng=4).encoder.embed.params[0])


@pytest.mark.parametrize(
    "cls", [Encoder, AttentionEncoder, Decoder, PeekyDecoder, AttentionDecoder]
)
def test_parts_have_dotted_names_and_float64(cls):
    part = cls(7, 4, 6, dtype=np.float64, rng=0)
    assert all("." in name for name in part.param_names)
    assert all(p.dtype == np.float64 for p in part.params)


def test_ignored_labels_are_allowed_in_the_target_only():
    model = Seq2seq(7, 4, 6, dtype=np.float64, rng=0)
    xs = np.ones((2, 3), dtype=np.int64)
    loss = model.forward(xs, np.array([[0, 3, 4, -1], [0, 2, 5, -1]]))
    assert np.isfinite(loss)
    with pytest.raises(ValueError, match=r"ts\[1, 2\] = -1 is the ignore_label"):
        model.forward(xs, np.array([[0, 3, 4, -1], [0, 2, -1, -1]]))


# --- save and load ---


@pytest.mark.parametrize("cls", MODELS)
def test_save_load_round_trip_writes_in_place(cls, tmp_path):
    rng = np.random.default_rng(12)
    xs, ts = rng.integers(0, 7, (2, 5)), rng.integers(0, 7, (2, 4))
    source, target = cls(7, 4, 6, rng=0), cls(7, 4, 6, rng=1)
    path = tmp_path / "params.npz"
    source.save_params(path)
    arrays = list(target.params)
    target.load_params(path)
    assert all(a is b for a, b in zip(arrays, target.params, strict=True))
    for a, b in zip(source.params, target.params, strict=True):
        np.testing.assert_array_equal(a, b)
    assert source.forward(xs, ts) == target.forward(xs, ts)
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == sorted(source.param_names)


def test_save_writes_exactly_the_given_path(tmp_path):
    path = tmp_path / "weights"  # no .npz suffix: np.savez would add one
    Seq2seq(5, 2, 3, rng=0).save_params(path)
    assert path.exists()
    Seq2seq(5, 2, 3, rng=1).load_params(path)


def _saved(tmp_path, arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


def _load_error(model, path):
    before = [p.copy() for p in model.params]
    with pytest.raises(ValueError) as info:
        model.load_params(path)
    for a, b in zip(before, model.params, strict=True):  # nothing written on error
        np.testing.assert_array_equal(a, b)
    return str(info.value)


def test_load_wrong_shape_names_the_parameter(tmp_path):
    arrays = dict(zip(*_names_params(AttentionSeq2seq(7, 4, 6, rng=0)), strict=True))
    arrays["decoder.affine.W"] = np.zeros((6, 7), dtype=np.float32)  # the blog's (H, V)
    message = _load_error(AttentionSeq2seq(7, 4, 6, rng=1), _saved(tmp_path, arrays))
    assert "'decoder.affine.W'" in message and "(6, 7)" in message and "(12, 7)" in message


def test_load_wrong_dtype_names_the_parameter(tmp_path):
    arrays = dict(zip(*_names_params(Seq2seq(7, 4, 6, rng=0)), strict=True))
    message = _load_error(Seq2seq(7, 4, 6, dtype=np.float64, rng=1), _saved(tmp_path, arrays))
    assert "'encoder.embed.W'" in message and "float32" in message and "float64" in message


def test_load_missing_or_extra_parameter_is_named(tmp_path):
    arrays = dict(zip(*_names_params(Seq2seq(7, 4, 6, rng=0)), strict=True))
    del arrays["decoder.lstm.Wh"]
    arrays["decoder.attention.W"] = np.zeros(3, dtype=np.float32)
    message = _load_error(Seq2seq(7, 4, 6, rng=1), _saved(tmp_path, arrays))
    assert "decoder.lstm.Wh" in message and "decoder.attention.W" in message


def test_load_refuses_pickled_objects(tmp_path):
    arrays = dict(zip(*_names_params(Seq2seq(7, 4, 6, rng=0)), strict=True))
    arrays["encoder.embed.W"] = np.array([{"evil": 1}], dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **arrays)  # savez pickles object arrays
    _load_error(Seq2seq(7, 4, 6, rng=1), path)


def test_load_of_a_single_array_file_says_what_to_save(tmp_path):
    path = tmp_path / "weights.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(ValueError, match=r"not the \.npz of named parameters.*save_params"):
        Seq2seq(7, 4, 6, rng=1).load_params(path)


def _names_params(model):
    return model.param_names, model.params


# --- wrong inputs ---


BAD_INPUTS = [
    pytest.param((2, 5), (3, 4), "(2, >= 2)", "(3, 4)", id="ts-batch"),
    pytest.param((2, 5), (2, 1), "(2, >= 2)", "(2, 1)", id="ts-one-column"),
    pytest.param((5,), (2, 4), "(N, T)", "(5,)", id="xs-1d"),
    pytest.param((2, 5), (2, 4, 1), "(N, T)", "(2, 4, 1)", id="ts-3d"),
]


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize(("xs_shape", "ts_shape", "expected", "got"), BAD_INPUTS)
def test_wrong_input_shape_names_expected_and_received(cls, xs_shape, ts_shape, expected, got):
    model = cls(7, 4, 6, rng=0)
    with pytest.raises(ValueError) as info:
        model.forward(np.zeros(xs_shape, dtype=np.int64), np.zeros(ts_shape, dtype=np.int64))
    assert expected in str(info.value) and got in str(info.value)


def test_out_of_vocabulary_id_is_a_value_error():
    model = AttentionSeq2seq(7, 4, 6, rng=0)
    xs = np.array([[1, 2, 7]])
    with pytest.raises(ValueError, match=r"xs\[0, 2\] = 7 is not a token id in \[0, 7\)"):
        model.forward(xs, np.zeros((1, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="not a token id"):
        model.forward(np.zeros((1, 3), dtype=np.int64), np.array([[0, 9, 2]]))


def test_float_ids_are_a_type_error():
    with pytest.raises(TypeError, match="integer ndarray"):
        Seq2seq(7, 4, 6, rng=0).forward(np.zeros((2, 3)), np.zeros((2, 3), dtype=np.int64))


@pytest.mark.parametrize(
    ("cls", "state_shape", "expected"),
    [
        (Decoder, (2, 5), "(2, 6)"),
        (PeekyDecoder, (3, 6), "(2, 6)"),
        (AttentionDecoder, (2, 4, 5), "(2, _, 6)"),
    ],
)
def test_decoder_wrong_state_shape_names_expected_and_received(cls, state_shape, expected):
    with pytest.raises(ValueError) as info:
        cls(7, 4, 6, rng=0).forward(np.zeros((2, 3), dtype=np.int64), np.zeros(state_shape))
    assert expected in str(info.value) and str(state_shape) in str(info.value)


@pytest.mark.parametrize("kwargs", [{"start_id": 7}, {"start_id": -1}, {"sample_size": -1}])
def test_generate_rejects_bad_arguments(kwargs):
    args = {"start_id": 0, "sample_size": 3, **kwargs}
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        AttentionSeq2seq(7, 4, 6, rng=0).generate(np.zeros((2, 3), dtype=np.int64), **args)


@pytest.mark.parametrize("size", [0, -2, 2.5])
def test_constructor_rejects_bad_sizes(size):
    with pytest.raises(ValueError, match="hidden_size"):
        Seq2seq(7, 4, size)


@pytest.mark.parametrize("cls", MODELS)
def test_float32_model_passes_the_checker_at_default_options(cls):
    rng = np.random.default_rng(13)
    model = cls(7, 4, 6, rng=0)  # float32, book initial weights: what a user trains
    report = gradcheck.check_layer(model, rng.integers(0, 7, (2, 5)), rng.integers(0, 7, (2, 4)))
    assert report.passed, str(report)
    assert all(p.dtype == np.float32 for p in model.params)  # checked through a float64 copy


def test_constructor_rejects_an_integer_dtype():
    with pytest.raises(ValueError, match="dtype"):
        AttentionSeq2seq(7, 4, 6, dtype=np.int32)
