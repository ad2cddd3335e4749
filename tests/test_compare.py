"""Comparison statistics on constructed data with answers known by hand, and against plain loops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp, mannwhitneyu

from bench import seeding
from bench.analysis.compare import (
    art_bootstrap,
    art_table,
    average_runtime,
    compare_folders,
    ecdf_table,
    fixed_budget_table,
    holm,
    informative_targets,
    pairwise_tests,
    performance_profile,
    profile_curve,
    profile_scores,
    ranking,
    simulated_restarts,
    vargha_delaney,
)


def restart_by_hand(hit, total, rng):
    """One simulated run, literally: draw runs until one reached the target."""
    spent = 0.0
    while True:
        j = rng.integers(len(hit))
        if np.isnan(hit[j]):
            spent += total[j]
        else:
            return spent + hit[j]


HIT = np.array([10.0, np.nan, 30.0, np.nan, 25.0])
TOTAL = np.array([10.0, 100.0, 30.0, 80.0, 25.0])


def test_average_runtime_by_hand():
    assert average_runtime(HIT, TOTAL) == (10 + 100 + 30 + 80 + 25) / 3
    assert average_runtime([np.nan, np.nan], [5, 6]) == np.inf
    assert average_runtime([4.0, 6.0], [4.0, 6.0]) == 5.0


def test_simulated_restarts_match_the_literal_procedure():
    mine = simulated_restarts(HIT, TOTAL, np.random.default_rng(1), 4000)
    rng = np.random.default_rng(2)
    literal = np.array([restart_by_hand(HIT, TOTAL, rng) for _ in range(4000)])
    assert ks_2samp(mine, literal).pvalue > 1e-3
    # The mean of simulated restarts is aRT: within 4 standard errors.
    assert abs(mine.mean() - average_runtime(HIT, TOTAL)) < 4 * mine.std() / np.sqrt(len(mine))
    assert set(simulated_restarts([7.0, 9.0], [7.0, 9.0], np.random.default_rng(0), 50)) <= {7.0, 9.0}
    assert np.isinf(simulated_restarts([np.nan], [5.0], np.random.default_rng(0), 3)).all()


def test_the_art_bootstrap_is_the_mean_of_n_literal_restarts():
    n = len(HIT)
    boot = art_bootstrap(HIT, TOTAL, np.random.default_rng(3), 4000)
    rng = np.random.default_rng(4)
    literal = np.array([np.mean([restart_by_hand(HIT, TOTAL, rng) for _ in range(n)]) for _ in range(4000)])
    assert ks_2samp(boot, literal).pvalue > 1e-3
    assert abs(boot.mean() - average_runtime(HIT, TOTAL)) < 4 * boot.std() / np.sqrt(len(boot))
    np.testing.assert_array_equal(art_bootstrap([3.0, 3.0], [3.0, 3.0], np.random.default_rng(0), 5), 3.0)


def test_vargha_delaney_and_holm_by_hand():
    # pairs (1,2) (1,3) (2,2) (2,3): three lower, one tie
    assert vargha_delaney([1, 2], [2, 3]) == 3.5 / 4
    assert vargha_delaney([1, np.inf], [np.inf, np.inf]) == (2 * 1 + 2 * 0.5) / 4
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])


def runs_table(values: dict[str, list[float]], dataset="d", column="cost_to_success") -> pd.DataFrame:
    rows = []
    for optimizer, vals in values.items():
        for run, v in enumerate(vals):
            rows.append({"dataset": dataset, "optimizer": optimizer, "run": run, column: v, "final_loss": v})
    return pd.DataFrame(rows)


def test_mann_whitney_holm_and_ranking_on_separated_groups():
    a = list(np.arange(1.0, 21.0))
    b = list(np.arange(100.0, 120.0))
    c = [v + 0.5 for v in b]
    never = [np.nan] * 20
    runs = runs_table({"A": a, "B": b, "C": c, "N": never})
    tests = pairwise_tests(runs)
    cost = tests[tests["metric"] == "cost to success"].set_index(["a", "b"])
    assert cost.loc[("A", "B"), "U"] == 0 and cost.loc[("A", "B"), "A"] == 1.0  # every A run is lower
    assert cost.loc[("A", "B"), "significant"] and not cost.loc[("B", "C"), "significant"]
    assert cost.loc[("B", "N"), "A"] == 1.0 and cost.loc[("B", "N"), "significant"]  # a failure is worse
    # Holm over the 6 pairs: the smallest p times 6, never below the raw p.
    assert (cost["p_holm"] >= cost["p"]).all() and np.isclose(cost["p_holm"].min(), 6 * cost["p"].min())
    ranks = ranking(runs, tests).set_index("optimizer")["rank"]
    assert ranks.to_dict() == {"A": 1, "B": 2, "C": 2, "N": 4}


def test_mann_whitney_matches_the_exact_small_sample_value():
    runs = runs_table({"x": [1.0, 2.0, 3.0], "y": [4.0, 5.0, 6.0]})
    row = pairwise_tests(runs).iloc[0]
    # U = 0; exact two-sided p = 2 / C(6, 3) = 0.1
    assert row["U"] == 0 and np.isclose(row["p"], 0.1) and row["A"] == 1.0
    tied = pairwise_tests(runs_table({"x": [np.nan] * 3, "y": [np.nan] * 3}))
    assert (tied["p"] == 1.0).all() and (tied["A"] == 0.5).all()


def art_rows(values: dict[tuple[str, str], float]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": d, "optimizer": o, "target": "success", "art": v} for (d, o), v in values.items()])


def test_performance_profile_and_score_by_hand():
    inf = np.inf
    art = art_rows(
        {
            ("d1", "A"): 100.0,
            ("d1", "B"): 200.0,
            ("d2", "A"): 200.0,
            ("d2", "B"): 100.0,
            ("d3", "A"): inf,  # nobody solved d3: left out
            ("d3", "B"): inf,
            ("d4", "A"): 100.0,
            ("d4", "B"): inf,
        }
    )
    ratios = performance_profile(art)
    assert set(ratios["dataset"]) == {"d1", "d2", "d4"}
    assert ratios.set_index(["dataset", "optimizer"])["ratio"].to_dict() == {
        ("d1", "A"): 1.0,
        ("d1", "B"): 2.0,
        ("d2", "A"): 2.0,
        ("d2", "B"): 1.0,
        ("d4", "A"): 1.0,
        ("d4", "B"): inf,
    }
    curve = profile_curve(ratios, [1.0, 1.5, 2.0, 10.0]).set_index(["optimizer", "tau"])["rho"]
    assert curve[("A", 1.5)] == pytest.approx(2 / 3) and curve[("B", 1.5)] == pytest.approx(1 / 3)
    assert curve[("B", 10.0)] == pytest.approx(2 / 3)
    scores = profile_scores(ratios).set_index("optimizer")
    assert scores.loc["A", "score"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert scores.loc["B", "score"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    # The score is the area under rho from 1 to 4 over 3: integrate the step function numerically.
    taus = np.linspace(1, 4, 300001)
    fine = profile_curve(ratios, taus)
    for optimizer, group in fine.groupby("optimizer"):
        assert np.trapezoid(group["rho"], taus) / 3 == pytest.approx(scores.loc[optimizer, "score"], abs=1e-4)
    assert list(scores.index) == ["A", "B"] and scores.loc["A", "best_on"] == 2


def hits_and_runs():
    """One dataset, one optimizer, two runs; a ladder target both reach (at 10 and 20), success
    reached by run 0 only (at 10; run 1 spends 100); one target nobody reaches; one everybody
    reaches at the first evaluation."""
    ident = {"dataset": "d", "optimizer": "o", "cell": "c", "budget": 100}
    hits = pd.DataFrame(
        [
            {**ident, "run": 0, "target": "1", "target_loss": 1.0, "cost": 1.0},
            {**ident, "run": 0, "target": "0.5", "target_loss": 0.5, "cost": 10.0},
            {**ident, "run": 0, "target": "0.1", "target_loss": 0.1, "cost": np.nan},
            {**ident, "run": 0, "target": "success", "target_loss": np.nan, "cost": 10.0},
            {**ident, "run": 1, "target": "1", "target_loss": 1.0, "cost": 1.0},
            {**ident, "run": 1, "target": "0.5", "target_loss": 0.5, "cost": 20.0},
            {**ident, "run": 1, "target": "0.1", "target_loss": 0.1, "cost": np.nan},
            {**ident, "run": 1, "target": "success", "target_loss": np.nan, "cost": np.nan},
        ]
    )
    runs = pd.DataFrame(
        [{**ident, "run": r, "cost": c, "status": "stuck", "best_loss": 1.0} for r, c in ((0, 10.0), (1, 100.0))]
    )
    curves = pd.DataFrame([{**ident, "run": r, "cost": 1.0} for r in (0, 1)])
    return runs, hits, curves


def test_art_table_by_hand_and_reproducible():
    runs, hits, _ = hits_and_runs()
    table = art_table(runs, hits, seed=5, replicates=2000).set_index("target")
    assert table.loc["0.5", "art"] == 15.0 and table.loc["success", "art"] == 110.0
    assert table.loc["0.1", "art"] == np.inf and table.loc["0.1", "reached"] == 0
    assert table.loc["success", "art_low"] <= 110 <= table.loc["success", "art_high"]
    pd.testing.assert_frame_equal(
        art_table(runs, hits, seed=5, replicates=2000), art_table(runs, hits, seed=5, replicates=2000)
    )
    # The interval is the bootstrap of the stream named by the seed, dataset and target (common to
    # every optimizer: identical runs give identical intervals).
    boot = art_bootstrap([10.0, np.nan], [10.0, 100.0], seeding.generator(5, "art", "d", "success"), 2000)
    assert table.loc["success", "art_high"] == np.quantile(boot, 0.975, method="inverted_cdf")


def test_ecdf_by_hand():
    runs, hits, curves = hits_and_runs()
    assert informative_targets(runs, curves, hits) == {"d": ["0.5", "success"]}
    # A run solved at best loss 0.6 stopped there: target 0.5 would read its stop as a failure.
    solved = runs.assign(status=["solved", "stuck"], best_loss=[0.6, 0.7])
    assert informative_targets(solved, curves, hits) == {"d": ["success"]}
    assert informative_targets(solved.assign(best_loss=[0.5, 0.7]), curves, hits) == {"d": ["0.5", "success"]}
    table = ecdf_table(runs, hits, curves, samples=4000)
    mine = table[table["dataset"] == "d"]
    at = lambda cost: mine[mine["cost"] <= cost]["share"].iloc[-1]  # noqa: E731
    assert at(9.9) == 0
    # target 0.5: half the draws cost 10, half 20; success: 10 with probability 1/2, else >= 110
    assert at(15) == pytest.approx(0.5, abs=0.03)
    assert at(50) == pytest.approx(0.75, abs=0.03)
    assert mine["share"].is_monotonic_increasing and mine["share"].max() <= 1
    together = table[table["dataset"] == "all"]
    np.testing.assert_allclose(together["share"].to_numpy(), mine["share"].to_numpy())


def test_fixed_budget_table_is_the_runs_columns():
    runs = pd.DataFrame(
        {"dataset": "d", "optimizer": "o", "run": [0, 1], "best_loss_10pct": [3.0, 4.0], "best_loss_30pct": [2.0, 4.0]}
    ).assign(best_loss=[1.0, 4.0])
    table = fixed_budget_table(runs)
    assert table.set_index(["share", "run"])["best_loss"].to_dict() == {
        (0.1, 0): 3.0,
        (0.1, 1): 4.0,
        (0.3, 0): 2.0,
        (0.3, 1): 4.0,
        (1.0, 0): 1.0,
        (1.0, 1): 4.0,
    }


def test_the_report_states_the_comparison_from_the_stored_tables(tiny, tmp_path):
    import bench
    from bench.report.compare_plots import success_metric_table
    from bench.report.markdown import art_wide

    tiny["experiment"]["runs"] = 8
    tiny["optimizers"].append({"name": "random_search"})
    res = bench.run(tiny, out=tmp_path, executor="serial", analysis=False, progress=False)
    text = (res.path / "REPORT.md").read_text()
    runs = res.runs
    assert "## Comparison" in text and "Ranking per dataset" in text
    art = pd.read_csv(res.path / "tables" / "art.csv", keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(art, art_table(runs, res.hits, seed=tiny["experiment"]["seed"]), check_dtype=False)
    # aRT to success by hand from the runs table: failed runs count their whole cost.
    for optimizer, group in runs.groupby("optimizer"):
        solved = group["status"] == "solved"
        spent = group["cost_to_success"].where(solved, group["cost"]).sum()
        row = art[(art["optimizer"] == optimizer) & (art["target"] == "success")].iloc[0]
        assert row["art"] == (spent / solved.sum() if solved.any() else np.inf)
    wide = art_wide(art)["xor"].set_index("optimizer")
    assert wide.loc["random_search", "aRT to success"] == np.inf and wide.loc["random_search", "solved"] == "0/8"
    for name in ("ecdf", "fixed_budget", "profile", "runs", "success_metric"):
        assert (res.path / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The 40-20-40 rule's metric is the share of runs solved within each cost.
    metric = success_metric_table(res.curves, runs, res.criteria())
    gd = metric[metric["optimizer"] == runs["optimizer"].iloc[0]]
    first = runs[runs["optimizer"] == runs["optimizer"].iloc[0]]
    for cost, share in zip(gd["cost"], gd["median"]):
        assert share == (first["cost_to_success"] <= cost).sum() / len(first)
    assert (metric["metric"] == "share of runs solved").all() and (metric["target"] == 1.0).all()


def test_the_success_metric_of_an_accuracy_criterion_is_its_median_curve():
    from bench.report.compare_plots import success_metric_table

    ident = {"dataset": "d", "optimizer": "o"}
    curves = pd.DataFrame(
        [
            {**ident, "run": r, "cost": c, "test_accuracy": a, "loss": 1.0}
            for r, pts in enumerate([[(1, 0.5), (10, 0.9)], [(1, 0.7), (10, 0.8)], [(1, 0.6), (5, 1.0)]])
            for c, a in pts
        ]
    )
    runs = pd.DataFrame([{**ident, "run": r, "cost_to_success": np.nan} for r in range(3)])
    table = success_metric_table(curves, runs, {"d": ("accuracy", "test", 0.95, 1)}, n_points=4)
    assert list(table["cost"]) == pytest.approx([1, 10 ** (1 / 3), 10 ** (2 / 3), 10])
    # at cost 1: 0.5, 0.7, 0.6 -> 0.6; at 10^(2/3) ~ 4.6: still 0.6; at 10: 0.9, 0.8, 1.0 -> 0.9
    assert list(table["median"]) == pytest.approx([0.6, 0.6, 0.6, 0.9])
    assert (table["metric"] == "test accuracy").all() and (table["target"] == 0.95).all()


def status_runs(rows: dict[str, list[float]], dataset="d") -> pd.DataFrame:
    """Runs of one dataset: per optimizer, cost to success (NaN: not solved, spending 100)."""
    frame = runs_table(rows, dataset)
    solved = frame["cost_to_success"].notna()
    return frame.assign(status=np.where(solved, "solved", "stuck"), cost=frame["cost_to_success"].fillna(100.0))


def test_compare_folders_side_by_side_by_hand():
    from bench.analysis.compare import compare_folders

    a = status_runs({"fast": list(np.arange(1.0, 21.0)), "same": [50.0] * 10 + [np.nan] * 10, "only_a": [1.0]})
    b = status_runs({"fast": list(np.arange(60.0, 80.0)), "same": [50.0] * 10 + [np.nan] * 10, "only_b": [1.0]})
    table, alone = compare_folders(a, b)
    assert alone == ["d / only_a (only in A)", "d / only_b (only in B)"]
    rows = table.set_index("optimizer")
    assert rows.loc["fast", "solved A"] == "20/20" and rows.loc["same", "solved B"] == "10/20"
    assert rows.loc["same", "aRT A"] == (10 * 50 + 10 * 100) / 10
    assert rows.loc["fast", "A cost"] == 1.0 and rows.loc["fast", "verdict"] == "A better (cost to success)"
    assert rows.loc["same", "A cost"] == 0.5 and rows.loc["same", "verdict"] == "no difference detected"
    assert rows.loc["same", "p cost (Holm)"] == 1.0


def test_bench_compare_on_two_results_folders(tiny, tmp_path, capsys):
    import bench
    from bench.cli import main

    for folder, rate in (("a", 2.0), ("b", 0.01)):
        tiny["optimizers"] = [{"name": "gd", "learning_rate": rate, "label": "gd"}]
        tiny["experiment"]["runs"] = 10
        bench.run(tiny, out=tmp_path / folder, executor="serial", analysis=False, report=False, progress=False)
    capsys.readouterr()
    out = tmp_path / "cmp.md"
    assert main(["compare", str(tmp_path / "a" / "tiny"), str(tmp_path / "b" / "tiny"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    solved = (bench.load(tmp_path / "a" / "tiny").runs["status"] == "solved").sum()
    assert solved >= 5 and "A better (cost to success)" in printed and f"{solved}/10" in printed and "0/10" in printed
    assert "| xor | gd |" in out.read_text()
    assert main(["compare", str(tmp_path / "a" / "tiny"), str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_the_final_loss_target_is_drawn_only_for_training_loss_criteria():
    from bench.report.markdown import _loss_thresholds

    criteria = {"sum": ("loss", "train", 0.1, 4), "mean": ("loss", "train", 0.2, 1), "test": ("loss", "test", 0.3, 1)}
    criteria |= {"acc": ("accuracy", "test", 0.9, 1), "xor": ("40-20-40", "train", None, 4)}
    assert _loss_thresholds(criteria) == {"sum": 0.4, "mean": 0.2}


def test_a_dataset_nobody_solved_gets_no_success_metric_panel():
    from bench.report.compare_plots import figure_success_metric

    rows = []
    for dataset, share in (("solved", 0.5), ("never", 0.0)):
        for optimizer in ("a", "b"):
            rows += [
                {"dataset": dataset, "optimizer": optimizer, "cost": c, "median": share * (c > 1)} for c in (1, 10)
            ]
    table = pd.DataFrame(rows).assign(q25=np.nan, q75=np.nan, metric="share of runs solved", target=1.0)
    fig = figure_success_metric(table)
    assert [ax.get_title() for ax in fig.axes] == ["solved"]
    assert "no optimizer solved: never" in fig.get_supxlabel()
    none = figure_success_metric(table[table["dataset"] == "never"])
    assert "no optimizer solved a run" in none.axes[0].texts[0].get_text()


def test_the_ecdf_and_profile_figures_draw_their_tables():
    from bench.report.compare_plots import figure_ecdf, figure_profiles

    runs, hits, curves = hits_and_runs()
    two = pd.concat([hits, hits.assign(optimizer="p", cell="c2")], ignore_index=True)
    runs2 = pd.concat([runs, runs.assign(optimizer="p", cell="c2")], ignore_index=True)
    table = ecdf_table(runs2, two, pd.concat([curves, curves.assign(cell="c2")]), samples=200)
    fig = figure_ecdf(table)
    panel = fig.axes[0]
    drawn = {line.get_label(): line for line in panel.get_lines() if line.get_label() in ("o", "p")}
    for optimizer, line in drawn.items():
        mine = table[(table["dataset"] == "d") & (table["optimizer"] == optimizer)]
        np.testing.assert_array_equal(line.get_ydata(), mine["share"])
    # identical data: drawn in turns, the second dashed, and named under the panel
    assert drawn["o"].get_linestyle() == "-" and drawn["p"].get_linestyle() != "-"
    assert any("same curve: o = p" in t.get_text() for t in panel.texts)
    ratios = performance_profile(art_rows({("d1", "A"): 100.0, ("d1", "B"): 300.0}))
    ratios = ratios.merge(profile_scores(ratios)[["optimizer", "score"]], on="optimizer")
    profile = figure_profiles(ratios)
    lines = {line.get_label(): line for line in profile.axes[0].get_lines() if line.get_label() in ("A", "B")}
    tau = lines["B"].get_xdata()
    np.testing.assert_array_equal(lines["B"].get_ydata(), (tau >= 3.0).astype(float))
    assert [t.get_text() for t in profile.legends[0].get_texts()] == ["A  (score 1.00)", "B  (score 0.33)"]


# ----------------------------------------------------------------------------- order, defaults, sides

LOSS = {"0.5": 0.5, "0.25": 0.25, "success": np.nan}


def cell(dataset, optimizer, hits_per_run, costs, budget=100):
    """Runs, hits and curves of one cell: ``hits_per_run[r]`` maps a target to run r's cost to it
    (NaN: not reached), ``costs[r]`` is its whole cost; every run's first evaluation is at cost 1."""
    ident = {"dataset": dataset, "optimizer": optimizer, "cell": f"{dataset}/{optimizer}", "budget": budget}
    hits = [
        {**ident, "run": r, "target": t, "target_loss": LOSS[t], "cost": c}
        for r, targets in enumerate(hits_per_run)
        for t, c in targets.items()
    ]
    runs = [{**ident, "run": r, "cost": c, "status": "stuck", "best_loss": 0.2} for r, c in enumerate(costs)]
    curves = [{**ident, "run": r, "cost": 1.0} for r in range(len(costs))]
    return pd.DataFrame(runs), pd.DataFrame(hits), pd.DataFrame(curves)


