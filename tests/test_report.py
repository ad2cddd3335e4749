"""Tests of bench.report (plots and REPORT.md): files written, valid PNGs, no warnings, edge cases."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.report import plots, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
OPTIMIZERS = ["rprop(variant=irprop-)", "gd(learning_rate=0.5)", "momentum(learning_rate=0.1, nesterov=True)"]
BLOWS_UP = "gd(learning_rate=50.0)"
STEP_COST = dict(zip(OPTIMIZERS, [3.0, 6.0, 9.0], strict=True))


def make_tables(seed: int = 0, n_runs: int = 6) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Synthetic runs and curves: exponential decay to a per-run plateau, solved runs stop early.

    On "moons" one extra optimizer diverges in every run (inf losses); "parity" has no solved run.
    """
    rng = np.random.default_rng(seed)
    run_rows, curve_frames = [], []
    groups = [(d, o) for d in ("xor", "moons", "parity") for o in OPTIMIZERS] + [("moons", BLOWS_UP)]
    for dataset, optimizer in groups:
        for run in range(n_runs):
            cost = np.cumsum(np.full(40, STEP_COST.get(optimizer, 3.0)))
            plateau = 10 ** rng.uniform(-4.5, -1.5) if dataset != "parity" else 10 ** rng.uniform(-1, 0)
            loss = plateau + np.exp(-cost / rng.uniform(10, 60))
            if optimizer == BLOWS_UP:
                loss[5:] = np.inf
            solved_at = np.flatnonzero(loss < 1e-3)
            end = solved_at[0] + 1 if solved_at.size else len(cost)
            status = "solved" if solved_at.size else ("diverged" if optimizer == BLOWS_UP else "stuck")
            final = loss[end - 1]
            curve_frames.append(
                pd.DataFrame(
                    {
                        "dataset": dataset,
                        "optimizer": optimizer,
                        "run": run,
                        "epoch": np.arange(end),
                        "cost": cost[:end],
                        "loss": loss[:end],
                        "best_loss": np.minimum.accumulate(loss[:end]),
                        "train_accuracy": np.nan,
                    }
                )
            )
            run_rows.append(
                {
                    "experiment": "synthetic",
                    "dataset": dataset,
                    "optimizer": optimizer,
                    "run": run,
                    "status": status,
                    "final_loss": final,
                    "best_loss": loss[:end].min(),
                    "train_accuracy": np.nan,
                    "test_accuracy": np.nan,
                    "cost": cost[end - 1],
                    "cost_to_success": cost[end - 1] if status == "solved" else np.nan,
                    "epochs": end,
                    "wall_time": 0.01,
                    "grad_norm": np.nan,
                    "theta": [0.0, 1.0],
                }
            )
    return pd.DataFrame(run_rows), pd.concat(curve_frames, ignore_index=True)


def assert_png(path: Path) -> None:
    assert path.is_file()
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 10_000


