"""Tuning (``bench.tune``): per-run settings on the runs axis, scores, the study loop on a toy
objective with a known best, reproducibility, resuming, tuned.toml and the command."""

from __future__ import annotations

import copy
import math
import tomllib

import numpy as np
import pandas as pd
import pytest
from bench.optimizers import space as sp

from bench import config
from bench import tuning as tune
from bench.cli import main
from bench.errors import ConfigError
from bench.report import tune_report
from bench.runner import TUNING_STREAMS, initial_parameters, run_cell, run_trials

DOC = {
    "experiment": {"name": "tun", "seed": 2, "runs": 4, "budget": 1500},
    "record": {"checkpoints": 8},
    "tuning": {"trials": 6, "seeds": 3, "batch": 4},
    "datasets": [{"name": "xor"}],
    "optimizers": [{"name": "momentum", "label": "momentum", "learning_rate": 0.2, "momentum": 0.9}],
}


def doc(**changes) -> dict:
    d = copy.deepcopy(DOC)
    for key, value in changes.items():
        d[key] = value
    return d


def cell_of(optimizer: dict, budget: int = 1500) -> config.Cell:
    d = doc(optimizers=[optimizer])
    d["experiment"]["budget"] = budget
    return config.from_dict(d).cells()[0]


# ---------------------------------------------------------------------------- the runs axis


@pytest.mark.parametrize(
    ("optimizer", "per_run"),
    [
        ({"name": "gd"}, {"learning_rate": [0.3, 3.0, 9.0]}),
        ({"name": "momentum"}, {"learning_rate": [0.05, 1.0, 4.0], "momentum": [0.5, 0.9, 0.99]}),
        ({"name": "rprop", "variant": "irprop+"}, {"delta_0": [1e-3, 0.1, 0.9], "delta_max": [1.0, 50.0, 5.0]}),
        (
            {"name": "ga", "population_size": 10},
            {"mutation_sigma": [0.05, 0.5, 2.0], "crossover_probability": [0.1, 0.5, 1.0]},
        ),
        (
            {"name": "restarts", "base": "rprop", "base_settings": {"variant": "rprop+"}},
            {
                "patience": [150.0, 400.0, 900.0],
                "min_delta": [0.0, 1e-3, 0.05],
                "base_settings.delta_0": [1e-3, 0.1, 0.9],
            },
        ),
        (
            {"name": "restarts", "base": "momentum"},
            {
                "patience": [100.0, 300.0, 800.0],
                "base_settings.learning_rate": [0.5, 3.0, 9.0],
                "base_settings.momentum": [0.5, 0.9, 0.99],
            },
        ),
    ],
)
def test_runs_with_per_run_settings_match_each_setting_run_alone(optimizer, per_run):
    """One engine call with per-run settings gives, run for run, the numbers of each setting alone
    (runs stop at different times here: solved, stuck and unfinished ones, so rows drop)."""
    cell = cell_of(optimizer, budget=1200)
    seeds = [0, 1, 2, 3]
    n = len(next(iter(per_run.values())))
    arrays = {k: np.repeat(v, len(seeds)) for k, v in per_run.items()}
    together = run_trials(cell, config.settings_with(cell.optimizer, arrays), seeds * n).runs
    assert together["status"].nunique() > 1  # the rows do drop at different steps
    for i in range(n):
        alone = run_trials(
            cell, config.settings_with(cell.optimizer, {k: v[i] for k, v in per_run.items()}), seeds
        ).runs
        part = together.iloc[i * len(seeds) : (i + 1) * len(seeds)].reset_index(drop=True)
        for column in ("status", "epochs", "cost", "final_loss", "best_loss", "cost_to_success"):
            pd.testing.assert_series_equal(part[column], alone[column], check_names=False)
        np.testing.assert_array_equal(np.stack(part["theta_final"]), np.stack(alone["theta_final"]))
        if "restarts" in part:
            pd.testing.assert_series_equal(part["restarts"], alone["restarts"], check_names=False)
    if "restarts" in together:
        assert together["restarts"].nunique() > 1  # attempts restart at different times


