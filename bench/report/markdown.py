"""A self-contained markdown report of one experiment: what ran, the summary, the end-point
analysis (when the folder has one), and the figures, each with one sentence on how to read it.

Every file is written atomically (temporary file in the same directory, then ``os.replace``), so
a report interrupted half-way never leaves a truncated figure or REPORT.md behind.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis import compare, markdown_table, summary, summary_for_display
from bench.analysis.endpoints import CLASSES, class_meanings
from bench.analysis.plateaus import plateau_summary
from bench.config import Analysis, Stopping
from bench.report import analysis_plots, compare_plots, plots
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
        "success_metric.png",
        "Success metric",
        "What each dataset's success criterion is judged on (test accuracy, loss per pattern, or for the 40-20-40 "
        "rule the share of runs solved) against cost; the dashed line is the target. Training loss can mislead "
        "where the criterion is on a test split: read this one for who succeeds.",
        compare_plots.figure_success_metric,
        "success_metric",
    ),
    (
        "final_loss.png",
        "Final loss",
        "One point per run, coloured by its status; boxes span the quartiles, whiskers the full range; the dashed "
        "line is the success target where the criterion is on the training loss. Non-finite losses are counted in "
        "the panel title.",
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
        "runs.png",
        "Single runs",
        "The first runs of every optimizer one by one, coloured by status: a panel with two bundles of lines "
        "is bimodal (some runs stuck, some not), which a median curve averages away.",
        compare_plots.figure_spaghetti,
        "spaghetti",
    ),
    (
        "ecdf.png",
        "Runtime ECDF",
        "COCO's fixed-target view: the share of (target, run) pairs whose best loss reached the target within a "
        "cost, over the targets that tell optimizers apart; higher and further left is better, and the curve "
        "beyond the budget (dotted) is what restarting failed runs would give.",
        compare_plots.figure_ecdf,
        "ecdf",
    ),
    (
        "fixed_budget.png",
        "Fixed budget",
        "The fixed-budget view: how low each optimizer's best loss is after 10 %, 30 % and all of the budget "
        "(marker: median; line: middle half of the runs); markers moving left show progress, one on top of "
        "another shows none.",
        compare_plots.figure_fixed_budget,
        "fixed_budget",
    ),
    (
        "profile.png",
        "Performance profile",
        "For each optimizer, the share of datasets where its aRT to success is within tau times the best "
        "optimizer's (Dolan & More); the curve that is highest at tau = 1 is most often best, the one that "
        "reaches 1 first never far behind. The score is the area up to tau = 4 (AlgoPerf), 1 at most.",
        compare_plots.figure_profiles,
        "profile",
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
    if {"backend", "dtype"} <= set(runs.columns):  # tables written before the engines were recorded lack them
        engines = runs.groupby(["backend", "dtype"], sort=False)["dataset"].unique()
        lines.append(
            "- **engine**: "
            + "; ".join(f"{backend} in {dtype} for {', '.join(map(str, d))}" for (backend, dtype), d in engines.items())
        )
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
    hits: pd.DataFrame | None = None,
    criteria: dict | None = None,
    seed: int = 0,
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
    hits : DataFrame, optional
        The runner's target hits; with them the report has the comparison statistics (aRT,
        ECDFs, profiles, tests, ranking), each table also written to ``tables/<name>.csv``.
    criteria : dict, optional
        Dataset label -> (kind, split, target, patterns) of its success criterion (see
        :func:`bench.report.compare_plots.success_metric_table`), for the success-metric figure.
    seed : int
        Seed of the bootstraps (the experiment's seed: the same results give the same report).

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
    comparison = {}
    if hits is not None and not hits.empty:
        comparison = comparison_tables(runs, curves, hits, seed, criteria)
        folder = out_dir / "tables"
        folder.mkdir(exist_ok=True)
        for name, table in comparison.items():
            with atomic_path(folder / f"{name}.csv") as temporary:
                table.to_csv(temporary, index=False)
        sources |= comparison
    drawn = []
    for name, alt, caption, plot, source in FIGURES:
        table = sources.get(source)
        if table is None or table.empty or _NEEDS.get(name, "dataset") not in table.columns:
            continue
        extra = {"thresholds": _loss_thresholds(criteria)} if name == "final_loss.png" else {}
        with atomic_path(figures / name) as temporary:
            plots.save(plot(table, palette=palette, **extra), temporary)
        drawn.append((name, alt, caption))

    lines = [f"# {title}", "", "## What was run", "", *_what_was_run(runs, meta), ""]
    if setup is not None and not setup.empty:
        lines += [markdown_table(setup), ""]
    lines += ["## Summary", "", markdown_table(summary_for_display(summary(runs))), ""]
    lines += ["Status of a run at its end:", ""]
    lines += [f"- **{status}**: {meaning}" for status, meaning in status_meanings(stopping).items()]
    lines += [
        "",
        "aRT to success (COCO's average runtime, the expected running time or ERT of older papers; the column "
        "`ert` of `Results.summary()`) is the total cost of all runs divided by the number of solved runs (inf if "
        "none solved); cost is counted in forward-pass units.",
        "",
    ]
    if comparison:
        lines += _comparison_section(comparison)
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


def _loss_thresholds(criteria: dict | None) -> dict[str, float]:
    """Per dataset judged by its training loss, the final loss at or below which a run succeeds."""
    return {
        dataset: target * patterns
        for dataset, (kind, split, target, patterns) in (criteria or {}).items()
        if kind == "loss" and split == "train"
    }


def comparison_tables(
    runs: pd.DataFrame, curves: pd.DataFrame, hits: pd.DataFrame, seed: int, criteria: dict | None = None
) -> dict[str, pd.DataFrame]:
    """The tables behind the comparison section and its figures (``bench.analysis.compare``)."""
    art = compare.art_table(runs, hits, seed=seed)
    ratios = compare.performance_profile(art)
    scores = compare.profile_scores(ratios)
    tests = compare.pairwise_tests(runs)
    ranks = [compare.ranking(runs, tests, metric).assign(metric=metric) for metric in compare.METRICS]
    chosen = compare.informative_targets(runs, curves, hits)
    return {
        "art": art,
        "targets": pd.DataFrame([(d, t) for d, ts in chosen.items() for t in ts], columns=["dataset", "target"]),
        "ecdf": compare.ecdf_table(runs, hits, curves, seed=seed),
        "fixed_budget": compare.fixed_budget_table(runs),
        "profile": ratios.merge(scores[["optimizer", "score"]], on="optimizer", how="left"),
        "scores": scores,
        "tests": tests,
        "ranking": pd.concat(ranks, ignore_index=True),
        "spaghetti": compare_plots.spaghetti_table(curves, runs),
        "success_metric": compare_plots.success_metric_table(curves, runs, criteria or {}),
    }


def art_wide(art: pd.DataFrame, targets: dict[str, list[str]] | None = None, most: int = 7) -> dict[str, pd.DataFrame]:
    """Per dataset, aRT by optimizer (rows) and target (columns: up to ``most`` of the ladder's
    targets of ``compare.informative_targets``, evenly picked, then
    ``success`` with its interval and reached/runs)."""
    out = {}
    for dataset, frame in art.groupby("dataset", sort=False):
        chosen = (targets or {}).get(dataset) or list(pd.unique(frame["target"]))
        ladder = [t for t in chosen if t != compare.SUCCESS_TARGET]
        if len(ladder) > most:
            ladder = [ladder[round(i)] for i in np.linspace(0, len(ladder) - 1, most)]
        rows = []
        for optimizer, group in frame.groupby("optimizer", sort=False):
            by = group.set_index("target")
            row = {"optimizer": optimizer}
            row |= {f"aRT to {t}": by.loc[t, "art"] for t in ladder if t in by.index}
            if compare.SUCCESS_TARGET in by.index:
                s = by.loc[compare.SUCCESS_TARGET]
                row |= {
                    "aRT to success": s["art"],
                    "95 % interval": f"{s['art_low']:.4g} to {s['art_high']:.4g}",
                    "solved": f"{s['reached']}/{s['runs']}",
                }
            rows.append(row)
        out[dataset] = pd.DataFrame(rows)
    return out


def _comparison_section(tables: dict[str, pd.DataFrame]) -> list[str]:
    """aRT tables, profile scores, ranking and pairwise tests."""
    lines = ["## Comparison", ""]
    lines += [
        "aRT (COCO's average runtime) to a target: the total cost of all runs, each counted up to the cost at "
        "which its best loss first reached the target (recorded exactly at every step) or to its end, divided "
        "by the number of runs that reached it; inf if none did. The targets are losses log-spaced from 1e2 "
        "to 1e-8 (shown: those that some run reached, not every run at its first step, and no solved run "
        "stopped above, since a solved run stops and would look like a failure below its last loss), then the "
        "dataset's success criterion. The interval is a 95 % bootstrap of simulated restarts (draw runs with replacement "
        "until one reaches the target); all tables are in `tables/`.",
        "",
    ]
    targets = tables["targets"].groupby("dataset", sort=False)["target"].agg(list).to_dict()
    for dataset, wide in art_wide(tables["art"], targets).items():
        lines += [f"**{dataset}**", "", markdown_table(wide), ""]
    scores = tables["scores"]
    if not scores.empty:
        lines += [
            f"Performance-profile scores over the {int(scores['datasets'].max())} datasets where some optimizer "
            "succeeded (AlgoPerf: the area under the profile of aRT-to-success ratios up to 4, over 3; 1 = best "
            "everywhere), and on how many datasets each was best:",
            "",
            markdown_table(scores.rename(columns={"best_on": "best on"})),
            "",
        ]
    ranking = tables["ranking"]
    wide = ranking.pivot_table(index=["metric", "optimizer"], columns="dataset", values="rank", sort=False)
    lines += [
        "Ranking per dataset: 1 + the number of optimizers significantly better (two-sided Mann-Whitney U, "
        "Holm-corrected over the pairs of the dataset, 5 % level), so optimizers the tests cannot separate share "
        "a rank. On cost to success, a run that did not succeed counts as worse than any that did; on final "
        "loss, a non-finite loss as worse than any finite one.",
        "",
        markdown_table(wide.reset_index()),
        "",
        "All pairwise tests (A: the Vargha-Delaney effect size, the chance that a run of `a` is lower, i.e. "
        "better, than a run of `b`, ties counting half):",
        "",
        markdown_table(tables["tests"]),
        "",
    ]
    return lines


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
