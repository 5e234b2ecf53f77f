"""Mutation runs: every bug class of the catalogue is injected into a small layer and caught in
full mode; the controls (a deliberately weak ``rtol=1`` scores below 1 and exits 1, the normal
settings score 1 on the bundled layers); remembered finite differences give the reports fresh
ones give."""

from __future__ import annotations

import functools
import io
import json

import numpy as np
import pytest
from hypothesis import settings

import layers.cases  # noqa: F401  (registers the bundled cases)
from gradcheck import check_layer, mutation_score, registered_cases
from gradcheck.mutants import BUG_CLASSES, DELTAS, Injection, Mutant, Mutated, Quantity
from gradcheck.mutants import broken as _broken
from gradcheck.mutants import catalogue as _catalogue
from gradcheck.mutation import (
    MutationScoreTooLow,
    _examples,
    _quantities,
    assert_mutation_score,
    mutate_case,
    run_mutation,
)
from gradcheck.runner import run_case
from gradcheck.subjects import subject_of
from layers.attention import Attention
from layers.basic import Affine
from layers.recurrent import TimeLSTM

CASES = {c.name: c for c in registered_cases("layers")}


def _square_affine():
    """x (3, 3) and W (3, 3): square and of one shape, so every one-tensor bug, transposed and
    swapped apply."""
    rng = np.random.default_rng(0)
    layer = Affine(rng.standard_normal((3, 3)) / 2, 0.1 * rng.standard_normal(3))
    return layer, (rng.standard_normal((3, 3)),)


def _stateful_lstm():
    """Gates, a time axis and a state (dh, dc)."""
    rng = np.random.default_rng(1)
    N, T, D, H = 2, 3, 2, 2
    weights = (
        rng.standard_normal((D, 4 * H)) / 2,
        rng.standard_normal((H, 4 * H)) / 2,
        0.1 * rng.standard_normal(4 * H),
    )
    layer = TimeLSTM(*weights, stateful=True)
    layer.set_state(rng.standard_normal((N, H)), rng.standard_normal((N, H)))
    return layer, (rng.standard_normal((N, T, D)),)


_SUBJECT_OF_CLASS = {
    name: "lstm"
    if name in ("gate zeroed", "state dropped", "time shifted", "time step lost")
    else "affine"
    for name in BUG_CLASSES
}


@functools.cache
def _full_score(which: str):
    layer, inputs = _square_affine() if which == "affine" else _stateful_lstm()
    return mutation_score(layer, *inputs, mode="full")


@pytest.mark.parametrize("bug_class", list(BUG_CLASSES))
def test_full_mode_catches_every_mutant_of_each_bug_class(bug_class):
    score = _full_score(_SUBJECT_OF_CLASS[bug_class])
    rows = [r for r in score.results if r.bug_class == bug_class]
    assert rows, f"no {bug_class} mutant of {score.layer}; not applicable: {score.not_applicable}"
    assert all(r.caught for r in rows), "\n".join(r.line() for r in rows if not r.caught)


def test_scaled_mutants_go_from_one_down_to_1e_4_and_full_mode_resolves_them_all():
    score = _full_score("affine")
    deltas = sorted({r.delta for r in score.results if r.bug_class == "scaled"}, reverse=True)
    assert tuple(deltas) == DELTAS
    assert score.resolution == 1e-4
    assert score.score == 1.0 and not score.missed


def _failures_of(layer, inputs, bug_class, target):
    """The names of the failing rows of one mutant's check."""
    subject, arrays = subject_of(layer, inputs)
    baseline = check_layer(layer, *inputs, seed=0)
    quantities = _quantities(subject, arrays, baseline)
    (m,) = [
        m
        for m in _catalogue(quantities, subject.layer.params, False)
        if m.bug_class == bug_class and m.target == target
    ]
    floats = [i for i, x in enumerate(arrays) if x.dtype.kind == "f"]
    report = check_layer(Mutated(subject, arrays, Injection(m, len(arrays), floats)), *arrays)
    return [e.name for e in report.failures]


