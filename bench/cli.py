"""``python -m bench <command>``: run, list, validate, analyze, report, perf."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from bench.config import ConfigError, presets
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


def cmd_validate(args: argparse.Namespace) -> int:
    from bench import api

    config = api.resolve(args.config, args.overrides)
    api.check(config, warn=lambda message: print(message, file=sys.stderr))
    cells = config.cells()
    print(
        f"ok: {config.source} is valid: experiment {config.name!r} (hash {config.hash}), "
        f"{len(config.datasets)} datasets x {len(config.optimizers)} optimizer settings = {len(cells)} cells "
        f"of {config.runs} runs"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bench import analysis, api, executors, store

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


def cmd_analyze(args: argparse.Namespace) -> int:
    from bench import api

    res = api.load(args.results)
    _analyze(res)
    if not args.no_report:
        print(f"\nreport: {res.write_report()}")
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
