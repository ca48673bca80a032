"""Shared fixtures: tiny grokking configs that train in about a second."""

from __future__ import annotations

import pytest
from tiny_configs import GROKKING

TINY = GROKKING | {"threads": 1}


@pytest.fixture
def tiny() -> dict:
    return dict(TINY)
