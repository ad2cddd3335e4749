"""Figures of stored results: convergence curves, final-loss distributions, success rates.

Each ``figure_*`` function draws one panel per dataset (at most four per row) and returns the
matplotlib Figure (a notebook shows it; ``save`` writes it as a PNG and closes it).  Colours come from one palette keyed by optimizer label, so an
optimizer has the same colour in every figure when the caller passes the same ``palette``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never open a window, work on headless machines

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from bench.analysis import convergence_table, summary  # noqa: E402

DPI = 110
MAX_COLUMNS = 4
COST_LABEL = "cost (forward-pass units)"
Palette = dict[str, tuple[float, float, float]]


def optimizer_palette(optimizers: Iterable[str]) -> Palette:
    """One colour per optimizer label, assigned in order of first appearance.

    Parameters
    ----------
    optimizers : iterable of str
        Optimizer labels, repeats allowed (e.g. a ``runs["optimizer"]`` column).

    Returns
    -------
    dict
        Label -> RGB tuple: tab10 for up to ten labels; up to 20, tab10 followed by the light
        halves of tab20 (distinct where evenly spaced hues would give look-alike greens);
        evenly spaced hues beyond.
    """
    labels = list(dict.fromkeys(optimizers))
    if len(labels) <= 10:
        colours = sns.color_palette("tab10", len(labels))
    elif len(labels) <= 20:
        colours = (sns.color_palette("tab10", 10) + sns.color_palette("tab20", 20)[1::2])[: len(labels)]
    else:
        colours = sns.color_palette("husl", len(labels))
    return dict(zip(labels, colours, strict=True))


def _facets(datasets: list[str], title: str, panel_height: float, extra_width: float) -> tuple[Figure, list[Axes]]:
    """A figure with one panel per dataset, sized by the number of panels.

    ``extra_width`` (inches) is room beside the panels for a legend or the optimizer labels.
    """
    n_panels = max(1, len(datasets))
    n_columns = min(MAX_COLUMNS, n_panels)
    n_rows = math.ceil(n_panels / n_columns)
    with sns.axes_style("whitegrid"):
        fig, axes = plt.subplots(
            n_rows,
            n_columns,
            figsize=(4.2 * n_columns + extra_width, panel_height * n_rows + 0.6),
            squeeze=False,
            layout="constrained",
        )
    for ax in axes.ravel()[n_panels:]:
        ax.remove()
    fig.suptitle(title, fontsize=13)
    return fig, list(axes.ravel()[: len(datasets)])


def _text_width(labels: Iterable[str]) -> float:
    """Rough width in inches of the longest label at the default font size."""
    return 0.075 * max((len(label) for label in labels), default=0)


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` and close it (figures of long sessions add up)."""
    fig.savefig(path, dpi=DPI, format="png")
    plt.close(fig)
    return Path(path)


class LossTicks(LogLocator):
    """Log ticks that stay readable whatever the range: 1, 2, 3 and 5 times powers of ten over
    at most two decades, powers of ten (thinned to about six) over more."""

    def __init__(self) -> None:
        super().__init__(base=10)

    def tick_values(self, vmin: float, vmax: float) -> np.ndarray:
        low, high = sorted((vmin, vmax))
        narrow = low > 0 and np.log10(high) - np.log10(low) <= 2
        self.set_params(subs=(1.0, 2.0, 3.0, 5.0) if narrow else (1.0,), numticks=6)
        return super().tick_values(vmin, vmax)


def _log_loss_axis(ax: Axes, which: str) -> None:
    """Log scale with plain labels ("0.3", "1e-05") on the "x" or "y" axis of ``ax``.

    A loss range under one decade gets labelled minor ticks, and the default "3x10^-1" labels of
    neighbouring ticks run into each other; a range of many decades labelled at 1-2-3-5 runs
    them into each other too.
    """
    getattr(ax, f"set_{which}scale")("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    # Labelled major ticks as LossTicks places them, formatted plainly; minor ticks unlabelled,
    # so narrow ranges never crowd the axis with identical labels.
    axis.set_major_locator(LossTicks())
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.2g}"))
    axis.set_minor_formatter(NullFormatter())


