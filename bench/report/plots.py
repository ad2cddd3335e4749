"""Figures of stored results: convergence curves, final-loss distributions, success rates.

Each ``figure_*`` function draws one panel per dataset (at most four per row) and returns the
matplotlib Figure (a notebook shows it; ``save`` writes it as a PNG and closes it).  Colours come
from one palette keyed by optimizer label: an optimizer's colour is a fixed function of its label
(:func:`optimizer_colour`), so it keeps its colour from figure to figure and from experiment to
experiment.  A run's status has one fixed colour everywhere (``bench.report.colours``).
"""

from __future__ import annotations

import math
import textwrap
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never open a window, work on headless machines

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import Formatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from bench.analysis import convergence_table, summary  # noqa: E402
from bench.report.colours import STATUS_COLOURS  # noqa: E402

DPI = 110
MAX_COLUMNS = 4
COST_LABEL = "cost (forward-pass units)"
BAND_DECADES = 1e3  # a convergence panel shows its bands down to this factor below its lowest median
Palette = dict[str, tuple[float, float, float]]

# Strong colours that stay apart from each other (CIEDE2000 distance >= 16 between any two, the
# closest pair being tab10's own red and brown): tab10 and six darker or more saturated ones.  No
# pastels and nothing near white, so thin lines and small points stay visible on white.  An
# optimizer's colour is picked from this list by the CRC-32 of its label, so the order is part of
# the format (changing it changes every optimizer's colour); it was chosen so that the optimizers
# of each bundled preset (quick, classic, sklearn) get hues that are far apart.
OPTIMIZER_COLOURS: tuple[tuple[float, float, float], ...] = tuple(
    to_rgb(c)
    for c in (
        "#154406",  # forest green
        "#7f7f7f",  # grey
        "#2ca02c",  # green
        "#d62728",  # red
        "#17becf",  # cyan
        "#e377c2",  # pink
        "#1f77b4",  # blue
        "#7d7103",  # dark mustard
        "#008080",  # teal
        "#8c564b",  # brown
        "#bcbd22",  # olive
        "#0504aa",  # royal blue
        "#ff7f0e",  # orange
        "#770001",  # maroon
        "#9467bd",  # purple
        "#c20078",  # magenta
    )
)


def _rgb_key(colour: object) -> tuple[float, ...]:
    return tuple(round(float(x), 6) for x in to_rgb(colour))


def optimizer_colour(label: str, taken: Iterable[object] = ()) -> tuple[float, float, float]:
    """The colour of optimizer ``label``: a fixed function of the label and the colours ``taken``.

    The colour is ``OPTIMIZER_COLOURS[zlib.crc32(label) % 16]`` (CRC-32 of the UTF-8 label, never
    Python's ``hash``, which changes from process to process); when that colour is in ``taken``
    the next one in the list that is not (wrapping around).  When all sixteen are taken, a husl
    hue chosen by the same CRC-32.

    Parameters
    ----------
    label : str
        The optimizer's label, e.g. ``"rprop(variant=irprop-)"``.
    taken : iterable of colours
        Colours (RGB tuples or any matplotlib colour) already given to other labels.

    Returns
    -------
    tuple
        RGB, each in [0, 1].
    """
    checksum = zlib.crc32(str(label).encode("utf-8"))
    used = {_rgb_key(colour) for colour in taken}
    n = len(OPTIMIZER_COLOURS)
    for step in range(n):
        colour = OPTIMIZER_COLOURS[(checksum + step) % n]
        if _rgb_key(colour) not in used:
            return colour
    return tuple(sns.husl_palette(1, h=(checksum % 360) / 360)[0])


