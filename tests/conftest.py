"""Hypothesis profiles for the unit tests: deterministic in CI, as the conformance suite."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "unit", derandomize=True, max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("REFCNN_HYPOTHESIS_PROFILE", "unit"))
