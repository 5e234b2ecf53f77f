"""Patterns are claims about a wrong gradient, made only with evidence. One table of claims
that must appear and one of claims that must not (JAX's pattern: a table, one body)."""

from __future__ import annotations

import numpy as np
import pytest

from gradcheck.report import describe_pattern

_rng = np.random.default_rng(3)
N = _rng.standard_normal((4, 6))
SQUARE = _rng.standard_normal((5, 5))
GATES = _rng.standard_normal((3, 8))  # 4 gate blocks of 2 along the last axis


def _wrong(a, n, rtol=1e-3):
    return np.abs(a - n) > rtol * np.abs(n).max()


def _zero_block(n, j, H):
    a = n.copy()
    a[..., j * H : (j + 1) * H] = 0
    return a


def _last_step(n):
    a = n.copy()
    a[-1] *= 1.5
    return a


MUST = [
    pytest.param(2 * N, N, "off by a constant factor (analytic = 2 x numeric)", id="factor 2"),
    pytest.param(0.5 * N, N, "off by a constant factor (analytic = 0.5 x numeric)", id="factor"),
    pytest.param(-N, N, "sign flipped", id="sign"),
    pytest.param(np.zeros_like(N), N, "zero everywhere", id="all zero"),
    pytest.param(SQUARE.T.copy(), SQUARE, "transposed (analytic = numeric", id="transposed"),
    pytest.param(_zero_block(GATES, 1, 2), GATES, "gate block 1 of 4", id="gate block"),
    pytest.param(_last_step(N), N, "wrong only at index 3 (the last) of axis 0", id="last step"),
]

ROW = np.array([[0.01, 0.02, 0.03, 0.04]])

MUST_NOT = [
    # wrong at the checker's tolerance (1e-5), but within the pattern's rounding: no factor
    pytest.param(N * (1 + 1e-4), N, "factor", id="factor of 1"),
    # a singleton axis: any reshuffle of a (1, 4) row "matches" its transpose
    pytest.param(ROW + 1e-6, ROW, "transposed", id="transposed (1, 4)"),
    pytest.param(ROW + 1e-6, ROW, "factor", id="factor of 1 on (1, 4)"),
    # 4 elements or fewer: too few to tell a transpose from a coincidence
    pytest.param(
        np.array([[1.0, 2.0], [3.0, 4.0]]).T.copy(),
        np.array([[1.0, 2.0], [3.0, 4.0]]),
        "transposed",
        id="transposed 4 elements",
    ),
]


@pytest.mark.parametrize(("analytic", "numeric", "claim"), MUST)
def test_claim_is_made_with_evidence(analytic, numeric, claim):
    pattern = describe_pattern(analytic, numeric, _wrong(analytic, numeric))
    assert pattern is not None and claim in pattern, pattern


@pytest.mark.parametrize(("analytic", "numeric", "claim"), MUST_NOT)
def test_claim_is_not_made_without_evidence(analytic, numeric, claim):
    wrong = analytic != numeric  # every element wrong at the checker's own tolerance
    pattern = describe_pattern(analytic, numeric, wrong)
    assert claim not in (pattern or ""), pattern
    assert "1 x numeric" not in (pattern or "")
