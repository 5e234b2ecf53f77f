"""check_generate: a greedy ``generate`` against the ``forward`` it decodes.

A decoder of the book's kind has ``forward(xs, state) -> scores (N, Td, V)`` and a greedy
``generate(state, start_id, sample_size)``; nothing in a gradient check runs ``generate``, so
its bugs (a wrong slice of the state, the wrong token fed back, a sampled token, a misspelt
layer) go unseen until training output looks odd. Four properties, one report line of kind
``"generate"`` each:

- ``ids shape (N, sample_size) of integers``: an integer array (N, sample_size), or (the book's
  one-row generate) a list of ``sample_size`` ints for a state of one row; a ``generate`` that
  raises fails here, with the exception and where it was raised;
- ``greedy (argmax of forward at each step)``: ``forward([start_id, ids[:, :-1]], state)``, the
  generated answer fed back as the decoder input, has its argmax at each step on the generated
  id. Two scores equal within rounding are a tie, and either id is greedy (a note says so);
- ``rows independent of the batch``: each row equals generating that row alone (up to
  ``max_rows`` rows, drawn with ``seed`` from a larger batch; skipped for one row);
- ``decoder unchanged``: ``generate`` leaves the parameters bit for bit as they were.

Every call runs on a fresh deep copy (the caller's decoder and state are never touched), in the
decoder's own dtype: the check is of the ``generate`` the user runs.

A model, an object with ``encoder`` and ``decoder`` (the book's ``Seq2seq.generate(xs,
start_id, sample_size)``), is checked the same way with ``xs`` as the state: its own
``generate``, against ``decoder.forward`` from ``encoder.forward(xs)``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from gradcheck.check import GradientMismatch
from gradcheck.options import Settings
from gradcheck.report import Entry, Report

__all__ = ["assert_generate", "check_generate"]

#: Two scores tie when they differ by at most this many ulps of the step's largest |score|:
#: generate's one-token steps and forward's whole sequence round differently (a matrix product
#: of another shape), so a near-tie may go either way without a bug.
_TIE_ULPS = 1024
_OPTIONS = ("seed", "context", "max_rows")
_SHOWN = 3  # ties listed one by one in the notes before "and k more"

#: A property's report line, and what the headline says when it fails.
_Line = tuple[Entry, str]


def check_generate(
    decoder: Any, state: Any, *, start_id: int, sample_size: int, **options: Any
) -> Report:
    """Check ``decoder.generate(state, start_id, sample_size)``: integer ids (N, sample_size),
    greedy with respect to ``decoder.forward``, each row as if generated alone, the decoder
    unchanged. Never raises for a wrong ``generate`` (nor one that raises): read
    ``report.passed``.

    state: what ``generate`` and ``forward`` start from, its first axis the batch: ``h`` (N, H)
      for ``Decoder`` and ``PeekyDecoder``, ``enc_hs`` (N, Te, H) for ``AttentionDecoder``; for
      a model (``encoder`` and ``decoder`` attributes), the question ``xs`` (N, Te). A
      ``generate`` that takes one row only (the book's, returning a list) is checked with N=1.
    options: ``seed`` (draws the rows checked alone when N > ``max_rows``; None: a fresh one,
      shown in the report), ``context`` (shown on the ``reproduce:`` line), ``max_rows`` (rows
      generated alone, default 8).
    """
    __tracebackhide__ = True
    seed, context, max_rows = _options(options)
    subject = _subject(decoder, state, start_id, sample_size)
    N = state.shape[0]

    box = subject.fresh()
    result, raised = _call(box.generate, state.copy(), start_id, sample_size)
    notes: list[str] = []
    ids, returned = _returned(result, raised, N, sample_size)
    scores, greedy = _greedy(subject, ids, state, start_id, notes)
    rows = _rows(subject, state, ids, result, scores, start_id, seed, max_rows, notes)
    checks = [  # each line, and what the headline says when it fails
        returned,
        greedy,
        (rows, "depends on the rest of the batch"),
        (_unchanged(subject, box), f"changes the {subject.role}'s parameters"),
    ]

    failed = [phrase for entry, phrase in checks if not entry.passed]
    verdict = ", and ".join(failed) if failed else "passes"
    args = f"start_id={start_id}, sample_size={sample_size}"
    return Report(
        layer=subject.name,
        entries=[entry for entry, _ in checks],
        seed=seed,
        settings={"start_id": start_id, "sample_size": sample_size, "max_rows": max_rows},
        shapes={subject.state_name: tuple(state.shape)},
        forward_calls=int(ids is not None),
        context=context,
        notes=notes,
        headline=f"{subject.name}.generate {verdict} ({args})",
    )


def assert_generate(
    decoder: Any, state: Any, *, start_id: int, sample_size: int, **options: Any
) -> Report:
    """Like :func:`check_generate`, but raise :class:`gradcheck.GradientMismatch` unless the
    check passes. Returns the report when it does."""
    __tracebackhide__ = True
    report = check_generate(decoder, state, start_id=start_id, sample_size=sample_size, **options)
    if not report.passed:
        raise GradientMismatch(report)
    return report


# --- what is checked: a decoder, or a model and its decoder --------------------------------


@dataclasses.dataclass(frozen=True)
class _Subject:
    obj: Any
    is_model: bool

    @property
    def name(self) -> str:
        return type(self.obj).__name__

    @property
    def role(self) -> str:
        return "model" if self.is_model else "decoder"

    @property
    def state_name(self) -> str:
        return "xs" if self.is_model else "state"

    @property
    def forward_name(self) -> str:
        return "decoder.forward" if self.is_model else "forward"

    def fresh(self) -> Any:
        """A deep copy to call: the caller's object is only ever read."""
        try:
            return copy.deepcopy(self.obj)
        except Exception as e:
            raise TypeError(
                f"check_generate copies the {self.role} so yours is never changed, but "
                f"copy.deepcopy({self.name}) raised {type(e).__name__}: {e}"
            ) from e

    def scores(self, ids: np.ndarray, state: np.ndarray, start_id: int) -> Any:
        """forward's scores (N, sample_size, V) with the generated answer fed back."""
        N = ids.shape[0]
        xs = np.concatenate([np.full((N, 1), start_id, dtype=np.int64), ids[:, :-1]], axis=1)
        box = self.fresh()
        if self.is_model:
            return box.decoder.forward(xs, box.encoder.forward(state.copy()))
        return box.forward(xs, state.copy())


def _subject(obj: Any, state: Any, start_id: Any, sample_size: Any) -> _Subject:
    __tracebackhide__ = True
    is_model = hasattr(obj, "encoder") and hasattr(obj, "decoder")
    name = type(obj).__name__
    needed = {"generate": obj}
    if is_model:
        needed |= {"encoder.forward": obj.encoder, "decoder.forward": obj.decoder}
    else:
        needed["forward"] = obj
    for method, owner in needed.items():
        if not callable(getattr(owner, method.rsplit(".", 1)[-1], None)):
            raise TypeError(
                f"{name} has no {method} method; check_generate checks a decoder's "
                "generate(state, start_id, sample_size) against its forward(xs, state), or a "
                "model's (with encoder and decoder) generate(xs, start_id, sample_size)"
            )
    what = "xs (N, Te) token ids" if is_model else "state (N, ...), h or enc_hs"
    if not isinstance(state, np.ndarray) or state.ndim < 1 or state.shape[0] < 1:
        got = getattr(state, "shape", type(state).__name__)
        raise TypeError(f"state must be an ndarray {what} with N >= 1 rows, got {got}")
    vocab_size = getattr(obj, "vocab_size", None)
    if (
        isinstance(start_id, bool)
        or not isinstance(start_id, (int, np.integer))
        or start_id < 0
        or (isinstance(vocab_size, (int, np.integer)) and start_id >= vocab_size)
    ):
        bound = f"[0, {vocab_size})" if isinstance(vocab_size, (int, np.integer)) else ">= 0"
        raise ValueError(f"start_id={start_id!r} must be a token id {bound}; try start_id=0")
    if isinstance(sample_size, bool) or not isinstance(sample_size, (int, np.integer)):
        raise TypeError(f"sample_size={sample_size!r} must be an int; try sample_size=5")
    if sample_size < 1:
        raise ValueError(f"sample_size={sample_size} must be >= 1; try sample_size=5")
    return _Subject(obj, is_model)


def _options(options: dict[str, Any]) -> tuple[int, str | None, int]:
    __tracebackhide__ = True
    unknown = [k for k in options if k not in _OPTIONS]
    if unknown:
        raise TypeError(
            f"{unknown[0]}={options[unknown[0]]!r} is not an option of check_generate; the "
            f"options are {', '.join(_OPTIONS)}"
        )
    settings = Settings(seed=options.get("seed", 0), context=options.get("context"))
    max_rows = options.get("max_rows", 8)
    if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)):
        raise TypeError(f"max_rows={max_rows!r} must be an int; try max_rows=8")
    if max_rows < 1:
        raise ValueError(f"max_rows={max_rows} must be >= 1; try max_rows=8")
    seed = settings.seed
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31))
    return seed, settings.context, int(max_rows)


