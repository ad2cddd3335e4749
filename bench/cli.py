"""``python -m bench <command>``: run, list, validate, analyze, report, perf."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from bench.errors import ConfigError, DamagedResults, EnvironmentProblem
from bench.memory import keep_freed_memory

EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process that Ctrl-C stopped
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as for any tool whose reader went away


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_prog(),
        description="A comparative optimization benchmark suite for training neural networks.",
        epilog="Run 'python -m bench COMMAND --help' for a command's options; the README has the rest.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
    run.add_argument(
        "--reuse-old-code",
        action="store_true",
        help="reuse cells computed by another version of the code (default: compute them again), and say so",
    )
    run.add_argument(
        "--tune",
        action="store_true",
        help="tune every optimizer first (bench tune), then run the tuned config on the experiment's own runs",
    )
    _backend_argument(run)
    run.add_argument("--no-analysis", action="store_true", help="skip the end-point analysis (bench analyze)")
    run.add_argument("--no-report", action="store_true", help="skip the figures and REPORT.md")

    tune = sub.add_parser(
        "tune",
        help="tune every optimizer of a config with Optuna on the same budget; write tuned.toml",
        description="Per dataset x optimizer, an Optuna study of [tuning] trials, each scored on [tuning] seeds "
        "tuning runs (streams no experiment uses). Writes trials.parquet, TUNING.md, figures and tuned.toml (each "
        "optimizer's best settings per dataset) into results/<experiment>/tuning-<hash>; rerun to resume.",
    )
    tune.add_argument("config", nargs="?", default="tune-quick", help="a config file or preset (default: tune-quick)")
    tune.add_argument("--out", default="results", help="results root folder (default: results)")
    tune.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config value, e.g. --set tuning.trials=20")  # fmt: skip
    tune.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help="an Optuna storage URL, e.g. postgresql://host/db (default: a journal file in the tuning folder)",
    )
    tune.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes that take whole studies"
    )
    tune.add_argument("--batch", type=int, default=None, help="most runs per engine call (trials do not depend on it)")
    _backend_argument(tune)

    sub.add_parser("list", help="list datasets, optimizers (with settings and defaults) and presets")

    validate = sub.add_parser("validate", help="check a config without running it")
    validate.add_argument("config")
    validate.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    validate.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="workers the time estimate assumes"
    )
    validate.add_argument("--no-estimate", action="store_true", help="skip the cost and time estimate")

    analyze = sub.add_parser(
        "analyze", help="end points, attractors, barriers and slices of a results folder, then its report"
    )
    analyze.add_argument("results", help="results/<experiment> or results/<experiment>/<hash>")
    analyze.add_argument("--no-report", action="store_true", help="skip the figures and REPORT.md")

    report = sub.add_parser("report", help="write REPORT.md and figures for a results folder")
    report.add_argument("results", help="results/<experiment> or results/<experiment>/<hash>")

    perf = sub.add_parser("perf", help="time the engine against one-run loops and scikit-learn")
    perf.add_argument("--quick", action="store_true", help="smaller workloads (a smoke test, not the targets)")

    gc = sub.add_parser("gc", help="remove stored cells that no results folder uses any more")
    gc.add_argument("--out", default="results", help="results root folder (default: results)")
    gc.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")

    export = sub.add_parser(
        "export", help="write a results folder in IOHprofiler's format (for IOHanalyzer) or as CSV files"
    )
    compare = sub.add_parser(
        "compare",
        help="the same dataset x optimizer cells of two results folders side by side, with tests",
        description="Did my change help? Cells with the same dataset and optimizer labels in both folders, "
        "side by side: solved runs, aRT to success, median final loss, and Mann-Whitney U of A against B "
        "(Holm-corrected over the cells) with the Vargha-Delaney effect size.",
    )
    compare.add_argument("a", metavar="DIR_A", help="results/<experiment> or results/<experiment>/<hash>")
    compare.add_argument("b", metavar="DIR_B", help="the other results folder")
    compare.add_argument("--out", default=None, metavar="FILE.md", help="also write the table as markdown")
    export.add_argument("results", help="results/<experiment> or results/<experiment>/<hash>")
    export.add_argument(
        "--format",
        required=True,
        metavar="ioh|csv",
        help="ioh: IOHprofiler's JSON and .dat files, one folder per optimizer; csv: the tables as CSV files",
    )
    export.add_argument(
        "--out", default=None, metavar="FOLDER", help="a new folder (default: export-<format> in the results folder)"
    )
    return parser


def _prog() -> str:
    """How the user called us: the console script ``bench`` or ``python -m bench``."""
    return "bench" if os.path.basename(sys.argv[0]) == "bench" else "python -m bench"


def entry_point() -> None:
    """The ``bench`` console script: ``python -m bench`` under a shorter name."""
    sys.exit(main())


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bench")
    except PackageNotFoundError:  # a copy of the repository that was never installed
        return "unknown (not installed)"


def _backend_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        choices=("auto", "numpy", "numba"),
        default=None,
        help="what evaluates the networks (the config's [engine] backend; default auto: compiled kernels for "
        "small networks, numpy for large ones)",
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    if not argv:  # no command: the help, as git and docker print it
        parser.print_help()
        return 0
    if argv[0] == "--version":
        print(f"bench {_version()}")
        return 0
    commands = list(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    if not argv[0].startswith("-") and argv[0] not in commands:
        from bench.registry import did_you_mean

        hint = did_you_mean(argv[0], commands) or f"; commands: {', '.join(commands)}"
        print(f"{parser.prog}: error: unknown command {argv[0]!r}{hint}", file=sys.stderr)
        return EXIT_BAD_INPUT
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("give a command, e.g. run (see --help)")
    args.argv = argv  # what the manifest records as the command
    if getattr(args, "backend", None):
        args.overrides.append(f"engine.backend={args.backend}")
    keep_freed_memory()
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "list":
            return cmd_list()
        if args.command == "tune":
            return cmd_tune(args)
        if args.command == "validate":
            return cmd_validate(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "analyze":
            return cmd_analyze(args)
        if args.command == "gc":
            return cmd_gc(args)
        if args.command == "export":
            return cmd_export(args)
        if args.command == "compare":
            return cmd_compare(args)
        from bench import perf

        return perf.main(quick=args.quick)
    except ConfigError as exc:
        for problem in getattr(exc, "errors", [exc]):  # every problem of a config at once
            print(f"error: {problem}", file=sys.stderr)
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


def cmd_validate(args: argparse.Namespace) -> int:
    from bench import api

    config = api.resolve(args.config, args.overrides)
    api.check(config, warn=lambda message: print(message, file=sys.stderr))
    cells = config.cells()
    print(
        f"ok: {config.source} is valid: experiment {config.name!r} (hash {config.hash}), "
        # Entries of a tuned config share a label across datasets: count what the tables show.
        f"{len(config.datasets)} datasets x {len({o.label for o in config.optimizers})} optimizer settings = "
        f"{len(cells)} cells "
        f"of {config.runs} runs"
    )
    engines: dict[str, list[str]] = {}
    for d in config.datasets:
        engines.setdefault(d.network().backend, []).append(d.label)
    print(
        f"engine: backend {config.engine.backend!r}: "
        + "; ".join(f"{b} for {', '.join(ls)}" for b, ls in engines.items())
    )
    if args.no_estimate:
        return 0
    print("estimating (a short sample of every cell) ...", file=sys.stderr)
    from bench.progress import duration, makespan

    table = api.estimate(config)
    per_dataset = table.groupby("dataset", sort=False)[["cost", "seconds"]].sum()
    workers = min(args.workers, len(cells))
    print(f"cost: {table['cost'].sum():,} units in all (runs x budget); time on {workers} worker(s), at most about "
          f"{duration(makespan(table['seconds'].tolist(), workers))} (every run using its whole budget; runs "
          "that solve or stop early take less):")  # fmt: skip
    for dataset, row in per_dataset.iterrows():
        print(f"  {dataset:20s} {int(row['cost']):>14,} units  {duration(row['seconds']):>8s} on one worker")
    return 0


def _tune(args: argparse.Namespace) -> Path:
    from bench import api

    tuned = api.tune(
        args.config,
        overrides=args.overrides,
        out=args.out,
        storage=getattr(args, "storage", None),
        workers=args.workers,
        batch=args.batch,
    )
    print(f"\ntuning: {tuned.path / 'TUNING.md'}")
    print(f"tuned config: {tuned.config_path}")
    return tuned.config_path


def cmd_tune(args: argparse.Namespace) -> int:
    try:
        path = _tune(args)
    except KeyboardInterrupt:
        print("\ninterrupted: every finished trial is in the journal; run the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"evaluate it on fresh seeds: {_prog()} run {path}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bench import analysis, api, executors, store

    if args.tune:
        try:
            args.config, args.overrides = str(_tune(args)), []
        except KeyboardInterrupt:
            print("\ninterrupted while tuning: run the same command to resume", file=sys.stderr)
            return EXIT_INTERRUPTED
    try:
        res = api.run(
            args.config,
            overrides=args.overrides,
            out=args.out,
            workers=args.workers,
            executor=args.executor,
            scheduler=args.scheduler,
            batch=args.batch,
            analysis=False,
            report=False,
            command=store.command_line(args.argv),
            reuse_old_code=args.reuse_old_code,
        )
    except executors.Interrupted as stop:
        print(f"\n{stop}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except executors.CellFailed as failure:
        print(f"\nerror: {failure}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    print(analysis.format_table(res.summary(display=True)))
    if not args.no_analysis:
        _analyze(res)
    if not args.no_report:
        print(f"\nreport: {res.write_report()}")
    print(f"results: {res.path}")
    return 0


def _analyze(res: object) -> None:
    from bench.analysis import format_table
    from bench.report.markdown import endpoint_counts

    res.analyze(progress=True)
    seconds = json.loads((res.path / "analysis.json").read_text())["cost"]["seconds"]
    print(f"\nend points (the analysis took {seconds:.1f} s, charged to no run):")
    print(format_table(endpoint_counts(res.runs)))


def cmd_report(args: argparse.Namespace) -> int:
    from bench import analysis, api

    res = api.load(args.results)
    print(analysis.format_table(res.summary(display=True)))
    print(f"\nreport: {res.write_report()}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from bench import analysis, api
    from bench.analysis.compare import compare_folders
    from bench.store import write_text_atomic

    first, second = api.load(args.a), api.load(args.b)
    table, alone = compare_folders(first.runs, second.runs)
    print(f"A: {first.path}\nB: {second.path}\n")
    if table.empty:
        print("error: the two folders have no dataset x optimizer cell in common (labels differ)", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(analysis.format_table(table))
    if alone:
        print("\nin one folder only: " + "; ".join(alone))
    if args.out:
        text = f"# A: {first.path}\n# B: {second.path}\n\n{analysis.markdown_table(table)}\n"
        write_text_atomic(Path(args.out), text)
        print(f"\nwritten: {args.out}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from bench import api

    res = api.load(args.results)
    _analyze(res)
    if not args.no_report:
        print(f"\nreport: {res.write_report()}")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from bench import store

    removed, size = store.gc(args.out, dry_run=args.dry_run)
    for folder in removed:
        print(f"{'would remove' if args.dry_run else 'removed'} {folder}")
    verb = "would free" if args.dry_run else "freed"
    print(f"{len(removed)} cells no results folder uses; {verb} {size / 2**20:,.1f} MiB")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from bench import api, export
    from bench.registry import did_you_mean

    if args.format not in export.FORMATS:
        print(
            f"error: unknown export format {args.format!r}{did_you_mean(args.format, export.FORMATS)}; give "
            "--format ioh (IOHprofiler's format, for IOHanalyzer) or --format csv",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    res = api.load(args.results)
    try:
        out = export.export(res, args.format, args.out)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        where = exc.filename or args.out or "the export folder"
        print(f"error: cannot write {where}: {exc.strerror or exc}; nothing was written", file=sys.stderr)
        return EXIT_ENVIRONMENT
    print(f"exported {res.path} ({args.format}): {out}")
    return 0


def cmd_list() -> int:
    from bench import datasets, optimizers
    from bench.config import presets, resolve_source
    from bench.optimizers.base import search_space
    from bench.optimizers.space import describe

    print("datasets (parameters with defaults):")
    for name in datasets.DATASETS.names():
        params = ", ".join(f"{p.name}={p.default!r}" for p in datasets.parameters(name).values())
        try:
            data = datasets.load(name)
            about = f"{data.description}; success: {data.success.describe()}"
        except ValueError:  # a dataset that needs a parameter (file: its path)
            about = (datasets.DATASETS.get(name).__doc__ or "").strip().splitlines()[0]
        print(f"  {name:14s} {about}" + (f"\n  {'':14s} params: {params}" if params else ""))
    print("\noptimizers (settings with defaults):")
    for name in optimizers.OPTIMIZERS.names():
        entry = optimizers.OPTIMIZERS.get(name)
        ordered = sorted(dataclasses.fields(entry.settings), key=lambda f: f.name.startswith("clip_"))
        fields = ", ".join(f"{f.name}={_default(f)}" for f in ordered)
        print(f"  {name:16s} {entry.description}\n  {'':16s} {fields}")
        tuned = search_space(optimizers.make_settings(name))
        print(f"  {'':16s} tuned: {describe(tuned) if tuned else 'nothing (bench tune leaves it as it is)'}")
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
