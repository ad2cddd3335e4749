"""Plateau episodes, as the runner recorded them (``plateaus.parquet``), summarised per optimizer.

An episode is a stretch during which a run is not solved and its best loss falls by at most
``[record] plateau_min_delta`` over ``[record] plateau_window`` x budget cost units: the rule
of "stuck" on a shorter window.  The runner records them itself, at every evaluation, so their
resolution does not depend on the curves' checkpoint spacing.
"""

from __future__ import annotations

import pandas as pd

COLUMNS = ["dataset", "optimizer", "runs", "runs_with_plateaus", "episodes", "median_share", "mean_share", "escaped"]


def plateau_summary(runs: pd.DataFrame, plateaus: pd.DataFrame) -> pd.DataFrame:
    """Per dataset x optimizer (in order of appearance): runs, runs that had a plateau, episodes,
    median and mean share of the budget spent on plateaus, and the share of episodes that ended
    with an escape (rather than with the run stopping on the plateau)."""
    rows = []
    for (dataset, optimizer), frame in runs.groupby(["dataset", "optimizer"], sort=False):
        episodes = plateaus[(plateaus["dataset"] == dataset) & (plateaus["optimizer"] == optimizer)]
        rows.append(
            {
                "dataset": dataset,
                "optimizer": optimizer,
                "runs": len(frame),
                "runs_with_plateaus": int((frame["plateaus"] > 0).sum()),
                "episodes": len(episodes),
                "median_share": float(frame["plateau_share"].median()),
                "mean_share": float(frame["plateau_share"].mean()),
                "escaped": float((episodes["outcome"] == "escaped").mean()) if len(episodes) else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)
