"""The stagnation window: the rule behind "stuck" and restarts, against a brute-force reading of it."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
import pytest
from bench.optimizers import stagnation
from bench.optimizers.registry import register_direct
from bench.optimizers.stagnation import window_push, window_restart, window_stalled, window_start
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.config import from_dict
from bench.problem import GRADIENT_COST
from bench.runner import run_cell


def brute_stalled(costs, bests, starts, width, min_delta):
    """The definition, read literally: per run, the best loss at the newest evaluation of the
    current watch with cost <= now - width; stalled if the best now is >= (1 - min_delta) x that."""
    out = []
    for c, b, s in zip(costs, bests, starts):
        c, b = np.asarray(c[s:]), np.asarray(b[s:])
        back = np.flatnonzero(c <= c[-1] - width)
        out.append(bool(len(back)) and bool(b[-1] >= (1 - min_delta) * b[back[-1]]))
    return np.array(out)


@settings(max_examples=60, deadline=None)
@given(
    n_runs=st.integers(1, 4),
    steps=st.integers(1, 300),
    width=st.floats(1.0, 80.0),
    min_delta=st.sampled_from([0.0, 1e-3, 0.05]),
    restart_rate=st.sampled_from([0.0, 0.02]),
    seed=st.integers(0, 2**32 - 1),
)
def test_window_agrees_with_the_definition(n_runs, steps, width, min_delta, restart_rate, seed):
    """Uneven costs per step, plateaus, restarts, logs that outgrow their first capacity, and two
    widths watched over one log."""
    rng = np.random.default_rng(seed)
    widths, drops = np.array([width, 2.3 * width]), np.array([min_delta, 0.02])
    window = window_start(n_runs, 2)
    costs = [[] for _ in range(n_runs)]
    bests = [[] for _ in range(n_runs)]
    starts = [0] * n_runs
    cost, best = np.zeros(n_runs), np.full(n_runs, np.inf)
    for _ in range(steps):
        cost = cost + rng.integers(1, 6, n_runs)
        # Falls by 0 (plateau), by a little, or by a lot.
        best = np.fmin(best, rng.choice([1.0, 1 - 1e-4, 0.9], n_runs) * np.where(np.isfinite(best), best, 1.0))
        window = window_push(window, cost, best, widths)
        for r in range(n_runs):
            costs[r].append(cost[r])
            bests[r].append(best[r])
        restart = np.flatnonzero(rng.random(n_runs) < restart_rate)
        if len(restart):
            cost[restart] += 3  # the new attempt's first evaluation
            best[restart] = rng.random(len(restart)) + 1.0
            window = window_restart(window, restart, cost[restart], best[restart])
            for r in restart:
                costs[r][-1], bests[r][-1] = cost[r], best[r]
                starts[r] = len(costs[r]) - 1
        got = window_stalled(window, best, drops)
        for k in range(2):
            np.testing.assert_array_equal(got[:, k], brute_stalled(costs, bests, starts, widths[k], drops[k]))


def test_an_earlier_state_is_not_changed_by_later_pushes():
    window = window_start(2)
    window = window_push(window, np.array([3.0, 3.0]), np.array([1.0, 1.0]), np.array([10.0]))
    kept = [np.array(leaf, copy=True) for leaf in window]
    later = window
    for step in range(2, 200):  # through several copies into larger logs
        later = window_push(later, np.array([3.0, 3.0]) * step, np.array([1.0, 0.5]), np.array([10.0]))
    head = int(window.head[0])
    np.testing.assert_array_equal(window.cost[:, :head], kept[0][:, :head])
    np.testing.assert_array_equal(window.best[:, :head], kept[1][:, :head])
    for leaf, before in zip(window[2:], kept[2:]):
        np.testing.assert_array_equal(leaf, before)
    assert later.cost.shape[1] < 200  # old columns are dropped: the log holds about one window


class JunkNumpy:
    """numpy as the stagnation module sees it, except that a fresh array holds ``junk`` rather than
    whatever the memory held: an answer that depends on a log column nobody wrote shows."""

    def __init__(self, junk: float) -> None:
        self.junk = junk

    def __getattr__(self, name: str):
        return getattr(np, name)

    def _fill(self, dtype) -> float | int:
        return self.junk if np.dtype(dtype).kind == "f" else 2**40

    def empty(self, shape, dtype=float):
        return np.full(shape, self._fill(dtype), dtype=dtype)

    def empty_like(self, a, dtype=None):
        dtype = a.dtype if dtype is None else dtype
        return np.full(np.shape(a), self._fill(dtype), dtype=dtype)


def rule_stalled(watch: list[tuple[float, float]], width: float, min_delta: float) -> bool:
    """The module docstring's rule, on one run's raw evaluations (cost, loss) since its watch began:
    best(x) is the lowest loss at cost <= x; stalled at the newest cost c when some evaluation is
    at or before c - width and best(c) >= (1 - min_delta) x best(c - width)."""
    now = watch[-1][0]
    then = [loss for cost, loss in watch if cost <= now - width]
    return bool(then) and min(loss for _, loss in watch) >= (1.0 - min_delta) * min(then)


# Narrower than most steps (one column back), a few steps, and wider than the first 64 columns.
RULE_WIDTHS, RULE_DROPS = np.array([2.5, 11.0, 400.0]), np.array([0.0, 1e-3, 0.05])


@pytest.mark.parametrize("junk", [np.nan, -np.inf])
@pytest.mark.parametrize(("seed", "together"), [(0, True), (1, True), (2, False), (3, False), (4, False)])
def test_window_follows_the_rule_without_reading_unwritten_columns(monkeypatch, seed, together, junk):
    """Seeded runs against the rule on raw losses: costs per step uneven (and, unless ``together``,
    different per row), restarts, three widths over one log that outgrows 64 columns while still
    unwatched; fresh arrays full of junk.  Every earlier state keeps its answer and its values."""
    monkeypatch.setattr(stagnation, "np", JunkNumpy(junk))
    rng = np.random.default_rng(seed)
    n_runs, steps = 3, 420
    window = window_start(n_runs, len(RULE_WIDTHS))
    watches: list[list[tuple[float, float]]] = [[] for _ in range(n_runs)]
    cost, loss = np.zeros(n_runs), np.ones(n_runs)
    history = []
    for step in range(steps):
        increments = rng.choice([1, 1, 1, 2, 3, 7, 20], 1 if together else n_runs)
        cost = cost + increments
        # Stands still, creeps, falls or rises: the best of the attempt is what is pushed.
        loss = loss * rng.choice([1.0, 1.0, 1 - 1e-4, 0.9, 1.2], n_runs)
        for r in range(n_runs):
            watches[r].append((cost[r], loss[r]))
        best = np.array([min(x for _, x in w) for w in watches])
        window = window_push(window, cost.copy(), best, RULE_WIDTHS)
        # Restarts only once the log has been copied a few times when the rows step together.
        rate = 0.0 if together and step < 300 else 0.03
        rows = np.flatnonzero(rng.random(n_runs) < rate)
        if len(rows):
            cost[rows] += 3  # the new attempt's first evaluation replaces the newest entry
            loss[rows] = 1.0 + rng.random(len(rows))
            window = window_restart(window, rows, cost[rows], loss[rows])
            for r in rows:
                watches[r] = [(cost[r], loss[r])]
            best = np.array([min(x for _, x in w) for w in watches])
        got = window_stalled(window, best, RULE_DROPS)
        want = [[rule_stalled(w, width, d) for width, d in zip(RULE_WIDTHS, RULE_DROPS)] for w in watches]
        np.testing.assert_array_equal(got, want, err_msg=f"step {step}")
        head = int(window.head[0])
        kept = (window.cost[:, :head].copy(), window.best[:, :head].copy(), *(np.copy(x) for x in window[2:]))
        history.append((window, best, got, kept))
    copied = history[64][0]  # the 65th push found the first log full, the widest width not yet watched
    assert copied.cost.shape[1] > 64 and (copied.lag[:, 2] < copied.start).all()
    for state, best, got, kept in history:  # later pushes and restarts changed no earlier state
        head = int(state.head[0])
        np.testing.assert_array_equal(window_stalled(state, best, RULE_DROPS), got)
        np.testing.assert_array_equal(state.cost[:, :head], kept[0])
        np.testing.assert_array_equal(state.best[:, :head], kept[1])
        for leaf, before in zip(state[2:], kept[2:]):
            np.testing.assert_array_equal(leaf, before)


# ------------------------------------------------------------------ the runner's statuses, on constructed curves


@dataclasses.dataclass(frozen=True)
class ScriptedSettings:
    """Loss = exp(-rate * c) up to cost ``switch``, then falls at ``late_rate``; +inf from cost
    ``diverge_at`` on.  Over a window w of one rate the relative drop is 1 - exp(-rate * w)."""

    rate: float = 0.0
    late_rate: float = 0.0
    switch: float = 1e9
    diverge_at: float = 1e9
    flat_from: float = 1e9  # the loss stands still from this cost ...
    flat_to: float = 1e9  # ... to this one


class ScriptedState(NamedTuple):
    theta: np.ndarray
    loss: np.ndarray


@register_direct("scripted_test", ScriptedSettings, "a loss curve given in advance (tests only)")
class Scripted:
    """Charges one gradient evaluation per step, never moves theta (zeros: XOR stays unsolved)."""

    init_cost = max_step_cost = GRADIENT_COST
    stream = "scripted"

    def __init__(self, settings: ScriptedSettings) -> None:
        self.s = settings

    def _state(self, theta, problem):
        problem.evaluate(theta)  # charge the evaluation
        s = self.s
        c = problem.cost - np.clip(problem.cost - s.flat_from, 0.0, s.flat_to - s.flat_from)
        loss = np.exp(-s.rate * np.minimum(c, s.switch) - s.late_rate * np.maximum(c - s.switch, 0.0))
        return ScriptedState(theta, np.where(problem.cost >= s.diverge_at, np.inf, loss))

    def init(self, theta0, problem, rngs):
        return self._state(np.zeros_like(theta0), problem)

    def step(self, state, problem):
        return self._state(state.theta, problem)


BUDGET, WINDOW = 1200, 300  # the default window: 0.25 x budget


def rate_for(drop: float, window: float = WINDOW) -> float:
    """The rate whose relative drop over ``window`` cost units is ``drop``."""
    return float(-np.log1p(-drop) / window)


def scripted_runs(stopping: dict | None = None, **settings):
    doc = {
        "experiment": {"name": "scripted", "seed": 0, "runs": 3, "budget": BUDGET},
        "datasets": [{"name": "xor"}],
        "optimizers": [{"name": "scripted_test", **settings}],
    }
    if stopping is not None:
        doc["stopping"] = stopping
    return run_cell(from_dict(doc).cells()[0])[0]


@pytest.mark.parametrize(("drop", "status"), [(0.00099, "stuck"), (0.00101, "unfinished")])
def test_stuck_is_a_drop_of_at_most_min_delta_over_the_window(drop, status):
    runs = scripted_runs({"patience": 0.25, "min_delta": 1e-3}, rate=rate_for(drop))
    assert (runs["status"] == status).all()
    assert (runs["cost"] == BUDGET).all()  # stagnation stopping is off by default: the budget is spent
    # The README's words, on the stored numbers: the best loss one window before the end.
    np.testing.assert_allclose(runs["best_loss"], np.exp(np.log1p(-drop) * BUDGET / WINDOW), rtol=1e-12)


def test_stagnation_stops_a_run_once_it_has_been_watched_for_a_whole_window():
    stuck = scripted_runs({"stagnation": True}, rate=rate_for(0.00099))
    assert (stuck["status"] == "stuck").all()
    assert (stuck["cost"] == 303).all()  # the first evaluation (cost 3) is one window back at 303
    moving = scripted_runs({"stagnation": True}, rate=rate_for(0.00101))
    assert (moving["status"] == "unfinished").all() and (moving["cost"] == BUDGET).all()


def test_the_default_window_is_the_last_quarter_of_the_budget():
    """5 % down over the third quarter, 0.05 % over the last: stuck over a quarter, not over a half."""
    runs = scripted_runs(rate=rate_for(0.05), switch=BUDGET - WINDOW, late_rate=rate_for(0.0005))
    assert (runs["status"] == "stuck").all()
    halves = scripted_runs({"patience": 0.5}, rate=rate_for(0.05), switch=BUDGET - WINDOW, late_rate=rate_for(0.0005))
    assert (halves["status"] == "unfinished").all()


def test_the_default_drop_is_one_tenth_of_a_percent():
    """0.5 % down over every window: still improving by the default's measure, stuck at 1 %."""
    assert (scripted_runs(rate=rate_for(0.005))["status"] == "unfinished").all()
    assert (scripted_runs({"min_delta": 0.01}, rate=rate_for(0.005))["status"] == "stuck").all()


