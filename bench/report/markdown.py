"""A self-contained markdown report of one experiment: what ran, the summary table, three figures.

Every file is written atomically (temporary file in the same directory, then ``os.replace``), so
a report interrupted half-way never leaves a truncated figure or REPORT.md behind.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from bench.analysis import markdown_table, summary, summary_for_display
from bench.config import Stopping
from bench.report import plots
from bench.runner import status_meanings
from bench.store import atomic_path

# (file name, alt text, how to read it, plotting function, which table it draws)
FIGURES: list[tuple[str, str, str, Callable[..., Path], str]] = [
    (
        "convergence.png",
        "Convergence",
        "Median best-so-far loss against cost (log-log); the band spans the middle half of the runs. "
        "Lower and further left is better; a loss of 0 is drawn at the bottom edge.",
        plots.plot_convergence,
        "curves",
    ),
    (
        "final_loss.png",
        "Final loss",
        "One point per run; boxes span the quartiles, whiskers the full range. Non-finite losses are counted in the panel title.",
        plots.plot_final_loss,
        "runs",
    ),
    (
        "success.png",
        "Success rate",
        "Fraction of runs solved, with Wilson 95% intervals; the count right of each row is solved/runs.",
        plots.plot_success,
        "runs",
    ),
]


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
) -> Path:
    """Write ``out_dir/REPORT.md`` and its figures under ``out_dir/figures/``.

    Parameters
    ----------
    out_dir : Path
        Report directory; created if missing.
    runs : DataFrame
        One row per run (see :func:`bench.analysis.summary`).
    curves : DataFrame
        One row per run per checkpoint (see :func:`bench.analysis.convergence_table`).
    title : str
        First heading of the report.
    meta : dict, optional
        Flat key -> value facts about the experiment (config hash, seed, budget, git commit,
        times, ...), listed as given.
    stopping : Stopping, optional
        The experiment's ``[stopping]`` settings, which define "stuck" (default: the defaults).

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
    tables = {"runs": runs, "curves": curves}
    for name, _, _, plot, source in FIGURES:
        with atomic_path(figures / name) as temporary:
            plot(tables[source], temporary, palette=palette)

    lines = [f"# {title}", "", "## What was run", "", *_what_was_run(runs, meta), ""]
    lines += ["## Summary", "", markdown_table(summary_for_display(summary(runs))), ""]
    lines += ["Status of a run at its end:", ""]
    lines += [f"- **{status}**: {meaning}" for status, meaning in status_meanings(stopping).items()]
    lines += [
        "",
        "ERT (expected running time) is the total cost of all runs divided by the number "
        "of solved runs (inf if none solved); cost is counted in forward-pass units.",
        "",
    ]
    lines += ["## Figures", ""]
    for name, alt, caption, _, _ in FIGURES:
        lines += [f"![{alt}](figures/{name})", "", f"*{caption}*", ""]

    report = out_dir / "REPORT.md"
    with atomic_path(report) as temporary:
        temporary.write_text("\n".join(lines), encoding="utf-8")
    return report
