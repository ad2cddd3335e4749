"""``python -m bench <command>``: run, list, validate, analyze, report, perf."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from bench.config import Cell, Config, ConfigError, presets
from bench.config import load as load_config
from bench.errors import DamagedResults, EnvironmentProblem
from bench.memory import keep_freed_memory

EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process that Ctrl-C stopped
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as for any tool whose reader went away


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split(":")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run an experiment (default: the 'quick' preset) and write its report")
    run.add_argument("config", nargs="?", default="quick", help="a config file or a preset name (default: quick)")
    run.add_argument("--out", default="results", help="results root folder (default: results)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set experiment.runs=5 --set optimizers.0.learning_rate=0.1",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes that run cells in parallel (results do not depend on it)",
    )
    run.add_argument(
        "--executor",
        choices=("serial", "local", "dask"),
        default="local",
        help="where cells run: this process, local worker processes (default), or Dask (results do not depend on it)",
    )
    run.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="a Dask scheduler, e.g. tcp://host:8786 (with --executor dask; default: a LocalCluster here)",
    )
    run.add_argument(
        "--batch",
        type=int,
        default=None,
        help="most runs per engine call (default: all runs of a cell; results do not depend on it)",
    )
    run.add_argument("--no-analysis", action="store_true", help="skip the end-point analysis (bench analyze)")
    run.add_argument("--no-report", action="store_true", help="skip the figures and REPORT.md")

    sub.add_parser("list", help="list datasets, optimizers (with settings and defaults) and presets")

    validate = sub.add_parser("validate", help="check a config without running it")
    validate.add_argument("config")
    validate.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    analyze = sub.add_parser(
        "analyze", help="end points, attractors, barriers and slices of a results folder, then its report"
    )
    analyze.add_argument("results", help="results/<experiment> or results/<experiment>/<hash>")
    analyze.add_argument("--no-report", action="store_true", help="skip the figures and REPORT.md")

    report = sub.add_parser("report", help="write REPORT.md and figures for a results folder")
    report.add_argument("results", help="results/<experiment> or results/<experiment>/<hash>")

    perf = sub.add_parser("perf", help="time the engine against one-run loops and scikit-learn")
    perf.add_argument("--quick", action="store_true", help="smaller workloads (a smoke test, not the targets)")
    return parser


def entry_point() -> None:
    """The ``bench`` console script: ``python -m bench`` under a shorter name."""
    sys.exit(main())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    args.argv = argv  # what the manifest records as the command
    keep_freed_memory()
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "list":
            return cmd_list()
        if args.command == "validate":
            return cmd_validate(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "analyze":
            return cmd_analyze(args)
        from bench import perf

        return perf.main(quick=args.quick)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (EnvironmentProblem, DamagedResults) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as command-line tools do, and keep
        # Python from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print(f"\ninterrupted ({args.command}); nothing it was writing was left half-written", file=sys.stderr)
        return EXIT_INTERRUPTED


def checked_config(source: str, overrides: list[str], batch: int | None = None, workers: int = 1) -> Config:
    """Load a config and check every cell's budget and memory, before anything is written."""
    from bench import memory
    from bench.runner import check_budget

    config = load_config(source, overrides)
    available = memory.available_bytes()
    largest = 0
    for cell in config.cells():
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
    if workers > 1 and largest * min(workers, len(config.cells())) > available:
        print(
            f"warning: {workers} workers may need up to {memory.human(largest * workers)} together; "
            f"this machine has {memory.human(available)} available (fewer --workers use less)",
            file=sys.stderr,
        )
    return config


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


