"""Encoder-decoder models of *Deep Learning from Scratch 2*, ch. 7-8, the blog copy's bugs fixed.

An encoder reads the question xs (N, Te) of token ids; a decoder, started from the encoder's last
hidden state, predicts the answer one token ahead. Three decoders: the plain one, the "peeky" one
that also sees the encoder's state at every step, and the attention one that looks back at every
encoder state (its affine layer is (2H, V): context and hidden state side by side).

Models: ``Seq2seq``, ``PeekySeq2seq``, ``AttentionSeq2seq``, all built as
``(vocab_size, wordvec_size, hidden_size, *, dtype=np.float32, rng=None)`` with the book's
initial scales, ``forward(xs, ts) -> loss`` (decoder input ``ts[:, :-1]``, target ``ts[:, 1:]``),
``backward(dout=1)``, ``generate(xs, start_id, sample_size) -> (N, sample_size)`` ids,
``save_params(path)`` and ``load_params(path)`` (.npz keyed by ``param_names``, no pickle).
"""

from __future__ import annotations

import os
import zipfile
import zlib
from errno import ENOSPC

import numpy as np

from layers.attention import TimeAttention
from layers.basic import _no_forward, _shape_error
from layers.recurrent import TimeLSTM
from layers.time import TimeAffine, TimeEmbedding, TimeSoftmaxWithLoss

__all__ = [
    "AttentionDecoder",
    "AttentionEncoder",
    "AttentionSeq2seq",
    "Decoder",
    "Encoder",
    "PeekyDecoder",
    "PeekySeq2seq",
    "Seq2seq",
]

RngLike = int | np.random.Generator | None


def _init(rng: np.random.Generator, shape: tuple[int, ...], divisor: float, dtype) -> np.ndarray:
    """Standard normal weights divided as the book does: by 100 for embeddings, by sqrt(fan-in)
    for the LSTM and affine weights."""
    return (rng.standard_normal(shape) / divisor).astype(dtype)


def _embed_and_lstm(
    rng: np.random.Generator, V: int, D: int, H: int, dtype, *, lstm_in: int, stateful: bool
) -> tuple[TimeEmbedding, TimeLSTM]:
    """The embedding (V, D) and LSTM (lstm_in -> H) every encoder and decoder starts with, at
    the book's scales and drawn in this order (embedding, Wx, Wh) so a seed gives the same model."""
    embed = TimeEmbedding(_init(rng, (V, D), 100, dtype))
    lstm = TimeLSTM(
        _init(rng, (lstm_in, 4 * H), np.sqrt(lstm_in), dtype),
        _init(rng, (H, 4 * H), np.sqrt(H), dtype),
        np.zeros(4 * H, dtype=dtype),
        stateful=stateful,
    )
    return embed, lstm


def _start_part(part, V: int, D: int, H: int, dtype, rng: RngLike) -> np.random.Generator:
    """Check an encoder's or decoder's constructor arguments, keep ``vocab_size`` and
    ``hidden_size`` on it, and return the generator its weights are drawn from."""
    where = type(part).__name__
    for name, size in {"vocab_size": V, "wordvec_size": D, "hidden_size": H}.items():
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"{where}: {name}={size!r} must be an int >= 1")
    if np.dtype(dtype).kind != "f":
        raise ValueError(f"{where}: dtype={dtype!r} must be a float type; try dtype=np.float64")
    part.vocab_size, part.hidden_size = V, H
    return np.random.default_rng(rng)


