"""Tests of bench.report.plots on the data behind each figure: the artists drawn and their values.

Colours are a fixed function of the optimizer label; identical curves stay visible; every log axis
has a few distinct labels; final losses are coloured by status with the success target; the
success figure leaves out the datasets nobody solved.
"""

from __future__ import annotations

import itertools
import warnings
import zlib

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.colors import to_rgb

from bench.report import plots
from bench.report.colours import STATUS_COLOURS

QUICK = [
    "gd(learning_rate=0.5)",
    "gradient_ascent(learning_rate=0.5)",
    "momentum(learning_rate=0.2, momentum=0.9)",
    "nesterov",
    "rprop(variant=rprop+)",
    "rprop(variant=irprop-)",
    "ga",
    "restarts(gd)",
    "restarts(momentum)",
    "random_search",
]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def crc_index(label: str) -> int:
    return zlib.crc32(label.encode("utf-8")) % len(plots.OPTIMIZER_COLOURS)


def cielab(colour) -> np.ndarray:
    """CIE L*a*b* (D65) of an sRGB colour."""
    rgb = np.array(to_rgb(colour))
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    t = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


# ----------------------------------------------------------------------------------------- colours


def test_the_base_colours_are_strong_and_far_apart() -> None:
    colours = plots.OPTIMIZER_COLOURS
    assert len(colours) == 16 and len(set(colours)) == 16
    lab = [cielab(c) for c in colours]
    assert max(c[0] for c in lab) < 75  # nothing near white: no pastels
    assert min(np.linalg.norm(a - b) for a, b in itertools.combinations(lab, 2)) > 20


def test_a_label_keeps_its_colour_across_experiments() -> None:
    # Two label sets sharing some labels, with no two labels of either set on the same colour.
    candidates = [f"opt{i}(learning_rate={i / 10})" for i in range(200)]
    by_index: dict[int, str] = {}
    for label in candidates:
        by_index.setdefault(crc_index(label), label)
    distinct = [by_index[i] for i in sorted(by_index)]
    assert len(distinct) == 16
    first, second = distinct[:9], distinct[5:14]
    palette_1 = plots.optimizer_palette(first)
    palette_2 = plots.optimizer_palette(list(reversed(second)))
    for label in set(first) & set(second):
        assert palette_1[label] == palette_2[label]
    for palette in (palette_1, palette_2):
        for label, colour in palette.items():  # the CRC-32 of the label, never Python's salted hash
            assert colour == plots.OPTIMIZER_COLOURS[crc_index(label)]
            assert colour == plots.optimizer_colour(label)


def test_a_collision_goes_to_the_later_label_in_sorted_order() -> None:
    labels = [f"method-{i}" for i in range(100)]
    a, b = next((x, y) for x, y in itertools.combinations(labels, 2) if crc_index(x) == crc_index(y))
    early, late = sorted((a, b))
    for order in ([a, b], [b, a], [b, a, b, a]):
        palette = plots.optimizer_palette(order)
        assert list(palette) == list(dict.fromkeys(order))  # order of first appearance kept
        assert palette[early] == plots.OPTIMIZER_COLOURS[crc_index(early)]
        assert palette[late] == plots.OPTIMIZER_COLOURS[(crc_index(late) + 1) % 16]
    assert plots.optimizer_colour(late, taken=[palette[early]]) == palette[late]
    assert (
        plots.optimizer_colour(late, taken=["#" + "".join(f"{round(255 * x):02x}" for x in palette[early])])
        == (palette[late])
    )


@pytest.mark.parametrize("n", [1, 2, 10, 15, 16, 17, 25, 40])
def test_all_colours_of_a_palette_are_distinct(n: int) -> None:
    labels = [f"optimizer {i}" for i in range(n)]
    palette = plots.optimizer_palette(labels)
    assert len(palette) == n and len(set(palette.values())) == n
    for colour in palette.values():
        assert len(colour) == 3 and all(0.0 <= x <= 1.0 for x in colour)
    # Beyond 16 labels the first 16 in sorted order keep their list colours, the rest get husl hues.
    base = set(plots.OPTIMIZER_COLOURS)
    assert sum(colour in base for colour in palette.values()) == min(n, 16)


