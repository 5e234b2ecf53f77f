"""The checker against its zoo: every bug caught by the entry that names it, every twin passes.

The table lives in ``tests/zoo.py``; each test body here runs over all of it (JAX's pattern).
A bug and its twin are built from the same seed, so they share weights and inputs, and are
checked under the same settings: a failure on the bug is the bug, not the data.
"""

import json

import numpy as np
import pytest

from gradcheck import GradientMismatch, assert_layer, check_layer
from tests.zoo import KINKS, ZOO, TanhInFloat32

GRADIENT_BUGS = [bug for bug in ZOO if bug.check == "gradient"]
HIDDEN_BUGS = [bug for bug in ZOO if bug.hidden_at]
PATTERN_BUGS = [bug for bug in ZOO if bug.pattern]
BUGS = {bug.name: bug for bug in ZOO}
SEEDS = range(10)  # fast mode is cheap: every case at ten seeds
AUTO_SEEDS = range(5)


def _entry(report, name):
    named = [e for e in report.entries if e.name == name]
    assert named, f"no entry {name!r} in the report; entries: {[e.name for e in report.entries]}"
    return named[0]


def _caught(bug, seed, **options):
    """Whether the checker fails the bug, on the entry that names it, at this seed."""
    layer, inputs = bug.make(seed=seed)
    report = check_layer(layer, *inputs, seed=seed, **bug.options, **options)
    return not report.passed and not _entry(report, bug.blame).passed


def _passes(case, seed, cls=None, **options):
    layer, inputs = case.make(cls, seed=seed) if cls else case.make(seed=seed)
    return check_layer(layer, *inputs, seed=seed, **options).passed


def test_zoo_is_big_enough_and_named_uniquely():
    names = [bug.name for bug in ZOO]
    assert len(names) >= 30
    assert len(set(names)) == len(names)
    assert {bug.check for bug in ZOO} == {"gradient", "contract"}


@pytest.mark.parametrize("bug", ZOO, ids=lambda bug: bug.name)
def test_checker_blames_the_entry_that_names_the_bug(bug):
    layer, inputs = bug.make()
    report = check_layer(layer, *inputs, **bug.options)
    assert not report.passed, f"{bug.name} went unnoticed:\n{report}"
    entry = _entry(report, bug.blame)
    assert entry.kind == bug.check, report
    assert entry.status == ("mismatch" if bug.check == "gradient" else "fail"), report
    if bug.check == "gradient":
        assert all(e.passed for e in report.contract), f"a value bug breaks no contract:\n{report}"
    assert json.loads(json.dumps(report.to_dict()))["passed"] is False


@pytest.mark.parametrize("bug", ZOO, ids=lambda bug: bug.name)
def test_assert_layer_raises_with_the_blamed_entry_in_its_message(bug):
    layer, inputs = bug.make()
    with pytest.raises(GradientMismatch) as raised:
        assert_layer(layer, *inputs, **bug.options)
    assert bug.blame in str(raised.value)
    assert not raised.value.report.passed


@pytest.mark.parametrize("bug", ZOO, ids=lambda bug: bug.name)
def test_correct_twin_passes_under_the_same_settings(bug):
    layer, inputs = bug.make(bug.twin)
    report = check_layer(layer, *inputs, **bug.options)
    assert report.passed, report
    assert _entry(report, bug.blame).status in ("ok", "kink"), report


@pytest.mark.parametrize("bug", ZOO, ids=lambda bug: bug.name)
def test_bug_is_caught_and_twin_passes_at_every_seed(bug):
    assert [seed for seed in AUTO_SEEDS if not _caught(bug, seed)] == []
    twin_passes = [_passes(bug, seed, bug.twin, **bug.options) for seed in AUTO_SEEDS]
    assert [seed for seed, ok in zip(AUTO_SEEDS, twin_passes, strict=True) if not ok] == []