def optimizer_palette(optimizers: Iterable[str]) -> Palette:
    """One colour per optimizer label, each a fixed function of the label (:func:`optimizer_colour`).

    An optimizer's colour does not depend on the other labels unless two labels would get the same
    colour: then the labels are taken in sorted order, and a later one gets the next free colour
    of ``OPTIMIZER_COLOURS``.  So the same label has the same colour in every experiment whose
    labels do not collide with it, and all colours of one palette are distinct.  Beyond sixteen
    labels, the last ones in sorted order get evenly spaced husl hues.

    Parameters
    ----------
    optimizers : iterable of str
        Optimizer labels, repeats allowed (e.g. a ``runs["optimizer"]`` column).

    Returns
    -------
    dict
        Label -> RGB tuple, in order of first appearance.
    """
    labels = list(dict.fromkeys(optimizers))
    ordered = sorted(labels, key=str)
    n = len(OPTIMIZER_COLOURS)
    colours: dict[str, tuple[float, float, float]] = {}
    for label in ordered[:n]:
        colours[label] = optimizer_colour(label, colours.values())
    excess = ordered[n:]
    for label, colour in zip(excess, sns.color_palette("husl", len(excess)), strict=True):
        colours[label] = tuple(colour)
    return {label: colours[label] for label in labels}


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
    """Log ticks that stay readable whatever the range: between 3 and ``max_ticks`` labelled ticks
    inside it, never crowded on the log scale.

    The first of these that puts at least four ticks inside the range (else at least three), none
    of them closer than a tenth of the axis to the next: powers of ten (every 1, 2, 3, 5, 10, 20,
    25, 50, ... decades), 1 and 3, 1-2-5, 1-2-3-5 times powers of ten, 1 to 9 times powers of ten,
    then evenly spaced round numbers (0.06, 0.065, 0.07, ...) for a range much narrower than a
    decade, where no power of ten or 2 or 5 times one falls.
    """

    SUBS: tuple[tuple[float, ...], ...] = ((1.0, 3.0), (1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 5.0), tuple(range(1, 10)))
    DECADE_STEPS = (1, 2, 3, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000)

    def __init__(self, max_ticks: int = 8) -> None:
        super().__init__(base=10)
        self.max_ticks = max_ticks

    def tick_values(self, vmin: float, vmax: float) -> np.ndarray:
        low, high = sorted((float(vmin), float(vmax)))
        if not (np.isfinite(low) and np.isfinite(high)) or high <= 0:
            return super().tick_values(vmin, vmax)
        if low <= 0:
            low = high * 1e-3  # no positive lower limit (yet): three decades below the top
        if low == high:
            return np.array([low])
        log_low, log_high = np.log10(low), np.log10(high)
        span = log_high - log_low
        candidates = [self._decade_ticks(log_low, log_high, step) for step in self.DECADE_STEPS]
        candidates += [self._sub_ticks(log_low, log_high, subs) for subs in self.SUBS]
        candidates += [self._linear_ticks(low, high, n_bins) for n_bins in range(2, self.max_ticks + 1)]
        usable = []
        for ticks in candidates:
            inside = ticks[(ticks >= low * (1 - 1e-10)) & (ticks <= high * (1 + 1e-10))]
            gaps = np.diff(np.log10(inside))
            if 3 <= inside.size <= self.max_ticks and (gaps.size == 0 or gaps.min() >= span / 10):
                usable.append(inside)
        for minimum in (4, 3):
            for ticks in usable:
                if ticks.size >= minimum:
                    return ticks
        # Nothing round fits (a range of a few parts in 1e16): three evenly spaced values.
        return np.geomspace(low, high, 3)

    @staticmethod
    def _decade_ticks(log_low: float, log_high: float, step: int) -> np.ndarray:
        first, last = math.ceil(log_low / step) * step, math.floor(log_high / step) * step
        if (last - first) / step > 50:  # far too many: not a candidate (and keeps this cheap)
            return np.array([])
        return 10.0 ** np.arange(first, last + 1, step, dtype=float)

    @staticmethod
    def _sub_ticks(log_low: float, log_high: float, subs: tuple[float, ...]) -> np.ndarray:
        if log_high - log_low > 6:
            return np.array([])
        decades = np.arange(math.floor(log_low), math.ceil(log_high) + 1, dtype=float)
        return np.array([sub * 10.0**decade for decade in decades for sub in subs])

    @staticmethod
    def _linear_ticks(low: float, high: float, n_bins: int) -> np.ndarray:
        if high / low > 10:
            return np.array([])
        return MaxNLocator(nbins=n_bins, steps=[1, 2, 5, 10]).tick_values(low, high)


