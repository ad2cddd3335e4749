"""Optimizers by name.

    from bench import optimizers
    rule = optimizers.gradient_rule("rprop", variant="irprop-", delta_0=0.1)
    state = rule.init(theta)                                   # theta: (R, P)
    theta, state = rule.update(theta, grad, state, loss=loss)  # pure: inputs never mutated

One module per family registers itself in ``OPTIMIZERS``.
"""

from __future__ import annotations

from typing import Any

from bench.optimizers import gd, genetic, momentum, random_search, restarts, rprop  # noqa: F401  (registers them)
from bench.optimizers.base import settings_from_dict
from bench.optimizers.registry import OPTIMIZERS, OptimizerEntry

OPTIMIZERS.seal()  # what is registered from here on (plug-ins, bench.register_optimizer) is shipped to workers

__all__ = ["OPTIMIZERS", "OptimizerEntry", "build", "gradient_rule", "make_settings"]


def make_settings(name: str, **settings: Any) -> Any:
    """The validated settings dataclass of optimizer ``name``."""
    return settings_from_dict(OPTIMIZERS.get(name).settings, settings)


def gradient_rule(name: str, **settings: Any) -> Any:
    """A gradient update rule with validated settings (``ValueError`` names a bad one)."""
    entry = OPTIMIZERS.get(name)
    if entry.kind != "gradient":
        gradient_names = [n for n in OPTIMIZERS.names() if OPTIMIZERS.get(n).kind == "gradient"]
        raise ValueError(f"{name!r} is not a gradient rule; gradient rules: {', '.join(gradient_names)}")
    return entry.factory(settings_from_dict(entry.settings, settings))


def build(name: str, settings: Any) -> Any:
    """The runner's Optimizer for ``name`` with validated ``settings``: gradient rules are
    wrapped in the shared gradient loop, direct methods build themselves."""
    from bench.optimizers.protocol import GradientMethod

    entry = OPTIMIZERS.get(name)
    if entry.kind == "gradient":
        return GradientMethod(entry.factory(settings))
    return entry.factory(settings)