# --- calls and their results ---------------------------------------------------------------


def _call(fn: Callable[..., Any], *args: Any) -> tuple[Any, Exception | None]:
    """fn(*args), or the exception it raised (a report line, not a traceback)."""
    try:
        return fn(*args), None
    except Exception as e:
        return None, e


def _raised(what: str, e: Exception) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    where = f" at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    return f"{what} raised {type(e).__name__}{where}: {e}"


def _ids(result: Any, N: int, sample_size: int) -> tuple[np.ndarray | None, str]:
    """generate's result as an int array (N, sample_size), or None and what is wrong with it."""
    expected = f"expected ({N}, {sample_size})"
    if isinstance(result, np.ndarray):
        if result.dtype.kind not in "iu":
            return None, f"got {result.dtype} {result.shape}; ids must be integers"
        if result.shape != (N, sample_size):
            return None, f"got {result.shape}, {expected}"
        return result.astype(np.int64, copy=False), ""
    if isinstance(result, (list, tuple)):
        if N != 1 or len(result) != sample_size:
            return None, (
                f"got a {type(result).__name__} of {len(result)} items, {expected}; a list is "
                f"taken for one row (N=1) of sample_size={sample_size} ids"
            )
        bad = [x for x in result if isinstance(x, bool) or not isinstance(x, (int, np.integer))]
        if bad:
            return None, f"got a {type(result).__name__} holding {bad[0]!r}; ids must be ints"
        return np.array([result], dtype=np.int64), ""
    return None, f"got {type(result).__name__}, {expected} integer ids"