def _optimizer_facets(runs: pd.DataFrame, title: str) -> tuple[Figure, list[Axes], list[str], list[str]]:
    """Panels with one row per optimizer, labelled once on the left of each row of panels.

    Optimizer labels are long, so they go on the vertical axis where they read left to right;
    every panel lists the same optimizers in the same order, so rows line up across panels.
    """
    datasets = list(pd.unique(runs["dataset"]))
    order = list(pd.unique(runs["optimizer"]))
    fig, axes = _facets(datasets, title, 0.4 * len(order) + 1.4, _text_width(order) + 0.5)
    for index, ax in enumerate(axes):
        ax.set_yticks(range(len(order)), order if index % MAX_COLUMNS == 0 else [])
        ax.set_ylim(len(order) - 0.5, -0.5)  # first optimizer on top
        ax.grid(axis="y", visible=False)
    return fig, axes, datasets, order


def _box_and_points(ax: Axes, position: int, values: np.ndarray, colour: tuple, rng: np.random.Generator) -> None:
    """A horizontal box (quartiles, whiskers over the full range) and every value as a point."""
    # matplotlib directly: seaborn 0.13's boxplot passes an argument matplotlib 3.11 deprecates.
    ax.boxplot(
        values,
        positions=[position],
        orientation="horizontal",
        widths=0.6,
        whis=(0, 100),
        showfliers=False,
        patch_artist=True,
        manage_ticks=False,
        boxprops={"facecolor": (*colour, 0.45), "edgecolor": colour},
        medianprops={"color": "black"},
        whiskerprops={"color": colour},
        capprops={"color": colour},
    )
    jitter = rng.uniform(-0.15, 0.15, size=values.size)
    ax.scatter(values, position + jitter, s=9, color="black", alpha=0.7, zorder=3, linewidths=0)


