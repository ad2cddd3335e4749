"""Gradient descent with classical or Nesterov momentum.

Classical momentum (Rumelhart, Hinton & Williams 1986; Polyak 1964), with mu = ``momentum``:

    Delta_w(t) = -lr_t * grad L(w_t) + mu * Delta_w(t-1),      w_{t+1} = w_t + Delta_w(t)

Nesterov's accelerated gradient in the form of Sutskever et al. (2013) and Bengio et al. (2013),
which evaluates the gradient at the parameters the runner holds (no separate look-ahead pass):

    Delta_w(t) = -lr_t * grad L(w_t) + mu * Delta_w(t-1),      w_{t+1} = w_t + mu * Delta_w(t) - lr_t * grad L(w_t)
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from bench.optimizers.base import LearningRate, check_range, clip_gradient, new_count, per_run
from bench.optimizers.registry import register_gradient
from bench.optimizers.space import Real

from bench import kernels


@dataclasses.dataclass(frozen=True)
class MomentumSettings(LearningRate):
    """``learning_rate`` (with schedule), ``momentum`` in [0, 1), ``nesterov`` flag, clipping."""

    momentum: float = 0.9
    nesterov: bool = False

    PER_RUN = (*LearningRate.PER_RUN, "momentum")
    SEARCH_SPACE = {**LearningRate.SEARCH_SPACE, "momentum": Real(0.5, 0.99, log=True, complement=True)}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("momentum", self.momentum, 0, 1, high_open=True)


class MomentumState(NamedTuple):
    count: np.ndarray  # (R,)
    velocity: np.ndarray  # (R, P): the previous update Delta_w(t-1)


@register_gradient("momentum", MomentumSettings, "gradient descent with classical or Nesterov momentum")
class Momentum:
    """Classical or Nesterov momentum (see the module docstring)."""

    def __init__(self, settings: MomentumSettings) -> None:
        self.settings = settings

    def init(self, theta: np.ndarray) -> MomentumState:
        return MomentumState(new_count(theta), np.zeros_like(theta))

    def update(
        self, theta: np.ndarray, grad: np.ndarray, state: MomentumState, loss: np.ndarray | None = None
    ) -> tuple[np.ndarray, MomentumState]:
        rate, g = self.settings.rate(state.count), clip_gradient(grad, self.settings)
        if kernels.available():  # one compiled pass, the same operations (bench.kernels)
            theta, velocity = kernels.momentum_update(
                theta, g, state.velocity, rate, self.settings.momentum, self.settings.nesterov
            )
            return theta, MomentumState(state.count + 1, velocity)
        mu = per_run(self.settings.momentum)
        descent = rate * g
        velocity = mu * state.velocity - descent
        step = mu * velocity - descent if self.settings.nesterov else velocity
        return theta + step, MomentumState(state.count + 1, velocity)
