"""Verify hand-written backward passes: gradients, hidden state and the layer contract.

import gradcheck
report = gradcheck.check_layer(layer, x)              # never raises for a wrong gradient
gradcheck.assert_layer(layer, x)                      # raises GradientMismatch with the report
gradcheck.assert_function(f, f_vjp, x, W)             # a function and its hand-written vjp
gradcheck.assert_pair(affine_forward, affine_backward, x, w, b)   # cs231n (out, cache) pairs
gradcheck.assert_loss(softmax_loss, x, y)             # cs231n (loss, dx) losses
gradcheck.assert_generate(decoder, h, start_id=0, sample_size=5)  # greedy generate vs forward
gradcheck.mutation_score(layer, x, mode="fast")      # which typical backward bugs it catches
"""

from gradcheck.cases import Case, case, registered_cases
from gradcheck.check import (
    GradientMismatch,
    assert_function,
    assert_layer,
    assert_loss,
    assert_pair,
    check,
    check_function,
    check_layer,
    check_loss,
    check_pair,
)
from gradcheck.conventions import function, loss, pair
from gradcheck.generate import assert_generate, check_generate
from gradcheck.mutation import MutantResult, MutationScore, mutation_score
from gradcheck.options import Settings
from gradcheck.report import Entry, Report
from gradcheck.subjects import layer

__all__ = [
    "Case",
    "Entry",
    "GradientMismatch",
    "MutantResult",
    "MutationScore",
    "Report",
    "Settings",
    "assert_function",
    "assert_generate",
    "assert_layer",
    "assert_loss",
    "assert_pair",
    "case",
    "check",
    "check_function",
    "check_generate",
    "check_layer",
    "check_loss",
    "check_pair",
    "function",
    "layer",
    "loss",
    "mutation_score",
    "pair",
    "registered_cases",
]
