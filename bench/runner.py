"""The runner: one loop that drives any optimizer over a cell's R runs at once and records them.

Each step, the runner observes every running run's incumbent (free of cost), then stops the runs
that are solved, diverged (non-finite loss), stuck (only if ``stopping.stagnation`` is on) or
whose next step would overrun the budget; the others take one step together.  Stopped runs are
frozen.  At the end every run gets a status:

* ``solved``: met the dataset's success criterion;
* ``diverged``: its loss became inf or NaN (recorded, never raised);
* ``stuck``: not solved, and no *real* improvement of its best loss (a relative drop of at least
  ``stopping.min_delta``) during the last ``stopping.patience`` fraction of its budget;
* ``unfinished``: not solved and still improving when the budget ran out.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

import optimizers
from bench import seeding
from bench.config import Cell, stable_hash
from bench.problem import Problem
from optimizers.base import tree_put, tree_take
from optimizers.protocol import stagnation_update

STATUSES = ("running", "solved", "diverged", "stuck", "unfinished")
_RUNNING, _SOLVED, _DIVERGED, _STUCK, _UNFINISHED = range(5)


def dataset_stream_key(cell: Cell) -> str:
    """What identifies a dataset and model for the random streams (not its display label)."""
    d = cell.dataset
    return stable_hash(
        {
            "dataset": d.name,
            "params": d.params,
            "layers": d.layer_sizes(),
            "init": d.model.init,
            "scale": d.model.init_scale,
        }
    )


def initial_parameters(cell: Cell, runs: range | list[int]) -> np.ndarray:
    """Initial weights of ``runs``: the same for every optimizer (common random numbers)."""
    gens = seeding.generators(cell.config.seed, runs, "init", dataset_stream_key(cell))
    return cell.dataset.network().init(list(gens), len(gens), cell.dataset.model.init, cell.dataset.model.init_scale)


def build_optimizer(cell: Cell) -> Any:
    return optimizers.build(cell.optimizer.name, cell.optimizer.settings)


def check_budget(cell: Cell) -> None:
    """Refuse a budget too small for the optimizer's first evaluation and one step."""
    opt = build_optimizer(cell)
    need = opt.init_cost + opt.max_step_cost
    if cell.dataset.budget < need:
        raise ValueError(
            f"budget {cell.dataset.budget} is too small for {cell.optimizer.label} on {cell.dataset.label}: "
            f"it needs at least {need} cost units (first evaluation and one step); raise the budget"
        )


def checkpoint_marks(budget: int, count: int, spacing: str) -> np.ndarray:
    """Costs at which curve points are recorded (the first evaluation and the stop are always)."""
    marks = np.geomspace(1, budget, count) if spacing == "log" else np.linspace(budget / count, budget, count)
    return np.unique(np.ceil(marks))


