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

Besides the curve points, the runner records two things exactly, at every step rather than at
checkpoints: the cost at which each run's best loss first reached each target of the ladder
(``Record.targets``; the table ``hits``, where the dataset's success criterion is one more target)
and each run's best loss within fixed shares of its budget (``FIXED_BUDGETS``; columns
``best_loss_10pct`` ... of the runs table: the best loss of its evaluations at cost <= that share).
"""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from bench import kernels, optimizers, seeding
from bench.config import Cell, Stopping, stable_hash
from bench.optimizers import base
from bench.optimizers.base import tree_take
from bench.optimizers.stagnation import Window, window_push, window_stalled, window_start
from bench.problem import Problem

STATUSES = ("running", "solved", "diverged", "stuck", "unfinished")
FIXED_BUDGETS = (0.1, 0.3)  # shares of the budget at which the best loss is recorded (1.0 is best_loss)
SUCCESS_TARGET = "success"  # the hits table's name for the dataset's own success criterion
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


def initial_parameters(cell: Cell, runs: range | list[int], streams: tuple[str, ...] = ()) -> np.ndarray:
    """Initial weights of ``runs``: the same for every optimizer (common random numbers).

    ``streams`` prefixes the stream names: ``("tuning",)`` gives the tuner's seeds, disjoint from
    the runs of any experiment.
    """
    gens = seeding.generators(cell.config.seed, runs, *streams, "init", dataset_stream_key(cell))
    return cell.dataset.network().init(list(gens), len(gens), cell.dataset.model.init, cell.dataset.model.init_scale)


def build_optimizer(cell: Cell, settings: Any = None) -> Any:
    return optimizers.build(cell.optimizer.name, cell.optimizer.settings if settings is None else settings)


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
    hits: pd.DataFrame  # one row per run per target: the cost at which it was first reached


def budget_column(share: float) -> str:
    """The runs table's column of the best loss within ``share`` of the budget."""
    return f"best_loss_{100 * share:g}pct"


def target_label(loss: float) -> str:
    """How a target of the ladder is named in the hits table and the report (e.g. ``1e-08``)."""
    return f"{loss:.2g}"


PLATEAU_COLUMNS = ["run", "start_cost", "end_cost", "start_loss", "end_loss", "outcome"]


def run_cell(cell: Cell, batch: int | None = None) -> CellTables:
    """Train all runs of ``cell``; returns its tables (runs, curves, plateau episodes).

    ``batch`` caps how many runs share one engine call; the numbers do not depend on it.
    """
    return _run_parts(cell, list(cell.runs), cell.optimizer.settings, list(cell.runs), (), batch)


TUNING_STREAMS = ("tuning",)  # the tuner's seeds: streams no experiment's runs use


def run_trials(cell: Cell, settings: Any, seeds: list[int], batch: int | None = None) -> CellTables:
    """Runs of ``cell``'s dataset and optimizer whose settings differ per run: run i (the tables'
    ``run`` column) uses row i of every per-run array of ``settings`` (``optimizers.space``) and
    the tuning seed ``seeds[i]`` (initial weights and random streams drawn from
    ``TUNING_STREAMS``, disjoint from every experiment's runs; the same for every optimizer).

    One engine call runs them all (``batch`` caps it); the numbers of run i are those of a run
    with row i's settings alone.  The tables' setting columns are the cell's, not the rows'.
    """
    n = len(seeds)
    for field in base.per_run_settings(settings):
        value = getattr(settings, field)
        for name, v in value.items() if isinstance(value, dict) else [(field, value)]:
            if np.ndim(v) == 1 and len(v) != n:
                raise ValueError(f"{name} has {len(v)} per-run values for {n} runs")
    return _run_parts(cell, list(range(n)), settings, list(seeds), TUNING_STREAMS, batch)