def cells(*parts):
    return tuple(pd.concat(tables, ignore_index=True) for tables in zip(*parts))


ORDER = [(d, o) for d in ("zeta", "alpha") for o in ("b", "a")]  # the config's order, not alphabetical


def ordered_tables():
    both = {"0.5": 10.0, "0.25": 20.0, "success": 20.0}
    half = {"0.5": 30.0, "0.25": np.nan, "success": np.nan}
    return cells(*[cell(d, o, [both, half], [20.0, 100.0]) for d, o in ORDER])


def test_the_tables_keep_the_order_of_first_appearance():
    runs, hits, curves = ordered_tables()
    targets = informative_targets(runs, curves, hits)
    assert list(targets.items()) == [("zeta", ["0.5", "0.25", "success"]), ("alpha", ["0.5", "0.25", "success"])]
    art = art_table(runs, hits, replicates=20)
    assert list(zip(art["dataset"], art["optimizer"], art["target"])) == [
        (d, o, t) for d, o in ORDER for t in ("0.5", "0.25", "success")
    ]
    ecdf = ecdf_table(runs, hits, curves, samples=10)
    assert list(dict.fromkeys(zip(ecdf["dataset"], ecdf["optimizer"]))) == [*ORDER, ("all", "b"), ("all", "a")]
    assert ecdf.index.equals(pd.RangeIndex(len(ecdf)))
    tests = pairwise_tests(runs.assign(final_loss=runs["cost"], cost_to_success=runs["cost"]))
    assert list(zip(tests["dataset"], tests["metric"], tests["a"], tests["b"])) == [
        (d, m, "b", "a") for d in ("zeta", "alpha") for m in ("final loss", "cost to success")
    ]


