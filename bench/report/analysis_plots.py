"""Figures of the end-point analysis: classes, attractors, paired outcomes, plateaus, barriers, slices.

Each ``figure_*`` function draws one panel per dataset from a stored table and returns the Figure
(the layout and colours of ``bench.report.plots``).  End-point classes have one fixed colour each
in every figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from bench.analysis.endpoints import CLASSES
from bench.report.plots import (
    Palette,
    _facets,
    _log_loss_axis,
    _optimizer_facets,
    optimizer_palette,
)

_MAX_LINES = 6  # straight lines drawn per panel

CLASS_COLOURS = {
    "solved": "#2ca02c",
    "diverged": "#222222",
    "minimum": "#d62728",
    "saddle": "#ff7f0e",
    "plateau": "#9467bd",
    "saturated": "#8c564b",
    "unfinished": "#9ecae1",
}


def _class_legend(fig: plt.Figure, present: list[str]) -> None:
    handles = [Patch(color=CLASS_COLOURS[c], label=c) for c in CLASSES if c in present]
    fig.legend(handles=handles, loc="outside right center", title="end point", frameon=False)


def figure_endpoints(runs: pd.DataFrame, palette: Palette | None = None) -> Figure:
    """Stacked bars: the share of each optimizer's runs in each end-point class, per dataset."""
    fig, axes, datasets, order = _optimizer_facets(runs, "End-point class of every run")
    fig.set_size_inches(fig.get_size_inches()[0] + 1.2, fig.get_size_inches()[1])
    for ax, dataset in zip(axes, datasets, strict=True):
        panel = runs[runs["dataset"] == dataset]
        shares = pd.crosstab(panel["optimizer"], panel["endpoint"], normalize="index")
        left = np.zeros(len(order))
        for endpoint in CLASSES:
            if endpoint not in shares:
                continue
            width = shares[endpoint].reindex(order).fillna(0).to_numpy()
            ax.barh(range(len(order)), width, left=left, height=0.6, color=CLASS_COLOURS[endpoint])
            left += width
        ax.set_xlim(0, 1)
        ax.set_title(dataset)
        ax.set_xlabel("share of runs")
    _class_legend(fig, list(pd.unique(runs["endpoint"])))
    return fig


def figure_attractors(attractors: pd.DataFrame, palette: Palette | None = None) -> Figure:
    """One bubble per attractor an optimizer reached: at its loss, sized by its basin share,
    coloured by its end-point class."""
    frame = attractors.rename(columns={"endpoint": "end"})
    fig, axes, datasets, order = _optimizer_facets(
        frame, "Attractors: loss of each distinct end point (size: share of runs)"
    )
    fig.set_size_inches(fig.get_size_inches()[0] + 1.2, fig.get_size_inches()[1])
    for ax, dataset in zip(axes, datasets, strict=True):
        panel = frame[frame["dataset"] == dataset]
        y = np.array([order.index(o) for o in panel["optimizer"]])
        loss = panel["loss"].to_numpy(float)
        finite = np.isfinite(loss) & (loss > 0)
        ax.scatter(
            loss[finite],
            y[finite],
            s=600 * panel["share"].to_numpy(float)[finite] + 8,
            c=[CLASS_COLOURS.get(e, "grey") for e in panel["end"].to_numpy()[finite]],
            alpha=0.7,
            edgecolors="black",
            linewidths=0.4,
        )
        if finite.any():
            _log_loss_axis(ax, "x")
        counts = panel.groupby("optimizer", sort=False)["attractor"].nunique()
        for optimizer, count in counts.items():
            ax.text(
                1.02, order.index(optimizer), str(count), transform=ax.get_yaxis_transform(), va="center", fontsize=9
            )
        ax.set_title(f"{dataset} (right: attractors)")
        ax.set_xlabel("final loss of the attractor")
    _class_legend(fig, list(pd.unique(frame["end"])))
    return fig


def figure_pairs(runs: pd.DataFrame, palette: Palette | None = None) -> Figure:
    """The paired view: one column per initial point (run index), one row per optimizer, each cell
    coloured by where that optimizer took that start."""
    fig, axes, datasets, order = _optimizer_facets(runs, "Paired outcomes: one column per initial point")
    fig.set_size_inches(fig.get_size_inches()[0] + 1.2, fig.get_size_inches()[1])
    codes = {c: i for i, c in enumerate(CLASSES)}
    cmap = ListedColormap([CLASS_COLOURS[c] for c in CLASSES])
    for ax, dataset in zip(axes, datasets, strict=True):
        panel = runs[runs["dataset"] == dataset]
        grid = panel.pivot_table(index="optimizer", columns="run", values="endpoint", aggfunc="first", sort=False)
        grid = grid.reindex(order)
        values = grid.apply(lambda column: column.map(codes)).to_numpy(float)
        ax.imshow(
            np.ma.masked_invalid(values),
            cmap=cmap,
            vmin=-0.5,
            vmax=len(CLASSES) - 0.5,
            aspect="auto",
            interpolation="nearest",
            extent=(-0.5, values.shape[1] - 0.5, len(order) - 0.5, -0.5),
        )
        ax.grid(False)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(dataset)
        ax.set_xlabel("run (initial point)")
    _class_legend(fig, list(pd.unique(runs["endpoint"])))
    return fig


