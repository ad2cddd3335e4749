"""Where cells run: in this process, in local worker processes, or on a Dask cluster.

A cell is a pure function of its identity, so every executor gives the same tables; the caller
(``bench.cli``) writes each finished cell through the one atomic store as it arrives.

* ``serial``: one cell after another in this process.
* ``local``: worker processes on this machine, from loky (joblib's process pool): it works from
  a notebook or a script without a ``__main__`` guard, its workers ignore Ctrl-C (the main
  process stops them), and they die with the main process (a death signal on Linux, and a
  thread that watches the parent everywhere), so a killed run leaves no orphan behind.
* ``dask``: the tasks of a Dask distributed cluster (``pip install -e ".[dask]"``): a running
  scheduler (``--scheduler tcp://host:8786``) or a LocalCluster on this machine.  Results come
  back to this process and are written here, so the workers need no shared file system, and a
  worker that dies has its cells recomputed elsewhere (the same numbers: cells are pure).

Ctrl-C (SIGINT) raises ``Interrupted`` within a moment: the cells already written stay, the
workers are stopped, the queued cells are dropped.  A cell that fails raises ``CellFailed`` the
same orderly way.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bench.config import Cell
from bench.memory import keep_freed_memory

EXECUTORS = ("serial", "local", "dask")


class Interrupted(Exception):
    """Ctrl-C: ``done`` of ``total`` cells were finished (and written)."""

    def __init__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        super().__init__(f"interrupted: {done} of {total} cells finished; rerun the same command to resume")


class CellFailed(Exception):
    """A cell raised: which one, and the error's message."""

    def __init__(self, cell: Cell, error: BaseException, done: int, total: int) -> None:
        self.cell, self.error, self.done, self.total = cell, error, done, total
        super().__init__(
            f"{cell.dataset.label} / {cell.optimizer.label} failed: {type(error).__name__}: {error} "
            f"({done} of {total} cells finished and kept; rerun the same command to resume)"
        )


def run_cell_job(cell: Cell, batch: int | None, extra: dict | None = None) -> tuple[str, Any]:
    """One cell with one BLAS thread (the numbers then cannot depend on threads or workers).
    ``extra``: the datasets and optimizers registered beyond the built-in ones (in a worker process
    that did not import the plug-ins or run the notebook that registered them)."""
    from threadpoolctl import threadpool_limits

    from bench.registry import install
    from bench.runner import run_cell

    install(extra or {})

    keep_freed_memory()  # in a worker process too
    with threadpool_limits(1):
        return cell.key, run_cell(cell, batch)


class Claims(Protocol):
    """Who computes a cell when several processes share a results folder (``ResultStore``)."""

    def claim(self, cell: Cell, block: bool = False) -> bool: ...

    def is_done(self, cell: Cell) -> bool: ...

    def release(self, cell: Cell) -> None: ...


class _Feeder:
    """Hands out the cells this process should compute: it claims each one first; a cell another
    process holds waits until nothing else is left, then this process waits for that one's lock,
    and takes the cell over only if the other process did not finish it (it stopped or died)."""

    def __init__(
        self, cells: Sequence[Cell], claims: Claims | None, on_start: Callable[[Cell], None] | None = None
    ) -> None:
        self.queued, self.waiting, self.claims = list(cells), [], claims
        self.total, self.done = len(cells), 0
        self.on_start = on_start

    def next(self, may_wait: bool) -> Cell | None:
        cell = self._next(may_wait)
        if cell is not None and self.on_start is not None:
            self.on_start(cell)
        return cell

    def _next(self, may_wait: bool) -> Cell | None:
        while self.queued or (may_wait and self.waiting):
            if self.queued:
                cell, block = self.queued.pop(0), False
            else:
                cell, block = self.waiting.pop(0), True
            if self.claims is None:
                return cell
            if not self.claims.claim(cell, block=block):
                self.waiting.append(cell)
                continue
            if self.claims.is_done(cell):  # another process finished it meanwhile
                self.claims.release(cell)
                self.done += 1
                continue
            return cell
        return None

    def finished(self, cell: Cell, tables: Any, on_done: Callable[[Cell, Any], None]) -> None:
        on_done(cell, tables)
        self.done += 1
        if self.claims is not None:
            self.claims.release(cell)