def test_write_report(tmp_path: Path) -> None:
    runs, curves = make_tables()
    meta = {"config hash": "3f9a2c", "seed": 0, "budget": "120 cost units", "git commit": "abc1234"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = write_report(tmp_path / "out", runs, curves, "Synthetic benchmark", meta=meta)
    assert report == tmp_path / "out" / "REPORT.md"
    text = report.read_text(encoding="utf-8")
    for name in ("convergence", "final_loss", "success"):
        assert_png(tmp_path / "out" / "figures" / f"{name}.png")
        assert f"](figures/{name}.png)" in text
    assert text.startswith("# Synthetic benchmark")
    for key, value in meta.items():
        assert f"**{key}**: {value}" in text
    for status in ("solved", "stuck", "unfinished", "diverged"):
        assert f"- **{status}**:" in text
    assert f"| moons | {BLOWS_UP} | 0/6 (0%) | 0.00-0.39 | - | inf | inf | diverged 6 |" in text
    assert "| parity | rprop(variant=irprop-) | 0/6 (0%) |" in text
    # Atomic writes leave no temporary files behind.
    leftovers = [p.name for p in (tmp_path / "out").rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_palette_follows_first_appearance() -> None:
    palette = plots.optimizer_palette(["b", "a", "b", "c"])
    assert list(palette) == ["b", "a", "c"]
    assert len(set(palette.values())) == 3
    assert len(set(plots.optimizer_palette(map(str, range(14))).values())) == 14


@pytest.mark.parametrize("case", ["single_run", "all_diverged", "zero_loss", "single_checkpoint"])
def test_plots_edge_cases(tmp_path: Path, case: str) -> None:
    runs, curves = make_tables(n_runs=1)
    runs, curves = runs[runs["dataset"] == "moons"], curves[curves["dataset"] == "moons"]
    if case == "all_diverged":
        runs, curves = runs[runs["optimizer"] == BLOWS_UP], curves[curves["optimizer"] == BLOWS_UP]
        runs = runs.assign(final_loss=np.nan)
        curves = curves.assign(best_loss=np.inf, loss=np.nan)
    elif case == "zero_loss":
        runs = runs.assign(final_loss=0.0)
        curves = curves.assign(best_loss=curves["best_loss"].where(curves["epoch"] < 3, 0.0))
    elif case == "single_checkpoint":
        curves = curves[curves["epoch"] == 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paths = [
            plots.save(plots.figure_convergence(curves), tmp_path / "convergence.png"),
            plots.save(plots.figure_final_loss(runs), tmp_path / "final_loss.png"),
            plots.save(plots.figure_success(runs), tmp_path / "success.png"),
        ]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize(
    ("low", "high"), [(0.2, 0.3), (0.06, 0.5), (0.05, 6.0), (2e-8, 2.4), (1e-30, 1.0), (1e-300, 1e10)]
)
def test_log_axes_get_a_few_distinct_labels_whatever_the_range(low, high):
    """Between 2 and 8 labelled ticks inside the range, each label different (none run together)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    plots._log_loss_axis(ax, "x")
    ax.set_xlim(low, high)
    ticks = [t for t in ax.xaxis.get_major_locator()() if low <= t <= high]
    labels = [ax.xaxis.get_major_formatter()(t, i) for i, t in enumerate(ticks)]
    plt.close(fig)
    assert 2 <= len(ticks) <= 8 and len(set(labels)) == len(labels), labels


def test_the_tables_behind_the_analysis_section() -> None:
    from bench.report.markdown import attractor_counts, endpoint_counts

    runs = pd.DataFrame(
        {
            "dataset": ["xor"] * 5 + ["moons"] * 2,
            "optimizer": ["b", "b", "a", "a", "a", "a", "b"],
            "endpoint": ["saddle", "solved", "saturated", "saturated", "solved", "unfinished", "minimum"],
        }
    )
    counts = endpoint_counts(runs)
    assert list(counts.columns) == ["dataset", "optimizer", "solved", "minimum", "saddle", "saturated", "unfinished"]
    assert counts[["dataset", "optimizer"]].values.tolist() == [
        ["xor", "b"],
        ["xor", "a"],
        ["moons", "a"],
        ["moons", "b"],
    ]
    assert counts.iloc[1][["solved", "saturated"]].tolist() == [1, 2] and counts.iloc[3]["minimum"] == 1
    attractors = pd.DataFrame(
        {
            "dataset": "xor",
            "optimizer": ["a", "a", "a", "b"],
            "attractor": [0, 1, 2, 0],
            "runs": [5, 3, 2, 10],
            "share": [0.5, 0.3, 0.2, 1.0],
            "loss": [0.1, 0.25, 0.5, 0.1],
            "endpoint": ["solved", "saturated", "saddle", "solved"],
            "solved": [1.0, 0.0, 0.0, 1.0],
        }
    )
    table = attractor_counts(attractors)
    assert table.iloc[0].tolist() == ["xor", "a", 3, 0.3, 0.25, "saturated"]
    assert table.iloc[1]["attractors"] == 1 and np.isnan(table.iloc[1]["largest unsolved share"])