def test_the_ecdf_grid_runs_from_1e_4_to_ten_budgets_in_121_points():
    runs, hits, curves = ordered_tables()
    table = ecdf_table(runs, hits, curves, samples=10)
    for _, group in table.groupby(["dataset", "optimizer"]):
        np.testing.assert_allclose(group["relative_cost"], np.geomspace(1e-4, 10.0, 121))
    mine = table[table["dataset"] != "all"]
    np.testing.assert_allclose(mine["cost"], 100 * mine["relative_cost"])


def test_a_cell_of_one_run_and_one_target():
    runs, hits, curves = cell("d", "o", [{"success": 5.0}], [5.0])
    art = art_table(runs, hits, replicates=10).iloc[0]
    assert (art["runs"], art["reached"], art["art"], art["art_low"], art["art_high"]) == (1, 1, 5.0, 5.0, 5.0)
    table = ecdf_table(runs, hits, curves, samples=10)
    mine = table[table["dataset"] == "d"]
    np.testing.assert_array_equal(mine["share"], (mine["cost"] >= 5.0).astype(float))
    assert (mine["targets"] == 1).all()


def test_the_defaults_are_the_documented_ones():
    # 1,000 replicates (README), and the default seed is the config's default (0)
    runs, hits, curves = cell("d", "o", [{"0.5": h, "success": h} for h in HIT], TOTAL)
    pd.testing.assert_frame_equal(art_table(runs, hits), art_table(runs, hits, seed=0, replicates=1000))
    assert not art_table(runs, hits).equals(art_table(runs, hits, seed=1))
    pd.testing.assert_frame_equal(ecdf_table(runs, hits, curves), ecdf_table(runs, hits, curves, seed=0))
    assert not ecdf_table(runs, hits, curves).equals(ecdf_table(runs, hits, curves, seed=1))