class LossFormatter(Formatter):
    """Plain tick labels ("0.3", "0.065", "7.25", "100", "1e-05") with as many significant digits
    as the value needs, and more when two labels of one axis would otherwise read the same."""

    def __init__(self) -> None:
        self.min_digits = 1

    def __call__(self, x: float, pos: int | None = None) -> str:
        return self._format(x, self.min_digits)

    @staticmethod
    def _format(x: float, min_digits: int) -> str:
        if not np.isfinite(x) or x <= 0:
            return ""
        digits = min_digits
        while digits < 17 and abs(float(f"{x:.{digits}g}") - x) > 1e-12 * abs(x):
            digits += 1
        if 1 <= abs(x) < 1e6:  # integers in full: "100", not "1e+02"
            digits = max(digits, int(math.floor(math.log10(abs(x)))) + 1)
        return f"{x:.{digits}g}"

    def format_ticks(self, values: Sequence[float]) -> list[str]:
        for digits in range(1, 18):
            labels = [self._format(value, digits) for value in values]
            shown = [label for label in labels if label]
            if len(set(shown)) == len(shown):
                self.min_digits = digits
                return labels
        return labels


def _log_loss_axis(ax: Axes, which: str, max_ticks: int | None = None) -> None:
    """Log scale with plain labels ("0.3", "1e-05") on the "x" or "y" axis of ``ax``.

    Labelled major ticks as :class:`LossTicks` places them (at least three inside any range, at
    most ``max_ticks``: default 8 on a vertical axis, 6 on a horizontal one, where labels sit side
    by side), each label distinct; minor ticks unlabelled, so a narrow range never crowds the axis
    with identical labels.
    """
    getattr(ax, f"set_{which}scale")("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(LossTicks(max_ticks or (6 if which == "x" else 8)))
    axis.set_major_formatter(LossFormatter())
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


def _box_and_points(
    ax: Axes,
    position: int,
    values: np.ndarray,
    colour: tuple,
    rng: np.random.Generator,
    point_colours: Sequence[object] | None = None,
) -> None:
    """A horizontal box (quartiles, whiskers over the full range) and every value as a point.

    The box is drawn in ``colour`` (the optimizer's), the points in ``point_colours`` (one per
    value, e.g. by status; black when omitted) with a thin white edge, so a point stays visible on a
    box of the same hue.
    """
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
        boxprops={"facecolor": (*colour, 0.3), "edgecolor": colour, "linewidth": 1.4},
        medianprops={"color": "black", "linewidth": 1.6},
        whiskerprops={"color": colour, "linewidth": 1.2},
        capprops={"color": colour, "linewidth": 1.2},
    )
    jitter = rng.uniform(-0.15, 0.15, size=values.size)
    colours = "black" if point_colours is None else list(point_colours)
    ax.scatter(values, position + jitter, s=16, c=colours, alpha=0.85, zorder=3, edgecolors="white", linewidths=0.4)


def _identical_groups(series: dict[str, tuple[np.ndarray, ...]]) -> list[list[str]]:
    """The optimizers of ``series`` grouped by identical arrays (exactly equal, NaN equal to NaN),
    each group in the order of ``series``."""
    groups: list[list[str]] = []
    for name, arrays in series.items():
        for group in groups:
            other = series[group[0]]
            if len(other) == len(arrays) and all(
                a.shape == b.shape and np.array_equal(a, b, equal_nan=True) for a, b in zip(arrays, other, strict=True)
            ):
                group.append(name)
                break
        else:
            groups.append([name])
    return groups


def _member_style(rank: int, size: int, dash: float = 3.0) -> str | tuple[float, tuple[float, float]]:
    """Line style of member ``rank`` of ``size`` identical curves drawn on top of each other.

    The first is solid; each later one is dashed with dashes of length ``dash`` and gaps of
    ``(size - 1) * dash``, shifted by one dash per member, so along the line the members take turns
    and every colour shows (the solid first one in the last slot of each period).
    """
    if rank == 0 or size < 2:
        return "solid"
    period = size * dash
    return ((period - (rank - 1) * dash) % period, (dash, (size - 1) * dash))


