"""The runner: one loop that drives any optimizer over a cell's R runs at once and records them.

Each step, the runner observes every running run's incumbent (free of cost), then stops the runs
that are solved, diverged (non-finite loss), stuck (only if ``stopping.stagnation`` is on) or
whose next step would overrun the budget; the others take one step together.  Stopped runs are
frozen and dropped from the optimizer's state.  At the end every run gets a status:

* ``solved``: met the dataset's success criterion;
* ``diverged``: its loss became inf or NaN (recorded, never raised);
* ``stuck``: not solved, and its best loss fell by at most ``stopping.min_delta`` (relative) over
  the last ``stopping.patience`` x budget cost units before it stopped: best(c) >= (1 - min_delta)
  x best(c - window), best(x) being the lowest loss of its evaluations at cost <= x (the rule of
  ``optimizers.stagnation``);
* ``unfinished``: not solved and still improving when the budget ran out.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from bench import optimizers, seeding
from bench.config import Cell, Stopping, stable_hash
from bench.optimizers.base import tree_take
from bench.optimizers.stagnation import Window, window_push, window_stalled, window_start
from bench.problem import Problem

STATUSES = ("running", "solved", "diverged", "stuck", "unfinished")
_RUNNING, _SOLVED, _DIVERGED, _STUCK, _UNFINISHED = range(5)


def status_meanings(stopping: Stopping | None = None) -> dict[str, str]:
    """What each status means, in the words of the README and of every REPORT.md.

    ``stopping`` gives the window and the relative drop of "stuck" (default: the defaults).
    """
    stop = stopping or Stopping()
    return {
        "solved": "met its success criterion.",
        "diverged": "its loss became inf or NaN (recorded as data, never a crash).",
        "stuck": (
            f"not solved, and its best loss fell by at most {_percent(stop.min_delta)} over the last "
            f"{_percent(stop.patience)} of its budget (from its best loss that many cost units before its last "
            "evaluation to its best loss at the end)."
        ),
        "unfinished": (
            f"not solved, and its best loss fell by more than {_percent(stop.min_delta)} over that window: "
            "still improving when the budget ran out."
        ),
    }


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.10g} %"


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


class CellTables(NamedTuple):
    """What the runner writes for one cell."""

    runs: pd.DataFrame  # one row per run
    curves: pd.DataFrame  # one row per run per checkpoint
    plateaus: pd.DataFrame  # one row per plateau episode


PLATEAU_COLUMNS = ["run", "start_cost", "end_cost", "start_loss", "end_loss", "outcome"]


def run_cell(cell: Cell, batch: int | None = None) -> CellTables:
    """Train all runs of ``cell``; returns its tables (runs, curves, plateau episodes).

    ``batch`` caps how many runs share one engine call; the numbers do not depend on it.
    """
    runs = list(cell.runs)
    size = len(runs) if batch is None else max(1, batch)
    parts = [_run_batch(cell, runs[i : i + size]) for i in range(0, len(runs), size)]
    return CellTables(*(pd.concat([p[k] for p in parts], ignore_index=True) for k in range(3)))


class _Running(NamedTuple):
    """What the runner keeps per running run, aligned with the optimizer state's rows."""

    index: np.ndarray  # (R,) position of the run in the batch
    epochs: np.ndarray  # (R,) steps taken
    best: np.ndarray  # (R,) best loss so far
    next_mark: np.ndarray  # (R,) cost at which the next curve point is due
    window: Window  # the best loss's recent history: for "stuck" (width 0) and plateaus (width 1)
    plateau_start: np.ndarray  # (R,) cost at which the current plateau episode began; NaN if none
    plateau_loss: np.ndarray  # (R,) best loss when it began
    plateau_end: np.ndarray  # (R,) cost at which the last episode ended (-inf before the first)


class _Final(NamedTuple):
    """What the runner records per run of the batch when it stops, (n,) each."""

    status: np.ndarray
    epochs: np.ndarray
    best: np.ndarray
    loss: np.ndarray
    theta: np.ndarray  # (n, P)
    cost_to_success: np.ndarray
    wall: np.ndarray
    plateau_cost: np.ndarray  # cost units spent on plateau episodes
    plateaus: np.ndarray  # number of plateau episodes
    extras: dict[str, np.ndarray]  # the optimizer's extra columns (restarts, generations, ...)


