"""Verify hand-written NumPy layers: gradients, hidden state and the layer contract.

import gradcheck
report = gradcheck.check_layer(layer, x)      # never raises for a wrong gradient
gradcheck.assert_layer(layer, x)              # raises GradientMismatch with the report
"""

from gradcheck.cases import Case, case, registered_cases
from gradcheck.check import GradientMismatch, assert_layer, check_layer
from gradcheck.report import Entry, Report

__all__ = [
    "Case",
    "Entry",
    "GradientMismatch",
    "Report",
    "assert_layer",
    "case",
    "check_layer",
    "registered_cases",
]