def cmd_validate(args: argparse.Namespace) -> int:
    config = checked_config(args.config, args.overrides)
    cells = config.cells()
    print(
        f"ok: {config.source} is valid: experiment {config.name!r} (hash {config.hash}), "
        f"{len(config.datasets)} datasets x {len(config.optimizers)} optimizer settings = {len(cells)} cells "
        f"of {config.runs} runs"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from bench import analysis, executors, store

    if args.workers < 1:
        raise ConfigError("--workers", "", f"must be >= 1, got {args.workers}")
    if args.batch is not None and args.batch < 1:
        raise ConfigError("--batch", "", f"must be >= 1, got {args.batch}")
    if args.scheduler is not None and args.executor != "dask":
        raise ConfigError("--scheduler", "", "a scheduler address needs --executor dask")
    config = checked_config(args.config, args.overrides, args.batch, args.workers)
    results = store.ResultStore(_results_root(args.out), config)
    try:
        results.start(store.command_line(args.argv), args.workers, args.batch)
    except PermissionError as exc:
        raise EnvironmentProblem(
            f"cannot write the results folder {exc.filename}: {exc.strerror}; choose another --out"
        ) from None
    cells = config.cells()
    todo = [c for c in cells if not results.is_done(c)]
    for warning in results.warnings:
        print(warning, file=sys.stderr)
    print(f"experiment {config.name!r}: {len(cells)} cells x {config.runs} runs -> {results.path}", file=sys.stderr)
    if len(todo) < len(cells):
        print(f"skipping {len(cells) - len(todo)} finished cells (same config hash {config.hash})", file=sys.stderr)
        earlier = [r for r in results.manifest().get("runs", []) if r.get("id") != results.run_id and r.get("git")]
        earlier_commit = earlier[-1]["git"].get("commit") if earlier else None
        now = store.git_state().get("commit")
        if earlier_commit and now and earlier_commit != now:
            print(
                f"warning: the finished cells were computed by commit {earlier_commit[:10]}, the code is now at "
                f"{now[:10]}; to recompute them, run into another folder (--out) or rename the experiment",
                file=sys.stderr,
            )

    bar = tqdm(total=len(todo), desc="cells", unit="cell", file=sys.stderr, disable=not todo)
    computed = 0

    def save(cell: Cell, tables: object) -> None:
        nonlocal computed
        results.save_cell(cell, tables)
        computed += 1
        bar.set_postfix_str(f"{cell.dataset.label} / {cell.optimizer.label}"[:60])
        bar.update()

    try:
        executors.run_cells(todo, args.batch, save, args.executor, args.workers, args.scheduler, claims=results)
    except executors.Interrupted as stop:
        bar.close()
        print(f"\n{stop}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except executors.CellFailed as failure:
        bar.close()
        print(f"\nerror: {failure}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except OSError as exc:
        bar.close()
        raise _write_failed(
            exc, f"{computed} cells of this run were saved before it; rerun the same command to resume"
        ) from None
    finally:
        results.release_all()
    bar.close()

    try:
        tables = results.load_cells(cells)
        results.save_tables(tables)
        results.finish(computed)
    except OSError as exc:
        raise _write_failed(exc, "every cell is saved; rerun the same command to write the tables") from None
    print(analysis.format_table(analysis.summary_for_display(analysis.summary(tables.runs))))
    if not args.no_analysis:
        _analyze(results.path)
    if not args.no_report:
        print(f"\nreport: {_write_report(results.path)}")
    print(f"results: {results.path}")
    return 0


def _write_failed(exc: OSError, kept: str) -> EnvironmentProblem:
    import errno

    where = exc.filename or "the results folder"
    if exc.errno == errno.ENOSPC:
        return EnvironmentProblem(f"the disk is full (writing {where}): free some space; {kept}")
    return EnvironmentProblem(f"cannot write {where}: {exc.strerror or exc}; {kept}")


def _results_root(out: str) -> Path:
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
    except FileExistsError:
        raise ConfigError("--out", "", f"{out} lies under a file; give a folder for the results") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise EnvironmentProblem(
            f"the results folder {out} is not writable; choose another --out or fix its permissions"
        )
    return root


def _analyze(path: Path) -> None:
    from bench.analysis import format_table
    from bench.analysis.analyze import analyze_folder
    from bench.report.markdown import endpoint_counts

    result = analyze_folder(path)
    print(f"\nend points (the analysis took {result.cost['seconds']:.1f} s, charged to no run):")
    print(format_table(endpoint_counts(result.runs)))


def _write_report(path: Path) -> Path:
    """REPORT.md and figures from the tables stored in ``path`` (and its analysis, if any)."""
    import json

    from bench import report, store
    from bench.analysis.analyze import TABLES

    manifest = json.loads((path / "manifest.json").read_text())
    last = manifest["runs"][-1]
    meta = {
        "experiment": manifest["experiment"],
        "config hash": manifest["config_hash"],
        "config": manifest["config_source"],
        "git commit": (manifest["git"].get("commit") or "unknown")
        + (" (with local changes)" if manifest["git"].get("dirty") else ""),
        "command": " ".join(last["command"]),
        "started": last["start"],
        "finished": last["end"],
    }
    stopping = load_config(str(path / "config.toml")).stopping
    tables = {
        name: store.read_table(path, name)
        for name in ("runs", "curves", "plateaus", *TABLES)
        if name in ("runs", "curves") or (path / f"{name}.parquet").is_file()
    }
    analysis = json.loads((path / "analysis.json").read_text()) if (path / "analysis.json").is_file() else None
    runs, curves = tables.pop("runs"), tables.pop("curves")
    return report.write_report(
        path,
        runs,
        curves,
        title=f"bench report: {manifest['experiment']}",
        meta=meta,
        stopping=stopping,
        tables=tables,
        analysis=analysis,
    )


def cmd_report(args: argparse.Namespace) -> int:

    from bench import analysis, store

    path = store.resolve_results_dir(args.results)
    runs = store.read_table(path, "runs")
    print(analysis.format_table(analysis.summary_for_display(analysis.summary(runs))))
    print(f"\nreport: {_write_report(path)}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from bench import store

    path = store.resolve_results_dir(args.results)
    _analyze(path)
    if not args.no_report:
        print(f"\nreport: {_write_report(path)}")
    return 0


def cmd_list() -> int:
    from bench import datasets, optimizers
    from bench.config import resolve_source

    print("datasets (parameters with defaults):")
    for name in datasets.DATASETS.names():
        params = ", ".join(f"{p.name}={p.default!r}" for p in datasets.parameters(name).values())
        data = datasets.load(name)
        print(
            f"  {name:14s} {data.description}; success: {data.success.describe()}"
            + (f"\n  {'':14s} params: {params}" if params else "")
        )
    print("\noptimizers (settings with defaults):")
    for name in optimizers.OPTIMIZERS.names():
        entry = optimizers.OPTIMIZERS.get(name)
        ordered = sorted(dataclasses.fields(entry.settings), key=lambda f: f.name.startswith("clip_"))
        fields = ", ".join(f"{f.name}={_default(f)}" for f in ordered)
        print(f"  {name:16s} {entry.description}\n  {'':16s} {fields}")
    print("\npresets (python -m bench run NAME):")
    import tomllib

    for name in presets():
        raw = tomllib.loads(resolve_source(name).read_text())
        print(f"  {name:10s} {raw.get('experiment', {}).get('description', '')}")
    return 0


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return repr(f.default_factory())
    return "(required)"