def test_the_preset_labels_get_distinct_colours() -> None:
    palette = plots.optimizer_palette(QUICK)
    assert len(set(palette.values())) == len(QUICK)
    assert plots.optimizer_palette(QUICK[::-1]) == palette  # the input order changes nothing
    # Each label's colour is the same in a palette of fewer labels that do not collide with it.
    subset = ["gd(learning_rate=0.5)", "nesterov", "ga", "rprop(variant=rprop+)"]
    assert all(plots.optimizer_palette(subset)[name] == palette[name] for name in subset)


# ------------------------------------------------------------------------------------ convergence


def make_curves(identical: dict[str, str], datasets=("xor",), n_runs: int = 5) -> pd.DataFrame:
    """Curves of optimizers "a", "b", "c", "d" per dataset; identical[x] = y copies y's runs to x."""
    rng = np.random.default_rng(1)
    frames = {}
    for dataset in datasets:
        for optimizer in ("a", "b", "c", "d"):
            runs = []
            for run in range(n_runs):
                cost = np.cumsum(np.full(30, 4.0))
                loss = 10 ** rng.uniform(-3, -1) + np.exp(-cost / rng.uniform(20, 80))
                runs.append(
                    pd.DataFrame(
                        {
                            "dataset": dataset,
                            "optimizer": optimizer,
                            "run": run,
                            "cost": cost,
                            "loss": loss,
                            "best_loss": np.minimum.accumulate(loss),
                        }
                    )
                )
            frames[dataset, optimizer] = pd.concat(runs, ignore_index=True)
        for copy, source in identical.items():
            frames[dataset, copy] = frames[dataset, source].assign(optimizer=copy)
    return pd.concat(frames.values(), ignore_index=True)


def median_lines(ax) -> dict[str, object]:
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def note(ax) -> str | None:
    texts = [t for t in ax.texts if t.get_gid() == "same-curve"]
    assert len(texts) <= 1
    return " ".join(texts[0].get_text().split()) if texts else None


def pixels_of(fig, colour, tolerance: float = 0.06) -> int:
    """Pixels of ``colour`` inside the first panel (not the legend's swatches)."""
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255.0
    box = fig.axes[0].get_window_extent()
    height = image.shape[0]
    panel = image[int(height - box.y1) : int(height - box.y0), int(box.x0) : int(box.x1)]
    return int((np.abs(panel - np.array(to_rgb(colour))).max(axis=-1) < tolerance).sum())


def test_identical_curves_are_drawn_once_each_colour_visible() -> None:
    curves = make_curves({"b": "a"})
    palette = plots.optimizer_palette(curves["optimizer"])
    fig = plots.figure_convergence(curves, palette)
    (ax,) = fig.axes
    assert note(ax) == "same curve: a = b"
    lines = median_lines(ax)
    assert set(lines) == {"a", "b", "c", "d"}
    a, b = lines["a"], lines["b"]
    np.testing.assert_array_equal(a.get_xydata(), b.get_xydata())  # the same curve
    assert to_rgb(a.get_color()) == palette["a"] and to_rgb(b.get_color()) == palette["b"]
    assert a.get_linestyle() == "-" and b.get_linestyle() == "--"  # b dashed on top of a solid a
    assert b.get_zorder() >= a.get_zorder() and ax.get_lines().index(b) > ax.get_lines().index(a)
    assert lines["c"].get_linestyle() == "-" and lines["d"].get_linestyle() == "-"
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 3  # one band per group
    # Both colours show on the canvas, not only the last line drawn.
    others = [palette[name] for name in ("c", "d")]
    fig_without = plots.figure_convergence(curves[curves["optimizer"] != "b"], palette)
    alone = pixels_of(fig_without, palette["a"])  # the line of a drawn by itself
    assert alone > 50
    assert pixels_of(fig, palette["a"]) > 0.25 * alone and pixels_of(fig, palette["b"]) > 0.25 * alone
    assert all(pixels_of(fig, colour) > 100 for colour in others)


