"""Datasets by name: ``datasets.load("xor")``, ``datasets.load("encoder", n=8, m=3)``.

Each family lives in its own module and registers its factories in ``DATASETS``; a factory's
keyword parameters (with their defaults and annotated types) are the dataset's parameters.
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any

from bench.datasets import classic, files, sklearn_sets  # noqa: F401  (registers the factories)
from bench.datasets.base import Dataset, Success, accuracy, within_40_20_40
from bench.datasets.registry import DATASETS

from bench.registry import did_you_mean

DATASETS.seal()  # what is registered from here on (plug-ins, bench.register_dataset) is shipped to workers

__all__ = ["DATASETS", "Dataset", "Success", "accuracy", "within_40_20_40", "load", "parameters"]

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def parameters(name: str) -> dict[str, inspect.Parameter]:
    """The keyword parameters of dataset ``name`` (with defaults and annotations)."""
    return dict(inspect.signature(DATASETS.get(name)).parameters)


def check_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check parameter names and types for dataset ``name``; returns them with ints as floats
    where a float is expected.  Raises ``ValueError`` naming the parameter and the fix."""
    known = parameters(name)
    checked = {}
    for key, value in params.items():
        if key not in known:
            hint = did_you_mean(key, list(known)) or f"; {name} takes: {', '.join(known) or 'no parameters'}"
            raise ValueError(f"unknown parameter {key!r} for dataset {name!r}{hint}")
        expected = _TYPES[known[key].annotation]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not expected:
            raise ValueError(f"parameter {key!r} of dataset {name!r} must be {expected.__name__}, got {value!r}")
        checked[key] = value
    return checked


def load(name: str, **params: Any) -> Dataset:
    """Build dataset ``name`` with ``params`` (cached: the arrays are read-only)."""
    checked = check_params(name, params)
    return _load(name, tuple(sorted(checked.items())))


@lru_cache(maxsize=64)
def _load(name: str, params: tuple[tuple[str, Any], ...]) -> Dataset:
    data = DATASETS.get(name)(**dict(params))
    for array in (data.X_train, data.Y_train, data.X_test, data.Y_test):
        if array is not None:
            array.flags.writeable = False
    return data