def test_per_run_settings_do_not_depend_on_the_engine_batch():
    cell = cell_of({"name": "momentum"})
    settings = config.settings_with(cell.optimizer, {"learning_rate": np.repeat([0.1, 2.0, 6.0], 2)})
    whole = run_trials(cell, settings, [0, 1] * 3).runs
    pieces = run_trials(cell, settings, [0, 1] * 3, batch=4).runs
    pd.testing.assert_frame_equal(whole.drop(columns="wall_time"), pieces.drop(columns="wall_time"))


def test_tuning_seeds_are_not_the_experiments_runs():
    cell = cell_of({"name": "gd"})
    experiment = initial_parameters(cell, range(3))
    tuning = initial_parameters(cell, range(3), TUNING_STREAMS)
    assert not np.isin(tuning, experiment).any()
    np.testing.assert_array_equal(run_cell(cell).runs["theta_initial"].iloc[0], experiment[0])


def test_per_run_arrays_of_the_wrong_length_are_refused():
    cell = cell_of({"name": "gd"})
    with pytest.raises(ValueError, match="learning_rate has 2 per-run values for 3 runs"):
        run_trials(cell, config.settings_with(cell.optimizer, {"learning_rate": np.array([0.1, 0.2])}), [0, 1, 2])


# ---------------------------------------------------------------------------- scores


def runs_frame(status, cost, best, final):
    return pd.DataFrame({"status": status, "cost": cost, "best_loss": best, "final_loss": final})


def test_score_is_art_over_the_seeds():
    runs = runs_frame(["solved", "stuck", "solved"], [300.0, 1500.0, 600.0], [0.01, 0.2, 0.02], [0.01, 0.2, 0.02])
    s = tune.score(runs, np.array([0.5, 0.5, 0.5]), budget=1500)
    assert s.art == (300 + 1500 + 600) / 2
    assert s.success_rate == pytest.approx(2 / 3) and s.solved == 2 and s.cost == 2400
    assert s.final_loss == pytest.approx((0.01 + 0.2 + 0.02) / 3)


def test_a_trial_that_never_solves_scores_above_every_art_and_by_its_progress():
    """(2 + mean best/initial) x budget x seeds; a diverged final loss counts its initial loss."""
    budget, initial = 1000, np.array([1.0, 0.5])
    moved = tune.score(runs_frame(["stuck", "diverged"], [1000, 400], [0.25, 0.5], [0.3, np.nan]), initial, budget)
    assert moved.art == pytest.approx((2 + (0.25 / 1.0 + 0.5 / 0.5) / 2) * budget * 2)
    assert moved.final_loss == pytest.approx((0.3 + 0.5) / 2)
    still = tune.score(runs_frame(["stuck", "stuck"], [1000, 1000], [1.0, 0.5], [1.0, 0.5]), initial, budget)
    worst_solving = tune.score(runs_frame(["solved", "stuck"], [1000, 1000], [0, 1], [0, 1]), initial, budget)
    assert worst_solving.art == 2 * budget < moved.art < still.art == 3 * budget * 2


# ---------------------------------------------------------------------------- the study loop


def same_trials(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """The same trials, settings and scores (the wall time each took aside)."""
    assert (a["seconds"] >= 0).all() and (b["seconds"] >= 0).all()
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))


def toy(best_lr: float, calls: list):
    """A toy objective with a known best: (log10 lr - log10 best_lr)^2 + 1, per trial."""

    def evaluate(cell, settings, seeds, batch):
        calls.append(len(settings))
        out = []
        for s in settings:
            value = (math.log10(s["learning_rate"]) - math.log10(best_lr)) ** 2 + 1.0
            out.append(tune.Score(value, value, 0.0, cost=10.0 * seeds, solved=0))
        return out

    return evaluate


