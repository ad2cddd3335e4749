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

A push and a look-back are a few comparisons per run and width, which as numpy calls cost far
more than their arithmetic (the runner makes both at every step); so they are plain loops,
compiled with numba (``bench.kernels.jit``; plain Python where numba is missing).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from bench import kernels

_MIN_COLUMNS = 64


class Window(NamedTuple):
    """The recent history of each run's best loss; every leaf has the runs axis first."""

    cost: np.ndarray  # (R, C) cost of each logged evaluation
    best: np.ndarray  # (R, C) best loss at that cost
    head: np.ndarray  # (R,) columns written (the same for every row)
    start: np.ndarray  # (R,) first column of the current watch (restarts begin a new one)
    lag: np.ndarray  # (R, K) per width: newest column at or before cost - width; < start if none


def window_start(n_runs: int, n_widths: int = 1) -> Window:
    """An empty window for ``n_runs`` runs watched over ``n_widths`` widths; push each evaluation
    into it, the first one too."""
    zeros = np.zeros(n_runs, dtype=np.int64)
    empty = np.empty((n_runs, _MIN_COLUMNS))
    lag = np.full((n_runs, n_widths), -1, dtype=np.int64)
    return Window(empty, np.empty_like(empty), zeros, zeros, lag)


def window_push(window: Window, cost: np.ndarray, best: np.ndarray, widths: np.ndarray) -> Window:
    """The window with one more evaluation per run, (cost, best) both (R,), costs increasing;
    ``widths`` (K,) are the widths watched, in cost units, or (R, K) for widths that differ per run."""
    if not len(cost):
        return window
    log_cost, log_best, head, start, lag = _room_for_one(window)
    lag_next = np.empty_like(lag)
    _push(log_cost, log_best, int(head[0]), start, lag, _floats(cost), _floats(best), _per_row(widths), lag_next)
    return Window(log_cost, log_best, head + 1, start, lag_next)


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


def window_stalled(window: Window, best: np.ndarray, min_deltas: np.ndarray) -> np.ndarray:
    """(R, K) bool: per width, the best loss ``best`` (R,) is at least (1 - min_delta) x the best
    one window back; ``min_deltas`` (K,) are the relative drops, one per width ((R, K): per run)."""
    stalled = np.empty(window.lag.shape, dtype=np.bool_)
    _stalled(window.best, window.start, window.lag, _floats(best), 1.0 - _per_row(min_deltas), stalled)
    return stalled


def _floats(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64)


def _per_row(values: np.ndarray) -> np.ndarray:
    """Per-width values (K,) as one row (1, K) that every run reads, or per run and width (R, K)."""
    values = _floats(values)
    return values.reshape(1, -1) if values.ndim == 1 else values


@kernels.jit
def _push(log_cost, log_best, h, start, lag, cost, best, widths, lag_next):
    """Write (cost, best) into column ``h`` and move each look-back to its row's newest column
    whose cost is <= cost - width (costs increase along a row; never before the watch's start)."""
    for r in range(lag.shape[0]):
        log_cost[r, h] = cost[r]
        log_best[r, h] = best[r]
        row = r if widths.shape[0] > 1 else 0
        for k in range(lag.shape[1]):
            limit = cost[r] - widths[row, k]
            j = max(lag[r, k], start[r] - 1)
            while j < h and log_cost[r, j + 1] <= limit:
                j += 1
            lag_next[r, k] = j


@kernels.jit
def _stalled(log_best, start, lag, best, keep, stalled):
    """Per run and width: watched for a whole window, and best >= keep x the best one window back
    (False for NaN, as numpy's comparison: a diverged run is not stalled, it diverged)."""
    for r in range(lag.shape[0]):
        row = r if keep.shape[0] > 1 else 0
        for k in range(lag.shape[1]):
            j = lag[r, k]
            stalled[r, k] = j >= start[r] and best[r] >= keep[row, k] * log_best[r, j]


def _room_for_one(window: Window) -> Window:
    """The window itself if its log has a free column, else a copy into a larger log without the
    columns nobody can look back to (those before each row's oldest look-back, or its watch)."""
    log_cost, log_best, head, start, lag = window
    h = int(head[0])
    if h < log_cost.shape[1]:
        return window
    needed = np.where(lag >= start[:, None], lag, start[:, None])
    low = int(needed.min())
    columns = max(_MIN_COLUMNS, 2 * (h - low))
    new_cost, new_best = np.empty((len(head), columns)), np.empty((len(head), columns))
    new_cost[:, : h - low], new_best[:, : h - low] = log_cost[:, low:h], log_best[:, low:h]
    moved_lag = np.where(lag >= start[:, None], lag - low, start[:, None] - low - 1)
    return Window(new_cost, new_best, head - low, start - low, moved_lag)
