"""Colours that mean the same in every figure of every report."""

from __future__ import annotations

# A run's status at its end (``bench.runner.STATUSES``): good green, bad red, not done orange.
STATUS_COLOURS: dict[str, str] = {
    "solved": "#2ca02c",
    "stuck": "#d62728",
    "unfinished": "#ff7f0e",
    "diverged": "#000000",
}
