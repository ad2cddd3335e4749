"""Shared helpers: a tiny config that runs in well under a second."""

from __future__ import annotations

import copy
from typing import Any

import pytest

TINY: dict[str, Any] = {
    "experiment": {"name": "tiny", "seed": 3, "runs": 6, "budget": 900},
    "model": {"init_scale": 1.0},
    "record": {"checkpoints": 12},
    "datasets": [{"name": "xor"}],
    "optimizers": [
        {"name": "gd", "learning_rate": 2.0},
        {"name": "rprop", "variant": "irprop-"},
    ],
}


@pytest.fixture
def tiny() -> dict[str, Any]:
    """A fresh copy of a small valid config document (edit it freely)."""
    return copy.deepcopy(TINY)