def toy_tuning(**changes) -> config.Tuning:
    values = {"trials": 40, "seeds": 2, "batch": 8, "space": {"gd": {"learning_rate": {"low": 1e-4, "high": 10.0}}}}
    return config.Tuning(**{**values, **changes})


def gd_cell() -> config.Cell:
    return cell_of({"name": "gd", "learning_rate": 0.5})


def test_the_study_finds_a_known_best_in_batches_with_the_default_first(tmp_path):
    calls: list = []
    result = tune.tune_study(gd_cell(), tune._storage(str(tmp_path / "j.log")), toy_tuning(), evaluate=toy(0.03, calls))
    trials = result.trials
    assert calls == [8] * 5  # 40 trials asked 8 at a time: 5 engine calls
    assert trials.loc[trials["trial"] == 0, "setting.learning_rate"].item() == 0.5  # the default, enqueued
    best = tune.best_trial(trials, "art")
    assert abs(math.log10(best["setting.learning_rate"] / 0.03)) < 0.15  # within a factor 1.4 of the best
    assert trials["setting.learning_rate"].between(1e-4, 10).all()
    assert (trials["cost"] == 20).all()


@pytest.mark.parametrize("sampler", ["tpe", "random", "qmc", "cmaes"])
def test_every_sampler_reproduces_its_trials_from_the_seed(tmp_path, sampler):
    tuning = toy_tuning(trials=12, batch=4, sampler=sampler)
    runs = [
        tune.tune_study(gd_cell(), tune._storage(str(tmp_path / f"{i}.log")), tuning, evaluate=toy(0.03, []))
        for i in range(2)
    ]
    same_trials(runs[0].trials, runs[1].trials)
    assert runs[0].trials["setting.learning_rate"].nunique() == 12


def test_an_interrupted_tuning_resumes_with_the_trials_it_would_have_asked(tmp_path):
    tuning = toy_tuning(trials=16, batch=4)
    straight = tune.tune_study(gd_cell(), tune._storage(str(tmp_path / "a.log")), tuning, evaluate=toy(0.03, []))

    def dies_on_the_third_batch(cell, settings, seeds, batch, calls=[]):  # noqa: B006
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return toy(0.03, [])(cell, settings, seeds, batch)

    path = str(tmp_path / "b.log")
    with pytest.raises(KeyboardInterrupt):
        tune.tune_study(gd_cell(), tune._storage(path), tuning, evaluate=dies_on_the_third_batch)
    import optuna

    left = optuna.load_study(study_name=tune.study_name(gd_cell()), storage=tune._storage(path)).trials
    assert [t.state.name for t in left] == ["COMPLETE"] * 8 + ["RUNNING"] * 4  # the third batch: asked, never told
    calls: list = []
    resumed = tune.tune_study(gd_cell(), tune._storage(path), tuning, evaluate=toy(0.03, calls))
    assert calls == [4, 4]  # the 4 left running, then the last batch
    same_trials(resumed.trials, straight.trials)


def test_real_trials_do_not_depend_on_the_engine_batch(tmp_path):
    cfg = config.from_dict(doc())
    results = [
        tune.tune_study(cfg.cells()[0], tune._storage(str(tmp_path / f"{b}.log")), cfg.tuning, batch=b).trials
        for b in (None, 5)
    ]
    same_trials(results[0], results[1])
    assert results[0]["state"].eq("complete").all() and len(results[0]) == 6


def test_a_setting_the_budget_cannot_afford_fails_that_trial_only():
    cell = cell_of({"name": "ga", "population_size": 20}, budget=100)
    scores = tune.evaluate_trials(cell, [{"population_size": 20}, {"population_size": 200}], 2)
    assert isinstance(scores[0], tune.Score)
    assert scores[1] == "the budget 100 is below the 400 cost units of a first evaluation and one step"


# ---------------------------------------------------------------------------- search spaces and configs


