"""Verify hand-written NumPy layers: gradients, hidden state and the layer contract.

    import gradcheck
    report = gradcheck.check_layer(layer, x)      # never raises for a wrong gradient
    gradcheck.assert_layer(layer, x)              # raises GradientMismatch with the report
"""

from gradcheck.cases import Case, case, registered_cases

__all__ = ["Case", "case", "registered_cases"]