def _returned(
    result: Any, raised: Exception | None, N: int, sample_size: int
) -> tuple[np.ndarray | None, _Line]:
    """generate's ids as an int array (N, sample_size) (None when it raised or returned
    something else), and the line that says so."""
    name = "ids shape (N, sample_size) of integers"
    if raised is None:
        ids, problem = _ids(result, N, sample_size)
        return ids, (_entry(name, problem), "returns malformed ids")
    problem = _raised("generate", raised)
    if N > 1:
        problem += "; if generate takes one row only (the book's), check it with one row (N=1)"
    return None, (_entry(name, problem), f"raised {type(raised).__name__}")


def _entry(name: str, problem: str, ok_message: str = "") -> Entry:
    if problem:
        return Entry(name, "generate", "fail", message=problem)
    return Entry(name, "generate", "ok", message=ok_message)


def _skipped(name: str, why: str) -> Entry:
    return Entry(name, "generate", "skipped", message=why)


# --- the properties ------------------------------------------------------------------------


def _tolerance(scores: np.ndarray) -> np.ndarray:
    """Per step (N, T): how far apart two scores may be and still tie."""
    dtype = scores.dtype if scores.dtype.kind == "f" else np.dtype(np.float64)
    return _TIE_ULPS * np.finfo(dtype).eps * np.abs(scores).max(axis=2)