def _run_batch(cell: Cell, runs: list[int]) -> CellTables:
    start = time.perf_counter()
    data, net = cell.dataset.load(), cell.dataset.network()
    n = len(runs)
    budget, stop, record = cell.dataset.budget, cell.config.stopping, cell.config.record
    theta0 = initial_parameters(cell, runs)
    problem = Problem(data, net, n, cell.dataset.model.init, cell.dataset.model.init_scale)
    opt = build_optimizer(cell)
    rngs = seeding.generators(cell.config.seed, runs, opt.stream, dataset_stream_key(cell))
    view = problem.view()
    state = opt.init(theta0, view, rngs)

    final = _Final(
        status=np.zeros(n, dtype=np.int8),
        epochs=np.zeros(n, dtype=np.int64),
        best=np.full(n, np.inf),
        loss=np.full(n, np.nan),
        theta=np.empty_like(theta0),
        cost_to_success=np.full(n, np.nan),
        wall=np.full(n, np.nan),
        plateau_cost=np.zeros(n),
        plateaus=np.zeros(n, dtype=np.int64),
        extras={},
    )
    live = _Running(
        index=np.arange(n),
        epochs=np.zeros(n, dtype=np.int64),
        best=np.full(n, np.inf),
        next_mark=np.zeros(n),  # the first evaluation is always a curve point
        window=window_start(n, 2),
        plateau_start=np.full(n, np.nan),
        plateau_loss=np.full(n, np.nan),
        plateau_end=np.full(n, -np.inf),
    )
    widths = np.array([stop.patience * budget, record.plateau_window * budget])
    drops = np.array([stop.min_delta, record.plateau_min_delta])
    marks = checkpoint_marks(budget, record.checkpoints, record.spacing)
    curve: list[dict[str, np.ndarray]] = []
    episodes: list[dict[str, np.ndarray]] = []
    run_ids = np.asarray(runs)

    while True:
        # Observe every running run's incumbent (free of cost); the state holds only running runs.
        cost = problem.cost[live.index].copy()  # a snapshot: the ledger moves on when runs step
        loss = state.loss
        best = np.fmin(live.best, loss)
        window = window_push(live.window, cost, best, widths)
        stalled, flat = window_stalled(window, best, drops).T
        diverged = ~np.isfinite(loss)
        out = getattr(state, "out", None)
        solved = ~diverged & problem.solved(state.theta, loss, out)
        halt = solved | diverged | (stop.stagnation & stalled) | (cost + opt.max_step_cost > budget)
        live = _plateau_episodes(
            live._replace(best=best, window=window), cost, flat & ~(solved | diverged), halt, episodes, run_ids
        )

        due = halt | (cost >= live.next_mark)
        if due.any():
            kept = run_ids[live.index[due]] < record.trajectories
            test_loss, test_accuracy = problem.test_point(state.theta[due])
            curve.append(
                {
                    "run": run_ids[live.index[due]],
                    "epoch": live.epochs[due],
                    "cost": cost[due],
                    "loss": loss[due],
                    "best_loss": best[due],
                    "train_accuracy": problem.accuracy(state.theta[due], "train", None if out is None else out[due]),
                    "test_loss": test_loss,
                    "test_accuracy": test_accuracy,
                    "theta": [row if keep else None for row, keep in zip(state.theta[due], kept)],
                }
            )
            after = np.searchsorted(marks, cost[due], side="right")
            next_mark = live.next_mark.copy()
            next_mark[due] = np.where(after < len(marks), marks[np.minimum(after, len(marks) - 1)], np.inf)
            live = live._replace(next_mark=next_mark)

        if halt.any():
            done, stopped = live.index[halt], np.flatnonzero(halt)
            final.status[done] = np.select(
                [solved[halt], diverged[halt], stalled[halt]], [_SOLVED, _DIVERGED, _STUCK], _UNFINISHED
            )
            final.cost_to_success[done] = np.where(solved[halt], cost[halt], np.nan)
            final.wall[done] = time.perf_counter() - start
            final.epochs[done], final.best[done] = live.epochs[halt], best[halt]
            final.loss[done], final.theta[done] = loss[halt], state.theta[halt]
            for key, values in getattr(opt, "extra_columns", lambda _: {})(tree_take(state, stopped)).items():
                final.extras.setdefault(key, np.zeros(n, dtype=np.asarray(values).dtype))[done] = values
            go = np.flatnonzero(~halt)
            if not len(go):
                break
            # Drop the stopped runs once, rather than selecting the running ones at every step.
            state, live = tree_take(state, go), tree_take(live, go)
            view = problem.view(live.index)
        state = opt.step(state, view)
        live = live._replace(epochs=live.epochs + 1)

    plateaus = _episodes_table(episodes)
    np.add.at(final.plateaus, np.searchsorted(run_ids, plateaus["run"]), 1)
    np.add.at(
        final.plateau_cost, np.searchsorted(run_ids, plateaus["run"]), plateaus["end_cost"] - plateaus["start_cost"]
    )
    runs_df, curves_df = _tables(cell, runs, problem, final, theta0, curve)
    for position, (key, value) in enumerate(identity_columns(cell).items()):
        plateaus.insert(position, key, value)
    return CellTables(runs_df, curves_df, plateaus)