def _run_parts(
    cell: Cell, runs: list[int], settings: Any, seeds: list[int], streams: tuple[str, ...], batch: int | None
) -> CellTables:
    size = len(runs) if batch is None else max(1, batch)
    parts = [
        _run_batch(
            cell, runs[i : i + size], base.settings_take(settings, np.arange(i, min(i + size, len(runs)))),
            seeds[i : i + size], streams,
        )
        for i in range(0, len(runs), size)
    ]  # fmt: skip
    return CellTables(*(pd.concat([p[k] for p in parts], ignore_index=True) for k in range(len(CellTables._fields))))


class _Running(NamedTuple):
    """What the runner keeps per running run, aligned with the optimizer state's rows.

    The runner's own (no optimizer sees it), so ``_observe`` and the loop update its arrays in
    place; dropping stopped runs copies them."""

    index: np.ndarray  # (R,) position of the run in the batch
    epochs: np.ndarray  # (R,) steps taken
    best: np.ndarray  # (R,) best loss so far
    next_mark: np.ndarray  # (R,) cost at which the next curve point is due
    window: Window  # the best loss's recent history: for "stuck" (width 0) and plateaus (width 1)
    plateau_start: np.ndarray  # (R,) cost at which the current plateau episode began; NaN if none
    plateau_loss: np.ndarray  # (R,) best loss when it began
    plateau_end: np.ndarray  # (R,) cost at which the last episode ended (-inf before the first)
    next_target: np.ndarray  # (R,) index of the highest target of the ladder not reached yet
    next_budget: np.ndarray  # (R,) index of the first fixed budget share not passed yet


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
    hit_cost: np.ndarray  # (n, T) cost at which the best loss first reached each target; NaN if never
    hit_loss: np.ndarray  # (n, T) the best loss then
    fixed: np.ndarray  # (n, B) best loss within each share of FIXED_BUDGETS
    extras: dict[str, np.ndarray]  # the optimizer's extra columns (restarts, generations, ...)