def test_accumulated_mutant_is_caught_by_the_overwrite_check_alone():
    layer, inputs = _square_affine()
    assert _failures_of(layer, inputs, "accumulated", "W") == ["grads overwritten, not accumulated"]


def test_constant_term_fails_its_gradient_and_the_linearity_check():
    layer, inputs = _square_affine()
    failures = _failures_of(layer, inputs, "constant added", "b")
    assert "b" in failures and "backward linear in dout" in failures


def test_state_dropped_fails_its_state_row():
    layer, inputs = _stateful_lstm()
    assert "dc" in _failures_of(layer, inputs, "state dropped", "dc")


def test_the_users_layer_is_unchanged_by_a_mutation_run():
    layer, inputs = _square_affine()
    before = [p.copy() for p in layer.params], [g.copy() for g in layer.grads]
    mutation_score(layer, *inputs, mode="full")
    assert all(np.array_equal(a, b) for a, b in zip(before[0], layer.params, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(before[1], layer.grads, strict=True))


# --- what each bug does to a gradient ---


def _mutant(bug_class, shape, **kw):
    return Mutant(bug_class, (Quantity("g", "param", 0, shape),), **kw)


def test_element_zeroed_zeroes_the_largest_element_only():
    g = np.array([[1.0, -5.0], [2.0, 3.0]])
    out = _broken(_mutant("element zeroed", g.shape), g)
    assert out.tolist() == [[1.0, 0.0], [2.0, 3.0]] and g[0, 1] == -5.0


def test_slice_zeroed_zeroes_the_largest_slice_of_its_axis():
    g = np.array([[1.0, 1.0, 2.0], [4.0, -4.0, 0.0]])  # row 1 and column 0 are the largest
    rows = _broken(_mutant("slice zeroed", g.shape, axis=0), g)
    assert rows.tolist() == [[1.0, 1.0, 2.0], [0.0, 0.0, 0.0]]
    columns = _broken(_mutant("slice zeroed", g.shape, axis=1), g)
    assert columns.tolist() == [[0.0, 1.0, 2.0], [0.0, -4.0, 0.0]]


def test_gate_zeroed_zeroes_one_block_of_h_columns():
    g = np.arange(1.0, 17.0).reshape(2, 8)  # 4 gates of H = 2: the last block is the largest
    out = _broken(_mutant("gate zeroed", g.shape, axis=4), g)
    assert not out[:, 6:].any() and np.array_equal(out[:, :6], g[:, :6])


def test_time_shifted_gives_each_step_the_gradient_of_the_step_before():
    g = np.arange(1.0, 7.0).reshape(1, 3, 2)
    out = _broken(_mutant("time shifted", g.shape), g)
    assert out[0].tolist() == [[0.0, 0.0], [1.0, 2.0], [3.0, 4.0]]
    lost = _broken(_mutant("time step lost", g.shape), g)
    assert lost[0].tolist() == [[0.0, 0.0], [3.0, 4.0], [5.0, 6.0]]


def test_transposed_and_constant_added():
    g = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert np.array_equal(_broken(_mutant("transposed", g.shape), g), g.T)
    twice = _broken(_mutant("constant added", g.shape), 2 * g)
    once = _broken(_mutant("constant added", g.shape), g)
    assert not np.allclose(twice, 2 * once)  # the term does not scale with dout


def test_bug_classes_that_cannot_apply_are_not_generated_and_say_why():
    layer, inputs = CASES["affine"].build(0, N=2, D=3, H=4)
    score = mutation_score(layer, *inputs, mode="full")
    for name in ("gate zeroed", "transposed", "state dropped", "time shifted"):
        assert name in score.not_applicable
        assert not any(r.bug_class == name for r in score.results)
    assert "n/a" in str(score) and "no square gradient" in str(score)


def test_a_mutant_that_changes_no_gradient_is_not_counted():
    from layers.basic import ReLU

    score = mutation_score(ReLU(), -np.ones((2, 3)), mode="full")  # every gradient is 0
    assert [r.bug_class for r in score.results] == ["constant added"]  # 0 + c is a change
    assert {"scaled input[0] δ=0.1", "sign flipped input[0]"} <= set(score.equivalent)


def test_a_layer_whose_unmutated_check_fails_is_not_scored():
    layer, inputs = _square_affine()
    layer.backward = lambda dout: 2 * dout @ layer.params[0].T  # wrong before any mutation
    score = mutation_score(layer, *inputs)
    assert score.error is not None and "unmutated check fails" in score.error
    assert score.score == 0.0 and "not scored" in str(score)


# --- the numeric cache ---


@pytest.mark.parametrize(
    "options",
    [dict(mode="full"), dict(mode="auto", max_elements=5), dict(mode="fast")],
    ids=["full", "auto-sampled", "fast"],
)
@pytest.mark.parametrize("which", ["affine", "lstm", "attention"])
def test_remembered_differences_give_the_reports_fresh_ones_give(which, options):
    if which == "attention":
        rng = np.random.default_rng(3)
        layer, inputs = Attention(), (rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 2)))
    else:
        layer, inputs = _square_affine() if which == "affine" else _stateful_lstm()
    subject, arrays = subject_of(layer, inputs)
    cache: dict = {}
    baseline = check_layer(Mutated(subject, arrays, None), *arrays, _numeric_cache=cache, **options)
    floats = [i for i, x in enumerate(arrays) if x.dtype.kind == "f"]
    mutants = _catalogue(_quantities(subject, arrays, baseline), subject.layer.params, False)
    assert len(mutants) > 20
    for m in mutants:

        def run(m=m, **cached):
            injected = Mutated(subject, arrays, Injection(m, len(arrays), floats))
            return check_layer(injected, *arrays, **cached, **options)

        remembered, fresh = run(_numeric_cache=cache), run()
        a, b = remembered.to_dict(), fresh.to_dict()
        assert a.pop("forward_calls") <= b.pop("forward_calls")
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True), m