def test_significance_is_a_holm_p_below_five_percent():
    # one run against 39, all lower: the exact two-sided p of U = 0 is 2 / 40 = 0.05, not below 5 %
    edge = pairwise_tests(runs_table({"x": [0.0], "y": list(np.arange(1.0, 40.0))}))
    assert (edge["p_holm"] == 0.05).all() and not edge["significant"].any()
    # 3 runs against 5: U = 1 gives p = 4 / 56 (about 0.07), U = 0 gives 2 / 56 (about 0.036)
    near = pairwise_tests(runs_table({"x": [1.0, 2.0, 4.0], "y": [3.0, 5.0, 6.0, 7.0, 8.0]}))
    assert np.allclose(near["p_holm"], 4 / 56) and not near["significant"].any()
    below = pairwise_tests(runs_table({"x": [1.0, 2.0, 3.0], "y": [4.0, 5.0, 6.0, 7.0, 8.0]}))
    assert np.allclose(below["p_holm"], 2 / 56) and below["significant"].all()


def test_mann_whitney_ranks_inf_last_and_ties_it_with_itself():
    x = [1.0, np.inf, 5.0, np.inf]
    y = [np.nan, 2.0, 3.0, np.nan, np.nan]  # not reached: inf
    row = pairwise_tests(runs_table({"x": x, "y": y})).iloc[0]
    by_hand = mannwhitneyu([1.0, 99.0, 5.0, 99.0], [99.0, 2.0, 3.0, 99.0, 99.0], alternative="two-sided")
    assert row["U"] == by_hand.statistic and row["p"] == pytest.approx(by_hand.pvalue)
    # all tied (never reached): U is its mean n_a n_b / 2 and p is 1
    tied = pairwise_tests(runs_table({"x": [np.nan] * 3, "y": [np.nan] * 5}))
    assert (tied["U"] == 7.5).all() and (tied["p"] == 1.0).all()
    np.testing.assert_allclose(holm([0.6, 0.9]), [1.0, 1.0])  # 2 x 0.6 is capped at 1


