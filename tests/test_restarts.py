"""Random restarts and random search: rescue of stuck runs, budget and restart accounting."""

from __future__ import annotations

import numpy as np
import pytest

from bench import datasets
from bench.config import ConfigError, from_dict
from bench.mlp import MLP
from bench.runner import run_cell

BUDGET = 3000


def xor_doc(*opts):
    return {
        "experiment": {"name": "r", "seed": 0, "runs": 20, "budget": BUDGET},
        "model": {"init_scale": 1.0},
        "datasets": [{"name": "xor"}],
        "optimizers": list(opts),
    }


@pytest.fixture(scope="module")
def bare_and_restarted():
    doc = xor_doc(
        {"name": "rprop", "variant": "irprop-"},
        {"name": "restarts", "base": "rprop", "base_settings": {"variant": "irprop-"}, "patience": 300},
    )
    return [run_cell(cell)[0] for cell in from_dict(doc).cells()]


def test_restarts_rescue_runs_the_bare_optimizer_leaves_stuck(bare_and_restarted):
    bare, restarted = bare_and_restarted
    bare_solved, restarted_solved = bare["status"] == "solved", restarted["status"] == "solved"
    assert (bare["status"] == "stuck").sum() >= 3  # irprop- stalls on XOR 2-2-1 (on saturated plateaus)
    assert restarted_solved.sum() > bare_solved.sum()
    rescued = restarted_solved & ~bare_solved
    assert rescued.any() and (restarted.loc[rescued, "restarts"] >= 1).all()
    # The first attempt is the bare run itself (same start weights): no restart, same result.
    same = restarted["restarts"] == 0
    np.testing.assert_array_equal(restarted.loc[same, "cost_to_success"], bare.loc[same, "cost_to_success"])


def test_restart_budget_and_accounting(bare_and_restarted):
    _, runs = bare_and_restarted
    assert (runs["cost"] <= BUDGET).all()
    # Every attempt starts with one loss-and-gradient evaluation; every epoch costs one more.
    np.testing.assert_array_equal(runs["grad_evals"], runs["epochs"] + 1 + runs["restarts"])
    np.testing.assert_array_equal(runs["cost"], 3 * runs["grad_evals"])
    solved = runs[runs["status"] == "solved"]
    assert (solved["restart_cost"] < solved["cost_to_success"]).all()
    assert (solved.loc[solved["restarts"] == 0, "restart_cost"] == 0).all()
    late = solved[solved["restart_cost"] > 0]
    assert len(late) and (late["restarts"] >= 1).all()


def test_restarts_report_their_best_point():
    doc = xor_doc({"name": "restarts", "base": "gd", "base_settings": {"learning_rate": 0.5}, "patience": 60})
    runs, curves, *_ = run_cell(from_dict(doc).cells()[0])
    for _, points in curves.groupby("run"):
        assert points["loss"].is_monotonic_decreasing  # the incumbent never gets worse
    net, data = MLP([2, 2, 1]), datasets.load("xor")
    np.testing.assert_allclose(net.loss(np.stack(runs["theta_final"]), data.X_train, data.Y_train), runs["final_loss"])


def test_random_search_improves_on_its_first_sample_within_budget():
    runs, curves, *_ = run_cell(from_dict(xor_doc({"name": "random_search", "samples_per_step": 7})).cells()[0])
    first = curves[curves["epoch"] == 0].set_index("run")["loss"]
    assert (runs.set_index("run")["best_loss"] < first).all()
    assert (runs["cost"] <= BUDGET).all() and (runs["cost"] > BUDGET - 7).all()
    np.testing.assert_array_equal(runs["cost"], runs["loss_evals"])
    np.testing.assert_array_equal(runs["loss_evals"], 1 + 7 * runs["epochs"])


