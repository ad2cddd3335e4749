"""Pure random search: the floor every method must beat.

Each step draws ``samples_per_step`` fresh parameter vectors per run from the model's init
distribution (the run's own stream), evaluates them (1 cost unit each, all runs' samples in one
batched call) and keeps the best point seen (the incumbent).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from bench.optimizers.base import check_range
from bench.optimizers.registry import register_direct

from bench.problem import FORWARD_COST, ProblemView


@dataclasses.dataclass(frozen=True)
class RandomSearchSettings:
    """``samples_per_step`` fresh draws per run and step."""

    samples_per_step: int = 10

    PER_RUN = ()
    SEARCH_SPACE = {}  # nothing to tune: the floor is the floor

    def __post_init__(self) -> None:
        check_range("samples_per_step", self.samples_per_step, 1, None)


class RandomSearchState(NamedTuple):
    theta: np.ndarray  # (R, P) best sample so far
    loss: np.ndarray  # (R,)
    rngs: np.ndarray  # (R,) object


@register_direct("random_search", RandomSearchSettings, "pure random search from the init distribution (a floor)")
class RandomSearch:
    """Pure random search (see the module docstring)."""

    stream = "random_search"
    init_cost = FORWARD_COST

    def __init__(self, settings: RandomSearchSettings) -> None:
        self.settings = settings
        self.max_step_cost = FORWARD_COST * settings.samples_per_step

    def init(self, theta0: np.ndarray, problem: ProblemView, rngs: np.ndarray) -> RandomSearchState:
        return RandomSearchState(theta0, problem.loss(theta0), rngs)

    def step(self, state: RandomSearchState, problem: ProblemView) -> RandomSearchState:
        k = self.settings.samples_per_step
        samples = np.concatenate([problem.draw(rng, k) for rng in state.rngs])  # (R * k, P)
        owners = np.repeat(np.arange(len(state.rngs)), k)
        losses = problem.loss(samples, owners).reshape(-1, k)
        with np.errstate(invalid="ignore"):
            pick = np.argmin(np.where(np.isnan(losses), np.inf, losses), axis=1)
        best_loss = losses[np.arange(len(pick)), pick]
        better = best_loss < state.loss
        best_theta = samples.reshape(len(pick), k, -1)[np.arange(len(pick)), pick]
        return RandomSearchState(
            np.where(better[:, None], best_theta, state.theta), np.where(better, best_loss, state.loss), state.rngs
        )