def _tie(scores: np.ndarray, r: int, t: int, a: int, b: int) -> str | None:
    """Why ids a and b are both greedy at row r, step t (their scores tie within rounding), or
    None when they do not tie."""
    if not (0 <= a < scores.shape[2] and 0 <= b < scores.shape[2]):
        return None
    sa, sb = float(scores[r, t, a]), float(scores[r, t, b])
    tol = float(_tolerance(scores[r : r + 1, t : t + 1])[0, 0])
    if not abs(sa - sb) <= tol:
        return None
    return (
        f"scores {sa!r} and {sb!r} tie within rounding (|diff| {abs(sa - sb):.1e} <= "
        f"{tol:.1e}), so either is greedy"
    )


def _greedy(
    subject: _Subject, ids: np.ndarray | None, state: np.ndarray, start_id: int, notes: list[str]
) -> tuple[np.ndarray | None, _Line]:
    """forward's scores (N, sample_size, V) on the generated answer, and whether each generated
    id is their argmax (or ties with it)."""
    forward = subject.forward_name
    name, phrase = (
        f"greedy (argmax of {forward} at each step)",
        f"is not greedy-consistent with {forward}",
    )
    if ids is None:
        return None, (_skipped(name, "no ids to feed back"), phrase)
    scores, raised = _call(subject.scores, ids, state, start_id)
    if raised:
        problem = _raised(f"{forward} on the generated ids", raised)
        return None, (_entry(name, problem), f"gives ids {forward} cannot take")
    scores = np.asarray(scores)
    N, T = ids.shape
    if scores.ndim != 3 or scores.shape[:2] != (N, T):
        return None, (
            _entry(name, f"{forward} returned {scores.shape}, expected ({N}, {T}, V)"),
            phrase,
        )
    V = scores.shape[2]
    outside = (ids < 0) | (ids >= V)
    if outside.any():
        r, t = (int(k) for k in np.argwhere(outside)[0])
        problem = f"row {r} step {t}: generated {ids[r, t]}, not a token id in [0, {V})"
        return None, (_entry(name, problem), phrase)
    best = scores.argmax(axis=2)
    picked = np.take_along_axis(scores, ids[..., None], axis=2)[..., 0]
    ties = (best != ids) & (scores.max(axis=2) - picked <= _tolerance(scores))
    wrong = (best != ids) & ~ties
    tied = [(int(r), int(t)) for r, t in np.argwhere(ties)]
    for r, t in tied[:_SHOWN]:
        g, b = int(ids[r, t]), int(best[r, t])
        notes.append(
            f"row {r} step {t}: generated {g}, {forward}'s argmax {b}: {_tie(scores, r, t, g, b)}"
        )
    if len(tied) > _SHOWN:
        notes.append(f"and {len(tied) - _SHOWN} more ties within rounding")
    if not wrong.any():
        return scores, (_entry(name, ""), phrase)
    r, t = (int(k) for k in np.argwhere(wrong)[0])
    problem = (
        f"row {r} step {t}: generated {ids[r, t]}, {forward}'s argmax {best[r, t]} (scores "
        f"{picked[r, t]:.4g} and {scores[r, t, best[r, t]]:.4g}); {int(wrong.sum())} of "
        f"{wrong.size} steps wrong"
    )
    if wrong[:, 0].any():
        problem += "; wrong from step 0: not the argmax, or not started from the state forward uses"
    else:
        problem += "; step 0 agrees: what is fed back or carried between steps differs from forward"
    return scores, (_entry(name, problem), phrase)