def test_search_spaces_are_declared_beside_the_settings():
    from bench.optimizers.base import search_space

    from bench import optimizers

    momentum = search_space(optimizers.make_settings("momentum"))
    assert momentum["learning_rate"] == sp.Real(1e-4, 10.0, log=True)
    assert sp.parameter_name("momentum", momentum["momentum"]) == "1-momentum"
    assert tune._distribution(momentum["momentum"]).low == pytest.approx(0.01)
    assert tune._distribution(momentum["momentum"]).high == pytest.approx(0.5)
    restarts = search_space(optimizers.make_settings("restarts", base="rprop"))
    assert set(restarts) == {"patience", "base_settings.delta_0", "base_settings.delta_max"}
    assert search_space(optimizers.make_settings("random_search")) == {}


def test_a_config_narrows_fixes_and_adds_settings():
    d = doc(tuning={"space": {
        "momentum": {"learning_rate": {"low": 1e-3, "high": 3.0, "log": True}, "momentum": 0.95,
                     "nesterov": [True, False]},
    }})  # fmt: skip
    cfg = config.from_dict(d)
    space, fixed = config.tuning_space(cfg.tuning, cfg.optimizers[0])
    assert space == {"learning_rate": sp.Real(1e-3, 3.0, log=True), "nesterov": sp.Choice((True, False))}
    assert fixed == {"momentum": 0.95}


@pytest.mark.parametrize(
    ("tuning", "message"),
    [
        (
            {"space": {"momentun": {}}},
            "tuning.space.momentun: no optimizer is named or labelled 'momentun' (did you mean 'momentum'?)",
        ),
        (
            {"space": {"momentum": {"learning_rat": 0.1}}},
            "tuning.space.momentum.learning_rat: momentum has no setting 'learning_rat' (did you mean 'learning_rate'?)",
        ),
        (
            {"space": {"momentum": {"learning_rate": {"low": 2.0, "high": 1.0}}}},
            "low must be < high, got low=2.0, high=1.0",
        ),
        (
            {"space": {"momentum": {"learning_rate": {"low": -1.0, "high": 1.0, "log": False}}}},
            "learning_rate must be in (0, inf), got -1.0",
        ),
        ({"space": {"momentum": {"learning_rate": {"low": -1.0, "high": 1.0}}}}, "a log range needs low > 0, got -1.0"),
        (
            {"space": {"momentum": {"learning_rate": {"low": 0.1}}}},
            "a range is { low = ..., high = ..., log = true|false }",
        ),
        ({"objective": "speed"}, "tuning.objective: must be one of art, final_loss, success_rate"),
        ({"sampler": "grid"}, "tuning.sampler: must be one of tpe, random, qmc, cmaes"),
        ({"trials": 0}, "tuning.trials: must be >= 1, got 0"),
    ],
)
def test_bad_tuning_tables_are_refused_with_the_field(tuning, message):
    with pytest.raises(ConfigError) as info:
        config.from_dict(doc(tuning=tuning))
    assert message in str(info.value)


def test_tuning_does_not_change_the_config_hash():
    assert config.from_dict(doc()).hash == config.from_dict(doc(tuning={"trials": 99})).hash


def test_entries_may_share_a_label_on_disjoint_datasets_only():
    d = doc(datasets=[{"name": "xor"}, {"name": "parity", "params": {"n_bits": 3}, "label": "p3"}])
    d["optimizers"] = [
        {"name": "gd", "label": "gd", "datasets": ["xor"], "learning_rate": 1.0},
        {"name": "gd", "label": "gd", "datasets": ["p3"], "learning_rate": 3.0},
    ]
    cells = config.from_dict(d).cells()
    assert [(c.dataset.label, c.optimizer.label, c.optimizer.settings.learning_rate) for c in cells] == [
        ("xor", "gd", 1.0),
        ("p3", "gd", 3.0),
    ]
    assert len({c.key for c in cells}) == 2
    d["optimizers"][1]["datasets"] = ["p3", "xor"]
    with pytest.raises(ConfigError, match="two entries are labelled 'gd'"):
        config.from_dict(d)
    d["optimizers"][1]["datasets"] = ["p4"]
    with pytest.raises(ConfigError, match="no dataset is labelled 'p4'; dataset labels: xor, p3"):
        config.from_dict(d)


