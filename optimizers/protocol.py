"""The Optimizer protocol the runner drives, and the one loop shared by all gradient rules.

An optimizer works on R runs at once and keeps an *incumbent* per run: the parameters it would
report now, with their training loss.  The runner judges success on the incumbent after every
step and freezes runs that stop; the optimizer only ever sees the rows still running.

    state = optimizer.init(theta0, problem, rngs)   # evaluates theta0; state.theta, state.loss
    state = optimizer.step(state, problem)          # one step (an epoch, a generation)

``problem`` is a ``bench.problem.ProblemView`` that charges every evaluation to its run;
``rngs`` is an object array of R ``np.random.Generator``, one per run.  ``max_step_cost`` bounds
what one step may charge one run, so the runner can stop a run before it would overrun its
budget.  The state is a NamedTuple whose array leaves all have the runs axis first (object
arrays are fine), so the runner can take and put rows.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import numpy as np
from bench.optimizers.base import GradientRule

from bench.problem import GRADIENT_COST, ProblemView


class Optimizer(Protocol):
    max_step_cost: int
    init_cost: int
    stream: str  # name of the per-run random stream

    def init(self, theta0: np.ndarray, problem: ProblemView, rngs: np.ndarray) -> Any: ...

    def step(self, state: Any, problem: ProblemView) -> Any: ...


class GradientState(NamedTuple):
    theta: np.ndarray  # (R, P) current parameters (the incumbent)
    loss: np.ndarray  # (R,) training loss at theta
    grad: np.ndarray  # (R, P) gradient at theta
    out: np.ndarray  # (R, N, n_out) training outputs at theta
    rule: Any  # the rule's own state


class GradientMethod:
    """The training loop step of every gradient rule: update with the gradient, re-evaluate.

    Each step costs 3 units per run (one loss-and-gradient evaluation); so does ``init``.
    """

    max_step_cost = GRADIENT_COST
    init_cost = GRADIENT_COST
    stream = "gradient"

    def __init__(self, rule: GradientRule) -> None:
        self.rule = rule

    def init(self, theta0: np.ndarray, problem: ProblemView, rngs: np.ndarray | None = None) -> GradientState:
        loss, grad, out = problem.evaluate(theta0)
        return GradientState(theta0, loss, grad, out, self.rule.init(theta0))

    def step(self, state: GradientState, problem: ProblemView) -> GradientState:
        theta, rule_state = self.rule.update(state.theta, state.grad, state.rule, loss=state.loss)
        loss, grad, out = problem.evaluate(theta)
        return GradientState(theta, loss, grad, out, rule_state)