@pytest.mark.parametrize("bug", PATTERN_BUGS, ids=lambda bug: bug.name)
def test_report_names_the_pattern_of_the_bug(bug):
    layer, inputs = bug.make()
    entry = _entry(check_layer(layer, *inputs, **bug.options), bug.blame)
    assert bug.pattern in (entry.pattern or ""), entry


@pytest.mark.parametrize("bug", HIDDEN_BUGS, ids=lambda bug: bug.name)
def test_shape_dependent_bug_hides_at_its_blind_shapes(bug):
    # Why checks must vary shapes: at these sizes the bug is invisible, elsewhere it is caught.
    layer, inputs = bug.make(**bug.hidden_at)
    assert check_layer(layer, *inputs, **bug.options).passed


@pytest.mark.parametrize("bug", GRADIENT_BUGS, ids=lambda bug: bug.name)
def test_fast_mode_detects_every_gradient_bug(bug):
    assert [seed for seed in SEEDS if not _caught(bug, seed, mode="fast")] == []


@pytest.mark.parametrize("bug", GRADIENT_BUGS, ids=lambda bug: bug.name)
def test_fast_mode_passes_every_twin(bug):
    twin_passes = [_passes(bug, seed, bug.twin, mode="fast", **bug.options) for seed in SEEDS]
    assert [seed for seed, ok in zip(SEEDS, twin_passes, strict=True) if not ok] == []


@pytest.mark.parametrize("kink", KINKS, ids=lambda kink: kink.name)
def test_correct_layer_at_a_kink_is_reported_as_kink_not_mismatch(kink):
    layer, inputs = kink.make()
    report = check_layer(layer, *inputs)
    assert report.passed, report
    assert _entry(report, kink.entry).status == "kink", report


@pytest.mark.parametrize("kink", KINKS, ids=lambda kink: kink.name)
def test_fast_mode_reports_kinks_not_mismatches(kink):
    assert [seed for seed in SEEDS if not _passes(kink, seed, mode="fast")] == []


def test_relu_with_wrong_gradient_away_from_zero_is_a_mismatch_despite_kinks():
    layer, inputs = BUGS["relu_without_mask"].make()
    assert (inputs[0] == 0).any()  # the same kinks as the correct ReLU
    entry = _entry(check_layer(layer, *inputs), "input[0]")
    assert entry.status == "mismatch"
    assert inputs[0][entry.index] != 0  # blamed where the derivative exists


@pytest.mark.parametrize("bug", ZOO, ids=lambda bug: bug.name)
def test_checker_leaves_the_buggy_layer_as_it_was(bug):
    layer, inputs = bug.make()
    attributes = dict(vars(layer))
    arrays = [a.copy() for a in (*layer.params, *layer.grads, *inputs)]
    check_layer(layer, *inputs)
    assert vars(layer).keys() == attributes.keys()
    for key, value in attributes.items():
        assert vars(layer)[key] is value, f"{bug.name}: attribute {key} rebound"
    for a, b in zip((*layer.params, *layer.grads, *inputs), arrays, strict=True):
        assert a.dtype == b.dtype
        assert (a == b).all()


def test_layer_computing_in_float32_is_caught_at_every_seed():
    # float32 rounding of the loss must not pass for kinks, even on a tiny input
    def passes(seed, **options):
        x = np.random.default_rng(seed).standard_normal((1, 2))
        return check_layer(TanhInFloat32(), x, seed=seed, **options).passed

    assert [seed for seed in range(20) if passes(seed, dtype="strict")] == []
    # lenient: right to float32 precision at every seed, never a false alarm
    assert [seed for seed in range(20) if not passes(seed)] == []


def test_report_says_when_a_layer_computes_in_float32_internally():
    layer, inputs = BUGS["matmul_computes_in_float32"].make()
    report = check_layer(layer, *inputs, dtype="strict")
    assert "float32" in str(report), report
    assert sum(e.kinks for e in report.gradients) == 0, report