def test_a_tuned_entry_is_the_same_cell_as_an_untuned_one_with_its_settings():
    """``datasets`` says where an entry runs, not what it computes: the stored cell is shared."""
    plain = config.from_dict(doc(optimizers=[{"name": "gd", "label": "gd", "learning_rate": 1.0}]))
    tuned = config.from_dict(doc(optimizers=[{"name": "gd", "label": "gd", "datasets": ["xor"], "learning_rate": 1.0}]))
    assert plain.cells()[0].content_key == tuned.cells()[0].content_key


@pytest.mark.parametrize(
    ("label", "tuned", "expected"),
    [
        ("gd(learning_rate=0.5)", {"learning_rate"}, "gd"),
        ("rprop(variant=rprop+)", {"delta_0", "delta_max"}, "rprop(variant=rprop+)"),
        (
            "momentum(learning_rate=0.2, momentum=0.9, nesterov=true)",
            {"learning_rate", "momentum"},
            "momentum(nesterov=true)",
        ),
        ("nesterov", {"learning_rate"}, "nesterov"),
    ],
)
def test_tuned_labels_drop_the_settings_tuning_changed(label, tuned, expected):
    opt = config.OptimizerSpec(label.split("(")[0] if "(" in label else "momentum", label, None)
    assert tune.tuned_label(opt, tuned) == expected


# ---------------------------------------------------------------------------- figures


def test_best_after_k_is_the_bootstrap_of_the_best_of_k_draws():
    table = tune_report.best_after_k(np.array([3.0, 1.0, 2.0]), maximize=False, replicates=4000)
    # P(best of k draws > 1) = (2/3)^k: the median is 1 once that is below one half (k >= 2).
    assert table["median"].tolist() == [2.0, 1.0, 1.0]
    assert table["high"].iloc[0] == 3.0 and table["low"].tolist() == [1.0, 1.0, 1.0]
    assert tune_report.best_after_k(np.array([0.2, 0.8]), maximize=True)["median"].iloc[-1] == 0.8


def test_the_history_figure_draws_the_best_so_far(tmp_path):
    trials = pd.DataFrame(
        {
            "dataset": "xor", "optimizer": "gd", "trial": range(5), "state": "complete",
            "value": [5.0, 7.0, 3.0, 4.0, 1.0], "budget": 100, "seeds": 2,
        }
    )  # fmt: skip
    fig = tune_report.figure_history(trials, "art")
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_drawstyle() == "steps-post"]
    assert line.get_ydata().tolist() == [5.0, 5.0, 3.0, 3.0, 1.0]


# ---------------------------------------------------------------------------- the command


def test_tune_writes_a_runnable_tuned_config_and_resumes(tmp_path, capsys):
    path = tmp_path / "t.toml"
    d = doc()
    d["optimizers"].append({"name": "random_search"})
    path.write_text(config.to_toml(d))
    assert main(["tune", str(path), "--out", str(tmp_path / "r"), "--workers", "1"]) == 0
    out = capsys.readouterr()
    (folder,) = (tmp_path / "r" / "tun").glob("tuning-*")
    assert {p.name for p in folder.iterdir()} >= {"journal.log", "trials.parquet", "tuned.toml", "TUNING.md", "figures"}
    assert {p.name for p in (folder / "figures").iterdir()} >= {"history.png", "sensitivity.png", "best_after_k.png"}
    assert "xor | momentum: 6 trials" in out.err
    raw = tomllib.loads((folder / "tuned.toml").read_text())
    trials = pd.read_parquet(folder / "trials.parquet")
    best = tune.best_trial(trials, "art")
    (tuned,) = [o for o in raw["optimizers"] if o["name"] == "momentum"]
    assert tuned["datasets"] == ["xor"] and tuned["learning_rate"] == best["setting.learning_rate"]
    assert tuned["momentum"] == pytest.approx(best["setting.momentum"])
    assert {"name": "random_search", "label": "random_search", "samples_per_step": 10} in raw["optimizers"]
    assert raw["tuned"]["cost"] == {"momentum": int(trials["cost"].sum())}
    cfg = config.load(str(folder / "tuned.toml"))
    assert cfg.name == "tun-tuned" and len(cfg.cells()) == 2
    # Run again: every trial is in the journal, nothing is computed.
    assert main(["tune", str(path), "--out", str(tmp_path / "r"), "--workers", "1"]) == 0
    same_trials(pd.read_parquet(folder / "trials.parquet"), trials)


