"""Analysis of stored results: it reads the tables the runner wrote and the model, never the optimizer.

stats       success rates, ERT, convergence medians, paired tests, tables for the terminal
endpoints   what kind of point each run ended at (Hessian spectrum, saturation, escape test)
attractors  which runs ended at the same function; canonical parameters; the paired view
plateaus    plateau episodes recorded by the runner, per run
landscape   the loss along straight lines (barriers) and on 2-D slices
analyze     all of the above for a results folder (``python -m bench analyze DIR``)
"""

from bench.analysis.stats import (
    STATUSES,
    convergence_table,
    format_table,
    markdown_table,
    summary,
    summary_for_display,
    wilson_interval,
)

__all__ = [
    "STATUSES",
    "convergence_table",
    "format_table",
    "markdown_table",
    "summary",
    "summary_for_display",
    "wilson_interval",
]
