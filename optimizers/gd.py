"""Gradient descent and gradient ascent on the log-likelihood.

Gradient descent (Cauchy 1847; Rumelhart, Hinton & Williams 1986, without momentum):

    theta_{t+1} = theta_t - lr_t * clip(grad L(theta_t))

Gradient ascent maximizes the log-likelihood l(theta) = -L(theta) (every loss here is a negative
log-likelihood up to a constant: cross-entropies exactly, squared error under Gaussian noise):

    theta_{t+1} = theta_t + lr_t * clip(grad l(theta_t))

Since grad l = -grad L, both follow the same trajectory; a test checks it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from bench.optimizers.base import CountState, LearningRate, clip_gradient, new_count
from bench.optimizers.registry import register_gradient


@dataclasses.dataclass(frozen=True)
class GDSettings(LearningRate):
    """Gradient descent: ``learning_rate`` with a schedule, optional clipping."""


@dataclasses.dataclass(frozen=True)
class AscentSettings(LearningRate):
    """Gradient ascent on the log-likelihood: ``learning_rate`` with a schedule, optional clipping."""


class GradientDescent:
    """theta <- theta - lr_t * grad (see the module docstring)."""

    def __init__(self, settings: GDSettings) -> None:
        self.settings = settings

    def init(self, theta: np.ndarray) -> CountState:
        return CountState(new_count(theta))

    def update(
        self, theta: np.ndarray, grad: np.ndarray, state: CountState, loss: np.ndarray | None = None
    ) -> tuple[np.ndarray, CountState]:
        step = self.settings.rate(state.count) * clip_gradient(grad, self.settings)
        return theta - step, CountState(state.count + 1)


class GradientAscent:
    """theta <- theta + lr_t * grad of the log-likelihood (see the module docstring)."""

    def __init__(self, settings: AscentSettings) -> None:
        self.settings = settings

    def init(self, theta: np.ndarray) -> CountState:
        return CountState(new_count(theta))

    def update(
        self, theta: np.ndarray, grad: np.ndarray, state: CountState, loss: np.ndarray | None = None
    ) -> tuple[np.ndarray, CountState]:
        log_likelihood_grad = -grad
        step = self.settings.rate(state.count) * clip_gradient(log_likelihood_grad, self.settings)
        return theta + step, CountState(state.count + 1)


register_gradient("gd", GDSettings, "gradient descent with a learning-rate schedule")(GradientDescent)
register_gradient("gradient_ascent", AscentSettings, "gradient ascent on the log-likelihood")(GradientAscent)