def _run_batch(cell: Cell, runs: list[int], settings: Any, seeds: list[int], streams: tuple[str, ...]) -> CellTables:
    """Runs ``runs`` (table ids) with ``settings`` (per-run arrays aligned with ``runs``), their
    initial weights and random streams those of ``seeds`` under the stream prefix ``streams``."""
    start = time.perf_counter()
    data, net = cell.dataset.load(), cell.dataset.network()
    n = len(runs)
    budget, stop, record = cell.dataset.budget, cell.config.stopping, cell.config.record
    targets = np.asarray(record.targets())
    ladder, fixed_costs = -targets, np.asarray(FIXED_BUDGETS) * budget  # both ascending: see _observe
    theta0 = initial_parameters(cell, seeds, streams)
    problem = Problem(data, net, n, cell.dataset.model.init, cell.dataset.model.init_scale)
    opt = build_optimizer(cell, settings)
    rngs = seeding.generators(cell.config.seed, seeds, *streams, opt.stream, dataset_stream_key(cell))
    per_run = bool(base.per_run_settings(settings))
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
        hit_cost=np.full((n, len(targets)), np.nan),
        hit_loss=np.full((n, len(targets)), np.nan),
        fixed=np.full((n, len(fixed_costs)), np.inf),
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
        next_target=np.zeros(n, dtype=np.int64),
        next_budget=np.zeros(n, dtype=np.int64),
    )
    widths = np.array([stop.patience * budget, record.plateau_window * budget])
    drops = np.array([stop.min_delta, record.plateau_min_delta])
    marks = checkpoint_marks(budget, record.checkpoints, record.spacing)
    curve: list[dict[str, np.ndarray]] = []
    episodes: list[dict[str, np.ndarray]] = []
    run_ids = np.asarray(runs)

    flags = np.empty(n, dtype=np.int64)
    episode = np.empty((n, 2))  # start cost and loss of the plateau episodes that end now
    while True:
        # Observe every running run's incumbent (free of cost); the state holds only running runs.
        cost = problem.cost[live.index]  # a copy: the ledger moves on when runs step
        loss = state.loss
        best = np.fmin(live.best, loss)
        window = window_push(live.window, cost, best, widths)
        stalled_flat = window_stalled(window, best, drops)
        out = getattr(state, "out", None)
        met = problem.solved(state.theta, loss, out)
        m = len(cost)
        now = flags[:m]
        summary = _observe(
            cost, loss, live.best, best, met, stalled_flat, stop.stagnation, float(opt.max_step_cost), float(budget),
            live.next_target, live.next_budget, live.next_mark, live.plateau_start, live.plateau_loss,
            live.plateau_end, window.cost, window.best, window.lag, live.index, final.hit_cost, final.hit_loss,
            final.fixed, ladder, fixed_costs, now, episode[:m],
        )  # fmt: skip
        live = live._replace(best=best, window=window)
        if summary & _ENDS:
            ended = (now & _ENDS) != 0
            episodes.append(
                {
                    "run": run_ids[live.index[ended]],
                    "start_cost": episode[:m, 0][ended],
                    "end_cost": cost[ended],
                    "start_loss": episode[:m, 1][ended],
                    "end_loss": best[ended],
                    "outcome": np.where((now[ended] & _ON) != 0, "still on it", "escaped"),
                }
            )
        if summary & _DUE:
            due = (now & _DUE) != 0
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
            live.next_mark[due] = np.where(after < len(marks), marks[np.minimum(after, len(marks) - 1)], np.inf)

        if summary & _HALT:
            halt = (now & _HALT) != 0
            solved, diverged, stalled = ((now & bit) != 0 for bit in (_MET, _DIVERGED_NOW, _STALLED_NOW))
            done, stopped = live.index[halt], np.flatnonzero(halt)
            final.status[done] = np.select(
                [solved[halt], diverged[halt], stalled[halt]], [_SOLVED, _DIVERGED, _STUCK], _UNFINISHED
            )
            final.cost_to_success[done] = np.where(solved[halt], cost[halt], np.nan)
            final.wall[done] = time.perf_counter() - start
            final.epochs[done], final.best[done] = live.epochs[halt], best[halt]
            # A run that stops before a fixed budget share keeps its best loss up to it.
            unpassed = np.arange(len(fixed_costs)) >= live.next_budget[halt][:, None]
            final.fixed[done] = np.where(unpassed, best[halt][:, None], final.fixed[done])
            final.loss[done], final.theta[done] = loss[halt], state.theta[halt]
            for key, values in getattr(opt, "extra_columns", lambda _: {})(tree_take(state, stopped)).items():
                final.extras.setdefault(key, np.zeros(n, dtype=np.asarray(values).dtype))[done] = values
            go = np.flatnonzero(~halt)
            if not len(go):
                break
            # Drop the stopped runs once, rather than selecting the running ones at every step.
            state, live = tree_take(state, go), tree_take(live, go)
            view = problem.view(live.index)
            if per_run:  # the optimizer sees only the running rows: so must its per-run settings
                opt = build_optimizer(cell, base.settings_take(settings, live.index))
        state = opt.step(state, view)
        live.epochs[:] += 1

    plateaus = _episodes_table(episodes)
    np.add.at(final.plateaus, np.searchsorted(run_ids, plateaus["run"]), 1)
    np.add.at(
        final.plateau_cost, np.searchsorted(run_ids, plateaus["run"]), plateaus["end_cost"] - plateaus["start_cost"]
    )
    runs_df, curves_df = _tables(cell, runs, problem, final, theta0, curve)
    hits = _hits_table(run_ids, targets, final)
    for table in (plateaus, hits):
        for position, (key, value) in enumerate(identity_columns(cell).items()):
            table.insert(position, key, value)
    return CellTables(runs_df, curves_df, plateaus, hits)


# What ``_observe`` says of each run, as bits of its flags.
_HALT, _DUE, _MET, _DIVERGED_NOW, _STALLED_NOW, _ON, _ENDS = (1 << bit for bit in range(7))


