"""Tests of bench.analysis against numbers computed by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, norm

from bench.analysis import (
    convergence_table,
    format_table,
    markdown_table,
    summary,
    summary_for_display,
    wilson_interval,
)
from bench.analysis.stats import _carried_forward

Z95 = 1.959963984540054
RPROP, GD = "rprop(variant=irprop-)", "gd(learning_rate=0.5)"
NAN, INF = math.nan, math.inf


def hand_wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    p = k / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return center - half, center + half


def make_runs() -> pd.DataFrame:
    """xor/rprop: 3 of 4 solved; xor/gd: none solved; moons/gd: all diverged; moons/rprop: 1 run."""
    rows = [
        # dataset, optimizer, status, final_loss, test_accuracy, cost, cost_to_success
        ("xor", RPROP, "solved", 0.01, NAN, 10.0, 10.0),
        ("xor", GD, "stuck", 0.4, NAN, 100.0, NAN),
        ("xor", RPROP, "solved", 0.02, NAN, 20.0, 20.0),
        ("moons", GD, "diverged", NAN, 0.5, 5.0, NAN),
        ("xor", RPROP, "stuck", 0.5, NAN, 30.0, NAN),
        ("xor", GD, "unfinished", 0.3, NAN, 100.0, NAN),
        ("xor", RPROP, "solved", 0.03, NAN, 40.0, 40.0),
        ("xor", GD, "diverged", INF, NAN, 100.0, NAN),
        ("moons", RPROP, "solved", 0.001, 0.9, 7.0, 6.0),
        ("xor", GD, "stuck", 0.5, NAN, 100.0, NAN),
        ("moons", GD, "diverged", INF, NAN, 5.0, NAN),
        ("xor", GD, "unfinished", 0.2, NAN, 100.0, NAN),
    ]
    columns = ["dataset", "optimizer", "status", "final_loss", "test_accuracy", "cost", "cost_to_success"]
    runs = pd.DataFrame(rows, columns=columns)
    runs["run"] = runs.groupby(["dataset", "optimizer"]).cumcount()
    # Columns the analysis must ignore.
    runs["theta"] = [[0.1, -0.2]] * len(runs)
    runs["learning_rate"] = 0.5
    return runs


def test_wilson_matches_formula_and_textbook() -> None:
    low, high = wilson_interval(8, 10)
    assert (low, high) == pytest.approx(hand_wilson(8, 10), abs=1e-12)
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    # Newcombe (1998), Stat. Med. 17:857, example 81/263: Wilson interval 0.2553 to 0.3662.
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)


def test_wilson_vectorized_matches_scipy_and_handles_zero_trials() -> None:
    k = np.array([0, 1, 5, 10, 3, 0])
    n = np.array([10, 10, 10, 10, 7, 0])
    low, high = wilson_interval(k, n)
    for i in range(5):
        ci = binomtest(int(k[i]), int(n[i])).proportion_ci(method="wilson")
        assert (low[i], high[i]) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert np.isnan(low[5]) and np.isnan(high[5])
    assert all(math.isnan(bound) for bound in wilson_interval(0, 0))
    assert wilson_interval(8, 10, confidence=0.90) == pytest.approx(hand_wilson(8, 10, 1.6448536269514722))


def test_summary_counts_rates_and_first_appearance_order() -> None:
    s = summary(make_runs())
    assert list(zip(s["dataset"], s["optimizer"], strict=True)) == [
        ("xor", RPROP),
        ("xor", GD),
        ("moons", GD),
        ("moons", RPROP),
    ]
    assert s["runs"].tolist() == [4, 5, 2, 1]
    assert s[["solved", "stuck", "unfinished", "diverged"]].to_numpy().tolist() == [
        [3, 1, 0, 0],
        [0, 2, 2, 1],
        [0, 0, 0, 2],
        [1, 0, 0, 0],
    ]
    assert s["success_rate"].tolist() == pytest.approx([0.75, 0.0, 0.0, 1.0])
    assert (s.loc[0, "success_low"], s.loc[0, "success_high"]) == pytest.approx(hand_wilson(3, 4))
    assert s.loc[1, "success_low"] == 0.0
    assert s.loc[1, "success_high"] == pytest.approx(Z95**2 / (5 + Z95**2))


def test_summary_costs_and_medians() -> None:
    s = summary(make_runs())
    # ERT = (10 + 20 + 30 + 40) / 3 solved; no solved run -> inf.
    assert s["ert"].tolist() == pytest.approx([100 / 3, INF, INF, 7.0])
    assert s.loc[0, "median_cost_to_success"] == 20.0
    assert np.isnan(s.loc[1, "median_cost_to_success"]) and np.isnan(s.loc[2, "median_cost_to_success"])
    assert s.loc[3, "median_cost_to_success"] == 6.0
    # xor/gd final losses 0.4, 0.3, inf, 0.5, 0.2 -> 0.4; moons/gd NaN and inf both count as +inf.
    assert s["median_final_loss"].tolist() == pytest.approx([0.025, 0.4, INF, 0.001])
    assert np.isnan(s.loc[0, "median_test_accuracy"])
    assert s.loc[2, "median_test_accuracy"] == 0.5


def make_curves() -> pd.DataFrame:
    """Checkpoints chosen so the xor grid with 4 points is 1, 10, 100, 1000 and falls between them."""
    rows = [
        ("xor", "A", 0, [1, 5, 50], [1.0, 0.5, 0.1]),  # solved, stopped at cost 50
        ("xor", "A", 1, [1, 5, 50, 500, 1000], [2.0, 1.0, 0.8, 0.6, 0.4]),
        ("xor", "A", 2, [5, 1000], [3.0, 0.2]),  # nothing before cost 5
        ("xor", "A", 3, [1, 5], [INF, INF]),  # diverged: never counted
        ("xor", "B", 0, [2, 20], [0.9, 0.7]),
        ("moons", "A", 0, [3, 30], [0.3, 0.03]),
    ]
    frames = [
        pd.DataFrame(
            {
                "dataset": d,
                "optimizer": o,
                "run": r,
                "epoch": range(len(c)),
                "cost": c,
                "loss": b,
                "best_loss": b,
                "train_accuracy": NAN,
            }
        )
        for d, o, r, c, b in rows
    ]
    # Shuffled rows: the table must sort each run by cost itself.
    return pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=3)


def test_convergence_table_carries_best_loss_forward() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = convergence_table(make_curves(), n_points=4)
    assert list(table.columns) == ["dataset", "optimizer", "cost", "median", "q25", "q75", "n_runs"]
    xor_a = table[(table["dataset"] == "xor") & (table["optimizer"] == "A")]
    assert xor_a["cost"].tolist() == pytest.approx([1, 10, 100, 1000])
    assert xor_a["n_runs"].tolist() == [2, 3, 3, 3]
    # At 1000, run 0 (stopped at 50) still counts with 0.1: values 0.1, 0.4, 0.2.
    assert xor_a["median"].tolist() == pytest.approx([1.5, 1.0, 0.8, 0.2])
    assert xor_a["q25"].tolist() == pytest.approx([1.25, 0.75, 0.45, 0.15])
    assert xor_a["q75"].tolist() == pytest.approx([1.75, 2.0, 1.9, 0.3])


def test_convergence_table_grid_per_dataset_and_missing_points() -> None:
    curves = make_curves()
    table = convergence_table(curves, n_points=4)
    assert list(pd.unique(table["dataset"])) == list(pd.unique(curves["dataset"]))
    xor_b = table[(table["dataset"] == "xor") & (table["optimizer"] == "B")]
    assert xor_b["n_runs"].tolist() == [0, 1, 1, 1]
    assert np.isnan(xor_b["median"].iloc[0])
    assert xor_b["median"].iloc[1:].tolist() == pytest.approx([0.9, 0.7, 0.7])
    moons = table[table["dataset"] == "moons"]
    assert moons["cost"].tolist() == pytest.approx(np.geomspace(3, 30, 4))
    assert moons["median"].tolist() == pytest.approx([0.3, 0.3, 0.3, 0.03])
    assert convergence_table(make_curves().iloc[:0]).empty


def test_format_and_markdown_tables() -> None:
    df = pd.DataFrame({"name": ["a", "bb"], "x": [1.23456, NAN], "y": [INF, 2.0], "n": [3, 10]})
    assert format_table(df).splitlines() == [
        "name      x    y   n",
        "----  -----  ---  --",
        "a     1.235  inf   3",
        "bb        -    2  10",
    ]
    assert markdown_table(df).splitlines() == [
        "| name | x | y | n |",
        "|---|---:|---:|---:|",
        "| a | 1.235 | inf | 3 |",
        "| bb | - | 2 | 10 |",
    ]
    assert "| a\\|b |" in markdown_table(pd.DataFrame({"name": ["a|b"]}))


def test_summary_for_display() -> None:
    shown = summary_for_display(summary(make_runs()))
    assert list(shown.columns) == [
        "dataset",
        "optimizer",
        "success",
        "95% CI",
        "median cost to success",
        "aRT to success",
        "median final loss",
        "statuses",
    ]
    assert shown["success"].tolist() == ["3/4 (75%)", "0/5 (0%)", "0/2 (0%)", "1/1 (100%)"]
    assert shown.loc[0, "95% CI"] == "0.30-0.95"  # Wilson 3/4: 0.3006 to 0.9544
    assert shown["statuses"].tolist() == [
        "solved 3, stuck 1",
        "stuck 2, unfinished 2, diverged 1",
        "diverged 2",
        "solved 1",
    ]
    text = format_table(shown)
    assert "rprop(variant=irprop-)" in text and "33.33" in text
    gd_line = text.splitlines()[3]
    assert gd_line.split()[:2] == ["xor", GD] and " - " in gd_line and "inf" in gd_line


def test_summary_counts_end_point_classes_after_an_analysis() -> None:
    from bench.analysis.endpoints import CLASSES
    from bench.analysis.stats import ENDPOINTS

    assert ENDPOINTS == CLASSES  # the summary knows every class
    runs = pd.DataFrame(
        {
            "dataset": "d",
            "optimizer": ["a"] * 4 + ["b"] * 2,
            "status": ["solved", "stuck", "stuck", "unfinished", "solved", "solved"],
            "endpoint": ["solved", "saddle", "saturated", "saddle", "solved", "solved"],
            "final_loss": 0.1,
            "test_accuracy": np.nan,
            "cost": 10.0,
            "cost_to_success": [5.0, np.nan, np.nan, np.nan, 4.0, 6.0],
        }
    )
    table = summary(runs)
    assert list(table["endpoint_saddle"]) == [2, 0] and list(table["endpoint_solved"]) == [1, 2]
    display = summary_for_display(table)
    assert list(display["end points of failures"]) == ["saddle 2, saturated 1", "-"]
    assert "end points of failures" not in summary_for_display(summary(runs.drop(columns="endpoint"))).columns


def test_wilson_at_zero_and_all_successes_and_one_trial() -> None:
    # Closed forms at the ends: k = 0 gives (0, z^2 / (n + z^2)), k = n gives (n / (n + z^2), 1).
    for n in (1, 2, 5, 16, 40):
        assert wilson_interval(0, n) == pytest.approx((0.0, Z95**2 / (n + Z95**2)), abs=1e-12)
        assert wilson_interval(n, n) == pytest.approx((n / (n + Z95**2), 1.0), abs=1e-12)
    # One trial is a real interval, not a missing one.
    assert wilson_interval(1, 1) == pytest.approx((1 / (1 + Z95**2), 1.0), abs=1e-12)
    low, high = wilson_interval(np.array([0, 1, 1]), np.array([1, 1, 2]))
    assert low.tolist() == pytest.approx([0.0, 1 / (1 + Z95**2), hand_wilson(1, 2)[0]], abs=1e-12)
    assert high.tolist() == pytest.approx([Z95**2 / (1 + Z95**2), 1.0, hand_wilson(1, 2)[1]], abs=1e-12)


def test_wilson_is_clipped_to_the_unit_interval() -> None:
    # Unclipped, rounding puts the upper bound of 16/16 (95%) a hair above 1 and the lower bound
    # of 0/27 a hair below 0: the bounds must stay in [0, 1] exactly.
    n = np.arange(1, 201)
    for confidence in (0.5, 0.9, 0.95, 0.99):
        low_all, high_all = wilson_interval(n, n, confidence)
        low_none, high_none = wilson_interval(0, n, confidence)
        for bound in (low_all, high_all, low_none, high_none):
            assert np.all((bound >= 0.0) & (bound <= 1.0))
        np.testing.assert_allclose(high_all, 1.0, rtol=0, atol=1e-15)
        np.testing.assert_allclose(low_none, 0.0, rtol=0, atol=1e-15)
    assert wilson_interval(16, 16)[1] == 1.0 and wilson_interval(0, 27)[0] == 0.0


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5, 2.0, 95.0])
def test_wilson_rejects_confidence_outside_the_open_unit_interval(confidence: float) -> None:
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\), got "):
        wilson_interval(3, 10, confidence)


def test_wilson_accepts_confidence_close_to_the_ends() -> None:
    for confidence in (1e-6, 0.5, 0.999999):
        z = float(norm.ppf(0.5 + confidence / 2))
        assert wilson_interval(3, 10, confidence) == pytest.approx(hand_wilson(3, 10, z), abs=1e-12)


def test_summary_counts_no_end_points_for_a_group_without_any() -> None:
    # Group b was never analysed (endpoint missing): every end-point count is 0, not a default.
    runs = pd.DataFrame(
        {
            "dataset": "d",
            "optimizer": ["a", "a", "b", "b"],
            "status": ["solved", "stuck", "stuck", "solved"],
            "endpoint": ["solved", "saddle", None, None],
            "final_loss": 0.1,
            "test_accuracy": np.nan,
            "cost": 10.0,
            "cost_to_success": [5.0, np.nan, np.nan, 3.0],
        }
    )
    table = summary(runs)
    endpoint_columns = [f"endpoint_{name}" for name in ("solved", "diverged", "minimum", "saddle")]
    endpoint_columns += [f"endpoint_{name}" for name in ("plateau", "saturated", "unfinished")]
    assert table[endpoint_columns].to_numpy().tolist() == [[1, 0, 0, 1, 0, 0, 0], [0] * 7]
    assert list(summary_for_display(table)["end points of failures"]) == ["saddle 1", "-"]


def plain_carried_forward(group: pd.DataFrame, grid: np.ndarray, column: str = "best_loss") -> np.ndarray:
    """Independent loop: runs in order of first appearance, last checkpoint at or below each cost."""
    runs = list(dict.fromkeys(group["run"]))
    values = np.full((len(runs), len(grid)), np.nan)
    for i, run in enumerate(runs):
        points = sorted(zip(group.loc[group["run"] == run, "cost"], group.loc[group["run"] == run, column]))
        for j, g in enumerate(grid):
            below = [v for c, v in points if c <= g]
            if below and math.isfinite(below[-1]):
                values[i, j] = below[-1]
    return values


def test_carried_forward_has_one_row_per_run_and_matches_a_loop() -> None:
    curves = make_curves()
    xor_a = curves[(curves["dataset"] == "xor") & (curves["optimizer"] == "A")]
    grid = np.array([0.5, 1.0, 3.0, 10.0, 100.0, 1000.0, 5000.0])
    values = _carried_forward(xor_a, grid)
    assert values.shape == (4, len(grid))
    np.testing.assert_array_equal(values, plain_carried_forward(xor_a, grid))
    single = curves[(curves["dataset"] == "moons")]
    assert _carried_forward(single, grid).shape == (1, len(grid))


def plain_convergence(curves: pd.DataFrame, n_points: int) -> list[tuple]:
    """Independent loop over datasets and optimizers in order of first appearance."""
    rows = []
    for dataset in dict.fromkeys(curves["dataset"]):
        frame = curves[curves["dataset"] == dataset]
        positive = [c for c in frame["cost"] if math.isfinite(c) and c > 0]
        if not positive:
            continue
        grid = np.geomspace(min(positive), max(positive), n_points)
        for optimizer in dict.fromkeys(frame["optimizer"]):
            values = plain_carried_forward(frame[frame["optimizer"] == optimizer], grid)
            for j, g in enumerate(grid):
                column = values[:, j][np.isfinite(values[:, j])]
                if column.size:
                    q25, median, q75 = np.quantile(column, [0.25, 0.5, 0.75])
                else:
                    q25 = median = q75 = NAN
                rows.append((dataset, optimizer, g, median, q25, q75, column.size))
    return rows


def test_convergence_table_matches_a_loop_on_random_curves() -> None:
    rng = np.random.default_rng(0)
    frames = []
    for dataset, optimizer in [("z", "zeta"), ("z", "alpha"), ("a", "mid"), ("a", "zeta")]:
        for run in range(int(rng.integers(1, 5))):
            cost = np.sort(rng.choice(np.arange(0, 200), size=int(rng.integers(1, 6)), replace=False)).astype(float)
            best = np.minimum.accumulate(rng.uniform(0, 1, cost.size))
            if rng.uniform() < 0.2:
                best[:] = INF
            frames.append(
                pd.DataFrame({"dataset": dataset, "optimizer": optimizer, "run": run, "cost": cost, "best_loss": best})
            )
    curves = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=1)
    curves = curves.sort_values("dataset", ascending=False, kind="stable")  # z first, zeta before alpha
    table = convergence_table(curves, n_points=7)
    expected = plain_convergence(curves, 7)
    assert table.index.tolist() == list(range(len(expected)))
    assert list(zip(table["dataset"], table["optimizer"])) == [row[:2] for row in expected]
    for name, i in [("cost", 2), ("median", 3), ("q25", 4), ("q75", 5)]:
        np.testing.assert_allclose(table[name].to_numpy(float), [row[i] for row in expected], rtol=1e-12)
    assert table["n_runs"].tolist() == [row[6] for row in expected]


def test_convergence_table_default_grid_has_60_points() -> None:
    table = convergence_table(make_curves())
    assert table.groupby(["dataset", "optimizer"], sort=False).size().tolist() == [60, 60, 60]
    xor_a = table[(table["dataset"] == "xor") & (table["optimizer"] == "A")]
    np.testing.assert_allclose(xor_a["cost"], np.geomspace(1, 1000, 60))
    assert table.index.tolist() == list(range(180))


def test_convergence_table_keeps_optimizer_order_and_a_clean_index() -> None:
    curves = make_curves()
    curves = pd.concat([curves[curves["optimizer"] == "B"], curves[curves["optimizer"] == "A"]])
    curves = curves.sort_values("dataset", ascending=False, kind="stable")  # xor first
    table = convergence_table(curves, n_points=4)
    assert list(dict.fromkeys(zip(table["dataset"], table["optimizer"]))) == [
        ("xor", "B"),
        ("xor", "A"),
        ("moons", "A"),
    ]
    assert table.index.tolist() == list(range(12))


def test_convergence_table_grid_starts_at_the_smallest_positive_cost() -> None:
    # A checkpoint at cost 0 (before the first step) is carried forward but not put on the log grid.
    curves = pd.DataFrame(
        {
            "dataset": "d",
            "optimizer": "A",
            "run": [0, 0, 0, 1, 1],
            "cost": [0.0, 10.0, 100.0, 0.0, 1000.0],
            "best_loss": [2.0, 1.0, 0.5, 4.0, 0.1],
        }
    )
    table = convergence_table(curves, n_points=3)
    assert table["cost"].tolist() == pytest.approx([10.0, 100.0, 1000.0])
    assert table["median"].tolist() == pytest.approx([2.5, 2.25, 0.3])
    assert table["n_runs"].tolist() == [2, 2, 2]


def test_convergence_table_with_a_single_positive_cost() -> None:
    # One checkpoint with a positive cost: a degenerate grid at that cost, not a dropped dataset.
    curves = pd.DataFrame(
        {"dataset": ["d", "d"], "optimizer": "A", "run": 0, "cost": [0.0, 4.0], "best_loss": [1.0, 0.5]}
    )
    table = convergence_table(curves, n_points=3)
    assert table["cost"].tolist() == [4.0, 4.0, 4.0]
    assert table["median"].tolist() == [0.5, 0.5, 0.5]
    assert table["n_runs"].tolist() == [1, 1, 1]
    assert convergence_table(curves.iloc[:1], n_points=3).empty  # only cost 0: no grid at all


def test_tables_show_missing_values_and_infinities() -> None:
    df = pd.DataFrame(
        {
            "s": pd.Series(["a|b", None, pd.NA], dtype=object),
            "k": pd.array([1, None, 30], dtype="Int64"),
            "x": [-INF, INF, NAN],
            "y": [0.5, 1e-5, 123456.0],
        }
    )
    assert format_table(df).splitlines() == [
        "s     k     x          y",
        "---  --  ----  ---------",
        "a|b   1  -inf        0.5",
        "-     -   inf      1e-05",
        "-    30     -  1.235e+05",
    ]
    assert markdown_table(df).splitlines() == [
        "| s | k | x | y |",
        "|---|---:|---:|---:|",
        "| a\\|b | 1 | -inf | 0.5 |",
        "| - | - | inf | 1e-05 |",
        "| - | 30 | - | 1.235e+05 |",
    ]
    assert markdown_table(df, floatfmt="{:.2f}").splitlines()[2] == "| a\\|b | 1 | -inf | 0.50 |"
