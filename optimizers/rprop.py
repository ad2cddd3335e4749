"""Resilient backpropagation: Rprop+, Rprop-, iRprop+, iRprop-.

Each weight has its own step size Delta_ij, adapted by the sign of successive partial
derivatives g(t) = dE/dw_ij at t and t-1 (Riedmiller & Braun 1993, "A direct adaptive method for
faster backpropagation learning: the RPROP algorithm"; Igel & Huesken 2000, "Improving the Rprop
learning algorithm"):

    g(t-1) g(t) > 0:  Delta(t) = min(eta_plus  * Delta(t-1), delta_max)
    g(t-1) g(t) < 0:  Delta(t) = max(eta_minus * Delta(t-1), delta_min)
    otherwise:        Delta(t) = Delta(t-1)

and the weight moves against the sign of the gradient, Delta_w(t) = -sign(g(t)) Delta(t), except
after a sign change (g(t-1) g(t) < 0), where the variants differ:

    rprop+   weight backtracking: Delta_w(t) = -Delta_w(t-1), and g(t) is set to 0
    rprop-   no backtracking: the ordinary step -sign(g(t)) Delta(t)
    irprop+  backtrack only if the error rose, E(t) > E(t-1); no step otherwise; g(t) := 0
    irprop-  no step (g(t) := 0, so the next comparison counts as "otherwise")

Clipping, when set, is applied to g(t) before everything else.  Defaults follow the papers:
delta_0 = 0.1, delta_min = 1e-6, delta_max = 50, eta_minus = 0.5, eta_plus = 1.2.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from bench.optimizers.base import Clipping, SettingError, check_choice, check_range, clip_gradient, per_run
from bench.optimizers.registry import register_gradient
from bench.optimizers.space import Real

from bench import kernels

VARIANTS = ("rprop+", "rprop-", "irprop+", "irprop-")


@dataclasses.dataclass(frozen=True)
class RpropSettings(Clipping):
    """Rprop variant and step-size parameters (see the module docstring)."""

    variant: str = "irprop-"
    delta_0: float = 0.1
    delta_min: float = 1e-6
    delta_max: float = 50.0
    eta_plus: float = 1.2
    eta_minus: float = 0.5

    PER_RUN = (*Clipping.PER_RUN, "delta_0", "delta_min", "delta_max", "eta_plus", "eta_minus")
    SEARCH_SPACE = {"delta_0": Real(1e-4, 1.0, log=True), "delta_max": Real(1.0, 100.0, log=True)}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("variant", self.variant, VARIANTS)
        check_range("eta_minus", self.eta_minus, 0, 1, low_open=True, high_open=True)
        check_range("eta_plus", self.eta_plus, 1, None, low_open=True)
        check_range("delta_min", self.delta_min, 0, None, low_open=True)
        check_range("delta_max", self.delta_max, 0, None, low_open=True)
        if np.any(np.asarray(self.delta_min) > np.asarray(self.delta_max)):
            raise SettingError("delta_min", f"delta_min must be <= delta_max, got {self.delta_min} > {self.delta_max}")
        check_range("delta_0", self.delta_0, 0, None, low_open=True)


class RpropState(NamedTuple):
    step_size: np.ndarray  # (R, P) Delta(t-1)
    prev_grad: np.ndarray  # (R, P) g(t-1), zeroed after a sign change where the variant says so
    prev_update: np.ndarray  # (R, P) Delta_w(t-1)
    prev_loss: np.ndarray  # (R,) E(t-1), inf before the first step


@register_gradient("rprop", RpropSettings, "resilient backpropagation: rprop+, rprop-, irprop+, irprop-")
class Rprop:
    """The Rprop family (see the module docstring)."""

    def __init__(self, settings: RpropSettings) -> None:
        self.settings = settings

    def init(self, theta: np.ndarray) -> RpropState:
        step = np.empty_like(theta)
        step[...] = per_run(self.settings.delta_0)
        zeros = np.zeros_like(theta)
        return RpropState(step, zeros, zeros, np.full(theta.shape[0], np.inf))

    def update(
        self, theta: np.ndarray, grad: np.ndarray, state: RpropState, loss: np.ndarray | None = None
    ) -> tuple[np.ndarray, RpropState]:
        s = self.settings
        variant = s.variant
        if variant == "irprop+" and loss is None:
            raise ValueError("irprop+ needs the loss at theta: call update(theta, grad, state, loss=loss)")
        g = clip_gradient(grad, s)
        prev_loss = state.prev_loss if loss is None else np.asarray(loss, dtype=np.float64)
        if kernels.available():  # one compiled pass, the same operations (bench.kernels)
            error_rose = loss > state.prev_loss if variant == "irprop+" else np.zeros(len(theta), dtype=bool)
            new_theta, step_size, g, update = kernels.rprop_update(
                theta, g, state.step_size, state.prev_grad, state.prev_update, error_rose, VARIANTS.index(variant), s
            )
            return new_theta, RpropState(step_size, g, update, prev_loss)
        sign_product = g * state.prev_grad
        grew, flipped = sign_product > 0, sign_product < 0
        step_size = np.where(
            grew, np.minimum(state.step_size * per_run(s.eta_plus), per_run(s.delta_max)), state.step_size
        )
        step_size = np.where(flipped, np.maximum(step_size * per_run(s.eta_minus), per_run(s.delta_min)), step_size)
        update = -np.sign(g) * step_size
        if variant == "rprop+":
            update = np.where(flipped, -state.prev_update, update)
        elif variant == "irprop+":
            error_rose = (loss > state.prev_loss)[:, None]
            update = np.where(flipped, np.where(error_rose, -state.prev_update, 0.0), update)
        elif variant == "irprop-":
            update = np.where(flipped, 0.0, update)
        if variant != "rprop-":
            g = np.where(flipped, 0.0, g)
        return theta + update, RpropState(step_size, g, update, prev_loss)
