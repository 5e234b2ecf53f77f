"""Hypothesis profiles for the whole suite; choose one with ``--hypothesis-profile=NAME``.

- ``default``: quick, for the edit-test loop (the whole suite in well under a minute on 2 cores).
- ``ci``: thorough and derandomised; what ``.ci/run`` uses.
- ``dev``: the default with verbose output, for reading what hypothesis draws.
"""

import pytest
from hypothesis import HealthCheck, Verbosity, settings

_COMMON = dict(
    deadline=None,  # numerical checks vary with machine load; speed is measured in benchmarks/
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

settings.register_profile("default", max_examples=10, **_COMMON)
settings.register_profile("ci", max_examples=200, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("dev", max_examples=10, verbosity=Verbosity.verbose, **_COMMON)
settings.load_profile("default")


@pytest.hookimpl(trylast=True)  # after hypothesis' own plugin has loaded --hypothesis-profile
def pytest_configure(config):
    """Honour ``--hypothesis-seed=N`` under a derandomised profile such as ``ci``.

    Hypothesis lets ``derandomize=True`` win over the seed, so ``--hypothesis-profile=ci
    --hypothesis-seed=N`` would silently run the same examples for every N. Given a seed, run the
    same profile randomised from that seed instead (still repeatable, on every xdist worker).
    """
    if config.getoption("--hypothesis-seed", None) is not None and settings.default.derandomize:
        name = f"{settings.get_current_profile_name()}-seeded"
        settings.register_profile(name, derandomize=False)  # inherits the loaded profile
        settings.load_profile(name)