@pytest.mark.parametrize(
    ("settings", "path", "message"),
    [
        ({"base": "restarts"}, "optimizers[0].base", "base must be one of"),
        (
            {"base": "gd", "base_settings": {"learning_rat": 1.0}},
            "optimizers[0].base_settings",
            "base_settings for gd: unknown setting 'learning_rat' (did you mean 'learning_rate'?)",
        ),
        ({"patience": 0}, "optimizers[0].patience", "patience must be in (0, inf)"),
    ],
)
def test_bad_restart_settings_are_named(settings, path, message):
    with pytest.raises(ConfigError) as info:
        from_dict(xor_doc({"name": "restarts", **settings}))
    assert info.value.path == path and message in info.value.message


def test_restart_weights_are_shared_across_base_optimizers(monkeypatch):
    """The k-th restart of run i starts from the same weights whatever the base (paired comparisons)."""
    from bench.optimizers.protocol import GradientMethod

    starts: list[tuple[tuple[int, ...], np.ndarray]] = []
    original = GradientMethod.init

    def recording(self, theta0, problem, rngs=None):
        starts.append((tuple(problem.rows), np.array(theta0)))
        return original(self, theta0, problem, rngs)

    monkeypatch.setattr(GradientMethod, "init", recording)
    per_base = []
    for base, settings in (("gd", {"learning_rate": 0.5}), ("momentum", {"learning_rate": 0.2, "momentum": 0.9})):
        starts.clear()
        doc = xor_doc({"name": "restarts", "base": base, "base_settings": settings, "patience": 30, "min_delta": 0.05})
        run_cell(from_dict(doc).cells()[0])
        attempts: dict[int, list[np.ndarray]] = {}
        for rows, theta in starts[1:]:  # starts[0]: the first attempt of every run
            for row, weights in zip(rows, theta):
                attempts.setdefault(row, []).append(weights)
        per_base.append(attempts)
    gd, momentum = per_base
    compared = 0
    for run in set(gd) & set(momentum):
        for a, b in zip(gd[run], momentum[run]):
            np.testing.assert_array_equal(a, b)
            compared += 1
    assert compared >= 20  # many restarts of many runs were compared
    assert any(len(gd[r]) != len(momentum.get(r, [])) for r in gd)  # the bases restart at different times


def test_an_attempt_that_diverges_is_restarted():
    doc = xor_doc({"name": "restarts", "base": "gd", "base_settings": {"learning_rate": 1e6}, "patience": 1e9})
    doc["datasets"] = [{"name": "diabetes", "model": {"hidden": [3], "activation": "identity", "reduction": "mean"}}]
    runs, _, *_ = run_cell(from_dict(doc).cells()[0])
    # A window of 1e9 cost units never stalls: every restart was a divergence.
    assert (runs["restarts"] > 0).all()
    assert np.isfinite(runs["final_loss"]).all() and (runs["status"] != "diverged").all()
    np.testing.assert_array_equal(runs["grad_evals"], runs["epochs"] + 1 + runs["restarts"])


def test_a_flat_attempt_restarts_exactly_when_its_window_is_full():
    """A hand-computed schedule.  gd with a learning rate of 1e-12 never changes the loss, so every
    attempt stalls as soon as it has a point ``patience`` = 30 units back: an attempt whose first
    evaluation (3 units) ends at cost s is restarted by the step that reaches s + 30.  The first
    attempt's evaluation ends at 3, so restarts come at 33, 66, ..., 297 (each new attempt's first
    evaluation ending 3 units after its restart); the last one, at 297, brings the cost to 300, the
    budget, where the runner stops (one more step and a restart could cost 6 > 0 units left):
    9 restarts, 100 gradient evaluations (10 first evaluations, 90 epochs)."""
    doc = xor_doc({"name": "restarts", "base": "gd", "base_settings": {"learning_rate": 1e-12}, "patience": 30})
    doc["experiment"].update(runs=3, budget=300)
    runs = run_cell(from_dict(doc).cells()[0])[0]
    assert runs["restarts"].tolist() == [9, 9, 9] and runs["cost"].tolist() == [300.0] * 3
    assert runs["grad_evals"].tolist() == [100] * 3 and runs["epochs"].tolist() == [90] * 3
    assert set(runs["restart_cost"]) <= {0.0, *(33.0 * k for k in range(1, 10))}