def test_a_loss_that_overflows_to_inf_is_diverged():
    runs = scripted_runs(rate=rate_for(0.5), diverge_at=600)
    assert (runs["status"] == "diverged").all()
    assert (runs["final_loss"] == np.inf).all() and (runs["cost"] == 600).all()
    assert runs["cost_to_success"].isna().all()


def scripted_tables(stopping: dict | None = None, record: dict | None = None, **settings):
    doc = {
        "experiment": {"name": "scripted", "seed": 0, "runs": 2, "budget": BUDGET},
        "record": record or {},
        "datasets": [{"name": "xor"}],
        "optimizers": [{"name": "scripted_test", **settings}],
    }
    return run_cell(from_dict(doc).cells()[0])


def test_a_plateau_episode_is_recorded_from_where_the_loss_stopped_to_where_it_fell_again():
    # Falls 5 % per 60 units, stands still from cost 300 to 600, falls again: one episode that
    # begins at 300 (the evaluation one 60-unit window before the run first looked stalled) and
    # ends at the first evaluation after 600, where the drop over the window exceeds 0.1 % again.
    runs, _, plateaus, _ = scripted_tables(rate=rate_for(0.05, 60), flat_from=300, flat_to=600)
    assert len(plateaus) == 2 and (plateaus["run"] == [0, 1]).all()
    episode = plateaus.iloc[0]
    assert episode["start_cost"] == 300 and episode["end_cost"] == 603 and episode["outcome"] == "escaped"
    np.testing.assert_allclose(episode["start_loss"], np.exp(-rate_for(0.05, 60) * 300), rtol=1e-12)
    np.testing.assert_allclose(runs["plateau_share"], 303 / BUDGET)
    assert (runs["plateaus"] == 1).all()