def test_three_identical_curves_take_turns() -> None:
    curves = make_curves({"b": "a", "d": "a"})
    palette = {"a": (0.0, 0.0, 1.0), "b": (1.0, 0.0, 0.0), "c": (0.5, 0.5, 0.5), "d": (0.0, 0.8, 0.0)}
    fig = plots.figure_convergence(curves, palette)
    (ax,) = fig.axes
    assert note(ax) == "same curve: a = b = d"
    lines = median_lines(ax)
    styles = [lines[name].get_linestyle() for name in "abd"]
    assert styles == ["-", "--", "--"]
    dashes = [lines[name]._unscaled_dash_pattern for name in "bd"]
    assert dashes[0][1] == dashes[1][1] and dashes[0][0] != dashes[1][0]  # same dashes, shifted
    alone = pixels_of(plots.figure_convergence(curves[curves["optimizer"].isin(["a", "c"])], palette), palette["a"])
    for name in "abd":  # each colour shows along the shared line, about a third of it
        assert pixels_of(fig, palette[name]) > 0.15 * alone, name


def test_curves_that_differ_at_all_are_not_merged() -> None:
    curves = make_curves({"b": "a"}, datasets=("xor", "moons"))
    moons_b = (curves["dataset"] == "moons") & (curves["optimizer"] == "b")
    curves.loc[moons_b, "best_loss"] *= 1 + 1e-12
    fig = plots.figure_convergence(curves)
    xor, moons = fig.axes
    assert note(xor) == "same curve: a = b" and note(moons) is None
    assert {line.get_linestyle() for line in median_lines(moons).values()} == {"-"}


def test_no_note_without_identical_curves() -> None:
    fig = plots.figure_convergence(make_curves({}))
    assert note(fig.axes[0]) is None


# ---------------------------------------------------------------------------------------- log axes

RANGES = [
    (0.06, 0.09),
    (0.07, 0.09),
    (0.028, 0.06),
    (0.5, 0.52),
    (1e-8, 1e2),
    (0.2, 3),
    (1e-3, 1e-2),
    (1e-300, 1),
    (7, 7.3),
    (0.11, 0.95),
    (0.2, 0.3),
    (0.055, 0.36),
    (3e-5, 2.5e-3),
    (0.09, 0.11),
    (1.0, 1.0 + 1e-9),
    (1e-300, 1e10),
    (2e-8, 2.4),
    (0.013, 0.7),
]


