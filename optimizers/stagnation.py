"""Stagnation over a sliding window of cost: the one rule behind the status ``stuck``, the plateau
episodes and restarts.

A run is *stalled* at cost c when its best loss fell by at most a relative ``min_delta`` over the
last ``width`` cost units:

    best(c) >= (1 - min_delta) * best(c - width)

where best(x) is the lowest loss among the run's evaluations made at cost <= x.  A run that has not
been watched for a whole window yet (no evaluation at or before c - width) is not stalled.

The runner applies it to each run's best loss with a width of ``[stopping] patience`` x budget
("stuck") and of ``[record] plateau_window`` x budget (plateau episodes); the restarts wrapper
applies it to the current attempt's best loss with a width of its own ``patience`` cost units.

Looking one window back needs the window's history.  It is kept per run in a log of (cost, best)
columns, one column per step, shared by all rows of a state (every row steps together) and by
all the widths watched over it (each width has its own look-back column per row).  A push writes
the column past the state's ``head``, which no earlier state reads, and a full log is copied into
a new, larger one, so a state handed to a push keeps seeing the same values (the optimizers'
rule: inputs are never changed).  Columns that no width can look back to any more are dropped at
that copy, so the log holds about one (longest) window of steps.
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
    lag: np.ndarray  # (R, K) per width: newest column at or before cost - width; < start if none
    # (R,) the same value in every row: True while all rows have logged the same costs since the
    # same start (one optimizer stepping them together), so that every row looks back to the
    # same column and the look-backs are followed as K numbers rather than R x K.
    uniform: np.ndarray


def window_start(n_runs: int, n_widths: int = 1) -> Window:
    """An empty window for ``n_runs`` runs watched over ``n_widths`` widths; push each evaluation
    into it, the first one too."""
    zeros = np.zeros(n_runs, dtype=np.int64)
    empty = np.empty((n_runs, _MIN_COLUMNS))
    lag = np.full((n_runs, n_widths), -1, dtype=np.int64)
    return Window(empty, np.empty_like(empty), zeros, zeros, lag, np.ones(n_runs, dtype=bool))


def window_push(window: Window, cost: np.ndarray, best: np.ndarray, widths: np.ndarray) -> Window:
    """The window with one more evaluation per run, (cost, best) both (R,), costs increasing;
    ``widths`` (K,) are the widths watched, in cost units, or (R, K) for widths that differ per run."""
    if not len(cost):
        return window
    window = _room_for_one(window)
    log_cost, log_best, head, start, lag, uniform = window
    h = int(head[0])
    log_cost[:, h], log_best[:, h] = cost, best  # past every earlier state's head: nobody reads it
    head = head + 1
    widths = np.asarray(widths, dtype=np.float64)
    if uniform[0] and widths.ndim == 1 and cost.min() == cost.max():
        moved = _advance_one(log_cost[0], h + 1, lag[0], cost[0] - widths)
        if np.any(moved != lag[0]):
            lag = np.empty_like(lag)
            lag[...] = moved
        return Window(log_cost, log_best, head, start, lag, uniform)
    limit = cost[:, None] - (widths if widths.ndim == 2 else widths[None, :])
    lag = _advance(log_cost, h + 1, np.maximum(lag, start[:, None] - 1), limit)
    return Window(log_cost, log_best, head, start, lag, np.zeros_like(uniform))


def window_restart(window: Window, rows: np.ndarray, cost: np.ndarray, best: np.ndarray) -> Window:
    """Begin a new watch for ``rows``: their newest entry becomes (cost, best), the first evaluation
    of a new attempt, and nothing before it is looked back to.

    The newest column was written by the push that made this state (no earlier state reads it).
    """
    log_cost, log_best, head, start, lag, uniform = window
    h = int(head[0]) - 1
    log_cost[rows, h], log_best[rows, h] = cost, best
    start, lag = start.copy(), lag.copy()
    start[rows], lag[rows] = h, h - 1
    return Window(log_cost, log_best, head, start, lag, np.zeros_like(uniform))


def window_stalled(window: Window, best: np.ndarray, min_deltas: np.ndarray) -> np.ndarray:
    """(R, K) bool: per width, the best loss ``best`` (R,) is at least (1 - min_delta) x the best
    one window back; ``min_deltas`` (K,) are the relative drops, one per width ((R, K): per run)."""
    keep = 1.0 - np.asarray(min_deltas, dtype=np.float64)
    if len(best) and window.uniform[0]:
        lag, start = window.lag[0], window.start[0]
        watched = lag >= start
        then = window.best[:, np.maximum(lag, 0)]
        with np.errstate(invalid="ignore"):  # inf - inf from diverged runs: not stalled, they diverged
            return watched & (best[:, None] >= keep * then)
    watched = window.lag >= window.start[:, None]
    if not watched.any():
        return watched
    base = np.arange(0, window.best.size, window.best.shape[1])[:, None]
    then = window.best.reshape(-1)[base + np.maximum(window.lag, 0)]
    with np.errstate(invalid="ignore"):
        return watched & (best[:, None] >= keep * then)


def _advance_one(costs: np.ndarray, head: int, lag: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """``_advance`` for one row of costs (C,) and its K look-backs (K,): plain Python steps."""
    lag = lag.copy()
    for k in range(len(lag)):
        while lag[k] + 1 < head and costs[lag[k] + 1] <= limit[k]:
            lag[k] += 1
    return lag


def _advance(log_cost: np.ndarray, head: int, lag: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Move each look-back column ``lag`` (R, K) to its row's newest column whose cost is <=
    ``limit`` (R, K) (costs increase along a row; ``head`` columns are written).

    Rows move one column per push in steady state: each pass looks two columns ahead with whole-
    array operations on the flat log, and goes round again only if some look-back moved two.
    """
    flat, last = log_cost.reshape(-1), head - 1
    base = np.arange(0, log_cost.size, log_cost.shape[1])[:, None]
    while True:
        one = (lag < last) & (flat[base + np.minimum(lag + 1, last)] <= limit)
        two = one & (lag + 1 < last) & (flat[base + np.minimum(lag + 2, last)] <= limit)
        lag = lag + one + two
        if not two.any():
            return lag


def _room_for_one(window: Window) -> Window:
    """The window itself if its log has a free column, else a copy into a larger log without the
    columns nobody can look back to (those before each row's oldest look-back, or its watch)."""
    log_cost, log_best, head, start, lag, uniform = window
    h = int(head[0])
    if h < log_cost.shape[1]:
        return window
    needed = np.where(lag >= start[:, None], lag, start[:, None])
    low = int(needed.min())
    columns = max(_MIN_COLUMNS, 2 * (h - low))
    new_cost, new_best = np.empty((len(head), columns)), np.empty((len(head), columns))
    new_cost[:, : h - low], new_best[:, : h - low] = log_cost[:, low:h], log_best[:, low:h]
    moved_lag = np.where(lag >= start[:, None], lag - low, start[:, None] - low - 1)
    return Window(new_cost, new_best, head - low, start - low, moved_lag, uniform)
