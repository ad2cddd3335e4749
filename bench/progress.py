"""Progress that tells the truth: cost units over all cells, the cells being computed, and a time
estimate built from a measured sample of every cell (``api.estimate``), corrected as cells finish.

Counting cells misleads when cells differ by a hundredfold (an XOR cell takes a second, a
two-spirals cell minutes); counting cost units alone misleads too, since a unit (one forward
pass over the training set) of two spirals costs far more than one of XOR.  So the bar advances
in cost units (a cell's runs x budget when it finishes) and the time left is the schedule of the
cells not yet finished on the workers, each cell's sampled time scaled by how the finished cells
of the same dataset compared with their samples.  The samples assume every run uses its whole
budget, an upper bound; runs that solve early make a dataset's cells faster, which its first
finished cells tell, and a dataset none of whose cells has finished keeps the upper bound (the
early cells of an easy dataset say nothing about a hard one).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence

from bench.config import Cell

PRIOR = 10.0  # seconds of evidence before the finished cells' real times rescale the estimate


def makespan(seconds: Sequence[float], workers: int, busy: Sequence[float] = ()) -> float:
    """The wall time until the last of ``seconds`` ends, cells handed out in order to the first
    free of ``workers`` (as the executors do), the workers busy for ``busy`` seconds first."""
    free = sorted([*busy, *[0.0] * max(workers - len(busy), 0)])[: max(workers, len(busy), 1)]
    for s in seconds:
        free[free.index(min(free))] += s
    return max(free, default=0.0)


def duration(seconds: float) -> str:
    """ "< 1 s", "42 s", "13 min 05 s", "2 h 07 min": whole units, rounded once (never "60 s")."""
    if seconds < 1:
        return "< 1 s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


class Progress:
    """A tqdm bar over ``cells`` in cost units, refreshed every second by a daemon thread."""

    def __init__(self, cells: Sequence[Cell], estimates: dict[str, float], workers: int, enabled: bool) -> None:
        from tqdm import tqdm

        self.cells, self.estimates, self.workers = list(cells), estimates, max(workers, 1)
        self.units = {c.key: c.config.runs * c.dataset.budget for c in self.cells}
        self.started: dict[str, float] = {}
        self.finished: set[str] = set()
        self.actual: dict[str, float] = {}  # per dataset: real seconds of its finished cells
        self.sampled: dict[str, float] = {}  # per dataset: their sampled seconds
        self.units_done = 0  # what the bar shows (kept here too: a disabled bar counts nothing)
        self.lock = threading.Lock()
        self.bar = tqdm(
            total=sum(self.units.values()),
            desc="cost units",
            unit_scale=True,
            file=sys.stderr,
            disable=not (enabled and self.cells),
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
        )
        self.stop = threading.Event()
        self.thread = None
        if not self.bar.disable:
            self.thread = threading.Thread(target=self._refresh_every_second, daemon=True, name="progress")
            self.thread.start()

    def start(self, cell: Cell) -> None:
        with self.lock:
            self.started[cell.key] = time.perf_counter()
            self._show()

    def done(self, cell: Cell) -> None:
        with self.lock:
            began = self.started.pop(cell.key, None)
            if began is not None and cell.key in self.estimates:
                label = cell.dataset.label
                self.actual[label] = self.actual.get(label, 0.0) + time.perf_counter() - began
                self.sampled[label] = self.sampled.get(label, 0.0) + self.estimates[cell.key]
            self.finished.add(cell.key)
            self.units_done += self.units[cell.key]
            self.bar.update(self.units[cell.key])
            self._show()

    def seconds_left(self) -> float | None:
        """The estimated wall time until every cell has finished (None without estimates)."""
        if not self.estimates:
            return None
        now = time.perf_counter()
        by_key = {c.key: c for c in self.cells}
        expected = {key: self.estimates[key] * self.scale(by_key[key].dataset.label) for key in self.estimates}
        # A cell past its expected time still has some left: a tenth of it, rather than none.
        busy = [max(expected[k] - (now - t), 0.1 * expected[k]) for k, t in self.started.items()]
        waiting = [expected[c.key] for c in self.cells if c.key not in self.finished and c.key not in self.started]
        return makespan(waiting, self.workers, busy)

    def scale(self, dataset: str) -> float:
        """How the dataset's finished cells took against their samples, shrunk towards 1 (the
        samples' upper bound) until PRIOR seconds of its cells have finished."""
        return (self.actual.get(dataset, 0.0) + PRIOR) / (self.sampled.get(dataset, 0.0) + PRIOR)

    def _show(self) -> None:
        left = self.seconds_left()
        running = ", ".join(f"{c.dataset.label} / {c.optimizer.label}" for c in self.cells if c.key in self.started)
        if len(self.finished) == len(self.cells):
            left = None
        parts = [f"about {duration(left)} left" if left is not None else "", f"computing {running}" if running else ""]
        self.bar.set_postfix_str("; ".join(p for p in parts if p)[:100], refresh=True)

    def _refresh_every_second(self) -> None:
        while not self.stop.wait(1.0):
            with self.lock:
                self._show()

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        self.bar.close()
