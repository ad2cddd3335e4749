"""A self-contained markdown report of one experiment: what ran, the summary, the end-point
analysis (when the folder has one), and the figures, each with one sentence on how to read it.

Every file is written atomically (temporary file in the same directory, then ``os.replace``), so
a report interrupted half-way never leaves a truncated figure or REPORT.md behind.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from bench.analysis import markdown_table, summary, summary_for_display
from bench.analysis.endpoints import CLASSES, class_meanings
from bench.analysis.plateaus import plateau_summary
from bench.config import Analysis, Stopping
from bench.report import analysis_plots, plots
from bench.report.html import write_html
from bench.runner import status_meanings
from bench.store import atomic_path

# (file name, alt text, how to read it, plotting function, which table it draws)
FIGURES: list[tuple[str, str, str, Callable[..., Path], str]] = [
    (
        "convergence.png",
        "Convergence",
        "Median best-so-far loss against cost (log-log); the band spans the middle half of the runs. "
        "Lower and further left is better; a loss of 0 is drawn at the bottom edge.",
        plots.figure_convergence,
        "curves",
    ),
    (
        "final_loss.png",
        "Final loss",
        "One point per run; boxes span the quartiles, whiskers the full range. Non-finite losses are counted in the panel title.",
        plots.figure_final_loss,
        "runs",
    ),
    (
        "success.png",
        "Success rate",
        "Fraction of runs solved, with Wilson 95% intervals; the count right of each row is solved/runs.",
        plots.figure_success,
        "runs",
    ),
    (
        "endpoints.png",
        "End-point classes",
        "Where each optimizer's runs ended: solved, or at a minimum, a saddle, a plateau, a saturated region (a "
        "minimum at infinity being approached) or unfinished; a failure is a local minimum only where the bar is red.",
        analysis_plots.figure_endpoints,
        "runs",
    ),
    (
        "attractors.png",
        "Attractors",
        "Each bubble is one distinct end point (same outputs on the training set), placed at its loss and sized by "
        "its share of the runs; few large bubbles mean runs keep falling into the same traps.",
        analysis_plots.figure_attractors,
        "attractors",
    ),
    (
        "pairs.png",
        "Paired outcomes",
        "Column i is one initial point under every optimizer: a column that is red or purple in every row is a "
        "hard start for all methods, a mixed column is a start that one method rescues.",
        analysis_plots.figure_pairs,
        "runs",
    ),
    (
        "plateaus.png",
        "Plateaus",
        "How much of each run's budget went to plateau episodes (the loss falling by at most the plateau threshold "
        "over the plateau window); the bar is the median.",
        analysis_plots.figure_plateaus,
        "runs",
    ),
    (
        "barriers.png",
        "Barriers",
        "The loss along straight lines between the end points of distinct attractors (units aligned); a hump is a "
        "barrier a method must cross to get from one to the other, a monotone line means none on that path.",
        analysis_plots.figure_paths,
        "paths",
    ),
    (
        "slices.png",
        "Loss slices",
        "The log loss on a plane through one run's end point (the star) in two filter-normalised random "
        "directions, with the run's path from its start (the circle) projected on it.",
        analysis_plots.figure_slices,
        "slices",
    ),
]

# figure -> the column it needs in its table (figures of the analysis are drawn only after one)
_NEEDS = {"endpoints.png": "endpoint", "pairs.png": "endpoint", "plateaus.png": "plateau_share"}


def _what_was_run(runs: pd.DataFrame, meta: dict | None) -> list[str]:
    lines = [f"- **{key}**: {value}" for key, value in (meta or {}).items()]
    lines += [
        f"- **datasets**: {', '.join(map(str, pd.unique(runs['dataset'])))}",
        f"- **optimizers**: {', '.join(map(str, pd.unique(runs['optimizer'])))}",
        f"- **runs in total**: {len(runs)}",
    ]
    return lines


def write_report(
    out_dir: Path,
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    title: str,
    meta: dict | None = None,
    stopping: Stopping | None = None,
    tables: dict[str, pd.DataFrame] | None = None,
    analysis: dict | None = None,
    setup: pd.DataFrame | None = None,
) -> Path:
    """Write ``out_dir/REPORT.md`` and its figures under ``out_dir/figures/``.

    Parameters
    ----------
    out_dir : Path
        Report directory; created if missing.
    runs : DataFrame
        One row per run (see :func:`bench.analysis.summary`), with the analysis columns if the
        folder was analysed.
    curves : DataFrame
        One row per run per checkpoint (see :func:`bench.analysis.convergence_table`).
    title : str
        First heading of the report.
    meta : dict, optional
        Flat key -> value facts about the experiment (config hash, seed, budget, git commit,
        times, ...), listed as given.
    stopping : Stopping, optional
        The experiment's ``[stopping]`` settings, which define "stuck" (default: the defaults).
    tables : dict, optional
        The other stored tables by name (plateaus, attractors, pairs, paths, slices); a figure
        whose table is missing or empty is left out.
    analysis : dict, optional
        ``analysis.json``: the ``[analysis]`` settings and what the analysis cost.
    setup : DataFrame, optional
        One row per dataset: its data, model, budget and success criterion, shown as given.

    Returns
    -------
    Path
        Path of REPORT.md.
    """
    out_dir = Path(out_dir)
    figures = out_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    # One palette for all figures, so an optimizer keeps its colour from figure to figure.
    palette = plots.optimizer_palette([*runs["optimizer"], *curves["optimizer"]])
    sources = {**(tables or {}), "runs": runs, "curves": curves}
    drawn = []
    for name, alt, caption, plot, source in FIGURES:
        table = sources.get(source)
        if table is None or table.empty or _NEEDS.get(name, "dataset") not in table.columns:
            continue
        with atomic_path(figures / name) as temporary:
            plots.save(plot(table, palette=palette), temporary)
        drawn.append((name, alt, caption))

    lines = [f"# {title}", "", "## What was run", "", *_what_was_run(runs, meta), ""]
    if setup is not None and not setup.empty:
        lines += [markdown_table(setup), ""]
    lines += ["## Summary", "", markdown_table(summary_for_display(summary(runs))), ""]
    lines += ["Status of a run at its end:", ""]
    lines += [f"- **{status}**: {meaning}" for status, meaning in status_meanings(stopping).items()]
    lines += [
        "",
        "ERT (expected running time) is the total cost of all runs divided by the number "
        "of solved runs (inf if none solved); cost is counted in forward-pass units.",
        "",
    ]
    if "endpoint" in runs.columns and analysis is not None:
        lines += _analysis_section(runs, sources, analysis)
    lines += ["## Figures", ""]
    for name, alt, caption in drawn:
        lines += [f"![{alt}](figures/{name})", "", f"*{caption}*", ""]

    report = out_dir / "REPORT.md"
    with atomic_path(report) as temporary:
        temporary.write_text("\n".join(lines), encoding="utf-8")
    write_html(report)
    return report


def _analysis_section(runs: pd.DataFrame, tables: dict[str, pd.DataFrame], analysis: dict) -> list[str]:
    """Where runs ended: class definitions with their tolerances, counts, attractors, paired tests."""
    settings = Analysis(**analysis["settings"])
    lines = ["## Where runs ended", ""]
    lines += ["The status says how a run behaved; its end-point class says where it is:", ""]
    lines += [f"- **{name}**: {meaning}" for name, meaning in class_meanings(settings).items()]
    lines += ["", markdown_table(endpoint_counts(runs)), ""]
    attractors = tables.get("attractors")
    if attractors is not None and not attractors.empty:
        lines += [
            "Distinct attractors (end points with the same outputs on the training set, within "
            f"{settings.attractor_tol:g}; solved runs count as one, attractor 0) and the share of runs in the "
            "largest unsolved one:",
            "",
            markdown_table(attractor_counts(attractors)),
            "",
        ]
    pairs = tables.get("pairs")
    if pairs is not None and not pairs.empty:
        significant = pairs[pairs["p_holm"] < 0.05]
        lines += [
            "Paired comparisons (run i starts from the same weights for every optimizer): McNemar's exact test on "
            "solved / not solved, Holm-corrected within each dataset. "
            + (
                f"{len(significant)} of {len(pairs)} pairs differ at the 5 % level:"
                if len(significant)
                else f"none of the {len(pairs)} pairs differ at the 5 % level."
            ),
            "",
        ]
        if len(significant):
            lines += [markdown_table(significant.drop(columns=["both", "neither"])), ""]
    plateaus = tables.get("plateaus")
    if plateaus is not None and "plateau_share" in runs.columns:
        lines += ["Plateau episodes (recorded by the runner at every evaluation):", ""]
        lines += [markdown_table(plateau_summary(runs, plateaus)), ""]
    cost = analysis.get("cost", {})
    lines += [
        f"The analysis took {cost.get('seconds', float('nan')):.1f} s, {cost.get('hessian_vector_products', 0):,} "
        f"Hessian-vector products and {cost.get('gradient_evaluations', 0):,} gradient evaluations (escape tests); "
        "none of it is charged to any run.",
        "",
    ]
    return lines


def endpoint_counts(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs per end-point class, per dataset x optimizer (in order of appearance)."""
    counts = pd.crosstab([runs["dataset"], runs["optimizer"]], runs["endpoint"])
    order = list(dict.fromkeys(zip(runs["dataset"], runs["optimizer"])))
    counts = counts.reindex(pd.MultiIndex.from_tuples(order, names=["dataset", "optimizer"]))
    counts = counts[[c for c in CLASSES if c in counts.columns]].fillna(0).astype(int)
    return counts.reset_index()


def attractor_counts(attractors: pd.DataFrame) -> pd.DataFrame:
    """Per dataset x optimizer: distinct attractors, and the share and loss of the largest unsolved one."""
    rows = []
    for (dataset, optimizer), frame in attractors.groupby(["dataset", "optimizer"], sort=False):
        failed = frame[frame["attractor"] > 0].sort_values("share", ascending=False, kind="stable")
        top = failed.iloc[0] if len(failed) else None
        rows.append(
            {
                "dataset": dataset,
                "optimizer": optimizer,
                "attractors": len(frame),
                "largest unsolved share": float(top["share"]) if top is not None else float("nan"),
                "its loss": float(top["loss"]) if top is not None else float("nan"),
                "its class": top["endpoint"] if top is not None else "-",
            }
        )
    return pd.DataFrame(rows)