def test_a_study_whose_trials_cannot_run_keeps_the_entrys_settings(tmp_path):
    d = doc(optimizers=[{"name": "ga", "label": "ga", "population_size": 100}])
    d["experiment"]["budget"] = 150
    d["tuning"] = {"trials": 2, "seeds": 1, "space": {"ga": {"population_size": [100, 200]}}}
    cfg = config.from_dict(d)
    tuned = tune.tune(cfg, tmp_path, workers=1, progress=False)
    assert set(tuned.trials["state"]) == {"fail"}
    assert set(tuned.trials["failed"]) <= {
        "the budget 150 is below the 200 cost units of a first evaluation and one step",
        "the budget 150 is below the 400 cost units of a first evaluation and one step",
    }
    (entry,) = tomllib.loads(tuned.config_path.read_text())["optimizers"]
    assert entry["population_size"] == 100 and entry["datasets"] == ["xor"]
    assert "no trial could run" in (tuned.path / "TUNING.md").read_text()


def test_run_tune_tunes_then_runs_the_tuned_config_and_its_report_states_the_cost(tmp_path, capsys):
    path = tmp_path / "t.toml"
    path.write_text(config.to_toml(doc()))
    out = tmp_path / "r"
    assert main(["run", str(path), "--tune", "--out", str(out), "--workers", "1", "--no-analysis"]) == 0
    trials = pd.read_parquet(next((out / "tun").glob("tuning-*")) / "trials.parquet")
    latest = out / "tun-tuned" / (out / "tun-tuned" / "latest").read_text().strip()
    report = (latest / "REPORT.md").read_text()
    assert f"cost units spent per optimizer: momentum {int(trials['cost'].sum()):,}" in report
    assert "6 trials x 3 tuning seeds per dataset" in report
    runs = pd.read_parquet(latest / "runs.parquet")
    assert runs["learning_rate"].iloc[0] == tune.best_trial(trials, "art")["setting.learning_rate"]


def test_an_rdb_storage_url_gives_the_same_trials_as_the_journal(tmp_path):
    """``--storage URL`` (PostgreSQL for several machines; SQLite here) holds the same studies."""
    cfg = config.from_dict(doc())
    journal = tune.tune(cfg, tmp_path / "a", workers=1, progress=False)
    rdb = tune.tune(cfg, tmp_path / "b", storage=f"sqlite:///{tmp_path / 'studies.db'}", workers=1, progress=False)
    same_trials(journal.trials, rdb.trials)
    assert (tmp_path / "studies.db").is_file() and not (rdb.path / "journal.log").exists()


def test_validate_counts_a_tuned_config_by_its_labels(tmp_path, capsys):
    d = doc(datasets=[{"name": "xor"}, {"name": "parity", "params": {"n_bits": 3}, "label": "p3"}])
    d["optimizers"] = [
        {"name": "gd", "label": "gd", "datasets": ["xor"], "learning_rate": 1.0},
        {"name": "gd", "label": "gd", "datasets": ["p3"], "learning_rate": 3.0},
        {"name": "random_search"},
    ]
    path = tmp_path / "t.toml"
    path.write_text(config.to_toml(d))
    assert main(["validate", str(path), "--no-estimate"]) == 0
    assert "2 datasets x 2 optimizer settings = 4 cells of 4 runs" in capsys.readouterr().out