def labelled_ticks(ax, which: str) -> list[tuple[float, str]]:
    """(value, text) of the major ticks inside the limits that show a label, after a draw."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    low, high = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    ticks = zip(axis.get_majorticklocs(), axis.get_majorticklabels(), strict=True)
    return [
        (value, label.get_text())
        for value, label in ticks
        if low * (1 - 1e-9) <= value <= high * (1 + 1e-9) and label.get_text() and label.get_visible()
    ]


@pytest.mark.parametrize("which", ["x", "y"])
@pytest.mark.parametrize(("low", "high"), RANGES)
def test_every_log_axis_has_three_to_eight_distinct_labels(low: float, high: float, which: str) -> None:
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    plots._log_loss_axis(ax, which)
    (ax.set_xlim if which == "x" else ax.set_ylim)(low, high)
    fig.canvas.draw()
    ticks = labelled_ticks(ax, which)
    labels = [text for _, text in ticks]
    assert 3 <= len(ticks) <= (6 if which == "x" else 8), labels
    assert len(set(labels)) == len(labels), labels
    for value, text in ticks:  # each label says the value of its tick
        assert float(text) == pytest.approx(value, rel=1e-11), (text, value)
    # Never crowded: neighbouring labels at least a tenth of the axis apart.
    positions = np.log10([value for value, _ in ticks])
    assert np.diff(positions).min() >= (np.log10(high) - np.log10(low)) / 10 * (1 - 1e-9)


def test_a_narrow_loss_range_gets_labels_in_the_figure() -> None:
    """The reported case: losses between 0.06 and 0.09, where no 1, 2, 3 or 5 x 10^k falls."""
    curves = make_curves({})
    curves["best_loss"] = 0.06 + 0.03 * (curves["best_loss"] - curves["best_loss"].min()) / np.ptp(curves["best_loss"])
    fig = plots.figure_convergence(curves)
    fig.canvas.draw()
    (ax,) = fig.axes
    labels = [text for _, text in labelled_ticks(ax, "y")]
    assert len(labels) >= 3 and len(set(labels)) == len(labels), labels


# -------------------------------------------------------------------------------------- final loss


def make_runs() -> pd.DataFrame:
    """Runs of two optimizers on three datasets; "parity" solved by none, one run diverged (inf)."""
    rng = np.random.default_rng(2)
    rows = []
    statuses = ["solved", "stuck", "unfinished", "solved", "diverged", "solved"]
    for dataset in ("xor", "moons", "parity"):
        for optimizer in ("gd(learning_rate=0.5)", "ga"):
            for run, status in enumerate(statuses):
                if dataset == "parity" and status == "solved":
                    status = "stuck"
                loss = 10 ** rng.uniform(-3, -0.5)
                if status == "diverged" and optimizer == "ga":
                    loss = np.inf
                rows.append(
                    {
                        "dataset": dataset,
                        "optimizer": optimizer,
                        "run": run,
                        "status": status,
                        "final_loss": loss,
                        "best_loss": loss,
                        "test_accuracy": np.nan,
                        "cost": 100.0,
                        "cost_to_success": 50.0 if status == "solved" else np.nan,
                    }
                )
    return pd.DataFrame(rows)


def test_final_loss_points_have_the_colour_of_their_status() -> None:
    runs = make_runs()
    fig = plots.figure_final_loss(runs)
    axes = [ax for ax in fig.axes if ax.get_title()]
    order = list(pd.unique(runs["optimizer"]))
    checked = 0
    for ax, dataset in zip(axes, pd.unique(runs["dataset"]), strict=True):
        panel = runs[runs["dataset"] == dataset]
        for collection in (c for c in ax.collections if isinstance(c, PathCollection)):
            offsets, colours = collection.get_offsets(), collection.get_facecolors()
            assert len(colours) == len(offsets)
            for (x, y), colour in zip(offsets, colours, strict=True):
                optimizer = order[int(round(y))]
                (status,) = panel.loc[(panel["optimizer"] == optimizer) & (panel["final_loss"] == x), "status"]
                assert tuple(colour[:3]) == pytest.approx(to_rgb(STATUS_COLOURS[status])), (dataset, status)
                checked += 1
    assert checked == np.isfinite(runs["final_loss"]).sum()  # every finite run drawn, once
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["solved", "stuck", "unfinished", "diverged"]
    for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
        assert to_rgb(handle.get_markerfacecolor()) == to_rgb(STATUS_COLOURS[text.get_text()])


def test_the_status_legend_lists_only_the_statuses_drawn() -> None:
    runs = make_runs()
    runs = runs[runs["status"].isin(["solved", "stuck"])]
    (legend,) = plots.figure_final_loss(runs).legends
    assert [t.get_text() for t in legend.get_texts()] == ["solved", "stuck"]


def test_the_success_target_is_a_dashed_line_at_its_loss() -> None:
    runs = make_runs()
    fig = plots.figure_final_loss(runs, thresholds={"moons": 0.02, "elsewhere": 0.5})
    axes = {ax.get_title().split()[0]: ax for ax in fig.axes if ax.get_title()}
    targets = {
        name: [line for line in ax.get_lines() if line.get_label() == "success target"] for name, ax in axes.items()
    }
    assert not targets["xor"] and not targets["parity"]
    (line,) = targets["moons"]
    assert list(line.get_xdata()) == [0.02, 0.02] and line.get_linestyle() == "--"
    low, high = axes["moons"].get_xlim()
    assert low < 0.02 < high
    (legend,) = fig.legends
    assert "success target" in [t.get_text() for t in legend.get_texts()]
    assert not any(
        line.get_label() == "success target" for ax in plots.figure_final_loss(runs).axes for line in ax.lines
    )


def test_final_loss_without_a_status_column_still_draws() -> None:
    runs = make_runs().drop(columns="status")
    fig = plots.figure_final_loss(runs)
    assert not fig.legends
    colours = np.concatenate(
        [c.get_facecolors() for ax in fig.axes for c in ax.collections if isinstance(c, PathCollection)]
    )
    assert np.allclose(colours[:, :3], 0.0)


# ----------------------------------------------------------------------------------------- success


def test_a_dataset_nobody_solved_gets_no_panel_but_a_footnote() -> None:
    runs = make_runs()
    fig = plots.figure_success(runs)
    assert [ax.get_title() for ax in fig.axes] == ["xor", "moons"]
    footnote = fig.get_supxlabel()
    assert "no optimizer solved: parity" in footnote
    for ax in fig.axes:  # the bars are the success rates of the datasets shown
        dataset = ax.get_title()
        panel = runs[runs["dataset"] == dataset]
        rates = panel.groupby("optimizer", sort=False)["status"].apply(lambda s: (s == "solved").mean())
        widths = [patch.get_width() for patch in ax.patches]
        assert widths == pytest.approx(rates.to_list())


def test_no_footnote_when_every_dataset_has_a_success() -> None:
    runs = make_runs()
    fig = plots.figure_success(runs[runs["dataset"] != "parity"])
    assert len(fig.axes) == 2 and "no optimizer solved" not in fig.get_supxlabel()


def test_no_success_at_all_is_one_small_panel_saying_so() -> None:
    runs = make_runs()
    runs = runs.assign(status=runs["status"].replace("solved", "stuck"), cost_to_success=np.nan)
    fig = plots.figure_success(runs)
    (ax,) = fig.axes
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "no optimizer solved" in texts and all(name in texts for name in ("xor", "moons", "parity"))
    assert not ax.patches  # no bars
    width, height = fig.get_size_inches()
    assert width <= 7 and height <= 3


def test_the_figures_draw_without_warnings(tmp_path) -> None:
    runs, curves = make_runs(), make_curves({"b": "a"}, datasets=("xor", "moons", "parity"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name, fig in {
            "convergence": plots.figure_convergence(curves),
            "final_loss": plots.figure_final_loss(runs, thresholds={"xor": 0.01}),
            "success": plots.figure_success(runs),
        }.items():
            path = plots.save(fig, tmp_path / f"{name}.png")
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_band_far_below_the_medians_leaves_the_panel_instead_of_crushing_them():
    from bench.report.plots import BAND_DECADES, figure_convergence

    rows = []
    for run in range(8):
        deep = run < 3  # over a quarter of the runs saturate towards 1e-250
        for cost, loss in ((1, 2.0), (10, 0.5), (100, 1e-250 if deep else 0.1)):
            rows.append({"dataset": "digits", "optimizer": "rprop", "run": run, "cost": cost, "best_loss": loss})
    ax = figure_convergence(pd.DataFrame(rows)).axes[0]
    low, high = ax.get_ylim()
    assert low == pytest.approx(0.1 / BAND_DECADES) and high > 2.0


def test_the_fixed_budget_axis_is_for_the_medians_too():
    from bench.report.compare_plots import figure_fixed_budget
    from bench.report.plots import BAND_DECADES

    rows = [
        {"dataset": "digits", "optimizer": "rprop", "share": share, "run": run, "best_loss": 1e-250 if run < 3 else 0.1}
        for share in (0.1, 0.3, 1.0)
        for run in range(8)
    ]
    ax = figure_fixed_budget(pd.DataFrame(rows)).axes[0]
    low, high = ax.get_xlim()
    assert low == pytest.approx(0.1 / BAND_DECADES) and high == pytest.approx(0.15)
