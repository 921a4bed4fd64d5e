"""Shared test set-up: a headless matplotlib backend and a deterministic hypothesis profile."""

import os

import matplotlib

# This process only. An MPLBACKEND variable would be inherited by the kernels nbval starts,
# and a notebook kernel on Agg shows no figures, so its outputs would no longer match.
matplotlib.use("Agg")

from hypothesis import HealthCheck, settings

settings.register_profile(
    "kit",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "kit"))
