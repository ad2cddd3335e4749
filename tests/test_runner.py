"""The runner: batch independence, common random numbers, statuses, budget, curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.config import from_dict
from bench.runner import checkpoint_marks, initial_parameters, run_cell

VOLATILE = ["wall_time"]


def cells_of(doc):
    return from_dict(doc).cells()


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
            for share, column in ((0.1, "best_loss_10pct"), (0.3, "best_loss_30pct")):
                within = curve[curve["cost"] <= share * budget]["best_loss"]
                assert row[column] == (within.min() if len(within) else np.inf), (cell.optimizer.label, run, share)
    assert reached_some > 100