def figure_convergence(curves: pd.DataFrame, palette: Palette | None = None, n_points: int = 60) -> Figure:
    """Median best-so-far loss against cost with its interquartile band, per dataset.

    Both axes are logarithmic; a loss of exactly 0 is drawn a decade below the smallest positive
    loss in the figure, at the bottom of its panel.

    Parameters
    ----------
    curves : DataFrame
        One row per run per checkpoint (see :func:`bench.analysis.convergence_table`).
    palette : dict, optional
        Optimizer label -> colour; built from ``curves`` when omitted.
    n_points : int
        Cost grid points per dataset.

    Returns
    -------
    Figure
        The figure (``save`` writes it as a PNG).
    """
    table = convergence_table(curves, n_points)
    palette = palette or optimizer_palette(curves["optimizer"])
    datasets = list(pd.unique(curves["dataset"]))
    present = [name for name in palette if name in set(curves["optimizer"])]
    title = "Convergence: median best loss so far (band: 25%-75% of runs)"
    fig, axes = _facets(datasets, title, 3.6, _text_width(present) + 1.0)
    values = table[["median", "q25", "q75"]].to_numpy(float)
    positive = values[np.isfinite(values) & (values > 0)]
    # A loss of exactly 0 has no place on a log axis: draw it a decade below the smallest loss.
    floor = positive.min() / 10 if positive.size else 1e-12
    for index, (ax, dataset) in enumerate(zip(axes, datasets, strict=True)):
        panel = table[table["dataset"] == dataset]
        for optimizer, group in panel.groupby("optimizer", sort=False):
            colour = palette[optimizer]
            cost = group["cost"].to_numpy(float)
            low, median, high = (group[c].clip(lower=floor).to_numpy(float) for c in ("q25", "median", "q75"))
            ax.fill_between(cost, low, high, color=colour, alpha=0.2, linewidth=0)
            ax.plot(cost, median, color=colour, linewidth=1.8)
        if np.isfinite(panel["median"].to_numpy(float)).any():
            ax.set_xscale("log")
            _log_loss_axis(ax, "y")
        else:
            ax.text(0.5, 0.5, "no finite losses", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(dataset)
        ax.set_xlabel(COST_LABEL)
        if index % MAX_COLUMNS == 0:
            ax.set_ylabel("best loss so far")
    handles = [Line2D([], [], color=palette[name], linewidth=2.5, label=name) for name in present]
    fig.legend(handles=handles, title="optimizer", loc="outside right center", frameon=False)
    return fig


def figure_final_loss(runs: pd.DataFrame, palette: Palette | None = None) -> Figure:
    """Box and points of every run's final loss per optimizer, per dataset.

    Non-finite (diverged) losses cannot be drawn; each panel's title counts them.  The loss axis
    is logarithmic when every drawn loss is positive.

    Parameters
    ----------
    runs : DataFrame
        One row per run with ``dataset, optimizer, final_loss``.
    palette : dict, optional
        Optimizer label -> colour; built from ``runs`` when omitted.

    Returns
    -------
    Figure
        The figure (``save`` writes it as a PNG).
    """
    palette = palette or optimizer_palette(runs["optimizer"])
    title = "Final loss of each run (box: quartiles; whiskers: range; points: runs)"
    fig, axes, datasets, order = _optimizer_facets(runs, title)
    rng = np.random.default_rng(0)  # jitter only: fixed so the same results give the same figure
    for ax, dataset in zip(axes, datasets, strict=True):
        panel = runs.loc[runs["dataset"] == dataset, ["optimizer", "final_loss"]]
        losses = panel["final_loss"].to_numpy(float)
        finite = panel[np.isfinite(losses)]
        if len(finite) and (finite["final_loss"] > 0).all():
            _log_loss_axis(ax, "x")
        for position, optimizer in enumerate(order):
            values = finite.loc[finite["optimizer"] == optimizer, "final_loss"].to_numpy(float)
            n_runs = int((panel["optimizer"] == optimizer).sum())
            if values.size:
                _box_and_points(ax, position, values, palette[optimizer], rng)
            elif n_runs:  # nothing drawable in this row: say why instead of leaving it blank
                ax.text(
                    0.02,
                    position,
                    f"all {n_runs} runs non-finite",
                    transform=ax.get_yaxis_transform(),
                    va="center",
                    color="0.35",
                    fontsize=9,
                )
        n_missing = len(panel) - len(finite)
        ax.set_title(f"{dataset}  ({n_missing} non-finite, not shown)" if n_missing else dataset)
        ax.set_xlabel("final loss")
    return fig


def figure_success(runs: pd.DataFrame, palette: Palette | None = None) -> Figure:
    """Success rate per optimizer with Wilson 95% intervals, per dataset.

    Parameters
    ----------
    runs : DataFrame
        One row per run with ``dataset, optimizer, status`` (and what :func:`summary` reads).
    palette : dict, optional
        Optimizer label -> colour; built from ``runs`` when omitted.

    Returns
    -------
    Figure
        The figure (``save`` writes it as a PNG).
    """
    palette = palette or optimizer_palette(runs["optimizer"])
    table = summary(runs)
    title = "Success rate: solved / runs (whiskers: Wilson 95% CI)"
    fig, axes, datasets, order = _optimizer_facets(runs, title)
    for ax, dataset in zip(axes, datasets, strict=True):
        panel = table[table["dataset"] == dataset]
        y = np.array([order.index(name) for name in panel["optimizer"]])
        rate = panel["success_rate"].to_numpy(float)
        # Clipped at 0: at 0 or n successes a bound can miss the rate by one rounding error.
        errors = np.clip(
            [rate - panel["success_low"].to_numpy(float), panel["success_high"].to_numpy(float) - rate], 0, None
        )
        ax.barh(y, rate, height=0.6, color=[palette[name] for name in panel["optimizer"]], alpha=0.85)
        ax.errorbar(rate, y, xerr=errors, fmt="none", ecolor="0.25", capsize=4, linewidth=1.2)
        # Counts in the right margin, where they never collide with a bar or a whisker.
        for yi, solved, n in zip(y, panel["solved"], panel["runs"], strict=True):
            ax.text(1.02, yi, f"{solved}/{n}", transform=ax.get_yaxis_transform(), va="center", fontsize=9)
        ax.set_xlim(0.0, 1.0)
        ax.set_title(dataset)
        ax.set_xlabel("success rate")
    return fig