def test_a_mutant_check_with_remembered_differences_makes_few_forwards():
    layer, inputs = CASES["affine"].build(0, N=4, D=5, H=5)
    subject, arrays = subject_of(layer, inputs)
    cache: dict = {}
    full = dict(_numeric_cache=cache, mode="full")
    baseline = check_layer(Mutated(subject, arrays, None), *arrays, **full)
    again = check_layer(Mutated(subject, arrays, None), *arrays, **full)
    assert baseline.forward_calls > 4 * 50  # every element of x (4, 5), W (5, 5), b (5)
    assert again.forward_calls < 20  # the probe, the analytic pass and the contract only


# --- the controls and the runner ---


def test_weak_rtol_scores_below_one_and_exits_1():
    case = CASES["affine"]
    assert mutate_case(case, examples=2, mode="full", rtol=1.0).score < 1.0
    out = io.StringIO()
    assert run_mutation([case], examples=2, out=out, mode="full", rtol=1.0) == 1
    assert "below min_score=1" in out.getvalue() and "missed: scaled" in out.getvalue()
    with pytest.raises(MutationScoreTooLow, match="mutation score below"):
        assert_mutation_score(case, examples=2, rtol=1.0)


def test_a_weak_setting_passes_a_lower_min_score(tmp_path):
    out, path = io.StringIO(), tmp_path / "m.json"
    case = CASES["affine"]
    status = run_mutation([case], examples=2, min_score=0.1, json_path=str(path), out=out, rtol=1.0)
    assert status == 0
    (record,) = json.loads(path.read_text())
    assert record["case"] == "layers.cases::affine" and 0.1 <= record["score"] < 1.0
    assert record["classes"]["scaled"]["total"] == 15
    assert set(record["classes"]["gate zeroed"]) == {"not_applicable"}
    assert any(not r["caught"] and r["reason"] for r in record["mutants"])


