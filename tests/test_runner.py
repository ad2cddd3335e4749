"""The runner: batch independence, common random numbers, statuses, budget, curves."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from bench import runner
from bench.config import Stopping, from_dict
from bench.runner import (
    check_budget,
    checkpoint_marks,
    concat_runs,
    initial_parameters,
    run_cell,
    status_meanings,
)

VOLATILE = ["wall_time"]


def cells_of(doc):
    return from_dict(doc).cells()


def test_the_compiled_bookkeeping_is_its_python_source(tiny, monkeypatch):
    """The runner's per-step bookkeeping and the stagnation window run as numba-compiled loops;
    run as the plain Python they are compiled from (what runs where numba is missing), every
    table is the same, bit for bit: stagnation stopping, a narrow plateau window, restarts."""
    from bench.optimizers import stagnation

    tiny["experiment"]["runs"] = 4
    tiny["stopping"] = {"stagnation": True, "patience": 0.1}
    tiny["record"] = {"plateau_window": 0.02}
    tiny["optimizers"] += [{"name": "restarts", "base": "gd", "base_settings": {"learning_rate": 2.0}, "patience": 60}]
    statuses = set()
    for cell in cells_of(tiny):
        compiled = run_cell(cell)
        with monkeypatch.context() as m:
            for module, name in ((runner, "_observe"), (stagnation, "_push"), (stagnation, "_stalled")):
                m.setattr(module, name, getattr(module, name).py_func)
            plain = run_cell(cell)
        statuses |= set(compiled.runs["status"])
        assert len(compiled.plateaus) and compiled.hits["cost"].notna().any()
        for a, b in zip(compiled, plain):
            pd.testing.assert_frame_equal(
                a.drop(columns=VOLATILE, errors="ignore"), b.drop(columns=VOLATILE, errors="ignore")
            )
    assert statuses == {"solved", "stuck"}


def test_results_do_not_depend_on_batch_size(tiny):
    tiny["experiment"]["runs"] = 7
    tiny["optimizers"] += [
        {"name": "ga", "population_size": 10},
        {"name": "restarts", "base": "rprop", "patience": 60},
        {"name": "random_search", "samples_per_step": 3},
    ]
    for cell in cells_of(tiny):
        runs, curves, plateaus, hits = run_cell(cell)
        for batch in (1, 3):
            runs_b, curves_b, plateaus_b, hits_b = run_cell(cell, batch=batch)
            pd.testing.assert_frame_equal(runs.drop(columns=VOLATILE), runs_b.drop(columns=VOLATILE))
            pd.testing.assert_frame_equal(curves, curves_b)
            pd.testing.assert_frame_equal(plateaus, plateaus_b)
            pd.testing.assert_frame_equal(hits, hits_b)


def test_every_optimizer_starts_run_i_from_the_same_weights(tiny):
    gd_cell, rprop_cell = cells_of(tiny)
    gd_runs, _, *_ = run_cell(gd_cell)
    rprop_runs, _, *_ = run_cell(rprop_cell)
    for a, b in zip(gd_runs["theta_initial"], rprop_runs["theta_initial"]):
        np.testing.assert_array_equal(a, b)
    starts = np.stack(gd_runs["theta_initial"])
    assert len({tuple(s) for s in starts}) == len(starts)  # runs differ from each other
    np.testing.assert_array_equal(starts[2:4], initial_parameters(gd_cell, [2, 3]))


def test_solved_runs_stop_at_success_and_the_budget_is_respected(tiny):
    tiny["experiment"]["runs"] = 20
    for cell in cells_of(tiny):
        runs, curves, *_ = run_cell(cell)
        assert (runs["cost"] <= cell.dataset.budget).all()
        solved = runs[runs["status"] == "solved"]
        assert len(solved) > 0
        assert (solved["cost_to_success"] == solved["cost"]).all()
        assert (solved["train_accuracy"] == 1.0).all()
        unsolved = runs[runs["status"] != "solved"]
        assert unsolved["cost_to_success"].isna().all()
        assert (unsolved["cost"] > cell.dataset.budget - 3).all()  # ran until the next step would overrun
        # Costs: 3 units per loss-and-gradient evaluation, one at the start and one per epoch.
        np.testing.assert_array_equal(runs["cost"], 3 * (runs["epochs"] + 1))
        np.testing.assert_array_equal(runs["grad_evals"], runs["epochs"] + 1)
        assert (runs["loss_evals"] == 0).all()


def test_final_row_matches_the_network_at_theta_final(tiny):
    from bench import datasets
    from bench.mlp import MLP

    cell = cells_of(tiny)[0]
    runs, _, *_ = run_cell(cell)
    data, net = datasets.load("xor"), MLP([2, 2, 1])
    theta = np.stack(runs["theta_final"])
    loss, grad = net.loss_and_grad(theta, data.X_train, data.Y_train)
    np.testing.assert_allclose(runs["final_loss"], loss, rtol=1e-13)
    np.testing.assert_allclose(runs["grad_norm"], np.linalg.norm(grad, axis=1), rtol=1e-13)
    assert (runs["best_loss"] <= runs["final_loss"]).all()
    assert runs["learning_rate"].tolist() == [2.0] * len(runs)  # hyperparameters are columns


@pytest.mark.parametrize("spacing", ["log", "linear"])
def test_curves_have_spaced_checkpoints_and_end_at_the_stop(tiny, spacing):
    tiny["record"]["spacing"] = spacing
    cell = cells_of(tiny)[0]
    runs, curves, *_ = run_cell(cell)
    for run, points in curves.groupby("run"):
        row = runs[runs["run"] == run].iloc[0]
        assert points["cost"].iloc[0] == 3 and points["epoch"].iloc[0] == 0
        assert points["cost"].iloc[-1] == row["cost"] and points["loss"].iloc[-1] == row["final_loss"]
        assert points["cost"].is_monotonic_increasing and points["best_loss"].is_monotonic_decreasing
        assert len(points) <= 12 + 2
    np.testing.assert_array_equal(checkpoint_marks(1000, 4, "linear"), [250, 500, 750, 1000])
    np.testing.assert_array_equal(checkpoint_marks(1000, 4, "log"), [1, 10, 100, 1000])


@pytest.mark.parametrize("spacing", ["log", "linear"])
def test_one_checkpoint_records_only_the_first_evaluation_and_the_stop(tiny, spacing):
    # One log-spaced checkpoint is the cost 1 (the first evaluation), one linear one the budget.
    tiny["record"] = {"checkpoints": 1, "spacing": spacing}
    runs, curves, *_ = run_cell(cells_of(tiny)[0])
    assert checkpoint_marks(900, 1, spacing).tolist() == [1 if spacing == "log" else 900]
    for run, points in curves.groupby("run"):
        stop = runs.loc[runs["run"] == run, "cost"].iloc[0]
        assert points["cost"].tolist() == sorted({3, stop}), run


def test_huge_learning_rates_diverge_as_data_not_errors(tiny):
    tiny["datasets"] = [{"name": "diabetes", "model": {"hidden": [4], "activation": "identity", "reduction": "mean"}}]
    tiny["optimizers"] = [{"name": "gd", "learning_rate": [1e-3, 1e3]}]
    tiny["experiment"]["budget"] = 300
    small, huge = (run_cell(cell)[0] for cell in cells_of(tiny))  # pytest turns warnings into errors
    assert (huge["status"] == "diverged").all()
    assert not np.isfinite(huge["final_loss"]).any()
    assert (huge["cost"] < 300).all()
    assert (small["status"] != "diverged").all()


def test_stuck_and_unfinished_follow_the_definition_on_every_recorded_curve(tiny):
    """Every evaluation is a curve point: each unsolved run's status is the README's rule applied
    to its own best-loss history (the constructed edge cases are in test_stagnation.py)."""
    budget = 1200
    tiny["experiment"].update(runs=20, budget=budget)
    tiny["record"] = {"checkpoints": budget, "spacing": "linear"}
    tiny["optimizers"] = [{"name": "gd", "learning_rate": 1.0}]
    runs, curves, *_ = run_cell(cells_of(tiny)[0])
    window = 0.25 * budget
    for _, row in runs[runs["status"] != "solved"].iterrows():
        points = curves[curves["run"] == row["run"]]
        assert len(points) == row["epochs"] + 1  # every evaluation was recorded
        end = points["cost"].iloc[-1]
        then = points.loc[points["cost"] <= end - window, "best_loss"].iloc[-1]
        drop = (then - row["best_loss"]) / then
        assert row["status"] == ("stuck" if drop <= 1e-3 else "unfinished"), (row["run"], drop)
    assert set(runs["status"]) == {"solved", "stuck", "unfinished"}


def test_stagnation_switch_stops_stuck_runs_early(tiny):
    tiny["datasets"] = [{"name": "moons", "success": {"kind": "accuracy", "split": "test", "target": 1.0}}]
    tiny["optimizers"] = [{"name": "gd", "learning_rate": 1e-9}]
    tiny["experiment"]["budget"] = 600
    tiny["stopping"] = {"stagnation": True, "patience": 0.25}
    runs, _, *_ = run_cell(cells_of(tiny)[0])
    assert (runs["status"] == "stuck").all()
    # The first evaluation is the last real improvement (cost 3): stopped once 150 units passed.
    assert (runs["cost"] == 153).all()


@pytest.mark.parametrize("variant", ["rprop+", "irprop+"])
def test_rprop_variants_run_through_the_shared_loop(tiny, variant):
    tiny["optimizers"] = [{"name": "rprop", "variant": variant}]
    runs, _, *_ = run_cell(cells_of(tiny)[0])
    assert set(runs["status"]) <= {"solved", "stuck", "unfinished"}
    assert (runs["status"] == "solved").any()


def test_hits_and_fixed_budgets_match_a_curve_recorded_at_every_step(tiny):
    """The exact hitting costs and fixed-budget losses, against the same runs' curves recorded at
    every evaluation (a checkpoint per cost unit): the first cost whose best loss is at or below
    each target, and the best loss of the last evaluation within each budget share."""
    budget = tiny["experiment"]["budget"]
    tiny["record"] = {"checkpoints": budget, "spacing": "linear", "target_high": 1.0, "target_low": 1e-3}
    tiny["record"]["targets_per_decade"] = 10
    tiny["optimizers"] += [
        {"name": "ga", "population_size": 10},
        {"name": "restarts", "base": "rprop", "patience": 60},
        {"name": "momentum", "learning_rate": 0.5},
    ]
    reached_some = 0
    for cell in cells_of(tiny):
        runs, curves, _, hits = run_cell(cell)
        targets = np.geomspace(1.0, 1e-3, 31)
        ladder = hits[hits["target"] != "success"]
        assert len(hits) == len(runs) * 32 and list(pd.unique(ladder["target"]))[:3] == ["1", "0.79", "0.63"]
        np.testing.assert_allclose(ladder["target_loss"].to_numpy().reshape(len(runs), 31)[0], targets, rtol=1e-12)
        for run, curve in curves.groupby("run"):
            mine = ladder[ladder["run"] == run]
            for target, cost, loss in zip(targets, mine["cost"], mine["loss"]):
                below = curve[curve["best_loss"] <= target]
                if below.empty:
                    assert np.isnan(cost) and np.isnan(loss)
                else:
                    assert cost == below["cost"].iloc[0] and loss == below["best_loss"].iloc[0]
                    reached_some += 1
            row = runs[runs["run"] == run].iloc[0]
            success = hits[(hits["run"] == run) & (hits["target"] == "success")].iloc[0]
            assert success["cost"] == row["cost_to_success"] or (
                np.isnan(success["cost"]) and row["status"] != "solved"
            )
            # a solved run stops at its success: its best loss then is its best loss
            assert success["loss"] == row["best_loss"] if row["status"] == "solved" else np.isnan(success["loss"])
            for share, column in ((0.1, "best_loss_10pct"), (0.3, "best_loss_30pct")):
                within = curve[curve["cost"] <= share * budget]["best_loss"]
                assert row[column] == (within.min() if len(within) else np.inf), (cell.optimizer.label, run, share)
    assert reached_some > 100


def test_the_status_meanings_state_the_stopping_settings_they_are_given():
    custom = status_meanings(Stopping(patience=0.5, min_delta=0.01))
    assert "at most 1 % over the last 50 % of its budget" in custom["stuck"]
    assert "by more than 1 % over that window" in custom["unfinished"]
    default = status_meanings()
    assert "at most 0.1 % over the last 25 % of its budget" in default["stuck"]
    assert "by more than 0.1 % over that window" in default["unfinished"]
    assert default == status_meanings(Stopping())


@pytest.mark.parametrize(
    "optimizer, need",  # the first evaluation and one step, in cost units (a forward pass is 1, a gradient 3)
    [
        ({"name": "gd"}, 3 + 3),
        ({"name": "ga", "population_size": 10}, 10 + 10),
        ({"name": "random_search", "samples_per_step": 3}, 1 + 3),
        ({"name": "restarts", "base": "gd"}, 3 + (3 + 3)),  # a step may also evaluate a fresh start
    ],
)
def test_the_smallest_budget_allows_the_first_evaluation_and_one_step(tiny, optimizer, need):
    tiny["optimizers"] = [optimizer]
    tiny["experiment"]["budget"] = need
    check_budget(cells_of(tiny)[0])  # just enough: accepted
    tiny["experiment"]["budget"] = need - 1
    with pytest.raises(ValueError, match=rf"^budget {need - 1} is too small .* at least {need} cost units"):
        check_budget(cells_of(tiny)[0])


def test_a_run_on_the_smallest_budget_takes_one_step(tiny):
    tiny["optimizers"] = [{"name": "gd", "learning_rate": 2.0}]
    tiny["experiment"]["budget"] = 6
    runs, curves, *_ = run_cell(cells_of(tiny)[0])
    assert (runs["epochs"] == 1).all() and (runs["cost"] == 6).all()
    assert curves["cost"].tolist() == [3, 6] * len(runs)


def test_batch_caps_the_runs_of_each_engine_call(tiny, monkeypatch):
    """The memory check sizes a batch as ``batch`` runs: the runner must not put more in one."""
    sizes = []
    real = runner._run_batch

    def spy(cell, runs, *rest):
        sizes.append(len(runs))
        return real(cell, runs, *rest)

    monkeypatch.setattr(runner, "_run_batch", spy)
    cell = cells_of(tiny)[0]
    for batch, expected in ((None, [6]), (1, [1] * 6), (4, [4, 2])):
        sizes.clear()
        run_cell(cell, batch=batch)
        assert sizes == expected, batch


def _plateau_episodes_by_definition(cost, best, solved, window, min_delta):
    """Plateau episodes of one run from its best loss at every evaluation (the docstring's rule)."""
    episodes, start, start_loss, last_end = [], None, None, -np.inf
    for i in range(len(cost)):
        back = np.flatnonzero(cost <= cost[i] - window)
        on = bool(len(back)) and not (solved and i == len(cost) - 1)
        on = on and best[i] >= (1.0 - min_delta) * best[back[-1]]
        if on and start is None:
            start, start_loss = max(cost[back[-1]], last_end), best[back[-1]]
        if start is not None and (not on or i == len(cost) - 1):
            outcome = "still on it" if on else "escaped"
            episodes.append((start, cost[i], start_loss, best[i], outcome))
            start, last_end = None, cost[i]
    return episodes


def test_plateau_episodes_follow_the_definition_on_every_recorded_curve(tiny):
    """Every evaluation is a curve point: each run's plateau episodes are the rule of the plateau
    window (5 % of the budget, wider than a step and narrower than the stuck window) applied to
    its own best-loss history."""
    budget = tiny["experiment"]["budget"]
    tiny["record"] = {"checkpoints": budget, "spacing": "linear"}
    found = 0
    for cell in cells_of(tiny):
        runs, curves, plateaus, _ = run_cell(cell)
        for run, points in curves.groupby("run"):
            row = runs[runs["run"] == run].iloc[0]
            assert len(points) == row["epochs"] + 1  # every evaluation was recorded
            expected = _plateau_episodes_by_definition(
                points["cost"].to_numpy(),
                points["best_loss"].to_numpy(),
                row["status"] == "solved",
                0.05 * budget,
                1e-3,
            )
            mine = plateaus[plateaus["run"] == run]
            got = list(mine[["start_cost", "end_cost", "start_loss", "end_loss", "outcome"]].itertuples(index=False))
            assert [tuple(e) for e in got] == expected, (cell.optimizer.label, run)
            assert row["plateaus"] == len(expected)
            found += len(expected)
    assert found > 0


@pytest.mark.parametrize("trajectories", [0, 1, 2])
def test_theta_is_kept_at_every_curve_point_of_the_first_runs_only(tiny, trajectories):
    tiny["experiment"]["runs"] = 3
    tiny["record"]["trajectories"] = trajectories
    runs, curves, *_ = run_cell(cells_of(tiny)[0])
    for run, points in curves.groupby("run"):
        kept = [theta is not None for theta in points["theta"]]
        assert kept == [run < trajectories] * len(points), run
        if run < trajectories:
            np.testing.assert_array_equal(points["theta"].iloc[0], runs["theta_initial"][run])
            np.testing.assert_array_equal(points["theta"].iloc[-1], runs["theta_final"][run])


def test_wall_time_is_the_time_since_the_batch_began(tiny):
    cell = cells_of(tiny)[0]
    begin = time.perf_counter()
    runs, *_ = run_cell(cell)
    elapsed = time.perf_counter() - begin
    assert ((runs["wall_time"] >= 0) & (runs["wall_time"] <= elapsed)).all(), (runs["wall_time"], elapsed)


def test_the_tables_have_a_plain_row_index(tiny):
    tiny["record"]["checkpoints"] = 50  # plateau episodes and curve points of several runs, sorted
    for batch in (None, 2):
        tables = run_cell(cells_of(tiny)[0], batch=batch)
        assert len(tables.plateaus) > 1
        for name, table in tables._asdict().items():
            pd.testing.assert_index_equal(table.index, pd.RangeIndex(len(table)), exact=True, obj=name)


def test_runs_that_all_stop_at_their_first_evaluation_have_one_curve_point_each(tiny):
    tiny["datasets"] = [{"name": "xor", "success": {"kind": "loss", "split": "train", "target": 1e6}}]
    for cell in cells_of(tiny):
        runs, curves, plateaus, _ = run_cell(cell)
        assert (runs["status"] == "solved").all() and (runs["epochs"] == 0).all()
        assert (runs["cost_to_success"] == runs["cost"]).all()
        assert curves["run"].tolist() == runs["run"].tolist() and (curves["epoch"] == 0).all()
        np.testing.assert_array_equal(curves["cost"], runs["cost"])
        assert plateaus.empty


def test_concat_runs_keeps_each_columns_type_where_cells_leave_it_empty():
    def frame(runs, **columns):
        return pd.DataFrame({"run": runs, **{k: pd.Series(v, dtype=d) for k, (v, d) in columns.items()}})

    empty = ([None], object)
    frames = [
        frame(
            [0, 1],
            ints=([1, 2], "int64"),
            mixed_ints=([1, 2], "int64"),
            numbers=([1, 2], "int64"),
            three_kinds=([1, 2], "int64"),
            words=(["a", "b"], None),
            objects=(["a", None], object),  # not left empty: one run has a value
            flag=([True, False], bool),
        ),
        frame(
            [2],
            ints=([3], "int64"),
            mixed_ints=([3], "uint8"),
            numbers=([2.5], "float64"),
            three_kinds=([3], "uint8"),
            words=(["c"], None),
            objects=empty,
            flag=empty,
        ),
        frame([3], ints=empty, mixed_ints=empty, numbers=empty, three_kinds=([0.5], "float64"), words=empty),
        frame([4], ints=empty, mixed_ints=empty, numbers=empty, three_kinds=empty, objects=empty, flag=empty),
    ]
    runs = concat_runs(frames)
    pd.testing.assert_index_equal(runs.index, pd.RangeIndex(5), exact=True)
    assert runs["run"].dtype == np.int64 and runs["run"].tolist() == [0, 1, 2, 3, 4]
    for column in ("ints", "mixed_ints"):
        assert runs[column].dtype == "Int64", column
        assert runs[column].tolist() == [1, 2, 3, pd.NA, pd.NA], column
    for column, values in (("numbers", [1, 2, 2.5]), ("three_kinds", [1, 2, 3, 0.5])):
        assert runs[column].dtype == np.float64, column
        np.testing.assert_array_equal(runs[column], values + [np.nan] * (5 - len(values)))
    assert runs["flag"].dtype == "boolean" and runs["flag"].tolist() == [True, False, pd.NA, pd.NA, pd.NA]
    for column in ("words", "objects"):
        assert runs[column].dtype.kind == "O", column
        assert runs[column].iloc[0] == "a" and runs[column].iloc[3:].isna().all(), column
    assert runs["words"].iloc[2] == "c"