def test_a_run_that_stops_on_a_plateau_is_still_on_it():
    runs, _, plateaus, _ = scripted_tables(rate=rate_for(0.05, 60), flat_from=900, flat_to=5000)
    assert (plateaus["outcome"] == "still on it").all() and (plateaus["start_cost"] == 900).all()
    assert (plateaus["end_cost"] == BUDGET).all()
    np.testing.assert_allclose(runs["plateau_share"], 300 / BUDGET)


def test_no_plateau_while_the_loss_keeps_falling():
    runs, _, plateaus, _ = scripted_tables(rate=rate_for(0.05, 60))
    assert plateaus.empty and (runs["plateaus"] == 0).all() and (runs["plateau_share"] == 0).all()


def test_widths_per_run_watch_each_row_as_its_own_window():
    """(R, K) widths and drops (restarts with per-run patience): row r answers as a one-row window
    with row r's width and drop, whether the rows step together or not."""
    rng = np.random.default_rng(7)
    widths, drops = np.array([[2.5], [11.0], [400.0]]), np.array([[0.0], [1e-3], [0.05]])
    together = window_start(3, 1)
    alone = [window_start(1, 1) for _ in range(3)]
    cost, best = np.zeros(3), np.ones(3)
    seen = set()
    for step in range(300):
        cost = cost + rng.choice([1, 2, 7], 1 if step < 150 else 3)
        best = best * rng.choice([1.0, 1 - 1e-4, 0.9], 3)
        together = window_push(together, cost.copy(), best, widths)
        got = window_stalled(together, best, drops)[:, 0]
        for r in range(3):
            alone[r] = window_push(alone[r], cost[r : r + 1].copy(), best[r : r + 1], widths[r])
            assert got[r] == window_stalled(alone[r], best[r : r + 1], drops[r])[0, 0], (step, r)
        seen |= {(r, bool(got[r])) for r in range(3)}
    assert seen >= {(0, True), (0, False), (1, True), (1, False), (2, False)}
