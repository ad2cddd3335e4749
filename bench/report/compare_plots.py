"""Figures of the comparison statistics (``bench.analysis.compare``): runtime ECDFs, fixed-budget
losses, performance profiles, per-run curves, and the success metric against cost.

As in cocopp, every figure is a view of a table computed first (and stored beside it by the
report); the functions take those tables and return a matplotlib Figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.analysis import convergence_table
from bench.analysis.compare import TAU_MAX, profile_curve
from bench.report.colours import STATUS_COLOURS
from bench.report.plots import (
    BAND_DECADES,
    COST_LABEL,
    MAX_COLUMNS,
    Palette,
    _facets,
    _log_loss_axis,
    _nothing_solved,
    _optimizer_facets,
    _text_width,
    draw_lines,
    optimizer_palette,
)

SHARE_MARKERS = {0.1: "o", 0.3: "^", 1.0: "s"}
SOLVED_SHARE = "share of runs solved"  # the success metric of the 40-20-40 rule


def _legend(fig: Figure, palette: Palette, present: list[str], title: str = "optimizer") -> None:
    handles = [Line2D([], [], color=palette[name], linewidth=2.5, label=name) for name in present]
    fig.legend(handles=handles, title=title, loc="outside right center", frameon=False)


def figure_ecdf(ecdf: pd.DataFrame, palette: Palette | None = None) -> Figure:
    """Runtime ECDFs: per dataset against cost, and over all datasets against cost / budget.

    ``ecdf`` is :func:`bench.analysis.compare.ecdf_table`.  The dotted vertical line is the budget
    of one run: beyond it, the curves are simulated restarts.
    """
    palette = palette or optimizer_palette(ecdf["optimizer"])
    panels = list(pd.unique(ecdf["dataset"]))
    present = [name for name in palette if name in set(ecdf["optimizer"])]
    title = "Runtime ECDF: share of (target, run) pairs reached (beyond the budget: simulated restarts)"
    fig, axes = _facets(panels, title, 3.4, _text_width(present) + 1.0)
    for index, (ax, dataset) in enumerate(zip(axes, panels, strict=True)):
        panel = ecdf[ecdf["dataset"] == dataset]
        x = "relative_cost" if dataset == "all" else "cost"
        series = {
            o: (g[x].to_numpy(float), g["share"].to_numpy(float)) for o, g in panel.groupby("optimizer", sort=False)
        }
        draw_lines(ax, series, palette, step=True)
        budget = 1.0 if dataset == "all" else float(panel["cost"].max() / panel["relative_cost"].max())
        ax.axvline(budget, color="0.4", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        targets = int(panel["targets"].iloc[0]) if dataset != "all" else int(panel["targets"].max())
        ax.set_title(f"all datasets ({targets} targets)" if dataset == "all" else f"{dataset} ({targets} targets)")
        ax.set_xlabel("cost / budget" if dataset == "all" else COST_LABEL)
        if index % MAX_COLUMNS == 0:
            ax.set_ylabel("share of pairs reached")
    _legend(fig, palette, present)
    return fig


def figure_fixed_budget(fixed: pd.DataFrame, palette: Palette | None = None) -> Figure:
    """Best loss within 10 %, 30 % and 100 % of the budget: the median (marker) and the middle
    half of the runs (line) per optimizer and share.  ``fixed`` is ``fixed_budget_table``."""
    palette = palette or optimizer_palette(fixed["optimizer"])
    title = "Fixed budget: best loss within 10 % (o), 30 % (^) and 100 % (s) of the budget (line: 25-75 % of runs)"
    fig, axes, datasets, order = _optimizer_facets(fixed, title)
    for ax, dataset in zip(axes, datasets, strict=True):
        panel = fixed[(fixed["dataset"] == dataset) & np.isfinite(fixed["best_loss"])]
        if len(panel) and (panel["best_loss"] > 0).all():
            _log_loss_axis(ax, "x")
        quartiles = panel.groupby(["optimizer", "share"], sort=False)["best_loss"].quantile([0.25, 0.5, 0.75])
        if len(quartiles) and (panel["best_loss"] > 0).all():
            # The axis is for the medians: a quartile far below them (saturated runs) leaves the panel.
            medians, spread = quartiles.xs(0.5, level=-1), quartiles.xs(0.25, level=-1)
            if spread.min() < medians.min() / BAND_DECADES:
                ax.set_xlim(medians.min() / BAND_DECADES, 1.5 * quartiles.max())
        for (optimizer, share), group in panel.groupby(["optimizer", "share"], sort=False):
            q25, median, q75 = np.quantile(group["best_loss"], [0.25, 0.5, 0.75])
            y = order.index(optimizer) + {0.1: -0.22, 0.3: 0.0, 1.0: 0.22}[share]
            colour = palette[optimizer]
            ax.plot([q25, q75], [y, y], color=colour, linewidth=1.5)
            ax.plot([median], [y], marker=SHARE_MARKERS[share], color=colour, markersize=6, linestyle="none")
        ax.set_title(dataset)
        ax.set_xlabel("best loss so far")
    return fig


def figure_profiles(ratios: pd.DataFrame, palette: Palette | None = None) -> Figure:
    """Dolan-More performance profiles on the success target's aRT, with AlgoPerf's score in the
    legend.  ``ratios`` is ``performance_profile`` with each optimizer's ``score`` as a column."""
    palette = palette or optimizer_palette(ratios["optimizer"])
    datasets = list(pd.unique(ratios["dataset"]))
    title = f"Performance profile over {len(datasets)} datasets (aRT to success / best aRT)"
    present = [name for name in palette if name in set(ratios["optimizer"])]
    fig, (ax,) = _facets(["profile"], title, 4.2, _text_width(present) + 2.0)
    finite = ratios["ratio"][np.isfinite(ratios["ratio"])]
    high = max(2 * TAU_MAX, float(finite.max()) * 1.5 if len(finite) else 0)
    curve = profile_curve(ratios, np.geomspace(1, high, 400))
    series = {
        o: (g["tau"].to_numpy(float), g["rho"].to_numpy(float)) for o, g in curve.groupby("optimizer", sort=False)
    }
    draw_lines(ax, series, palette, step=True)
    ax.axvline(TAU_MAX, color="0.4", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("tau: aRT within tau x the best (dotted: the score's limit, 4)")
    ax.set_ylabel("share of datasets")
    ax.set_title("")
    scores = ratios.groupby("optimizer", sort=False)["score"].first().sort_values(ascending=False, kind="stable")
    handles = [
        Line2D([], [], color=palette[name], linewidth=2.5, label=f"{name}  (score {score:.2f})")
        for name, score in scores.items()
    ]
    fig.legend(handles=handles, title="optimizer (AlgoPerf score)", loc="outside right center", frameon=False)
    return fig


def spaghetti_table(curves: pd.DataFrame, runs: pd.DataFrame, sample: int = 12) -> pd.DataFrame:
    """The curve points of the first ``sample`` runs of every cell, with each run's status."""
    status = runs[["dataset", "optimizer", "run", "status"]]
    kept = curves.loc[curves["run"] < sample, ["dataset", "optimizer", "run", "cost", "best_loss"]]
    return kept.merge(status, on=["dataset", "optimizer", "run"], how="left", validate="many_to_one")


def figure_spaghetti(table: pd.DataFrame, palette: Palette | None = None) -> Figure:
    """Single runs as thin lines (best loss against cost, ``spaghetti_table``), coloured by
    status: one panel per dataset and optimizer, so runs that split (some stuck, some not) stay
    visible instead of being averaged away.  ``palette`` is unused: the colours are statuses."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    datasets = list(pd.unique(table["dataset"]))
    order = list(pd.unique(table["optimizer"]))
    sample = int(table["run"].max()) + 1
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(
            len(order),
            len(datasets),
            figsize=(3.0 * len(datasets) + 1.8 + _text_width(order), 1.3 * len(order) + 1.0),
            squeeze=False,
            sharex="col",
            sharey="col",
            layout="constrained",
        )
    fig.suptitle(f"Single runs (the first {sample} of each optimizer): best loss against cost, by status", fontsize=13)
    for col, dataset in enumerate(datasets):
        column = table[table["dataset"] == dataset]
        loss = column["best_loss"]
        log = bool((np.isfinite(loss) & (loss > 0)).any())
        for row, optimizer in enumerate(order):
            ax = axes[row, col]
            panel = column[column["optimizer"] == optimizer]
            for _, line in panel.groupby("run", sort=False):
                colour = STATUS_COLOURS.get(line["status"].iloc[0], "0.5")
                ax.plot(line["cost"], line["best_loss"], color=colour, linewidth=0.8, alpha=0.75)
            if row == 0:
                ax.set_title(dataset)
            if col == 0:
                ax.set_ylabel(optimizer, fontsize=8, rotation=0, ha="right", va="center")
            if log:
                ax.set_xscale("log")
                _log_loss_axis(ax, "y")
        axes[-1, col].set_xlabel(COST_LABEL)
    present = [s for s in STATUS_COLOURS if s in set(table["status"])]
    handles = [Line2D([], [], color=STATUS_COLOURS[s], linewidth=2, label=s) for s in present]
    fig.legend(handles=handles, title="status", loc="outside right center", frameon=False)
    return fig


def success_metric_table(curves: pd.DataFrame, runs: pd.DataFrame, criteria: dict, n_points: int = 60) -> pd.DataFrame:
    """What each dataset's success criterion is judged on, against cost: the median (and middle
    half) of the test or train accuracy, or of the loss per pattern, for accuracy and loss
    criteria; the share of runs solved for the 40-20-40 rule (it has no single number).

    ``criteria``: dataset label -> ``(kind, split, target, patterns)`` with ``patterns`` the
    number of training patterns when a train loss is summed (else 1).  Columns: dataset,
    optimizer, cost, median, q25, q75, metric, target.
    """
    parts = []
    for dataset, (kind, split, target, patterns) in criteria.items():
        mine = curves[curves["dataset"] == dataset]
        if mine.empty:
            continue
        if kind == "40-20-40":
            cost = mine["cost"][mine["cost"] > 0]
            grid = np.geomspace(cost.min(), cost.max(), n_points)
            for optimizer, group in runs[runs["dataset"] == dataset].groupby("optimizer", sort=False):
                done = np.sort(group["cost_to_success"].dropna().to_numpy(float))
                share = np.searchsorted(done, grid, side="right") / len(group)
                parts.append(
                    pd.DataFrame({"dataset": dataset, "optimizer": optimizer, "cost": grid, "median": share}).assign(
                        q25=np.nan, q75=np.nan, metric=SOLVED_SHARE, target=1.0
                    )
                )
            continue
        column = f"{split}_accuracy" if kind == "accuracy" else ("test_loss" if split == "test" else "loss")
        frame = mine.assign(value=mine[column] / (patterns if column == "loss" else 1))
        table = convergence_table(frame.rename(columns={"value": "_metric"}), n_points, column="_metric")
        label = f"{split} accuracy" if kind == "accuracy" else f"{split} loss per pattern"
        parts.append(table.drop(columns="n_runs").assign(metric=label, target=target))
    columns = ["dataset", "optimizer", "cost", "median", "q25", "q75", "metric", "target"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def figure_success_metric(table: pd.DataFrame, palette: Palette | None = None) -> Figure:
    """The success metric against cost (``success_metric_table``), with the target as a dashed line."""
    palette = palette or optimizer_palette(table["optimizer"])
    title = "The success criterion's own metric against cost (median; band: 25-75 % of runs)"
    # A share of runs solved that is 0 throughout for every optimizer says one thing: no panel.
    top = table.groupby("dataset", sort=False).agg(metric=("metric", "first"), top=("median", "max"))
    unsolved = list(top[(top["metric"] == SOLVED_SHARE) & (top["top"].fillna(0) == 0)].index)
    datasets = [d for d in pd.unique(table["dataset"]) if d not in unsolved]
    if not datasets:
        return _nothing_solved(title, unsolved)
    table = table[table["dataset"].isin(datasets)]
    present = [name for name in palette if name in set(table["optimizer"])]
    fig, axes = _facets(datasets, title, 3.4, _text_width(present) + 1.0)
    if unsolved:
        fig.supxlabel(f"no optimizer solved: {', '.join(map(str, unsolved))} (no panel)", fontsize=10, color="0.25")
    for ax, dataset in zip(axes, datasets, strict=True):
        panel = table[table["dataset"] == dataset]
        metric, target = panel["metric"].iloc[0], float(panel["target"].iloc[0])
        series = {}
        for optimizer, group in panel.groupby("optimizer", sort=False):
            if group["q25"].notna().any():
                ax.fill_between(
                    group["cost"], group["q25"], group["q75"], color=palette[optimizer], alpha=0.12, linewidth=0
                )
            series[optimizer] = (group["cost"].to_numpy(float), group["median"].to_numpy(float))
        draw_lines(ax, series, palette)
        ax.axhline(target, color="0.2", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        if "loss" in metric and (panel["median"].dropna() > 0).all() and target > 0:
            _log_loss_axis(ax, "y")
        ax.set_title(dataset)
        ax.set_ylabel(metric + (" (target dashed)" if metric != SOLVED_SHARE else ""))
        ax.set_xlabel(COST_LABEL)
    _legend(fig, palette, present)
    return fig
