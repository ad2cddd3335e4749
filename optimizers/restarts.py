"""Random restarts around any optimizer in the registry.

A run trains with its base optimizer; when the current attempt stalls or diverges, while the run is
not yet solved, it starts again from fresh random weights drawn from the model's init distribution
with the run's own restart stream.  All attempts share the run's budget.  The run reports the best
point of all its attempts (the incumbent), so its loss never gets worse.

What the trigger sees: the current attempt's best loss (not the incumbent's), after every step of
the base optimizer.  The attempt has stalled when that best loss fell by at most a relative
``min_delta`` over the last ``patience`` cost units (the rule of ``optimizers.stagnation``, the
same as the status ``stuck``, with a window in cost units instead of a share of the budget).  An
attempt younger than ``patience`` is never restarted.  The default, 0.1 % over 1,000 units,
restarts only runs that have all but stopped moving; a larger ``min_delta`` (1 %, 5 %) also
restarts runs that creep along a plateau.

In the batched engine a restart is a per-row reset: the restarting rows get new weights and a
freshly initialized base state (one batched ``init`` for all of them), the others go on.

The row of a run records ``restarts`` (how many times it restarted) and ``restart_cost`` (the
cost at which the attempt that produced its reported point began: for a solved run, the solving
restart).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np
from bench.optimizers.base import (
    SettingError,
    check_range,
    per_run_settings,
    search_space,
    settings_from_dict,
    settings_take,
    tree_put,
)
from bench.optimizers.registry import OPTIMIZERS, register_direct
from bench.optimizers.space import Real
from bench.optimizers.stagnation import Window, window_push, window_restart, window_stalled, window_start

from bench.problem import ProblemView

NOT_WRAPPABLE = ("restarts", "random_search")


@dataclasses.dataclass(frozen=True)
class RestartSettings:
    """``base`` optimizer and its ``base_settings``; restart an attempt whose best loss fell by at
    most a relative ``min_delta`` over the last ``patience`` cost units."""

    base: str = "gd"
    base_settings: dict = dataclasses.field(default_factory=dict)
    patience: float = 1000.0
    min_delta: float = 1e-3

    PER_RUN = ("patience", "min_delta", "base_settings")  # base_settings: those of the base's PER_RUN
    SEARCH_SPACE = {"patience": Real(100.0, 1e4, log=True)}

    def search_space(self) -> dict[str, Any]:
        """``patience`` and the base optimizer's space, as ``base_settings.<setting>``."""
        base = search_space(self.base_optimizer_settings())
        return {**self.SEARCH_SPACE, **{f"base_settings.{k}": v for k, v in base.items()}}

    def __post_init__(self) -> None:
        if self.base in NOT_WRAPPABLE or self.base not in OPTIMIZERS:
            choices = [n for n in OPTIMIZERS.names() if n not in NOT_WRAPPABLE]
            raise SettingError("base", f"base must be one of {', '.join(choices)}, got {self.base!r}")
        try:
            self.base_optimizer_settings()
        except ValueError as exc:
            raise SettingError("base_settings", f"base_settings for {self.base}: {exc}") from None
        check_range("patience", self.patience, 0, None, low_open=True)
        check_range("min_delta", self.min_delta, 0, 1, high_open=True)

    def base_optimizer_settings(self) -> Any:
        return settings_from_dict(OPTIMIZERS.get(self.base).settings, self.base_settings)


class RestartState(NamedTuple):
    theta: np.ndarray  # (R, P) best point of all attempts (the incumbent)
    loss: np.ndarray  # (R,) its loss
    inner: Any  # the base optimizer's state for the current attempt
    attempt_best: np.ndarray  # (R,) best loss of the current attempt
    window: Window  # the attempt's best loss over the last ``patience`` cost units
    attempt_start: np.ndarray  # (R,) cost at which the current attempt began
    restart_cost: np.ndarray  # (R,) cost at which the incumbent's attempt began
    restarts: np.ndarray  # (R,) restarts so far
    rngs: np.ndarray  # (R,) object: each run's restart stream


@register_direct("restarts", RestartSettings, "random restarts around any optimizer, on stagnation or divergence")
class Restarts:
    """Random restarts (see the module docstring)."""

    stream = "restarts"  # the same restart weights whatever the base: paired comparisons

    def __init__(self, settings: RestartSettings) -> None:
        from bench import optimizers

        self.settings = settings
        self.base_settings = settings.base_optimizer_settings()
        self.base = optimizers.build(settings.base, self.base_settings)
        self.init_cost = self.base.init_cost
        self.max_step_cost = self.base.max_step_cost + self.base.init_cost
        # (K,) = (1,) for one window of all runs, (R, 1) for a window per run
        self._width, self._min_delta = (
            np.asarray(v, dtype=np.float64)[:, None] if np.ndim(v) == 1 else np.array([v])
            for v in (settings.patience, settings.min_delta)
        )

    def init(self, theta0: np.ndarray, problem: ProblemView, rngs: np.ndarray) -> RestartState:
        start = problem.cost
        inner = self.base.init(theta0, problem, rngs)
        n = theta0.shape[0]
        best = np.fmin(np.full(n, np.inf), inner.loss)
        return RestartState(
            theta=inner.theta,
            loss=inner.loss,
            inner=inner,
            attempt_best=best,
            window=window_push(window_start(n), problem.cost, best, self._width),
            attempt_start=start,
            restart_cost=start,
            restarts=np.zeros(n, dtype=np.int64),
            rngs=rngs,
        )

    def step(self, state: RestartState, problem: ProblemView) -> RestartState:
        inner = self.base.step(state.inner, problem)
        cost = problem.cost
        attempt_best = np.fmin(state.attempt_best, inner.loss)
        window = window_push(state.window, cost, attempt_best, self._width)
        restart = ~np.isfinite(inner.loss) | window_stalled(window, attempt_best, self._min_delta)[:, 0]
        attempt_start, restarts = state.attempt_start, state.restarts
        if restart.any():
            idx = np.flatnonzero(restart)
            fresh = np.concatenate([problem.draw(state.rngs[i], 1) for i in idx])
            new_inner = self._base_of(idx).init(fresh, problem.subview(idx), state.rngs[idx])
            inner = tree_put(inner, idx, new_inner)
            attempt_best = attempt_best.copy()
            attempt_best[idx] = np.fmin(np.inf, new_inner.loss)
            window = window_restart(window, idx, problem.cost[idx], attempt_best[idx])
            attempt_start, restarts = attempt_start.copy(), restarts.copy()
            attempt_start[idx] = cost[idx]
            restarts[idx] += 1
        better = inner.loss < state.loss  # NaN and inf never replace the incumbent
        return RestartState(
            theta=np.where(better[:, None], inner.theta, state.theta),
            loss=np.where(better, inner.loss, state.loss),
            inner=inner,
            attempt_best=attempt_best,
            window=window,
            attempt_start=attempt_start,
            restart_cost=np.where(better, attempt_start, state.restart_cost),
            restarts=restarts,
            rngs=state.rngs,
        )

    def _base_of(self, rows: np.ndarray) -> Any:
        """The base optimizer of the rows ``rows`` (its own per-run settings, if any)."""
        from bench import optimizers

        if not per_run_settings(self.base_settings):
            return self.base
        return optimizers.build(self.settings.base, settings_take(self.base_settings, rows))

    def extra_columns(self, state: RestartState) -> dict[str, np.ndarray]:
        return {"restarts": state.restarts, "restart_cost": state.restart_cost}