def _check_ids(where: str, name: str, ids: object, vocab_size: int, *, allow: int | None = None):
    """Token ids: an integer array (N, T), N, T >= 1, every id in [0, V) (or equal to ``allow``)."""
    if not isinstance(ids, np.ndarray) or ids.dtype.kind not in "iu":
        kind = getattr(ids, "dtype", type(ids).__name__)
        raise TypeError(
            f"{where}: {name} must be an integer ndarray (N, T) of token ids, got {kind}"
        )
    if ids.ndim != 2 or 0 in ids.shape:
        raise ValueError(
            f"{where}: expected {name} of shape (N, T) with N, T >= 1, got {ids.shape}"
        )
    if ids.min() >= 0 and ids.max() < vocab_size:  # two reductions; the mask only if needed
        return
    valid = (ids >= 0) & (ids < vocab_size)
    if allow is not None:
        valid |= ids == allow
    if not valid.all():
        bad = tuple(int(i) for i in np.argwhere(~valid)[0])
        raise ValueError(
            f"{where}: {name}{list(bad)} = {ids[bad]} is not a token id in [0, {vocab_size})"
            + (f" or {allow}" if allow is not None else "")
        )


def _check_state(where: str, name: str, x: object, expected: tuple[int, ...], letters: str):
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        kind = getattr(x, "dtype", type(x).__name__)
        raise TypeError(f"{where}: {name} must be a float ndarray {letters}, got {kind}")
    wrong = x.ndim != len(expected) or 0 in x.shape
    if wrong or any(e is not None and e != g for g, e in zip(x.shape, expected, strict=True)):
        shown = "(" + ", ".join("_" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{where}: expected {name} of shape {letters} = {shown}, got {x.shape}")


def _check_generate(where: str, start_id: int, sample_size: int, vocab_size: int) -> None:
    if not isinstance(start_id, (int, np.integer)) or not 0 <= start_id < vocab_size:
        raise ValueError(f"{where}: start_id={start_id!r} must be a token id in [0, {vocab_size})")
    if not isinstance(sample_size, (int, np.integer)) or sample_size < 0:
        raise ValueError(f"{where}: sample_size={sample_size!r} must be an int >= 0")


def _check_dscores(decoder, dscores: np.ndarray) -> None:
    """dscores must be (N, Td, V) of the decoder's last forward (its affine layer's input)."""
    expected = (*decoder.affine.xs.shape[:2], decoder.vocab_size)
    if dscores.shape != expected:
        where = f"{type(decoder).__name__}.backward"
        raise _shape_error(where, "dscores", str(expected), dscores.shape)


def _greedy(step, N: int, start_id: int, sample_size: int) -> np.ndarray:
    """Feed each step's most likely token to the next: ids (N, sample_size), start_id left out."""
    ids = np.full((N, 1), start_id, dtype=np.int64)
    sampled = np.empty((N, sample_size), dtype=np.int64)
    for t in range(sample_size):
        ids = step(ids).argmax(axis=2)  # scores (N, 1, V) -> ids (N, 1)
        sampled[:, t] = ids[:, 0]
    return sampled


def _named(parts: dict[str, object]) -> tuple[list, list, list[str]]:
    """The parts' own params and grads (same objects) and their dotted names (``lstm.Wx``)."""
    params, grads, names = [], [], []
    for part_name, part in parts.items():
        params += part.params
        grads += part.grads
        names += [f"{part_name}.{n}" for n in part.param_names]
    return params, grads, names


class Encoder:
    """Reads the question and hands the decoder its last hidden state.

    Params: embed.W (V, D), lstm.Wx (D, 4H), lstm.Wh (H, 4H), lstm.b (4H,).
    forward: xs (N, Te) token ids -> h (N, H), the last hidden state
    backward: dh (N, H) -> None (token ids have no gradient)
    """

    def __init__(
        self,
        vocab_size: int,
        wordvec_size: int,
        hidden_size: int,
        *,
        dtype=np.float32,
        rng: RngLike = None,
    ) -> None:
        V, D, H = vocab_size, wordvec_size, hidden_size
        rng = _start_part(self, V, D, H, dtype, rng)
        self.embed, self.lstm = _embed_and_lstm(rng, V, D, H, dtype, lstm_in=D, stateful=False)
        self.params, self.grads, self.param_names = _named({"embed": self.embed, "lstm": self.lstm})
        self.hs_shape: tuple[int, ...] | None = None

    def forward(self, xs: np.ndarray) -> np.ndarray:
        _check_ids(f"{type(self).__name__}.forward", "xs", xs, self.vocab_size)
        return self._forward(xs)

    def _forward(self, xs: np.ndarray) -> np.ndarray:
        """forward without the checks, for xs already checked (by the model's forward)."""
        return self._encode(xs)[:, -1, :].copy()

    def _encode(self, xs: np.ndarray) -> np.ndarray:
        hs = self.lstm.forward(self.embed._lookup(xs))
        self.hs_shape = hs.shape
        return hs

    def backward(self, dh: np.ndarray) -> None:
        if self.hs_shape is None:
            raise _no_forward(f"{type(self).__name__}.backward")
        N, _, H = self.hs_shape
        if dh.shape != (N, H):
            raise _shape_error(f"{type(self).__name__}.backward", "dh", str((N, H)), dh.shape)
        dhs = np.zeros(self.hs_shape, dtype=self.lstm.params[0].dtype)
        dhs[:, -1, :] = dh
        self.embed.backward(self.lstm.backward(dhs))
        return None


class AttentionEncoder(Encoder):
    """The encoder of the attention model: hands the decoder every hidden state, not just the last.

    Params: embed.W (V, D), lstm.Wx (D, 4H), lstm.Wh (H, 4H), lstm.b (4H,).
    forward: xs (N, Te) token ids -> hs (N, Te, H)
    backward: dhs (N, Te, H) -> None
    """

    def _forward(self, xs: np.ndarray) -> np.ndarray:
        return self._encode(xs)

    def backward(self, dhs: np.ndarray) -> None:
        if self.hs_shape is None:
            raise _no_forward(f"{type(self).__name__}.backward")
        if dhs.shape != self.hs_shape:
            raise _shape_error(
                f"{type(self).__name__}.backward", "dhs", str(self.hs_shape), dhs.shape
            )
        self.embed.backward(self.lstm.backward(dhs))
        return None


class Decoder:
    """Predicts each next token from the previous one, starting from the encoder's state h.

    The initial cell state is zero; the gradient of the loss with respect to h (the decoder
    LSTM's ``dh``) is returned so the encoder learns through it.
    Params: embed.W (V, D), lstm.Wx (D, 4H), lstm.Wh (H, 4H), lstm.b (4H,), affine.W (H, V),
    affine.b (V,).
    forward: xs (N, Td) token ids, h (N, H) -> scores (N, Td, V)
    backward: dscores (N, Td, V) -> (None, dh (N, H))
    generate: h (N, H), start_id, sample_size -> ids (N, sample_size), greedy
    """

    def __init__(
        self,
        vocab_size: int,
        wordvec_size: int,
        hidden_size: int,
        *,
        dtype=np.float32,
        rng: RngLike = None,
    ) -> None:
        V, D, H = vocab_size, wordvec_size, hidden_size
        rng = _start_part(self, V, D, H, dtype, rng)
        lstm_in, affine_in = self._widths(D, H)
        self.embed, self.lstm = _embed_and_lstm(rng, V, D, H, dtype, lstm_in=lstm_in, stateful=True)
        self.affine = TimeAffine(
            _init(rng, (affine_in, V), np.sqrt(affine_in), dtype), np.zeros(V, dtype=dtype)
        )
        parts = {"embed": self.embed, "lstm": self.lstm, "affine": self.affine}
        self.params, self.grads, self.param_names = _named(parts)

    @staticmethod
    def _widths(D: int, H: int) -> tuple[int, int]:
        """Input widths of the LSTM and of the affine: (D, H)."""
        return D, H

    def _start(self, h: np.ndarray) -> None:
        self.lstm.set_state(h)

    def _step(self, ids: np.ndarray) -> np.ndarray:
        return self.affine.forward(self.lstm.forward(self.embed._lookup(ids)))

    def forward(self, xs: np.ndarray, h: np.ndarray) -> np.ndarray:
        where = f"{type(self).__name__}.forward"
        _check_ids(where, "xs", xs, self.vocab_size)
        _check_state(where, "h", h, (xs.shape[0], self.hidden_size), "(N, H)")
        return self._forward(xs, h)

    def _forward(self, xs: np.ndarray, h: np.ndarray) -> np.ndarray:
        """forward without the checks, for xs and h already checked (by the model's forward)."""
        self._start(h)
        return self._step(xs)

    def backward(self, dscores: np.ndarray) -> tuple[None, np.ndarray]:
        if self.affine.xs is None:
            raise _no_forward(f"{type(self).__name__}.backward")
        _check_dscores(self, dscores)
        dxs = self.lstm.backward(self.affine.backward(dscores))
        self.embed.backward(dxs)
        return None, self.lstm.dh

    def generate(self, h: np.ndarray, start_id: int, sample_size: int) -> np.ndarray:
        where = f"{type(self).__name__}.generate"
        _check_generate(where, start_id, sample_size, self.vocab_size)
        _check_state(where, "h", h, (None, self.hidden_size), "(N, H)")
        self._start(h)
        sampled = _greedy(self._step, h.shape[0], start_id, sample_size)
        self.affine.xs = None  # generate's one-token steps are no forward backward can use
        return sampled


class PeekyDecoder(Decoder):
    """A decoder that sees the encoder's state h at every step, beside the input and the output.

    h is concatenated before the embedded token (LSTM input (H + D)) and before the LSTM output
    (affine input (2H)); it is also the LSTM's initial state, so dh sums all three uses.
    Params: embed.W (V, D), lstm.Wx (H + D, 4H), lstm.Wh (H, 4H), lstm.b (4H,),
    affine.W (2H, V), affine.b (V,).
    forward: xs (N, Td) token ids, h (N, H) -> scores (N, Td, V)
    backward: dscores (N, Td, V) -> (None, dh (N, H))
    generate: h (N, H), start_id, sample_size -> ids (N, sample_size), greedy
    """

    peeky_h: np.ndarray | None = None  # h as concatenated at every step, in the params' dtype

    @staticmethod
    def _widths(D: int, H: int) -> tuple[int, int]:
        """Input widths of the LSTM and of the affine: (H + D, 2H), h beside each."""
        return H + D, 2 * H

    def _start(self, h: np.ndarray) -> None:
        super()._start(h)
        self.peeky_h = h.astype(self.lstm.params[0].dtype, copy=False)  # concatenated below

    def _step(self, ids: np.ndarray) -> np.ndarray:
        N, T = ids.shape
        hs = np.broadcast_to(self.peeky_h[:, None, :], (N, T, self.hidden_size))
        out = self.lstm.forward(np.concatenate((hs, self.embed._lookup(ids)), axis=2))
        return self.affine.forward(np.concatenate((hs, out), axis=2))

    def backward(self, dscores: np.ndarray) -> tuple[None, np.ndarray]:
        if self.affine.xs is None:
            raise _no_forward(f"{type(self).__name__}.backward")
        _check_dscores(self, dscores)
        H = self.hidden_size
        dout = self.affine.backward(dscores)
        dhs_affine, dout = dout[:, :, :H], dout[:, :, H:]
        dout = self.lstm.backward(dout)
        dhs_lstm, dembed = dout[:, :, :H], dout[:, :, H:]
        self.embed.backward(dembed)
        return None, self.lstm.dh + (dhs_affine + dhs_lstm).sum(axis=1)


class AttentionDecoder:
    """A decoder that attends over every encoder state at every step.

    Not a subclass of ``Decoder`` (the blog copy's is, and inherits an (H, V) affine): its affine
    reads the context and the hidden state side by side, (2H, V). It starts from the encoder's
    last state ``enc_hs[:, -1]``, so that column's gradient also receives the LSTM's ``dh`` (the
    blog copy adds it to the wrong array and the encoder never learns through it). Keeps the
    weights of its last call in ``attention_weights`` (N, Td, Te), forward or generate.
    Params: embed.W (V, D), lstm.Wx (D, 4H), lstm.Wh (H, 4H), lstm.b (4H,), affine.W (2H, V),
    affine.b (V,).
    forward: xs (N, Td) token ids, enc_hs (N, Te, H) -> scores (N, Td, V)
    backward: dscores (N, Td, V) -> (None, denc_hs (N, Te, H))
    generate: enc_hs (N, Te, H), start_id, sample_size -> ids (N, sample_size), greedy
    """

    def __init__(
        self,
        vocab_size: int,
        wordvec_size: int,
        hidden_size: int,
        *,
        dtype=np.float32,
        rng: RngLike = None,
    ) -> None:
        V, D, H = vocab_size, wordvec_size, hidden_size
        rng = _start_part(self, V, D, H, dtype, rng)
        self.embed, self.lstm = _embed_and_lstm(rng, V, D, H, dtype, lstm_in=D, stateful=True)
        self.attention = TimeAttention()
        self.affine = TimeAffine(
            _init(rng, (2 * H, V), np.sqrt(2 * H), dtype), np.zeros(V, dtype=dtype)
        )
        parts = {
            "embed": self.embed,
            "lstm": self.lstm,
            "attention": self.attention,
            "affine": self.affine,
        }
        self.params, self.grads, self.param_names = _named(parts)
        self.enc_hs: np.ndarray | None = None
        self.attention_weights: np.ndarray | None = None

    def _start(self, enc_hs: np.ndarray) -> None:
        self.lstm.set_state(enc_hs[:, -1])
        self.enc_hs = enc_hs.astype(self.lstm.params[0].dtype, copy=False)  # attention follows it

    def _step(self, ids: np.ndarray) -> np.ndarray:
        dec_hs = self.lstm.forward(self.embed._lookup(ids))
        cs = self.attention.forward(self.enc_hs, dec_hs)
        return self.affine.forward(np.concatenate((cs, dec_hs), axis=2))

    def forward(self, xs: np.ndarray, enc_hs: np.ndarray) -> np.ndarray:
        where = f"{type(self).__name__}.forward"
        _check_ids(where, "xs", xs, self.vocab_size)
        _check_state(where, "enc_hs", enc_hs, (xs.shape[0], None, self.hidden_size), "(N, Te, H)")
        return self._forward(xs, enc_hs)

    def _forward(self, xs: np.ndarray, enc_hs: np.ndarray) -> np.ndarray:
        """forward without the checks, for xs and enc_hs already checked (by the model)."""
        self._start(enc_hs)
        scores = self._step(xs)
        self.attention_weights = self.attention.attention_weights
        return scores

    def backward(self, dscores: np.ndarray) -> tuple[None, np.ndarray]:
        if self.affine.xs is None:
            raise _no_forward(f"{type(self).__name__}.backward")
        _check_dscores(self, dscores)
        H = self.hidden_size
        dout = self.affine.backward(dscores)
        dcs, ddec_hs = dout[:, :, :H], dout[:, :, H:]
        denc_hs, ddec_hs_attention = self.attention.backward(dcs)
        dxs = self.lstm.backward(ddec_hs + ddec_hs_attention)
        self.embed.backward(dxs)
        denc_hs[:, -1] += self.lstm.dh  # the initial state is enc_hs[:, -1]
        return None, denc_hs

    def generate(self, enc_hs: np.ndarray, start_id: int, sample_size: int) -> np.ndarray:
        where = f"{type(self).__name__}.generate"
        _check_generate(where, start_id, sample_size, self.vocab_size)
        _check_state(where, "enc_hs", enc_hs, (None, None, self.hidden_size), "(N, Te, H)")
        self._start(enc_hs)
        steps = []

        def step(ids: np.ndarray) -> np.ndarray:
            scores = self._step(ids)
            steps.append(self.attention.attention_weights)
            return scores

        sampled = _greedy(step, enc_hs.shape[0], start_id, sample_size)
        self.affine.xs = None  # generate's one-token steps are no forward backward can use
        N, Te, _ = enc_hs.shape
        empty = np.empty((N, 0, Te), dtype=enc_hs.dtype)
        self.attention_weights = np.concatenate(steps, axis=1) if steps else empty
        return sampled


class Seq2seq:
    """Encoder, decoder and softmax loss: the trainable model of the book's chapter 7.

    The decoder reads the answer shifted right (``ts[:, :-1]``, starting with the start token)
    and predicts it (``ts[:, 1:]``); its gradient with respect to its initial state goes back
    into the encoder. Params: ``encoder.*`` then ``decoder.*`` (``param_names``), the parts' own
    arrays, so an optimizer updating ``params[i]`` in place updates the part.
    forward: xs (N, Te) ids, ts (N, Td + 1) ids -> loss (scalar)
    backward: dout=1 -> None (token ids have no gradient)
    generate: xs (N, Te) ids, start_id, sample_size -> ids (N, sample_size), greedy
    """

    encoder_class: type = Encoder
    decoder_class: type = Decoder

    def __init__(
        self,
        vocab_size: int,
        wordvec_size: int,
        hidden_size: int,
        *,
        dtype=np.float32,
        rng: RngLike = None,
    ) -> None:
        rng = np.random.default_rng(rng)
        sizes = (vocab_size, wordvec_size, hidden_size)
        self.vocab_size = vocab_size
        self.encoder = self.encoder_class(*sizes, dtype=dtype, rng=rng)
        self.decoder = self.decoder_class(*sizes, dtype=dtype, rng=rng)
        self.softmax = TimeSoftmaxWithLoss()
        parts = {"encoder": self.encoder, "decoder": self.decoder}
        self.params, self.grads, self.param_names = _named(parts)

    def forward(self, xs: np.ndarray, ts: np.ndarray) -> np.floating:
        where = f"{type(self).__name__}.forward"
        _check_ids(where, "xs", xs, self.vocab_size)
        _check_ids(where, "ts", ts, self.vocab_size, allow=self.softmax.ignore_label)
        if (ts[:, :-1] == self.softmax.ignore_label).any():
            i, j = (int(k) for k in np.argwhere(ts[:, :-1] == self.softmax.ignore_label)[0])
            raise ValueError(
                f"{where}: ts[{i}, {j}] = {ts[i, j]} is the ignore_label in the decoder input "
                "ts[:, :-1]; only the target ts[:, 1:] may hold it, the input needs token ids"
            )
        if ts.shape[0] != xs.shape[0] or ts.shape[1] < 2:
            raise ValueError(
                f"{where}: expected ts of shape (N, Td + 1) = ({xs.shape[0]}, >= 2) to go with "
                f"xs {xs.shape}, got {ts.shape}"
            )
        # Both ids checked above, the encoder's state is the encoder's: the parts' unchecked path
        scores = self.decoder._forward(ts[:, :-1], self.encoder._forward(xs))
        return self.softmax.forward(scores, ts[:, 1:])

    def backward(self, dout=1) -> None:
        if self.softmax.cache is None:
            raise _no_forward(f"{type(self).__name__}.backward")
        if np.ndim(dout):  # the loss is a scalar
            where = f"{type(self).__name__}.backward"
            raise _shape_error(where, "dout", "() (a scalar)", np.shape(dout))
        _, dstate = self.decoder.backward(self.softmax.backward(dout))
        self.encoder.backward(dstate)
        return None

    def generate(self, xs: np.ndarray, start_id: int, sample_size: int) -> np.ndarray:
        return self.decoder.generate(self.encoder.forward(xs), start_id, sample_size)

    def save_params(self, path: str | os.PathLike) -> None:
        """Write every parameter to ``path`` (.npz, one array per name in ``param_names``).

        The file is written whole or not at all: the arrays go to a temporary file beside
        ``path``, which replaces ``path`` only once it is complete on disk, so a full disk or an
        interrupt leaves the previous file as it was. A failure raises OSError naming ``path``.
        """
        path = os.fspath(path)
        folder, name = os.path.split(path)
        temporary = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
        try:
            with open(temporary, "wb") as f:
                np.savez(f, **dict(zip(self.param_names, self.params, strict=True)))
                f.flush()
                os.fsync(f.fileno())  # a full disk may only say so here
            os.replace(temporary, path)
        except OSError as exc:
            fix = "free some space or save elsewhere" if exc.errno == ENOSPC else "save elsewhere"
            raise OSError(
                exc.errno,
                f"cannot save the parameters to {path} ({exc.strerror or exc}); "
                f"the file there, if any, is unchanged: {fix}",
            ) from exc
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)

    def load_params(self, path: str | os.PathLike) -> None:
        """Read parameters saved by ``save_params`` into the model's own arrays, in place.

        Every array is read, and every name, shape and dtype checked, before anything is written,
        so a failed load leaves the model as it was. A file that is empty, truncated, corrupt or
        not an .npz raises ValueError naming it; files are read with ``allow_pickle=False``.
        """
        path = os.fspath(path)
        try:
            loaded = np.load(path, allow_pickle=False)
            if isinstance(loaded, np.lib.npyio.NpzFile):
                with loaded:
                    stored = {name: loaded[name] for name in loaded.files}
        except (EOFError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
            with open(path, "rb") as f:
                head = f.read(6)
            if not head:
                reason = "the file is empty"
            elif not head.startswith((b"PK\x03\x04", b"\x93NUMPY")):
                # numpy takes anything else for a pickle, and its message invites unpickling it
                reason = "it is neither .npz nor .npy"
            elif isinstance(exc, EOFError):
                reason = "it ends early"
            elif isinstance(exc, zipfile.BadZipFile):
                reason = f"a damaged zip archive: {exc}"
            else:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(
                f"{path}: not a complete parameter file ({reason}); it may be "
                "truncated or corrupt: save it again with model.save_params(path)"
            ) from None
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError(
                f"{path}: holds a single array, not the .npz of named parameters that "
                "save_params writes; save with model.save_params(path)"
            )
        missing = [n for n in self.param_names if n not in stored]
        extra = [n for n in stored if n not in self.param_names]
        if missing or extra:
            raise ValueError(
                f"{path}: parameters do not match {type(self).__name__}: "
                f"missing {missing}, unexpected {extra}"
            )
        for name, param in zip(self.param_names, self.params, strict=True):
            array = stored[name]
            if not isinstance(array, np.ndarray):
                raise ValueError(f"{path}: {name!r} is not a .npy array")
            if array.shape != param.shape or array.dtype != param.dtype:
                raise ValueError(
                    f"{path}: parameter {name!r} is {array.dtype} {array.shape}, "
                    f"the model's is {param.dtype} {param.shape}"
                )
        for name, param in zip(self.param_names, self.params, strict=True):
            param[...] = stored[name]


class PeekySeq2seq(Seq2seq):
    """Seq2seq with a ``PeekyDecoder``: the encoder's state reaches every decoder step.

    forward: xs (N, Te) ids, ts (N, Td + 1) ids -> loss (scalar)
    backward: dout=1 -> None
    generate: xs (N, Te) ids, start_id, sample_size -> ids (N, sample_size), greedy
    """

    decoder_class = PeekyDecoder


class AttentionSeq2seq(Seq2seq):
    """Seq2seq with attention: the decoder looks at every encoder state (the book's chapter 8).

    ``attention_weights`` (N, Td, Te) holds the attention map of the last forward or generate.
    forward: xs (N, Te) ids, ts (N, Td + 1) ids -> loss (scalar)
    backward: dout=1 -> None
    generate: xs (N, Te) ids, start_id, sample_size -> ids (N, sample_size), greedy
    """

    encoder_class = AttentionEncoder
    decoder_class = AttentionDecoder

    @property
    def attention_weights(self) -> np.ndarray | None:
        return self.decoder.attention_weights