def _new_band_points(
    cost: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    drawn: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
) -> np.ndarray:
    """Which grid points of a band to fill: all but the runs of points where an earlier band of the
    panel, on the same cost grid, was filled with exactly the same bounds (kept at the edges of
    such a run, so the band joins up)."""
    duplicate = np.zeros(cost.shape, bool)
    for other_cost, other_low, other_high, other_where in drawn:
        if other_cost.shape == cost.shape and np.array_equal(other_cost, cost):
            duplicate |= other_where & (other_low == low) & (other_high == high)
    filled_segment = ~(duplicate[:-1] & duplicate[1:])
    where = np.zeros(cost.shape, bool)
    where[:-1] |= filled_segment
    where[1:] |= filled_segment
    return where if cost.size > 1 else ~duplicate


def _same_curve_text(groups: list[list[str]], width: int = 60) -> str:
    """The note on identical curves, "same curve: a = b = c": one line per group, wrapped at the
    "=" signs to about ``width`` characters (the width of a panel at 7.5 points)."""
    lines = []
    for group in groups:
        line = "same curve: " + group[0]
        for name in group[1:]:
            if len(line) + len(name) + 3 > width:
                lines.append(line)
                line = "    = " + name
            else:
                line += " = " + name
        lines.append(line)
    return "\n".join(lines)


def _note_same_curves(ax: Axes, groups: list[list[str]]) -> None:
    """Under the panel, below its axis label, the groups of identical curves (inside the panel,
    the note would hide the curves it names)."""
    shared = [group for group in groups if len(group) > 1]
    if shared:
        ax.annotate(
            _same_curve_text(shared),
            xy=(0.0, 0.0),
            xycoords=("axes fraction", ax.xaxis.label),
            xytext=(0, -3),
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize=7.5,
            color="0.2",
            gid="same-curve",
        )


def draw_lines(
    ax: Axes, series: dict[str, tuple[np.ndarray, np.ndarray]], palette: Palette, step: bool = False
) -> list[list[str]]:
    """One line per optimizer (``series``: label -> (x, y)); identical lines are drawn in turns, the
    first solid and the others dashed on top, each in its own colour, with a note under the panel.
    Returns the groups of identical lines."""
    groups = _identical_groups(series)
    for group in groups:
        x, y = series[group[0]]
        for rank, optimizer in enumerate(group):
            style = {"linestyle": _member_style(rank, len(group)), "color": palette[optimizer], "label": optimizer}
            if step:
                ax.step(x, y, where="post", linewidth=1.7, **style)
            else:
                ax.plot(x, y, linewidth=1.7, **style)
    _note_same_curves(ax, groups)
    return groups


