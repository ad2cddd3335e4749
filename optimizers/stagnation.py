"""Stagnation over a sliding window of cost: the one rule behind the status ``stuck`` and restarts.

A run is *stalled* at cost c when its best loss fell by at most a relative ``min_delta`` over the
last ``width`` cost units:

    best(c) >= (1 - min_delta) * best(c - width)

where best(x) is the lowest loss among the run's evaluations made at cost <= x.  A run that has not
been watched for a whole window yet (no evaluation at or before c - width) is not stalled.

The runner applies it to each run's best loss with a width of ``[stopping] patience`` x budget;
the restarts wrapper applies it to the current attempt's best loss with a width of its own
``patience`` cost units.

Looking one window back needs the window's history.  It is kept per run in a log of (cost, best)
columns, one column per step, shared by all rows of a state (every row steps together).  A push
writes the column past the state's ``head``, which no earlier state reads, and a full log is
copied into a new, larger one, so a state handed to a push keeps seeing the same values (the
optimizers' rule: inputs are never changed).  Columns that no row can look back to any more are
dropped at that copy, so the log holds about one window of steps.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

_MIN_COLUMNS = 64


class Window(NamedTuple):
    """The recent history of each run's best loss; every leaf has the runs axis first."""

    cost: np.ndarray  # (R, C) cost of each logged evaluation
    best: np.ndarray  # (R, C) best loss at that cost
    head: np.ndarray  # (R,) columns written (the same for every row)
    start: np.ndarray  # (R,) first column of the current watch (restarts begin a new one)
    lag: np.ndarray  # (R,) newest column at or before cost - width; < start if none yet


def window_start(n_runs: int) -> Window:
    """An empty window for ``n_runs`` runs; push each evaluation into it, the first one too."""
    zeros = np.zeros(n_runs, dtype=np.int64)
    return Window(np.empty((n_runs, _MIN_COLUMNS)), np.empty((n_runs, _MIN_COLUMNS)), zeros, zeros, zeros - 1)


def window_push(window: Window, cost: np.ndarray, best: np.ndarray, width: float) -> Window:
    """The window with one more evaluation per run, (cost, best) both (R,), costs increasing."""
    if not len(cost):
        return window
    window = _room_for_one(window)
    log_cost, log_best, head, start, lag = window
    h = int(head[0])
    log_cost[:, h], log_best[:, h] = cost, best  # past every earlier state's head: nobody reads it
    head = head + 1
    lag = _advance(log_cost, head, np.maximum(lag, start - 1), cost - width)
    return Window(log_cost, log_best, head, start, lag)


def window_restart(window: Window, rows: np.ndarray, cost: np.ndarray, best: np.ndarray) -> Window:
    """Begin a new watch for ``rows``: their newest entry becomes (cost, best), the first evaluation
    of a new attempt, and nothing before it is looked back to.

    The newest column was written by the push that made this state (no earlier state reads it).
    """
    log_cost, log_best, head, start, lag = window
    h = int(head[0]) - 1
    log_cost[rows, h], log_best[rows, h] = cost, best
    start, lag = start.copy(), lag.copy()
    start[rows], lag[rows] = h, h - 1
    return Window(log_cost, log_best, head, start, lag)


def window_stalled(window: Window, best: np.ndarray, min_delta: float) -> np.ndarray:
    """(R,) bool: the best loss ``best`` (R,) is at least (1 - min_delta) x the best one window back."""
    watched = window.lag >= window.start
    if not watched.any():
        return watched
    then = window.best[np.arange(len(best)), np.maximum(window.lag, 0)]
    with np.errstate(invalid="ignore"):  # inf - inf from diverged runs: not stalled, they diverged
        return watched & (best >= (1.0 - min_delta) * then)


def _advance(log_cost: np.ndarray, head: np.ndarray, lag: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Move each row's ``lag`` to its newest column whose cost is <= ``limit`` (costs increase)."""
    rows = np.arange(len(lag))
    while True:
        nxt = lag + 1
        can = nxt < head
        can[can] = log_cost[rows[can], nxt[can]] <= limit[can]
        if not can.any():
            return lag
        lag = np.where(can, nxt, lag)


def _room_for_one(window: Window) -> Window:
    """The window itself if its log has a free column, else a copy into a larger log without the
    columns nobody can look back to (those before each row's lag, or before its watch)."""
    log_cost, log_best, head, start, lag = window
    h = int(head[0])
    if h < log_cost.shape[1]:
        return window
    needed = np.where(lag >= start, lag, start)
    low = int(needed.min())
    columns = max(_MIN_COLUMNS, 2 * (h - low))
    new_cost, new_best = np.empty((len(head), columns)), np.empty((len(head), columns))
    new_cost[:, : h - low], new_best[:, : h - low] = log_cost[:, low:h], log_best[:, low:h]
    return Window(new_cost, new_best, head - low, start - low, np.where(lag >= start, lag - low, start - low - 1))
