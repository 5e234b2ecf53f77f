"""Hypothesis profiles for the whole suite; choose one with ``--hypothesis-profile=NAME``.

- ``default``: quick, for the edit-test loop (the whole suite in well under a minute on 2 cores).
- ``ci``: thorough and derandomised; what ``.ci/run`` uses.
- ``dev``: the default with verbose output, for reading what hypothesis draws.
"""

from hypothesis import HealthCheck, Verbosity, settings

_COMMON = dict(
    deadline=None,  # numerical checks vary with machine load; speed is measured in benchmarks/
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

settings.register_profile("default", max_examples=10, **_COMMON)
settings.register_profile("ci", max_examples=200, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("dev", max_examples=10, verbosity=Verbosity.verbose, **_COMMON)
settings.load_profile("default")