def _plateau_episodes(
    live: _Running,
    cost: np.ndarray,
    on: np.ndarray,
    halt: np.ndarray,
    episodes: list[dict[str, np.ndarray]],
    run_ids: np.ndarray,
) -> _Running:
    """Follow each run on and off plateaus; append the episodes that end now to ``episodes``.

    A run is ``on`` a plateau while it is not solved (nor diverged) and its best loss fell by at
    most ``plateau_min_delta`` over the last ``plateau_window`` x budget cost units (the window's
    width 1).  An episode begins where that window begins (the loss has not moved since; never
    before the previous episode's end) and ends when the run leaves the plateau ("escaped") or
    stops on it ("still on it").
    """
    window = live.window
    was_on = ~np.isnan(live.plateau_start)
    began = on & ~was_on
    ended = (was_on & ~on) | (on & halt)
    if not (began.any() or ended.any()):
        return live
    start, start_loss = live.plateau_start.copy(), live.plateau_loss.copy()
    if began.any():
        rows = np.flatnonzero(began)
        back = window.lag[rows, 1]
        start[rows] = np.maximum(window.cost[rows, back], live.plateau_end[rows])
        start_loss[rows] = window.best[rows, back]
    end = live.plateau_end
    if ended.any():
        episodes.append(
            {
                "run": run_ids[live.index[ended]],
                "start_cost": start[ended],
                "end_cost": cost[ended],
                "start_loss": start_loss[ended],
                "end_loss": live.best[ended],
                "outcome": np.where(on[ended], "still on it", "escaped"),
            }
        )
        end = np.where(ended, cost, end)
        start[ended], start_loss[ended] = np.nan, np.nan
    return live._replace(plateau_start=start, plateau_loss=start_loss, plateau_end=end)


def _episodes_table(episodes: list[dict[str, np.ndarray]]) -> pd.DataFrame:
    if not episodes:
        table = pd.DataFrame({c: pd.Series(dtype=float) for c in PLATEAU_COLUMNS})
    else:
        table = pd.DataFrame({k: np.concatenate([e[k] for e in episodes]) for k in PLATEAU_COLUMNS})
    table = table.astype({"run": np.int64, "outcome": "str"})
    return table.sort_values(["run", "start_cost"], kind="stable", ignore_index=True)


def _tables(
    cell: Cell,
    runs: list[int],
    problem: Problem,
    final: _Final,
    theta0: np.ndarray,
    curve: list[dict[str, np.ndarray]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    data, net = problem.data, problem.net
    theta = final.theta
    # The end point's gradient norm is analysis, not optimization: it is not charged.
    _, grad = net.loss_and_grad(theta, data.X_train, data.Y_train)
    with np.errstate(invalid="ignore", over="ignore"):
        grad_norm = np.linalg.norm(grad, axis=1)
    ident = identity_columns(cell)
    table = {
        **{k: [v] * len(runs) for k, v in ident.items()},
        "run": runs,
        "seed": cell.config.seed,
        "status": [STATUSES[s] for s in final.status],
        "final_loss": final.loss,
        "best_loss": final.best,
        "train_accuracy": problem.accuracy(theta, "train"),
        "test_accuracy": problem.accuracy(theta, "test"),
        "cost": problem.cost.copy(),
        "epochs": final.epochs,
        "loss_evals": problem.loss_evals,
        "grad_evals": problem.grad_evals,
        "cost_to_success": final.cost_to_success,
        "wall_time": final.wall,
        "grad_norm": grad_norm,
        "plateaus": final.plateaus,
        "plateau_share": final.plateau_cost / cell.dataset.budget,
        "theta_initial": list(theta0),
        "theta_final": list(theta),
        **final.extras,  # e.g. restarts, generations
    }
    runs_df = pd.DataFrame(table)
    for key, value in hyperparameter_columns(cell).items():
        column = key if key not in runs_df.columns else f"{cell.optimizer.name}.{key}"  # never overwrite a record
        runs_df[column] = [value] * len(runs_df)
    curves_df = pd.DataFrame(
        {
            k: [x for c in curve for x in c[k]] if k == "theta" else np.concatenate([c[k] for c in curve])
            for k in curve[0]
        }
    )
    curves_df = curves_df.sort_values(["run", "cost"], kind="stable", ignore_index=True)
    for position, (key, value) in enumerate(ident.items()):
        curves_df.insert(position, key, value)
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
    """Every optimizer setting as a column (nested settings as ``outer__inner``, scikit-learn's
    convention, so every column name works in ``DataFrame.query``)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if isinstance(value, dict):
                walk(f"{prefix}{key}__", value)
            else:
                flat[prefix + key] = value

    walk("", cell.optimizer.settings_dict())
    return flat


def concat_runs(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The runs tables of several cells as one, each column keeping its cells' type where other
    cells leave it empty: integers stay integers (``Int64``), flags booleans (``boolean``), and a
    setting that is None in some cells and a number in others is a float column."""
    runs = pd.concat(frames, ignore_index=True)
    for column in runs.columns:
        kinds = {
            f[column].dtype.kind
            for f in frames
            if column in f.columns and not (f[column].dtype == object and f[column].isna().all())
        }
        if runs[column].dtype.kind in "iub":  # no cell left it empty: a plain numpy column
            continue
        if kinds and kinds <= {"i", "u"}:
            runs[column] = runs[column].astype("Int64")
        elif kinds == {"b"}:
            runs[column] = runs[column].astype("boolean")
        elif runs[column].dtype == object and kinds <= {"i", "u", "f"}:
            runs[column] = pd.to_numeric(runs[column]).astype("float64")
    return runs