def test_ranking_reads_the_effect_on_either_side_of_the_pair():
    fast, mid, slow = (list(np.arange(1.0, 21.0) + shift) for shift in (0, 10, 20))
    late = [v + 0.5 for v in mid]  # not separable from mid
    # zeta: the better optimizer is b of every pair; alpha: it is a
    zeta = runs_table({"slow": slow, "mid": mid, "fast": fast}, dataset="zeta")
    alpha = runs_table({"fast": fast, "mid": mid, "late": late, "slow": slow}, dataset="alpha")
    runs = pd.concat([zeta, alpha], ignore_index=True).assign(final_loss=0.1)  # final loss: all tied
    tests = pairwise_tests(runs)
    cost = tests[tests["metric"] == "cost to success"].set_index(["dataset", "a", "b"])
    # 10 of 20 overlap: 45 pairs lower and 10 ties out of 400
    assert cost.loc[("zeta", "slow", "mid"), "A"] == 0.125 and cost.loc[("alpha", "fast", "mid"), "A"] == 0.875
    assert cost.loc[("zeta", "slow", "fast"), "A"] == 0.0 and cost.loc[("alpha", "fast", "slow"), "A"] == 1.0
    assert cost["significant"].sum() == 3 + 5  # all but mid / late
    rank = ranking(runs, tests)
    assert list(rank.columns) == ["dataset", "optimizer", "rank", "median", "beats"]
    assert rank[["dataset", "optimizer", "rank", "beats"]].values.tolist() == [
        ["zeta", "fast", 1, 2],
        ["zeta", "mid", 2, 1],
        ["zeta", "slow", 3, 0],
        ["alpha", "fast", 1, 3],
        ["alpha", "mid", 2, 1],
        ["alpha", "late", 2, 1],
        ["alpha", "slow", 4, 0],
    ]
    assert rank["median"].tolist() == [10.5, 20.5, 30.5, 10.5, 20.5, 21.0, 30.5]
    # On final loss nobody is separated: one rank, in the config's order.
    loss = ranking(runs, tests, metric="final loss")
    assert loss["optimizer"].tolist() == ["slow", "mid", "fast", "fast", "mid", "late", "slow"]
    assert (loss["rank"] == 1).all() and (loss["beats"] == 0).all()


