"""Every public class of ``layers`` has a registered case, so the CLI and the family tests check it.

Each case is built at its smallest dimensions and counts for the class of the layer it builds
(a composite such as AttentionSeq2seq covers itself, not its parts).
"""

import layers
from gradcheck import registered_cases
from tests.families import FAMILIES, family


def test_every_public_layer_class_has_a_registered_case():
    public = {name for name in layers.__all__ if isinstance(getattr(layers, name), type)}
    covered = {type(case.build(0)[0]).__name__ for case in registered_cases("layers")}
    missing = sorted(public - covered)
    assert not missing, (
        f"no registered case builds {', '.join(missing)}; add a @gradcheck.case for each in "
        "layers/cases.py"
    )


def test_every_case_falls_in_a_fuzzed_family():
    # tests/test_layers_<family>.py picks its cases by the module of the layer they build
    stray = {
        case.id: name
        for case in registered_cases("layers")
        if (name := family(case)) not in FAMILIES
    }
    assert not stray, f"cases whose layer no tests/test_layers_<family>.py module checks: {stray}"