def _rows(
    subject: _Subject,
    state: np.ndarray,
    ids: np.ndarray | None,
    result: Any,
    scores: np.ndarray | None,
    start_id: int,
    seed: int,
    max_rows: int,
    notes: list[str],
) -> Entry:
    """Each row (up to max_rows, drawn with seed) generated alone equals its row in the batch."""
    name = "rows independent of the batch"
    if ids is None:
        return _skipped(name, "no ids to compare")
    N, T = ids.shape
    if N == 1:
        why = "generate takes one row (it returns a list)" if isinstance(result, list) else ""
        return _skipped(name, why or "one row given; give N >= 2 rows to check it")
    sampled = max_rows < N
    rows = range(N)
    if sampled:
        rows = sorted(int(i) for i in np.random.default_rng(seed).choice(N, max_rows, False))
    differ = []
    for i in rows:
        alone, raised = _call(subject.fresh().generate, state[i : i + 1].copy(), start_id, T)
        if raised:
            return _entry(name, _raised(f"generate({subject.state_name}[{i}:{i + 1}])", raised))
        alone, problem = _ids(alone, 1, T)
        if alone is None:
            return _entry(name, f"generate({subject.state_name}[{i}:{i + 1}]): {problem}")
        steps = np.flatnonzero(alone[0] != ids[i])
        if not len(steps):
            continue
        t, a, b = int(steps[0]), int(alone[0, steps[0]]), int(ids[i, steps[0]])
        tie = None if scores is None else _tie(scores, i, t, a, b)
        if tie:
            notes.append(
                f"row {i} step {t}: generated {b} in the batch, {a} alone: {tie}; the later "
                "steps of this row are not compared"
            )
        else:
            differ.append((i, t, a, b))
    shown = ", ".join(map(str, rows))
    checked = f"rows {shown} of {N}, drawn with seed={seed}; max_rows={max_rows}"
    if not differ:
        return _entry(name, "", checked if sampled else "")
    i, t, a, b = differ[0]
    return _entry(
        name,
        f"row {i} step {t}: generated {b} in the batch, {a} alone; {len(differ)} of "
        f"{len(rows)} rows differ" + (f"; {checked}" if sampled else ""),
    )


def _unchanged(subject: _Subject, box: Any) -> Entry:
    """generate left every parameter of its copy bit for bit as the caller's."""
    name = f"{subject.role} unchanged"
    before, after = getattr(subject.obj, "params", None), getattr(box, "params", None)
    if not isinstance(before, (list, tuple)):
        return _skipped(name, f"{subject.name} has no params list to compare")
    if not isinstance(after, (list, tuple)) or len(after) != len(before):
        got = len(after) if isinstance(after, (list, tuple)) else type(after).__name__
        return _entry(name, f"generate changed params from {len(before)} arrays to {got}")
    names = getattr(subject.obj, "param_names", None)
    if not isinstance(names, (list, tuple)) or len(names) != len(before):
        names = [f"params[{i}]" for i in range(len(before))]
    problems = []
    for label, p, q in zip(names, before, after, strict=True):
        p, q = np.asarray(p), np.asarray(q)
        if p.shape != q.shape or p.dtype != q.dtype:
            problems.append(f"{label} became {q.dtype} {q.shape}, was {p.dtype} {p.shape}")
        elif p.tobytes() != q.tobytes():
            changed = np.argwhere(p != q)
            if not len(changed):  # equal values, other bits: -0.0 for 0.0, another NaN
                problems.append(f"generate changed the bits of {label} (not its values)")
                continue
            k = tuple(int(j) for j in changed[0])
            problems.append(
                f"generate wrote {len(changed)} of {p.size} elements of {label} (first at "
                f"{list(k)}: {p[k]:.4g} -> {q[k]:.4g})"
            )
    if problems:
        problems.append("generate only reads the parameters; leave updates to the optimizer")
    return _entry(name, "; ".join(problems))
