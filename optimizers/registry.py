"""The optimizer registry: name -> (settings dataclass, factory, kind)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.registry import Registry


@dataclass(frozen=True)
class OptimizerEntry:
    """One registered optimizer.

    kind : "gradient" for update rules driven by the shared gradient loop (``factory(settings)``
        returns a rule with ``init(theta)`` and ``update(theta, grad, state, loss)``), "direct"
        for methods that implement the runner's Optimizer protocol themselves.
    """

    name: str
    settings: type
    factory: Callable[[Any], Any]
    kind: str
    description: str


OPTIMIZERS: Registry[OptimizerEntry] = Registry("optimizer")


def _register(name: str, settings: type, description: str, kind: str) -> Callable[[Any], Any]:
    def decorator(factory: Callable[[Any], Any]) -> Callable[[Any], Any]:
        OPTIMIZERS.register(name)(OptimizerEntry(name, settings, factory, kind, description))
        return factory

    return decorator


def register_gradient(name: str, settings: type, description: str) -> Callable[[Any], Any]:
    """Register a gradient update rule class under ``name``."""
    return _register(name, settings, description, "gradient")


def register_direct(name: str, settings: type, description: str) -> Callable[[Any], Any]:
    """Register an optimizer that implements the Optimizer protocol directly (GA, restarts)."""
    return _register(name, settings, description, "direct")