def folder_runs(cells: dict[tuple[str, str], tuple[list[float], list[float]]]) -> pd.DataFrame:
    """Runs per (dataset, optimizer): cost to success (NaN: not solved, spending 100) and final loss."""
    frames = []
    for (dataset, optimizer), (cost, loss) in cells.items():
        frames.append(status_runs({optimizer: cost}, dataset).assign(final_loss=loss))
    return pd.concat(frames, ignore_index=True)


def test_compare_folders_names_the_better_folder_on_either_side():
    fast, slow = list(np.arange(1.0, 21.0)), list(np.arange(60.0, 80.0))
    never, low, high = [np.nan] * 20, list(np.arange(0.0, 0.2, 0.01)), list(np.arange(0.5, 0.7, 0.01))
    a = folder_runs(
        {
            ("zeta", "b"): (slow, slow),
            ("zeta", "a"): (fast, fast),
            ("alpha", "b"): (never, low),
            ("alpha", "a"): (never, high),
        }
    )
    b = folder_runs(
        {
            ("zeta", "b"): (fast, fast),
            ("zeta", "a"): (slow, slow),
            ("alpha", "b"): (never, high),
            ("alpha", "a"): (never, low),
        }
    )
    table, alone = compare_folders(a, b)
    assert alone == [] and list(zip(table["dataset"], table["optimizer"])) == ORDER
    assert table["A cost"].tolist() == [0.0, 1.0, 0.5, 0.5] and table["A loss"].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert table["verdict"].tolist() == [
        "B better (cost to success)",
        "A better (cost to success)",
        "A better (final loss)",  # the cost test cannot separate runs that never succeeded
        "B better (final loss)",
    ]
    # one run against 39: p = 0.05 exactly on both metrics, not below 5 %
    edge, _ = compare_folders(status_runs({"o": [0.0]}), status_runs({"o": list(np.arange(1.0, 40.0))}))
    assert edge.loc[0, "p cost (Holm)"] == 0.05 and edge.loc[0, "verdict"] == "no difference detected"


def test_profiles_keep_the_order_and_count_best_on():
    ratios = performance_profile(
        art_rows({("zeta", "b"): 100.0, ("zeta", "a"): 200.0, ("alpha", "b"): 300.0, ("alpha", "a"): 150.0})
    )
    assert list(ratios.columns) == ["dataset", "optimizer", "art", "ratio"]
    assert ratios["ratio"].tolist() == [1.0, 2.0, 2.0, 1.0]
    curve = profile_curve(ratios, [1.0, 2.0])
    assert curve.index.equals(pd.RangeIndex(4)) and curve["optimizer"].tolist() == ["b", "b", "a", "a"]
    assert curve["rho"].tolist() == [0.5, 1.0, 0.5, 1.0]
    scores = profile_scores(ratios)  # a tie: in order of first appearance
    assert scores["optimizer"].tolist() == ["b", "a"] and scores["best_on"].tolist() == [1, 1]
    assert scores["score"].tolist() == pytest.approx([0.5 * (1 + 2 / 3)] * 2)