def figure_plateaus(runs: pd.DataFrame, palette: Palette | None = None) -> Figure:
    """Every run's share of the budget spent on plateau episodes, per optimizer."""
    palette = palette or optimizer_palette(runs["optimizer"])
    fig, axes, datasets, order = _optimizer_facets(runs, "Share of each run's budget on plateaus")
    rng = np.random.default_rng(0)
    for ax, dataset in zip(axes, datasets, strict=True):
        panel = runs[runs["dataset"] == dataset]
        for position, optimizer in enumerate(order):
            share = panel.loc[panel["optimizer"] == optimizer, "plateau_share"].to_numpy(float)
            if not share.size:
                continue
            jitter = rng.uniform(-0.2, 0.2, share.size)
            ax.scatter(share, position + jitter, s=10, color=palette[optimizer], alpha=0.7, linewidths=0)
            ax.plot([np.median(share)] * 2, [position - 0.3, position + 0.3], color="black", linewidth=1.5)
        ax.set_xlim(-0.02, 1.02)
        ax.set_title(dataset)
        ax.set_xlabel("share of the budget on plateaus (bar: median)")
    return fig


def figure_paths(paths: pd.DataFrame, palette: Palette | None = None) -> Figure:
    """The loss along straight lines between distinct attractors (aligned), with their barriers."""
    datasets = list(pd.unique(paths["dataset"]))
    fig, axes = _facets(datasets, "Loss along straight lines between attractors", 3.4, 2.4)
    for ax, dataset in zip(axes, datasets, strict=True):
        panel = paths[(paths["dataset"] == dataset) & (paths["kind"] == "between attractors")]
        if panel.empty:
            panel = paths[(paths["dataset"] == dataset) & (paths["kind"] == "initial to end")]
            ax.set_title(f"{dataset}: initial -> end (one attractor)")
        else:
            ax.set_title(f"{dataset}: between attractors")
        # The lines from the lowest attractor first: those are the ways out of each trap.
        curves = sorted(panel.groupby(["from_attractor", "to_attractor", "run"], sort=False), key=lambda c: c[0][:2])
        colours = plt.get_cmap("tab10")
        for i, ((a, b, _), curve) in enumerate(curves[:_MAX_LINES]):
            loss = curve["loss"].to_numpy(float)
            chord = loss[0] + (loss[-1] - loss[0]) * curve["alpha"].to_numpy(float)
            label = f"{a} -> {b}: {np.max(loss - chord):.3g}" if a >= 0 else None
            ax.plot(curve["alpha"], loss, color=colours(i % 10), linewidth=1.2, label=label)
        ax.set_xlabel("position on the line")
        ax.set_ylabel("loss")
        if any(a >= 0 for (a, _, _), _ in curves[:_MAX_LINES]):
            ax.legend(
                fontsize=7, title="attractors: barrier", title_fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0)
            )
    return fig


def figure_slices(slices: pd.DataFrame, palette: Palette | None = None) -> Figure:
    """log10 loss on a 2-D slice around one run's end point (filter-normalised directions), with
    the run's trajectory projected on it."""
    datasets = list(pd.unique(slices["dataset"]))
    fig, axes = _facets(datasets, "Loss around one run's end point (log10)", 3.8, 1.2)
    for ax, dataset in zip(axes, datasets, strict=True):
        panel = slices[slices["dataset"] == dataset]
        grid = panel[panel["kind"] == "grid"]
        points = int(round(np.sqrt(len(grid))))
        a = grid["a"].to_numpy(float).reshape(points, points)
        b = grid["b"].to_numpy(float).reshape(points, points)
        loss = grid["loss"].to_numpy(float).reshape(points, points)
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.log10(np.where(loss > 0, loss, np.nan))
        filled = ax.contourf(a, b, np.ma.masked_invalid(level), levels=20, cmap="viridis")
        fig.colorbar(filled, ax=ax, shrink=0.8)
        track = panel[panel["kind"] == "trajectory"]
        if len(track):
            ax.plot(track["a"], track["b"], color="white", linewidth=1.2, marker=".", markersize=3)
            ax.plot(track["a"].iloc[0], track["b"].iloc[0], "o", color="white", markersize=6)
        ax.plot(0, 0, "*", color="red", markersize=12)
        ax.set_xlim(a.min(), a.max())
        ax.set_ylim(b.min(), b.max())
        ax.set_title(f"{dataset}: {panel['optimizer'].iloc[0]}, run {panel['run'].iloc[0]}", fontsize=9)
        ax.set_xlabel("direction 1")
        ax.set_ylabel("direction 2")
    return fig