def figure_convergence(curves: pd.DataFrame, palette: Palette | None = None, n_points: int = 60) -> Figure:
    """Median best-so-far loss against cost with its interquartile band, per dataset.

    Both axes are logarithmic; a loss of exactly 0 is drawn a decade below the smallest positive
    loss in the figure, at the bottom of its panel.  Optimizers whose curves are identical in a
    panel (median and band exactly equal, e.g. ``gd`` and ``gradient_ascent``, which follow the same
    trajectory) are drawn once: one band, and one line per member in its own colour, the first
    solid and the others dashed in turns on top, so every colour shows; a note under the panel
    lists them ("same curve: a = b").  Where bands coincide only in part (the runs' common start),
    the later band leaves that part out, so stacked translucent bands do not add up to a dark block.

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
        The figure (``save`` writes it as a PNG).  Each median line is labelled with its optimizer
        (``Line2D.get_label``); a panel's note on identical curves has the gid ``"same-curve"``.
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
        series = {
            optimizer: (
                group["cost"].to_numpy(float),
                *(group[c].clip(lower=floor).to_numpy(float) for c in ("q25", "median", "q75")),
            )
            for optimizer, group in panel.groupby("optimizer", sort=False)
        }
        # Legend order, so the first member of a group (the solid line) is the first in the legend.
        series = {name: series[name] for name in sorted(series, key=lambda n: present.index(n) if n in present else 0)}
        groups = _identical_groups(series)
        drawn_bands: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for group in groups:
            cost, low, median, high = series[group[0]]
            # Where this band equals one drawn before (the runs' common start, before the optimizers
            # part ways), it is left out: stacked translucent bands would add up to a dark block.
            where = _new_band_points(cost, low, high, drawn_bands)
            ax.fill_between(cost, low, high, where=where, color=palette[group[0]], alpha=0.15, linewidth=0)
            drawn_bands.append((cost, low, high, where))
            for rank, optimizer in enumerate(group):
                ax.plot(
                    cost,
                    median,
                    color=palette[optimizer],
                    linewidth=1.8,
                    linestyle=_member_style(rank, len(group)),
                    label=optimizer,
                )
        _note_same_curves(ax, groups)
        if np.isfinite(panel["median"].to_numpy(float)).any():
            ax.set_xscale("log")
            _log_loss_axis(ax, "y")
            # The axis is for the medians: a band reaching far lower (a quarter of the runs driven
            # to 1e-250 by saturation) leaves through the bottom rather than crush them flat.
            medians = panel["median"].clip(lower=floor).to_numpy(float)
            lowest = np.nanmin(medians[np.isfinite(medians)])
            if np.nanmin(panel["q25"].clip(lower=floor).to_numpy(float)) < lowest / BAND_DECADES:
                ax.set_ylim(lowest / BAND_DECADES, 1.5 * np.nanmax(panel["q75"].to_numpy(float)))
        else:
            ax.text(0.5, 0.5, "no finite losses", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(dataset)
        ax.set_xlabel(COST_LABEL)
        if index % MAX_COLUMNS == 0:
            ax.set_ylabel("best loss so far")
    handles = [Line2D([], [], color=palette[name], linewidth=2.5, label=name) for name in present]
    fig.legend(handles=handles, title="optimizer", loc="outside right center", frameon=False)
    return fig


def figure_final_loss(
    runs: pd.DataFrame, palette: Palette | None = None, thresholds: dict[str, float] | None = None
) -> Figure:
    """Box and points of every run's final loss per optimizer, per dataset.

    Boxes have the optimizer's colour, points the colour of the run's status (``STATUS_COLOURS``:
    solved green, stuck red, unfinished orange, diverged black; a legend lists the statuses
    drawn).  Non-finite (diverged) losses cannot be drawn; each panel's title counts them.  The
    loss axis is logarithmic when every drawn loss is positive.

    Parameters
    ----------
    runs : DataFrame
        One row per run with ``dataset, optimizer, final_loss`` (and ``status``, which colours the
        points; black points without it).
    palette : dict, optional
        Optimizer label -> colour; built from ``runs`` when omitted.
    thresholds : dict, optional
        Dataset label -> the final loss at or below which a run meets its success criterion (for a
        criterion on the training loss, in the units of ``final_loss``), drawn as a vertical dashed
        line, "success target"; datasets without one get none.

    Returns
    -------
    Figure
        The figure (``save`` writes it as a PNG).
    """
    palette = palette or optimizer_palette(runs["optimizer"])
    thresholds = thresholds or {}
    title = "Final loss of each run (box: quartiles; whiskers: range; points: runs, coloured by status)"
    fig, axes, datasets, order = _optimizer_facets(runs, title)
    has_status = "status" in runs.columns
    rng = np.random.default_rng(0)  # jitter only: fixed so the same results give the same figure
    drawn_statuses: set[str] = set()
    target_drawn = False
    for ax, dataset in zip(axes, datasets, strict=True):
        columns = ["optimizer", "final_loss", *(["status"] if has_status else [])]
        panel = runs.loc[runs["dataset"] == dataset, columns]
        losses = panel["final_loss"].to_numpy(float)
        finite = panel[np.isfinite(losses)]
        log_axis = bool(len(finite) and (finite["final_loss"] > 0).all())
        if log_axis:
            _log_loss_axis(ax, "x")
        for position, optimizer in enumerate(order):
            rows = finite[finite["optimizer"] == optimizer]
            values = rows["final_loss"].to_numpy(float)
            n_runs = int((panel["optimizer"] == optimizer).sum())
            if values.size:
                point_colours = None
                if has_status:
                    statuses = rows["status"].astype(str).to_list()
                    point_colours = [STATUS_COLOURS.get(status, "0.5") for status in statuses]
                    drawn_statuses.update(statuses)
                _box_and_points(ax, position, values, palette[optimizer], rng, point_colours)
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
        target = thresholds.get(dataset)
        if target is not None and np.isfinite(target) and (target > 0 or not log_axis):
            ax.axvline(target, color="0.15", linestyle="--", linewidth=1.3, zorder=4, label="success target")
            target_drawn = True
        n_missing = len(panel) - len(finite)
        ax.set_title(f"{dataset}  ({n_missing} non-finite, not shown)" if n_missing else dataset)
        ax.set_xlabel("final loss")
    handles = [
        Line2D([], [], linestyle="", marker="o", markersize=6, markerfacecolor=colour, markeredgecolor="white", label=s)
        for s, colour in STATUS_COLOURS.items()
        if s in drawn_statuses
    ]
    handles += [
        Line2D([], [], linestyle="", marker="o", markersize=6, color="0.5", label=s)
        for s in sorted(drawn_statuses - set(STATUS_COLOURS))
    ]
    if target_drawn:
        handles.append(Line2D([], [], color="0.15", linestyle="--", linewidth=1.3, label="success target"))
    if handles:
        width, height = fig.get_size_inches()
        fig.set_size_inches(width + 1.4, height)  # room for the legend, the panels keep their width
        fig.legend(handles=handles, title="run status", loc="outside right center", frameon=False)
    return fig


def figure_success(runs: pd.DataFrame, palette: Palette | None = None) -> Figure:
    """Success rate per optimizer with Wilson 95% intervals, per dataset.

    A dataset on which no optimizer solved a run gets no panel; a footnote names it ("no optimizer
    solved: parity 4").  When no dataset has a success, the figure is one small panel saying so.

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
    solved = table.groupby("dataset", sort=False)["solved"].sum()
    all_datasets = list(pd.unique(runs["dataset"]))
    unsolved = [dataset for dataset in all_datasets if solved.get(dataset, 0) == 0]
    if len(unsolved) == len(all_datasets):
        return _nothing_solved(title, unsolved)
    runs = runs[~runs["dataset"].isin(unsolved)]
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
        whiskers = ax.errorbar(rate, y, xerr=errors, fmt="none", ecolor="black", capsize=4, linewidth=1.2)
        for artist in whiskers.lines[1] + whiskers.lines[2]:  # a white halo: visible on a dark bar too
            artist.set_path_effects([patheffects.withStroke(linewidth=3, foreground="white")])
        # Counts in the right margin, where they never collide with a bar or a whisker.
        for yi, n_solved, n in zip(y, panel["solved"], panel["runs"], strict=True):
            ax.text(1.02, yi, f"{n_solved}/{n}", transform=ax.get_yaxis_transform(), va="center", fontsize=9)
        ax.set_xlim(0.0, 1.03)  # a whisker's cap at 1 stays whole
        ax.set_xticks(np.linspace(0.0, 1.0, 6))
        ax.set_title(dataset)
        ax.set_xlabel("success rate")
    if unsolved:
        fig.supxlabel(
            f"no optimizer solved: {', '.join(map(str, unsolved))} (no panel)", fontsize=10, color="0.25", ha="center"
        )
    return fig


def _nothing_solved(title: str, datasets: list[str]) -> Figure:
    """One small panel that says no optimizer solved a run on any of ``datasets``."""
    fig, ax = plt.subplots(figsize=(6.0, 1.8), layout="constrained")
    fig.suptitle(title, fontsize=11)
    names = textwrap.fill(", ".join(map(str, datasets)), 60)
    ax.text(
        0.5,
        0.5,
        f"no optimizer solved a run\non: {names}",
        ha="center",
        va="center",
        fontsize=11,
        transform=ax.transAxes,
    )
    ax.set_axis_off()
    return fig