@pytest.mark.parametrize("budget", [299, 300, 301, 302])
def test_restarts_never_spend_more_than_the_budget(budget):
    """A step plus a restart costs 6 units: the runner stops a run that has fewer than 6 left."""
    doc = xor_doc({"name": "restarts", "base": "gd", "base_settings": {"learning_rate": 1e-12}, "patience": 30})
    doc["experiment"].update(runs=2, budget=budget)
    runs = run_cell(from_dict(doc).cells()[0])[0]
    assert (runs["cost"] <= budget).all() and (runs["cost"] > budget - 6).all()


def test_restarts_do_not_depend_on_the_batch():
    """Runs that restart and runs that do not share a batch: each restarts on its own schedule,
    exactly as when it runs alone (a restart rule that waited for every row would differ)."""
    doc = xor_doc({"name": "restarts", "base": "gd", "base_settings": {"learning_rate": 2.0}, "patience": 90})
    doc["experiment"].update(runs=12, budget=1500)
    cell = from_dict(doc).cells()[0]
    together, alone = run_cell(cell)[0], run_cell(cell, batch=1)[0]
    assert 0 < (together["restarts"] == 0).sum() < 12  # some runs restart, some do not
    columns = ["status", "restarts", "restart_cost", "cost", "final_loss", "epochs"]
    assert together[columns].equals(alone[columns])


def test_min_delta_is_a_share_below_one():
    from_dict(xor_doc({"name": "restarts", "min_delta": 0.0}))
    with pytest.raises(ConfigError, match=r"min_delta must be in \[0, 1\), got 1.0"):
        from_dict(xor_doc({"name": "restarts", "min_delta": 1.0}))


def test_random_search_keeps_the_best_of_its_draws_against_a_hand_loop():
    """Each step draws samples_per_step points from the run's own stream (the init distribution)
    and keeps the best if strictly better than the incumbent; replayed here from the same streams."""
    from bench import optimizers
    from bench.problem import Problem

    net, data = MLP([2, 2, 1]), datasets.load("xor")
    problem = Problem(data, net, 3, init="uniform", init_scale=1.0)
    view = problem.view()
    rngs = np.array([np.random.default_rng(s) for s in (1, 2, 3)], dtype=object)
    twins = [np.random.default_rng(s) for s in (1, 2, 3)]
    opt = optimizers.build("random_search", optimizers.make_settings("random_search", samples_per_step=4))
    theta0 = np.concatenate([view.draw(r, 1) for r in [np.random.default_rng(9)] * 3])
    state = opt.init(theta0, view, rngs)
    best_theta, best_loss = theta0.copy(), net.loss(theta0, data.X_train, data.Y_train)
    for _ in range(5):
        state = opt.step(state, view)
        for r, twin in enumerate(twins):
            draws = view.draw(twin, 4)
            losses = net.loss(draws, data.X_train, data.Y_train)
            k = int(np.argmin(losses))
            if losses[k] < best_loss[r]:
                best_theta[r], best_loss[r] = draws[k], losses[k]
        np.testing.assert_array_equal(state.theta, best_theta)
        np.testing.assert_array_equal(state.loss, best_loss)
    assert problem.cost.tolist() == [1 + 5 * 4] * 3  # one unit per forward pass, the first included


def test_random_search_defaults_and_settings():
    from bench import optimizers

    assert optimizers.make_settings("random_search").samples_per_step == 10
    assert optimizers.make_settings("random_search", samples_per_step=1).samples_per_step == 1
    with pytest.raises(ValueError, match=r"samples_per_step must be in \[1, inf\), got 0"):
        optimizers.make_settings("random_search", samples_per_step=0)
