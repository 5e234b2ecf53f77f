"""gradcheck's public surface is exactly ``__all__``: nothing public is missing from it, and
everything in it exists."""

import types

import gradcheck


def test_all_names_exactly_the_public_attributes():
    public = {
        name
        for name, value in vars(gradcheck).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert sorted(gradcheck.__all__) == sorted(public)


def test_all_is_sorted_and_unique():
    assert list(gradcheck.__all__) == sorted(set(gradcheck.__all__))


def test_checker_api_is_exported():
    for name in ("check_layer", "assert_layer", "GradientMismatch", "Report", "Entry"):
        assert name in gradcheck.__all__
    assert issubclass(gradcheck.GradientMismatch, AssertionError)