def test_normal_settings_score_1_and_exit_0():
    out = io.StringIO()
    assert run_mutation([CASES["affine"]], examples=2, out=out) == 0
    assert "score 1.00" in out.getvalue() and "missed" not in out.getvalue()


#: A quick subset in full mode for the default profile; the ci profile scores every bundled
#: case in every mode.
_QUICK = ["affine", "embedding", "softmax_with_loss", "time_lstm_stateful", "attention", "decoder"]
_THOROUGH = settings.default.max_examples > 10
_BUNDLED = (
    [(name, mode) for mode in ("full", "auto", "fast") for name in CASES]
    if _THOROUGH
    else [(name, "full") for name in _QUICK]
)


@pytest.mark.parametrize(("name", "mode"), _BUNDLED)
def test_bundled_layers_score_1_at_the_normal_settings(name, mode):
    score = mutate_case(CASES[name], examples=10 if _THOROUGH else 2, mode=mode)
    assert score.error is None, score.error
    assert score.score == 1.0 and score.resolution == 1e-4, str(score)
    raised = [r.line() for r in score.results if r.reason]  # caught by a failing row, not an error
    assert not raised, raised


def test_mutation_runs_use_the_examples_the_check_of_the_case_draws(monkeypatch):
    import importlib

    module = importlib.import_module("gradcheck.check")
    checked, original = [], module.check_layer

    def recording(*args, **options):
        checked.append(options.get("context"))
        return original(*args, **options)

    monkeypatch.setattr(module, "check_layer", recording)
    case = CASES["affine"]
    run_case(case, examples=4, seed=3)
    drawn = [d.context for d in _examples(case, 4, 3)]
    assert set(checked) <= set(drawn)
    assert drawn[0] == f"{case.id} seed=0 N=1 D=1 H=1"  # the smallest dims come first


def test_min_score_option_takes_a_share():
    import argparse

    from gradcheck.mutation import parse_min_score

    assert parse_min_score("0.9") == 0.9
    for bad in ("1.5", "x", "-0.1"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"try 0\.9"):
            parse_min_score(bad)


def test_without_the_contract_accumulated_mutants_are_missed_and_say_why():
    layer, inputs = _square_affine()
    score = mutation_score(layer, *inputs, mode="full", contract=False)
    rows = [r for r in score.results if r.bug_class == "accumulated"]
    assert rows and not any(r.caught for r in rows)
    assert all("'grads overwritten, not accumulated' did not run" in r.reason for r in rows)
    assert all(r.caught for r in score.results if r.bug_class != "accumulated")


def _tanh_matmul(x, W):
    return np.tanh(x @ W)


def _tanh_matmul_vjp(dout, x, W):
    da = dout * (1 - np.tanh(x @ W) ** 2)
    return da @ W.T, x.T @ da


def _softmax_loss(x, y):
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    N = len(y)
    dx = p.copy()
    dx[np.arange(N), y] -= 1
    return -np.log(p[np.arange(N), y]).sum() / N, dx / N


def test_functions_pairs_and_losses_are_mutated_through_their_adapters():
    import gradcheck

    rng = np.random.default_rng(4)
    x, W = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    function = mutation_score(gradcheck.function(_tanh_matmul, _tanh_matmul_vjp), x, W)
    assert function.score == 1.0 and {"transposed", "swapped"} <= set(function.by_class())
    assert {r.target for r in function.results} >= {"x", "W"}  # named by the function

    def forward(x, W):
        return _tanh_matmul(x, W), (x, W)

    def backward(dout, cache):
        return _tanh_matmul_vjp(dout, *cache)

    assert mutation_score(gradcheck.pair(forward, backward), x, W).score == 1.0
    loss = mutation_score(gradcheck.loss(_softmax_loss), x, np.array([0, 2, 1]))
    assert loss.score == 1.0 and loss.case == "_softmax_loss"
    assert {r.target.split()[0] for r in loss.results} == {"x"}  # y is not differentiated
