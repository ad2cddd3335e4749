"""The Python API: run an experiment, load results, draw figures, register datasets and optimizers.

    import bench
    res = bench.run("classic", runs=20, workers=2)   # a preset, a path, a dict or a Config
    res.runs, res.curves                               # DataFrames
    res.summary()                                      # the summary table
    res.plot.convergence(); res.plot.success()         # matplotlib Figures
    res = bench.load("results/classic")                # what `report` reads
    bench.register_dataset("mine", factory); bench.register_optimizer("my_rprop", Settings, Rule)

It works from a notebook, a script without a ``__main__`` guard and from stdin: the local
executor's worker processes (loky) do not re-run the calling module.  The command line
(``python -m bench``) is a thin layer over these functions.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from bench.config import Cell, Config, ConfigError
from bench.config import load as load_config
from bench.errors import EnvironmentProblem

DEFAULT_WORKERS = min(2, os.cpu_count() or 1)


def resolve(config: str | os.PathLike | dict | Config, overrides: Sequence[str] = ()) -> Config:
    """A validated Config from a preset name, a path, a dict (a parsed TOML document) or a Config,
    with ``key=value`` overrides applied (``--set``)."""
    from bench.config import apply_override, from_dict

    if isinstance(config, (str, os.PathLike)):
        return load_config(str(config), list(overrides))
    if isinstance(config, Config):
        raw, source = config.to_dict(), config.source
    elif isinstance(config, dict):
        import copy

        raw, source = copy.deepcopy(config), "<dict>"
    else:
        raise TypeError(f"config must be a preset name, a path, a dict or a Config, got {type(config).__name__}")
    for item in overrides:
        apply_override(raw, item, source)
    return from_dict(raw, source)


def check(
    config: Config, batch: int | None = None, workers: int = 1, warn: Callable[[str], None] | None = None
) -> None:
    """Refuse a config whose cells cannot run: a budget too small for one step, or more memory than
    the machine has (``ConfigError`` naming the field and the fix).  Nothing is written."""
    from bench import memory
    from bench.runner import check_budget

    available = memory.available_bytes()
    largest = 0
    cells = config.cells()
    for cell in cells:
        index = config.datasets.index(cell.dataset)
        try:
            check_budget(cell)
        except ValueError as exc:
            path = "experiment.budget" if cell.dataset.budget == config.budget else f"datasets[{index}].budget"
            raise ConfigError(config.source, path, str(exc)) from None
        need, rows, n_params = _cell_memory(cell, batch)
        largest = max(largest, need)
        if need > available:
            fix = (
                f"use fewer runs, or --batch to hold fewer than {rows:,} runs at a time"
                if rows > 1 and _cell_memory(cell, 1)[0] <= available
                else "use a smaller network (even one run at a time does not fit)"
            )
            raise ConfigError(
                config.source,
                f"datasets[{index}]",
                f"{cell.dataset.label} / {cell.optimizer.label} needs about {memory.human(need)} for {rows:,} runs "
                f"of a {n_params:,}-parameter network at once; this machine has {memory.human(available)} "
                f"available: {fix}",
            )
    if warn is not None and workers > 1 and largest * min(workers, len(cells)) > available:
        warn(
            f"warning: {workers} workers may need up to {memory.human(largest * workers)} together; "
            f"this machine has {memory.human(available)} available (fewer workers use less)"
        )


PROBE_SECONDS = 0.05  # the time estimate's probes run at least this long (or the whole budget)


def estimate(
    config: Config, cells: Sequence[Cell] | None = None, batch: int | None = None, most_runs: int = 256
) -> pd.DataFrame:
    """Per cell: its runs, budget, cost units (runs x budget) and an upper estimate of its seconds
    on one worker, every run using its whole budget (runs that solve or stop early take less).

    Measured, not guessed: each cell trains its runs as one batch (at most ``most_runs`` of them,
    or ``batch``) for short budgets, doubled until the longest probe takes ``PROBE_SECONDS``; the
    difference between the last two gives the time per cost unit of the batch (on small nets
    mostly numpy's per-call overhead, which a smaller sample would overstate), the rest the cell's
    fixed cost.  About a tenth of a second per cell; used by ``validate`` and by the progress
    bar's time estimate."""
    import dataclasses
    import time

    from threadpoolctl import threadpool_limits

    from bench.runner import run_cell

    rows = []
    limits = threadpool_limits(1)  # as the cells run
    for cell in cells if cells is not None else config.cells():
        runs, budget = cell.config.runs, cell.dataset.budget
        population = getattr(cell.optimizer.settings, "population_size", 1)
        short = min(budget, max(60, 3 * population))
        sample = dataclasses.replace(cell.config, runs=min(runs, batch or runs, most_runs))

        def seconds(units: int, cell: Cell = cell, sample: Any = sample) -> float:
            probe = Cell(sample, dataclasses.replace(cell.dataset, budget=max(units, 1)), cell.optimizer)
            start = time.perf_counter()
            run_cell(probe)
            return time.perf_counter() - start

        # Double the probe's budget until it takes long enough that a pause of the machine (another
        # process, the scheduler) cannot swamp the difference between the last two probes.
        probes = [(short // 2, seconds(short // 2)), (short, seconds(short))]
        while probes[-1][1] < PROBE_SECONDS and probes[-1][0] < budget:
            units = min(budget, 2 * probes[-1][0])
            probes.append((units, seconds(units)))
        (u0, t0), (u1, t1) = probes[-2:]
        per_unit = (t1 - t0) / max(u1 - u0, 1)  # one batch, one unit
        if per_unit <= 0:  # noise won anyway: charge the whole last probe to its units (an upper bound)
            per_unit = t1 / max(u1, 1)
        fixed = max(t1 - per_unit * u1, 0.0)
        rows.append(
            {
                "key": cell.key,
                "dataset": cell.dataset.label,
                "optimizer": cell.optimizer.label,
                "runs": runs,
                "budget": budget,
                "cost": runs * budget,
                "seconds": fixed + per_unit * budget * runs / sample.runs,
            }
        )
    limits.restore_original_limits()
    return pd.DataFrame(rows)


def _cell_memory(cell: Cell, batch: int | None) -> tuple[int, int, int]:
    """The estimated bytes of one batch of the cell's runs, the rows in it, and the parameters."""
    from bench import memory

    net = cell.dataset.network()
    rows = cell.config.runs if batch is None else min(batch, cell.config.runs)
    population = getattr(cell.optimizer.settings, "population_size", 1)
    patterns = cell.dataset.load().X_train.shape[0]
    widths = list(net.layer_sizes[1:])
    need = memory.cell_bytes(rows, net.n_params, patterns, widths, population, cell.config.record.checkpoints)
    return need, rows, net.n_params


def run(
    config: str | os.PathLike | dict | Config = "quick",
    *,
    runs: int | None = None,
    seed: int | None = None,
    budget: int | None = None,
    backend: str | None = None,
    overrides: Sequence[str] = (),
    out: str | os.PathLike = "results",
    workers: int = DEFAULT_WORKERS,
    executor: str = "local",
    scheduler: str | None = None,
    batch: int | None = None,
    analysis: bool = True,
    report: bool = True,
    progress: bool = True,
    command: list[str] | None = None,
    reuse_old_code: bool = False,
) -> Results:
    """Run an experiment and return its results.  A cell computed before by the same code, for
    this config or any other that contains it, is reused (``reuse_old_code``: also one computed by
    another version of the code, with a warning).

    ``config`` is a preset name, a path, a dict or a Config; ``runs``, ``seed`` and ``budget``
    override its ``[experiment]`` values, ``backend`` its ``[engine] backend`` ("auto", "numpy",
    "numba"), ``overrides`` any other (``"optimizers.0.learning_rate=0.3"``).
    ``executor`` is "local" (``workers`` processes here), "serial" or "dask" (``scheduler``: an
    address, or None for a LocalCluster of ``workers``).  ``analysis`` computes the end-point
    analysis, ``report`` writes REPORT.md and the figures.  ``progress`` shows what happens on
    stderr.  The manifest records ``command``, or this call.

    Raises ``ConfigError`` (bad input; nothing written), ``EnvironmentProblem`` (a full disk, a
    folder it may not write), ``executors.Interrupted`` (Ctrl-C: the finished cells are kept) and
    ``executors.CellFailed``.
    """
    from bench import executors, store
    from bench.progress import Progress

    def log(message: str) -> None:
        if progress:
            print(message, file=sys.stderr)

    if workers < 1:
        raise ConfigError("workers", "", f"must be >= 1, got {workers}")
    if batch is not None and batch < 1:
        raise ConfigError("batch", "", f"must be >= 1, got {batch}")
    if scheduler is not None and executor != "dask":
        raise ConfigError("scheduler", "", "a scheduler address needs the dask executor")
    if executor not in executors.EXECUTORS:
        raise ConfigError("executor", "", f"must be one of {', '.join(executors.EXECUTORS)}, got {executor!r}")
    experiment = {"runs": runs, "seed": seed, "budget": budget}
    extra = [f"experiment.{key}={value}" for key, value in experiment.items() if value is not None]
    extra += [f"engine.backend={backend}"] if backend is not None else []
    cfg = resolve(config, [*extra, *overrides])
    check(cfg, batch, workers, warn=log)
    results = store.ResultStore(_results_root(out), cfg, reuse_old_code=reuse_old_code)
    call = command or [_describe_call(config, runs=runs, seed=seed, budget=budget, backend=backend,
                                      overrides=list(overrides),
                                      workers=workers, executor=executor, batch=batch,
                                      reuse_old_code=reuse_old_code or None)]  # fmt: skip
    try:
        results.start(call, workers, batch)
    except PermissionError as exc:
        raise EnvironmentProblem(
            f"cannot write the results folder {exc.filename}: {exc.strerror}; choose another folder (--out)"
        ) from None
    cells = cfg.cells()
    todo = [c for c in cells if not results.is_done(c)]
    for warning in results.warnings:
        log(warning)
    log(f"experiment {cfg.name!r}: {len(cells)} cells x {cfg.runs} runs -> {results.path}")
    if len(todo) < len(cells):
        log(f"skipping {len(cells) - len(todo)} finished cells (computed before, by this config or another)")
    if results.reused_old:
        log(
            f"warning: reusing {len(results.reused_old)} cells computed by another version of the code "
            f"(reuse_old_code; without it they are computed again by this code, {results.code})"
        )

    from bench import kernels

    kernels.warm_up_for((c.backend for c in todo), log)
    estimates: dict[str, float] = {}
    if progress and todo:
        log(f"estimating the time from a short sample of each of the {len(todo)} cells ...")
        sample = estimate(cfg, todo, batch)
        estimates = dict(zip(sample["key"], sample["seconds"], strict=True))
    watch = Progress(todo, estimates, workers if executor != "serial" else 1, enabled=progress)
    computed = 0

    def save(cell: Cell, tables: Any) -> None:
        nonlocal computed
        results.save_cell(cell, tables)
        computed += 1
        watch.done(cell)

    try:
        executors.run_cells(todo, batch, save, executor, workers, scheduler, claims=results, on_start=watch.start)
    except executors.Interrupted:
        # Count what is on disk: Ctrl-C may land between a cell's save and the executor's count.
        raise executors.Interrupted(sum(results.is_done(c) for c in todo), len(todo)) from None
    except OSError as exc:
        raise _write_failed(
            exc, f"{computed} cells of this run were saved before it; rerun the same command to resume"
        ) from None
    finally:
        watch.close()
        results.release_all()
    try:
        tables = results.load_cells(cells)
        results.save_tables(tables)
        results.finish(computed)
    except OSError as exc:
        raise _write_failed(exc, "every cell is saved; rerun the same command to write the tables") from None
    res = Results(results.path, cfg)
    if analysis:
        res.analyze(progress=progress)
    if report:
        res.write_report()
    return res


def tune(
    config: str | os.PathLike | dict | Config = "tune-quick",
    *,
    overrides: Sequence[str] = (),
    out: str | os.PathLike = "results",
    storage: str | None = None,
    workers: int = DEFAULT_WORKERS,
    batch: int | None = None,
    progress: bool = True,
) -> Any:
    """Tune every optimizer of ``config`` on the same budget (its ``[tuning]`` table) and write
    ``results/<experiment>/tuning-<hash>/``: trials.parquet, TUNING.md, figures and tuned.toml.

    Returns a ``bench.tuning.Tuned``: ``.trials`` (a DataFrame, one row per trial), ``.path`` and
    ``.config_path`` (run it: ``bench.run(tuned.config_path)``).  Calling it again resumes the
    same studies.  ``storage`` is an Optuna storage URL (default: a journal file in the folder);
    ``workers`` processes take whole studies; ``batch`` caps the runs of an engine call.  The
    trials depend on neither.
    """
    from bench import tuning

    if workers < 1:
        raise ConfigError("workers", "", f"must be >= 1, got {workers}")
    if batch is not None and batch < 1:
        raise ConfigError("batch", "", f"must be >= 1, got {batch}")
    cfg = resolve(config, overrides)
    check(cfg, batch, workers, warn=lambda message: print(message, file=sys.stderr) if progress else None)
    return tuning.tune(cfg, _results_root(out), storage, batch, workers, progress)


def _describe_call(config: Any, **kwargs: Any) -> str:
    """``bench.run('classic', runs=20, workers=2)``: the call as the manifest records it."""
    shown = [repr(config if not isinstance(config, Config) else config.source)]
    shown += [f"{key}={value!r}" for key, value in kwargs.items() if value not in (None, [], ())]
    return f"bench.run({', '.join(shown)})"


def _write_failed(exc: OSError, kept: str) -> EnvironmentProblem:
    import errno

    where = exc.filename or "the results folder"
    if exc.errno == errno.ENOSPC:
        return EnvironmentProblem(f"the disk is full (writing {where}): free some space; {kept}")
    return EnvironmentProblem(f"cannot write {where}: {exc.strerror or exc}; {kept}")


def _results_root(out: str | os.PathLike) -> Path:
    """The results root, refused before any work if it is a file or cannot be created."""
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ConfigError("--out", "", f"{out} is a file; give a folder for the results (default: results)")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except PermissionError as exc:
        raise EnvironmentProblem(
            f"cannot create the results folder {out}: {exc.strerror}; choose another --out"
        ) from None
    except (FileExistsError, NotADirectoryError):
        raise ConfigError("--out", "", f"{out} lies under a file; give a folder for the results") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise EnvironmentProblem(
            f"the results folder {out} is not writable; choose another --out or fix its permissions"
        )
    return root


# ---------------------------------------------------------------------------- results


@dataclass
class Results:
    """The stored results of one config version (a folder ``results/<experiment>/<hash>``).

    Tables load on first use: ``runs``, ``curves``, ``plateaus``, ``hits``, and after an analysis
    ``attractors``, ``pairs``, ``paths``, ``slices``.  ``plot`` draws the report's figures as
    matplotlib Figures.
    """

    path: Path
    config: Config = field(repr=False)

    def _table(self, name: str) -> pd.DataFrame:
        from bench.store import read_table

        if name not in ("runs", "curves", "plateaus", "hits") and not (self.path / f"{name}.parquet").is_file():
            return pd.DataFrame()  # no analysis yet
        return read_table(self.path, name)

    @cached_property
    def runs(self) -> pd.DataFrame:
        return self._table("runs")

    @cached_property
    def curves(self) -> pd.DataFrame:
        return self._table("curves")

    @cached_property
    def plateaus(self) -> pd.DataFrame:
        return self._table("plateaus")

    @cached_property
    def hits(self) -> pd.DataFrame:
        """One row per run per target: the cost at which its best loss first reached the target."""
        return self._table("hits")

    @cached_property
    def attractors(self) -> pd.DataFrame:
        return self._table("attractors")

    @cached_property
    def pairs(self) -> pd.DataFrame:
        return self._table("pairs")

    @cached_property
    def paths(self) -> pd.DataFrame:
        return self._table("paths")

    @cached_property
    def slices(self) -> pd.DataFrame:
        return self._table("slices")

    def summary(self, display: bool = False) -> pd.DataFrame:
        """Per dataset and optimizer: success rate and its Wilson interval, costs, ERT, statuses
        (and end-point classes after an analysis); ``display`` gives the report's readable form."""
        from bench.analysis import summary, summary_for_display

        table = summary(self.runs)
        return summary_for_display(table) if display else table

    def network(self, dataset: str) -> Any:
        """The network (``bench.mlp.MLP``) of dataset ``dataset`` (its label): its ``unflatten``
        turns the stored parameter vectors into per-layer weights and biases."""
        labels = [d.label for d in self.config.datasets]
        if dataset not in labels:
            from bench.registry import did_you_mean

            raise ValueError(
                f"no dataset {dataset!r} in these results{did_you_mean(dataset, labels)}; they have: {', '.join(labels)}"
            )
        return self.config.datasets[labels.index(dataset)].network()

    @property
    def plot(self) -> Plots:
        return Plots(self)

    def analyze(self, progress: bool = False) -> Results:
        """Compute (or recompute) the end-point analysis and reload the tables it changes."""
        from bench.analysis.analyze import analyze_folder

        analyze_folder(self.path, progress=progress)
        for name in ("runs", "attractors", "pairs", "paths", "slices"):
            self.__dict__.pop(name, None)
        return self

    def write_report(self) -> Path:
        """REPORT.md and its figures in the results folder; returns the path of REPORT.md."""
        from bench import report
        from bench.analysis.analyze import TABLES

        manifest = json.loads((self.path / "manifest.json").read_text())
        finished = [r for r in manifest["runs"] if r.get("end")] or manifest["runs"][-1:]
        last = finished[-1]
        meta = {
            "experiment": manifest["experiment"],
            "config hash": manifest["config_hash"],
            "config": manifest["config_source"],
            "git commit": (manifest["git"].get("commit") or "unknown")
            + (" (with local changes)" if manifest["git"].get("dirty") else ""),
            "command": " ".join(last["command"]),
            "seed": f"{self.config.seed} (run i of every cell starts from the same weights)",
            "runs per cell": f"{self.config.runs}",
            "compute time": self._compute_time(),
            "runs of this config": "; ".join(
                f"{r['start']} to {r['end']} ({_seconds(r['start'], r['end'])} wall, {r.get('workers', '?')} workers): "
                + (f"{r.get('cells_computed')} cells computed" if r.get("cells_computed") else "every cell reused")
                for r in finished
            ),
            "machine": f"{manifest.get('platform', '?')}, {manifest.get('cpus', '?')} CPUs, Python "
            f"{manifest.get('python', '?')}",
            "versions": ", ".join(f"{k} {v}" for k, v in manifest.get("packages", {}).items() if v),
        }
        tuned = self.config.tuned
        if tuned:  # the settings were tuned (bench tune): what tuning cost, beside the results (AlgoPerf)
            spent = "; ".join(f"{label} {units:,}" for label, units in tuned.get("cost", {}).items())
            meta["tuning"] = (
                f"every optimizer tuned by bench tune on the same budget: {tuned.get('trials')} trials x "
                f"{tuned.get('seeds')} tuning seeds per dataset ({tuned.get('sampler')} sampler, objective "
                f"{tuned.get('objective')}; tuning seeds never used by these runs); its engine calls took {tuned.get('seconds')} s; "
                f"cost units spent per optimizer: {spent} (folder {tuned.get('folder')})"
            )
        tables = {name: getattr(self, name) for name in ("plateaus", *TABLES)}
        info = self.path / "analysis.json"
        analysis = json.loads(info.read_text()) if info.is_file() else None
        return report.write_report(
            self.path,
            self.runs,
            self.curves,
            title=f"bench report: {manifest['experiment']}",
            meta=meta,
            stopping=self.config.stopping,
            tables={k: v for k, v in tables.items() if not v.empty},
            analysis=analysis,
            setup=self.setup(),
            hits=self.hits,
            criteria=self.criteria(),
            seed=self.config.seed,
        )

    def criteria(self) -> dict[str, tuple]:
        """Per dataset label: its success criterion as (kind, split, target, patterns), patterns
        being what divides the stored training loss into a loss per pattern (the training set's
        size when the loss is summed, else 1)."""
        out = {}
        for d in self.config.datasets:
            patterns = len(d.load().X_train) if d.model.reduction == "sum" else 1
            out[d.label] = (d.success.kind, d.success.split, d.success.target, patterns)
        return out

    def setup(self) -> pd.DataFrame:
        """Per dataset: the data, the model, the budget per run and the success criterion."""
        rows = []
        for d in self.config.datasets:
            m = d.model
            rows.append(
                {
                    "dataset": d.label,
                    "data": d.load().description,
                    "model": f"{'-'.join(map(str, d.layer_sizes()))}, {m.activation} hidden, {m.output} output, "
                    f"{m.loss} loss ({m.reduction}), {m.init} init x{m.init_scale:g}",
                    "budget per run": f"{d.budget:,}",
                    "success": d.success.describe(),
                }
            )
        return pd.DataFrame(rows)

    def _compute_time(self) -> str:
        """The seconds the cells took when they were computed (stored with them, so a rerun that
        reuses every cell does not change it): per cell its slowest run, summed over cells."""
        per_cell = self.runs.groupby("cell")["wall_time"].max()
        total = float(per_cell.sum())
        return (
            f"{total:,.1f} s of cell computation in all ({len(per_cell)} cells, the longest "
            f"{float(per_cell.max()):,.1f} s); the wall time is shorter with several workers"
        )


class Plots:
    """The report's figures of one Results, each a matplotlib Figure."""

    def __init__(self, results: Results) -> None:
        self.results = results

    def _palette(self) -> dict:
        from bench.report import plots

        return plots.optimizer_palette(self.results.runs["optimizer"])

    def convergence(self) -> Any:
        from bench.report import plots

        return plots.figure_convergence(self.results.curves, self._palette())

    def final_loss(self) -> Any:
        from bench.report import plots

        return plots.figure_final_loss(self.results.runs, self._palette())

    def success(self) -> Any:
        from bench.report import plots

        return plots.figure_success(self.results.runs, self._palette())

    def endpoints(self) -> Any:
        from bench.report import analysis_plots

        return analysis_plots.figure_endpoints(self._analysed("runs"))

    def attractors(self) -> Any:
        from bench.report import analysis_plots

        return analysis_plots.figure_attractors(self._analysed("attractors"))

    def pairs(self) -> Any:
        from bench.report import analysis_plots

        return analysis_plots.figure_pairs(self._analysed("runs"))

    def plateaus(self) -> Any:
        from bench.report import analysis_plots

        return analysis_plots.figure_plateaus(self.results.runs, self._palette())

    def barriers(self) -> Any:
        from bench.report import analysis_plots

        return analysis_plots.figure_paths(self._analysed("paths"))

    def slices(self) -> Any:
        from bench.report import analysis_plots

        return analysis_plots.figure_slices(self._analysed("slices"))

    def _analysed(self, name: str) -> pd.DataFrame:
        table = getattr(self.results, name)
        if table.empty or (name == "runs" and "endpoint" not in table.columns):
            raise ValueError("this figure needs the end-point analysis: call results.analyze() first")
        return table


def _seconds(start: str | None, end: str | None) -> str:
    """The wall time between two manifest times, e.g. "1 min 12 s"."""
    from datetime import datetime

    try:
        seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return "unknown"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s" if seconds >= 60 else f"{seconds:.1f} s"


def load(path: str | os.PathLike) -> Results:
    """The results in ``path``: ``results/<experiment>`` (its latest finished version) or a version
    folder ``results/<experiment>/<hash>``."""
    from bench.store import resolve_results_dir

    folder = resolve_results_dir(path)
    return Results(folder, load_config(str(folder / "config.toml")))


# ---------------------------------------------------------------------------- registries


def register_dataset(name: str, factory: Callable[..., Any]) -> Callable[..., Any]:
    """Register ``factory`` (keyword parameters with defaults and annotated types, returning a
    ``bench.datasets.Dataset``) as dataset ``name``; a duplicate name is refused."""
    from bench.datasets import DATASETS

    return DATASETS.register(name)(factory)


def register_optimizer(
    name: str, settings: type, factory: Callable[[Any], Any], kind: str = "gradient", description: str = ""
) -> Callable[[Any], Any]:
    """Register an optimizer: ``settings`` is a frozen dataclass of its settings; ``factory(settings)``
    returns a gradient rule (``kind="gradient"``: ``init(theta)`` and ``update(theta, grad,
    state, loss)``, driven by the shared gradient loop) or an Optimizer (``kind="direct"``:
    ``init(theta0, problem, rngs)`` and ``step(state, problem)``)."""
    from bench.optimizers.registry import register_direct, register_gradient

    if kind not in ("gradient", "direct"):
        raise ValueError(f"kind must be 'gradient' or 'direct', got {kind!r}")
    register = register_gradient if kind == "gradient" else register_direct
    return register(name, settings, description or name)(factory)
