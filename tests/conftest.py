"""Shared fixtures: tiny grokking configs that train in about a second."""

from __future__ import annotations

import os

# before any test module loads torch: idle OpenMP threads sleep instead of spinning, as
# `import phasewatch` arranges for users (the suite must not crawl on shared cores)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
from tiny_configs import GROKKING

TINY = GROKKING | {"threads": 1}


@pytest.fixture
def tiny() -> dict:
    return dict(TINY)