def run_cell(cell: Cell, batch: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train all runs of ``cell``; returns (runs table, curves table).

    ``batch`` caps how many runs share one engine call; the numbers do not depend on it.
    """
    runs = list(cell.runs)
    size = len(runs) if batch is None else max(1, batch)
    parts = [_run_batch(cell, runs[i : i + size]) for i in range(0, len(runs), size)]
    return (pd.concat([p[0] for p in parts], ignore_index=True), pd.concat([p[1] for p in parts], ignore_index=True))


def _run_batch(cell: Cell, runs: list[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    start = time.perf_counter()
    data, net = cell.dataset.load(), cell.dataset.network()
    n = len(runs)
    budget, stop = cell.dataset.budget, cell.config.stopping
    theta0 = initial_parameters(cell, runs)
    problem = Problem(data, net, n, cell.dataset.model.init, cell.dataset.model.init_scale)
    opt = build_optimizer(cell)
    rngs = seeding.generators(cell.config.seed, runs, opt.stream, dataset_stream_key(cell))
    state = opt.init(theta0, problem.view(), rngs)

    epochs = np.zeros(n, dtype=np.int64)
    best = np.full(n, np.inf)
    reference, since = np.full(n, np.inf), np.zeros(n)
    status = np.zeros(n, dtype=np.int8)
    cost_to_success = np.full(n, np.nan)
    wall = np.full(n, np.nan)
    marks = checkpoint_marks(budget, cell.config.record.checkpoints, cell.config.record.spacing)
    next_mark = np.full(n, marks[0])  # cost at which each run's next curve point is due
    curve: list[dict[str, np.ndarray]] = []
    active = np.ones(n, dtype=bool)

    while True:
        rows = np.flatnonzero(active)
        every = len(rows) == n
        sel = slice(None) if every else rows  # indexes the per-run arrays (a slice is cheaper)
        sub = state if every else tree_take(state, rows)
        cost = problem.cost[sel].copy()  # a snapshot: the ledger moves on when runs step
        loss = sub.loss
        best[sel] = np.fmin(best[sel], loss)
        reference[sel], since[sel] = stagnation_update(reference[sel], since[sel], best[sel], cost, stop.min_delta)
        diverged = ~np.isfinite(loss)
        solved = ~diverged & problem.solved(sub.theta, loss, getattr(sub, "out", None))
        stalled = cost - since[sel] >= stop.patience * budget
        halt = solved | diverged | (stop.stagnation & stalled) | (cost + opt.max_step_cost > budget)

        due = halt | (cost >= next_mark[sel])
        if due.any():
            take = rows[due]
            out = getattr(sub, "out", None)
            curve.append(
                {
                    "run": np.asarray(runs)[take],
                    "epoch": epochs[take],
                    "cost": cost[due],
                    "loss": loss[due],
                    "best_loss": best[take],
                    "train_accuracy": problem.accuracy(sub.theta[due], "train", None if out is None else out[due]),
                }
            )
            after = np.searchsorted(marks, cost[due], side="right")
            next_mark[take] = np.where(after < len(marks), marks[np.minimum(after, len(marks) - 1)], np.inf)

        if halt.any():
            done = rows[halt]
            status[done] = np.select(
                [solved[halt], diverged[halt], stalled[halt]], [_SOLVED, _DIVERGED, _STUCK], _UNFINISHED
            )
            cost_to_success[done] = np.where(solved[halt], cost[halt], np.nan)
            wall[done] = time.perf_counter() - start
            active[done] = False
        go = rows[~halt]
        if not len(go):
            break
        if len(go) == n:
            state = opt.step(state, problem.view())
        else:
            state = tree_put(state, go, opt.step(tree_take(state, go), problem.view(go)))
        epochs[go] += 1

    return _tables(cell, runs, problem, state, theta0, epochs, best, status, cost_to_success, wall, curve, opt)


def _tables(
    cell: Cell,
    runs: list[int],
    problem: Problem,
    state: Any,
    theta0: np.ndarray,
    epochs: np.ndarray,
    best: np.ndarray,
    status: np.ndarray,
    cost_to_success: np.ndarray,
    wall: np.ndarray,
    curve: list[dict[str, np.ndarray]],
    opt: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    data, net = problem.data, problem.net
    theta = state.theta
    # The end point's gradient norm is analysis, not optimization: it is not charged.
    _, grad = net.loss_and_grad(theta, data.X_train, data.Y_train)
    with np.errstate(invalid="ignore", over="ignore"):
        grad_norm = np.linalg.norm(grad, axis=1)
    ident = identity_columns(cell)
    table = {
        **{k: [v] * len(runs) for k, v in ident.items()},
        "run": runs,
        "seed": cell.config.seed,
        "status": [STATUSES[s] for s in status],
        "final_loss": state.loss,
        "best_loss": best,
        "train_accuracy": problem.accuracy(theta, "train"),
        "test_accuracy": problem.accuracy(theta, "test"),
        "cost": problem.cost.copy(),
        "epochs": epochs,
        "loss_evals": problem.loss_evals,
        "grad_evals": problem.grad_evals,
        "cost_to_success": cost_to_success,
        "wall_time": wall,
        "grad_norm": grad_norm,
        **getattr(opt, "extra_columns", lambda _: {})(state),  # e.g. restarts, generations
        "theta_initial": list(theta0),
        "theta_final": list(theta),
    }
    runs_df = pd.DataFrame(table)
    for key, value in hyperparameter_columns(cell).items():
        column = key if key not in runs_df.columns else f"{cell.optimizer.name}.{key}"  # never overwrite a record
        runs_df[column] = [value] * len(runs_df)
    curves_df = pd.DataFrame({k: np.concatenate([c[k] for c in curve]) for k in curve[0]})
    curves_df = curves_df.sort_values(["run", "cost"], kind="stable", ignore_index=True)
    for key, value in ident.items():
        curves_df.insert(0, key, value)
    return runs_df, curves_df


def identity_columns(cell: Cell) -> dict[str, Any]:
    """The columns that say which experiment, dataset, model and optimizer a row belongs to."""
    d = cell.dataset
    return {
        "experiment": cell.config.name,
        "cell": cell.key,
        "dataset": d.label,
        "dataset_name": d.name,
        "model": "-".join(map(str, d.layer_sizes())) + f" {d.model.activation}",
        "optimizer": cell.optimizer.label,
        "optimizer_name": cell.optimizer.name,
        "budget": d.budget,
    }


def hyperparameter_columns(cell: Cell) -> dict[str, Any]:
    """Every optimizer setting as a column (nested settings as ``outer.inner``)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if isinstance(value, dict):
                walk(f"{prefix}{key}.", value)
            else:
                flat[prefix + key] = value

    walk("", cell.optimizer.settings_dict())
    return flat
