"""Summaries of stored results: success rates, expected running time, convergence medians, tables.

Pure pandas/numpy, no plotting.  Every function reads the tidy tables the runner writes (``runs``:
one row per run; ``curves``: one row per run per checkpoint) and ignores columns it does not need.
Groups are always listed in the order they first appear in the input, so a report keeps the order
of the experiment's config rather than sorting labels alphabetically.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.stats import norm

STATUSES = ("solved", "stuck", "unfinished", "diverged")
ENDPOINTS = ("solved", "diverged", "minimum", "saddle", "plateau", "saturated", "unfinished")  # endpoints.CLASSES
GROUP = ["dataset", "optimizer"]
CONVERGENCE_COLUMNS = ["dataset", "optimizer", "cost", "median", "q25", "q75", "n_runs"]
SUMMARY_COLUMNS = [
    *GROUP,
    "runs",
    *STATUSES,
    "success_rate",
    "success_low",
    "success_high",
    "median_cost_to_success",
    "ert",
    "median_final_loss",
    "median_test_accuracy",
]


def wilson_interval(
    successes: ArrayLike, n: ArrayLike, confidence: float = 0.95
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Wilson score interval for a binomial proportion.

    Unlike the normal (Wald) interval it stays inside [0, 1] and does not collapse to a point at
    0 or n successes, which matters for the small run counts of a benchmark.

    Parameters
    ----------
    successes, n : int or array_like of int
        Number of successes and of trials, broadcast against each other.
    confidence : float
        Two-sided confidence level in (0, 1).

    Returns
    -------
    low, high : float or ndarray
        Bounds of the interval, shaped like the broadcast inputs; NaN where ``n == 0``.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    k, trials = np.broadcast_arrays(np.asarray(successes, float), np.asarray(n, float))
    z = norm.ppf(0.5 + confidence / 2.0)
    # n == 0 would divide by zero: compute on a safe denominator, then mask the result.
    safe_n = np.where(trials > 0, trials, 1.0)
    p_hat = k / safe_n
    denominator = 1.0 + z**2 / safe_n
    center = (p_hat + z**2 / (2.0 * safe_n)) / denominator
    half_width = z / denominator * np.sqrt(p_hat * (1.0 - p_hat) / safe_n + z**2 / (4.0 * safe_n**2))
    low = np.where(trials > 0, np.clip(center - half_width, 0.0, 1.0), np.nan)
    high = np.where(trials > 0, np.clip(center + half_width, 0.0, 1.0), np.nan)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def average_runtime(hit_cost: ArrayLike, run_cost: ArrayLike) -> float:
    """COCO's aRT: each run's cost up to its hit (NaN: not reached, then its whole cost), summed,
    over the number of runs that reached the target; inf if none did."""
    hit, total = np.asarray(hit_cost, float), np.asarray(run_cost, float)
    reached = ~np.isnan(hit)
    if not reached.any():
        return float("inf")
    return float(np.where(reached, hit, total).sum() / reached.sum())


def _group_summary(group: pd.DataFrame) -> dict[str, float]:
    """Counts, success statistics and medians of one (dataset, optimizer) group."""
    counts = {status: int((group["status"] == status).sum()) for status in STATUSES}
    n_runs, n_solved = len(group), counts["solved"]
    low, high = wilson_interval(n_solved, n_runs)
    solved = group.loc[group["status"] == "solved", "cost_to_success"]
    # A diverged run has no finite loss: count it as +inf so it pulls the median up, not out.
    final_loss = group["final_loss"].to_numpy(float)
    final_loss = np.where(np.isnan(final_loss), np.inf, final_loss)
    return {
        "runs": n_runs,
        **counts,
        "success_rate": n_solved / n_runs,
        "success_low": low,
        "success_high": high,
        "median_cost_to_success": solved.median(),
        # COCO's average runtime to success: the cost of failed runs is charged to the successes.
        "ert": average_runtime(group["cost"].where(group["status"] == "solved"), group["cost"]),
        "median_final_loss": float(np.median(final_loss)),
        "median_test_accuracy": group["test_accuracy"].median(),
    }


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """One row of statistics per (dataset, optimizer), in order of first appearance.

    Parameters
    ----------
    runs : DataFrame
        One row per run with at least ``dataset, optimizer, status, final_loss, test_accuracy,
        cost, cost_to_success``.

    Returns
    -------
    DataFrame
        Columns ``dataset, optimizer, runs, solved, stuck, unfinished, diverged, success_rate,
        success_low, success_high`` (Wilson 95%), ``median_cost_to_success`` (over solved runs),
        ``ert`` (total cost of all runs / number solved, inf if none), ``median_final_loss``
        (non-finite counted as +inf) and ``median_test_accuracy``.
    """
    rows = [
        {"dataset": dataset, "optimizer": optimizer, **_group_summary(group)}
        for (dataset, optimizer), group in runs.groupby(GROUP, sort=False)
    ]
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    if "endpoint" in runs.columns:  # analysed: the end-point classes too
        counts = pd.crosstab([runs["dataset"], runs["optimizer"]], runs["endpoint"])
        for name in ENDPOINTS:
            column = counts[name] if name in counts.columns else pd.Series(0, index=counts.index)
            table[f"endpoint_{name}"] = [int(column.get(key, 0)) for key in zip(table["dataset"], table["optimizer"])]
    return table


def _carried_forward(group: pd.DataFrame, grid: np.ndarray, column: str = "best_loss") -> np.ndarray:
    """``column`` (best loss) of each run at each grid cost, shape (n_runs, n_grid); NaN where missing."""
    run_codes, _ = pd.factorize(group["run"])
    cost = group["cost"].to_numpy(float)
    best = group[column].to_numpy(float)
    order = np.lexsort((cost, run_codes))
    run_codes, cost, best = run_codes[order], cost[order], best[order]
    starts = np.searchsorted(run_codes, np.arange(run_codes.max() + 1))
    ends = np.append(starts[1:], len(run_codes))
    values = np.full((len(starts), len(grid)), np.nan)
    for row, (start, end) in enumerate(zip(starts, ends, strict=True)):
        # Last checkpoint at or below each grid cost; a run that stopped keeps its final value.
        index = np.searchsorted(cost[start:end], grid, side="right") - 1
        seen = index >= 0
        values[row, seen] = best[start:end][index[seen]]
    values[~np.isfinite(values)] = np.nan
    return values


def convergence_table(curves: pd.DataFrame, n_points: int = 60, column: str = "best_loss") -> pd.DataFrame:
    """Median and interquartile range of best-so-far loss on a common log-spaced cost grid.

    Parameters
    ----------
    curves : DataFrame
        One row per run per checkpoint with ``dataset, optimizer, run, cost, best_loss``.
    n_points : int
        Grid points per dataset, log-spaced from its smallest positive cost to its largest cost.
    column : str
        The curve column summarised (default the best loss so far; e.g. ``test_accuracy``).

    Returns
    -------
    DataFrame
        Columns ``dataset, optimizer, cost, median, q25, q75, n_runs``; ``n_points`` rows per
        group.  Each run contributes its last checkpoint at or below the grid cost (none before
        its first checkpoint); non-finite losses are dropped, and ``n_runs`` counts the rest.
    """
    tables = []
    for dataset, frame in curves.groupby("dataset", sort=False):
        cost = frame["cost"].to_numpy(float)
        positive = cost[np.isfinite(cost) & (cost > 0)]
        if positive.size == 0:
            continue
        grid = np.geomspace(positive.min(), positive.max(), n_points)
        for optimizer, group in frame.groupby("optimizer", sort=False):
            values = _carried_forward(group, grid, column)
            # pandas' quantile skips NaN silently, where np.nanquantile warns on empty columns.
            q25, median, q75 = pd.DataFrame(values).quantile([0.25, 0.5, 0.75]).to_numpy()
            n_runs = np.isfinite(values).sum(axis=0)
            columns = [dataset, optimizer, grid, median, q25, q75, n_runs]
            tables.append(pd.DataFrame(dict(zip(CONVERGENCE_COLUMNS, columns, strict=True))))
    if not tables:
        return pd.DataFrame(columns=CONVERGENCE_COLUMNS)
    return pd.concat(tables, ignore_index=True)


def _cell(value: object, floatfmt: str) -> str:
    """Text of one table cell: NaN and missing as "-", infinities as "inf"."""
    if value is None or value is pd.NA:
        return "-"
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return "-"
        if np.isinf(value):
            return "inf" if value > 0 else "-inf"
        return floatfmt.format(value)
    return str(value)


def _cells(df: pd.DataFrame, floatfmt: str) -> tuple[list[str], list[list[str]], list[bool]]:
    """Header, body cells and which columns are numeric (right-aligned)."""
    header = [str(column) for column in df.columns]
    body = [[_cell(value, floatfmt) for value in row] for row in df.itertuples(index=False)]
    numeric = [pd.api.types.is_numeric_dtype(df[column]) for column in df.columns]
    return header, body, numeric


def format_table(df: pd.DataFrame, floatfmt: str = "{:.4g}") -> str:
    """Plain-text table with aligned columns, for the terminal.

    Parameters
    ----------
    df : DataFrame
        Table to print; the index is not shown.
    floatfmt : str
        ``str.format`` pattern for floats.  NaN is printed as "-", infinity as "inf".

    Returns
    -------
    str
        Header line, a rule of dashes, one line per row; numeric columns right-aligned.
    """
    header, body, numeric = _cells(df, floatfmt)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        parts = [c.rjust(w) if right else c.ljust(w) for c, w, right in zip(cells, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in body)])


def markdown_table(df: pd.DataFrame, floatfmt: str = "{:.4g}") -> str:
    """GitHub-flavoured markdown table of ``df`` (index not shown), numeric columns right-aligned.

    Parameters
    ----------
    df : DataFrame
        Table to render.
    floatfmt : str
        ``str.format`` pattern for floats.  NaN is printed as "-", infinity as "inf".

    Returns
    -------
    str
        The markdown source, one line per row.
    """
    header, body, numeric = _cells(df, floatfmt)

    def line(cells: list[str]) -> str:
        # A literal "|" inside a cell would split it into two columns.
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    rule = "|" + "|".join("---:" if right else "---" for right in numeric) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in body)])


def summary_for_display(summary_df: pd.DataFrame) -> pd.DataFrame:
    """The columns a reader wants at the end of a run, from the output of :func:`summary`.

    Parameters
    ----------
    summary_df : DataFrame
        As returned by :func:`summary`.

    Returns
    -------
    DataFrame
        Columns ``dataset, optimizer, success`` ("17/20 (85%)"), ``95% CI`` ("0.64-0.95"),
        ``median cost to success, aRT to success, median final loss`` (floats) and ``statuses``
        ("solved 17, stuck 3", non-zero counts only); after an analysis also ``end points of
        failures`` ("saddle 2, saturated 1").
    """
    s = summary_df

    def statuses(row: pd.Series) -> str:
        return ", ".join(f"{status} {row[status]}" for status in STATUSES if row[status] > 0)

    def failures(row: pd.Series) -> str:
        counts = [(name, row[f"endpoint_{name}"]) for name in ENDPOINTS if name not in ("solved", "diverged")]
        return ", ".join(f"{name} {n}" for name, n in counts if n > 0) or "-"

    table = pd.DataFrame(
        {
            "dataset": s["dataset"],
            "optimizer": s["optimizer"],
            "success": [
                f"{k}/{n} ({rate:.0%})" for k, n, rate in zip(s["solved"], s["runs"], s["success_rate"], strict=True)
            ],
            "95% CI": [f"{low:.2f}-{high:.2f}" for low, high in zip(s["success_low"], s["success_high"], strict=True)],
            "median cost to success": s["median_cost_to_success"].astype(float),
            "aRT to success": s["ert"].astype(float),
            "median final loss": s["median_final_loss"].astype(float),
            "statuses": [statuses(row) for _, row in s.iterrows()],
        }
    ).reset_index(drop=True)
    if "endpoint_minimum" in s.columns:
        table["end points of failures"] = [failures(row) for _, row in s.iterrows()]
    return table