@kernels.jit
def _observe(cost, loss, previous, best, met, stalled_flat, stagnation, max_step_cost, budget, next_target,
             next_budget, next_mark, plateau_start, plateau_loss, plateau_end, window_cost, window_best, lag, index,
             hit_cost, hit_loss, fixed, ladder, fixed_costs, flags, episode):  # fmt: skip
    """One step's bookkeeping of every running run, in one pass; returns the OR of the flags.

    Per run r (its row ``index[r]`` in the final arrays), with its cost ``cost[r]``, its loss, its
    best loss before (``previous``) and after (``best``) this evaluation, whether it meets its
    success criterion (``met``), and the window's answers for "stuck" and for plateaus
    (``stalled_flat`` (R, 2), the look-backs ``lag`` (R, 2) into the window's log):

    * Targets and fixed budgets.  ``ladder`` (the negated targets) and ``fixed_costs`` ascend, and
      -best and the cost never decrease, so each run compares with its next level only, and fills
      every level it passes now: the cost and best loss at which it reached each target (its
      ``hit_cost``, ``hit_loss``), and its best loss before this evaluation (every earlier one cost
      less) within each budget share it passes (``fixed``).
    * Status: diverged (a non-finite loss), solved (met, not diverged), halting (solved, diverged,
      stalled if ``stagnation``, or a next step that would overrun the budget), and a curve point
      due (halting, or its cost reached ``next_mark``).
    * Plateau episodes.  A run is on a plateau while it is not solved (nor diverged) and the
      plateau width's window finds it stalled.  An episode begins where that window begins (the
      loss has not moved since; never before the previous episode's end) and ends when the run
      leaves the plateau ("escaped") or stops on it ("still on it"); an ending episode's start
      cost and loss go to ``episode`` (R, 2), and the run's ``plateau_start`` and
      ``plateau_loss`` become NaN again.
    """
    summary = 0
    for r in range(cost.shape[0]):
        c, b, at = cost[r], best[r], index[r]
        j = next_target[r]
        while j < ladder.shape[0] and ladder[j] <= -b:
            hit_cost[at, j] = c
            hit_loss[at, j] = b
            j += 1
        next_target[r] = j
        j = next_budget[r]
        while j < fixed_costs.shape[0] and fixed_costs[j] < c:
            fixed[at, j] = previous[r]
            j += 1
        next_budget[r] = j

        diverged = not math.isfinite(loss[r])
        solved = met[r] and not diverged
        halt = solved or diverged or (stagnation and stalled_flat[r, 0]) or c + max_step_cost > budget
        on = stalled_flat[r, 1] and not (solved or diverged)
        was_on = not math.isnan(plateau_start[r])
        if on and not was_on:
            back = lag[r, 1]
            plateau_start[r] = max(window_cost[r, back], plateau_end[r])
            plateau_loss[r] = window_best[r, back]
        ends = (was_on and not on) or (on and halt)
        if ends:
            episode[r, 0], episode[r, 1] = plateau_start[r], plateau_loss[r]
            plateau_end[r] = c
            plateau_start[r] = plateau_loss[r] = math.nan
        f = (
            _HALT * halt
            + _DUE * (halt or c >= next_mark[r])
            + _MET * solved
            + _DIVERGED_NOW * diverged
            + _STALLED_NOW * stalled_flat[r, 0]
            + _ON * on
            + _ENDS * ends
        )
        flags[r] = f
        summary |= f
    return summary


def _hits_table(run_ids: np.ndarray, targets: np.ndarray, final: _Final) -> pd.DataFrame:
    """One row per run per target (the ladder, then the success criterion): the cost at which
    the run's best loss first reached it (NaN if never) and its best loss then."""
    n, count = final.hit_cost.shape
    solved = final.status == _SOLVED
    return pd.DataFrame(
        {
            "run": np.repeat(run_ids, count + 1),
            "target": np.tile([*map(target_label, targets), SUCCESS_TARGET], n),
            "target_loss": np.tile([*targets, np.nan], n),
            "cost": np.column_stack([final.hit_cost, final.cost_to_success]).reshape(-1),
            "loss": np.column_stack([final.hit_loss, np.where(solved, final.best, np.nan)]).reshape(-1),
        }
    )


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
        **{budget_column(share): final.fixed[:, j] for j, share in enumerate(FIXED_BUDGETS)},
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
        "dtype": d.model.dtype,
        "backend": cell.backend,
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