def run_cells(
    cells: Sequence[Cell],
    batch: int | None,
    on_done: Callable[[Cell, Any], None],
    executor: str = "local",
    workers: int = 1,
    scheduler: str | None = None,
    claims: Claims | None = None,
    on_start: Callable[[Cell], None] | None = None,
) -> None:
    """Compute ``cells`` and hand each one's tables to ``on_done(cell, tables)`` as it finishes
    (``on_start(cell)`` is called as a cell is handed to a worker).

    With ``claims``, a cell is computed only after claiming it, and one that another process
    finishes meanwhile is skipped (several processes then share one results folder).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    feeder = _Feeder(cells, claims, on_start)
    if executor == "dask":
        _run_dask(feeder, batch, on_done, workers, scheduler)
    elif executor == "local" and workers > 1 and len(cells) > 1:
        _run_local(feeder, batch, on_done, workers)
    else:
        _run_serial(feeder, batch, on_done)


def _run_serial(feeder: _Feeder, batch: int | None, on_done: Callable[[Cell, Any], None]) -> None:
    try:
        while (cell := feeder.next(may_wait=True)) is not None:
            try:
                _, tables = run_cell_job(cell, batch)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                raise CellFailed(cell, exc, feeder.done, feeder.total) from exc
            feeder.finished(cell, tables, on_done)
    except KeyboardInterrupt:
        raise Interrupted(feeder.done, feeder.total) from None


# ---------------------------------------------------------------------------- local processes


def _die_with_parent(parent: int) -> None:
    """Worker initializer: ignore Ctrl-C (the main process decides) and die with the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: killed when the parent dies
        except OSError:
            pass

    def watch() -> None:
        while True:
            if os.getppid() != parent:  # the parent died before the signal was armed, or no prctl
                os._exit(1)
            time.sleep(0.5)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="watch-parent").start()


def _run_local(feeder: _Feeder, batch: int | None, on_done: Callable[[Cell, Any], None], workers: int) -> None:
    from concurrent.futures import FIRST_COMPLETED, wait

    from joblib.externals.loky import get_reusable_executor

    from bench.registry import added_entries

    n_workers = min(workers, feeder.total)
    extra = added_entries()
    settings = {"max_workers": n_workers, "timeout": 60, "initializer": _die_with_parent, "initargs": (os.getpid(),)}
    pool = get_reusable_executor(**settings, reuse=True)
    manager = getattr(pool, "_executor_manager_thread", None)
    if manager is not None and not manager.is_alive():
        # loky starts a pool's manager thread once; a reused pool whose thread has ended would take
        # jobs and never hand back a result (seen once: a test suite stuck in a fresh venv).
        pool = get_reusable_executor(**settings, reuse=False)
    running: dict[Any, Cell] = {}
    try:
        while True:
            # Only as many cells in the pool as it has workers: nothing waits in its queues, so a
            # stop has only the running cells to abandon.
            while len(running) < n_workers and (cell := feeder.next(may_wait=not running)) is not None:
                running[pool.submit(run_cell_job, cell, batch, extra)] = cell
            if not running:
                break
            finished, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
            _collect(finished, running, feeder, on_done)
    except KeyboardInterrupt:
        _stop(pool)
        raise Interrupted(feeder.done, feeder.total) from None
    except BaseException:
        _stop(pool)
        raise


def _collect(finished: Any, running: dict[Any, Cell], feeder: _Feeder, on_done: Callable[[Cell, Any], None]) -> None:
    """Hand the tables of the ``finished`` futures on; a cell whose job raised stops the run."""
    for future in finished:
        cell = running.pop(future)
        try:
            _, tables = future.result()
        except Exception as exc:
            raise CellFailed(cell, exc, feeder.done, feeder.total) from exc
        feeder.finished(cell, tables, on_done)


def _stop(pool: Any) -> None:
    """Stop the workers now and drop the queued cells (loky's manager thread kills the workers and
    fails the pending futures itself: cancelling them here first would break it)."""
    pool.shutdown(wait=True, kill_workers=True)


# ---------------------------------------------------------------------------- Dask


def _run_dask(
    feeder: _Feeder,
    batch: int | None,
    on_done: Callable[[Cell, Any], None],
    workers: int,
    scheduler: str | None,
) -> None:
    try:
        from dask.distributed import Client, LocalCluster, wait
    except ImportError:
        raise RuntimeError(
            'the dask executor needs Dask distributed: pip install -e ".[dask]" (or pip install "dask[distributed]")'
        ) from None
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(scheduler or cluster)
    slots = max(1, sum(client.nthreads().values()))
    from bench.registry import added_entries

    extra = added_entries()
    running: dict[Any, Cell] = {}
    try:
        while True:
            while len(running) < 2 * slots and (cell := feeder.next(may_wait=not running)) is not None:
                # The cell's key names its task: pure, so a retry computes the same numbers.
                running[client.submit(run_cell_job, cell, batch, extra, key=f"bench-cell-{cell.key}", retries=2)] = cell
            if not running:
                break
            try:
                finished = wait(list(running), timeout=0.5, return_when="FIRST_COMPLETED").done
            except TimeoutError:  # nothing finished yet: look again (and let Ctrl-C in)
                continue
            _collect(finished, running, feeder, on_done)
    except KeyboardInterrupt:
        raise Interrupted(feeder.done, feeder.total) from None
    finally:
        client.cancel(list(running))
        client.close()
        if cluster is not None:
            cluster.close()
