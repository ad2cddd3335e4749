"""Tests of bench.analysis against numbers computed by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from bench.analysis import (
    convergence_table,
    format_table,
    markdown_table,
    summary,
    summary_for_display,
    wilson_interval,
)

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
