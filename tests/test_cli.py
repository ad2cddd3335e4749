"""The command line end to end on a tiny config: files, reruns, bad input, reproducibility."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from bench import config
from bench.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_file(tiny, tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(config.to_toml(config.from_dict(tiny).to_dict()))
    return path


def run_cli(*args: str) -> int:
    return main(list(args))


def test_run_writes_results_report_and_manifest(tiny_file, tmp_path, capsys):
    out = tmp_path / "results"
    assert run_cli("run", str(tiny_file), "--out", str(out), "--workers", "1") == 0
    printed = capsys.readouterr()
    experiment = out / "tiny"
    version = experiment / (experiment / "latest").read_text().strip()
    for name in (
        "config.toml",
        "manifest.json",
        "runs.parquet",
        "curves.parquet",
        "REPORT.md",
        "figures/convergence.png",
        "figures/final_loss.png",
        "figures/success.png",
    ):
        assert (version / name).is_file(), name
    runs = pd.read_parquet(version / "runs.parquet")
    assert len(runs) == 12 and set(runs["optimizer"]) == {"gd(learning_rate=2)", "rprop(variant=irprop-)"}
    assert "gd(learning_rate=2)" in printed.out and f"report: {version / 'REPORT.md'}" in printed.out
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["config_hash"] == version.name
    assert manifest["packages"]["numpy"] and manifest["runs"][-1]["end"]
    command = ["run", str(tiny_file), "--out", str(out), "--workers", "1"]
    assert manifest["runs"][-1]["command"] == [Path(sys.executable).name, "-m", "bench", *command]
    for figure in version.glob("figures/*.png"):  # real pictures, not empty files
        image = plt.imread(figure)
        assert image.ndim == 3 and min(image.shape[:2]) > 300 and image[..., :3].std() > 0.05, figure
    assert not list(version.rglob("*.tmp"))
    # The resolved config reproduces the same version folder.
    assert config.load(str(version / "config.toml")).hash == version.name


def test_rerun_skips_finished_cells_and_a_changed_config_gets_its_own_folder(tiny_file, tmp_path, capsys):
    out = tmp_path / "results"
    assert run_cli("run", str(tiny_file), "--out", str(out), "--workers", "1", "--no-report") == 0
    version = next(p for p in (out / "tiny").iterdir() if p.is_dir())
    first = pd.read_parquet(version / "runs.parquet")
    capsys.readouterr()
    assert run_cli("run", str(tiny_file), "--out", str(out), "--workers", "1", "--no-report") == 0
    assert "skipping 2 finished cells" in capsys.readouterr().err
    pd.testing.assert_frame_equal(first, pd.read_parquet(version / "runs.parquet"))

    stamp = (version / "runs.parquet").stat().st_mtime_ns
    assert run_cli("run", str(tiny_file), "--out", str(out), "--set", "experiment.seed=9", "--no-report") == 0
    versions = sorted(p.name for p in (out / "tiny").iterdir() if p.is_dir())
    assert len(versions) == 2
    assert (version / "runs.parquet").stat().st_mtime_ns == stamp  # the old results are untouched


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "optimizers.1.eta_minus=1.3"], "optimizers[1].eta_minus: eta_minus must be in (0, 1), got 1.3"),
        (["--set", "datasets.0.name=xr"], "datasets[0].name: unknown dataset 'xr' (did you mean 'xor'?)"),
        (["--set", "datasets.0.budget=4"], "budget: budget 4 is too small for gd(learning_rate=2) on xor"),
    ],
)
def test_bad_config_exits_2_and_writes_nothing(tiny_file, tmp_path, capsys, args, message):
    out = tmp_path / "results"
    assert run_cli("run", str(tiny_file), "--out", str(out), *args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tiny_file}: ") and message in err
    assert not out.exists()


def test_validate_list_and_report(tiny_file, tmp_path, capsys):
    assert run_cli("validate", str(tiny_file)) == 0
    assert "is valid" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text("[experiment\n")
    assert run_cli("validate", str(bad)) == 2
    assert "not valid TOML" in capsys.readouterr().err

    assert run_cli("list") == 0
    listing = capsys.readouterr().out
    for word in ("two_spirals", "encoder", "rprop", "eta_minus=0.5", "quick", "classic"):
        assert word in listing

    assert run_cli("report", str(tmp_path / "nothing")) == 2
    assert "holds no finished results" in capsys.readouterr().err
    out = tmp_path / "results"
    run_cli("run", str(tiny_file), "--out", str(out), "--no-report")
    assert run_cli("report", str(out / "tiny")) == 0
    assert "report:" in capsys.readouterr().out
    assert next((out / "tiny").glob("*/REPORT.md")).is_file()


def _run_in_subprocess(config_path: Path, out: Path, hash_seed: str, workers: str) -> pd.DataFrame:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "run",
            str(config_path),
            "--out",
            str(out),
            "--workers",
            workers,
            "--no-report",
        ],
        check=True,
        capture_output=True,
        env=env,
        cwd=ROOT,
    )
    version = next(p for p in (out / "tiny").iterdir() if p.is_dir())
    return pd.read_parquet(version / "runs.parquet").drop(columns=["wall_time"])


def test_same_config_gives_identical_tables_across_processes_hash_seeds_and_workers(tiny, tmp_path):
    # Every kind of random stream: initial weights, the GA's numpy and DEAP draws, restarts.
    tiny["optimizers"] += [
        {"name": "ga", "population_size": 10},
        {"name": "restarts", "base": "gd", "base_settings": {"learning_rate": 2.0}, "patience": 60},
        {"name": "random_search"},
    ]
    path = tmp_path / "tiny.toml"
    path.write_text(config.to_toml(config.from_dict(tiny).to_dict()))
    a = _run_in_subprocess(path, tmp_path / "a", "1", "1")
    b = _run_in_subprocess(path, tmp_path / "b", "4242", "2")
    assert len(a) == 5 * 6 and (a["restarts"] > 0).any()
    pd.testing.assert_frame_equal(a, b)


def test_a_code_change_recomputes_unless_told_to_reuse(tiny_file, tmp_path, capsys, monkeypatch):
    from bench import store

    out = tmp_path / "results"
    args = ["run", str(tiny_file), "--out", str(out), "--workers", "1", "--no-report", "--no-analysis"]
    monkeypatch.setattr(store, "code_version", lambda plugins=(): "a" * 12)
    assert run_cli(*args) == 0
    capsys.readouterr()
    monkeypatch.setattr(store, "code_version", lambda plugins=(): "b" * 12)  # the code changed
    assert run_cli(*args) == 0
    err = capsys.readouterr().err
    assert "skipping" not in err and "reusing" not in err
    assert sorted(p.parent.name for p in out.glob(".cells/*/*/runs.parquet")) == ["a" * 12] * 2 + ["b" * 12] * 2
    monkeypatch.setattr(store, "code_version", lambda plugins=(): "c" * 12)
    assert run_cli(*args, "--reuse-old-code") == 0
    err = capsys.readouterr().err
    assert "skipping 2 finished cells" in err
    assert "warning: reusing 2 cells computed by another version of the code (reuse_old_code;" in err
    assert not list(out.glob(".cells/*/" + "c" * 12))


def test_cells_are_shared_by_every_config_that_contains_them(tiny, tmp_path, capsys):
    """Renamed, relabelled and with a learning rate turned into a list, a config computes only its
    new cell; its tables equal those of a fresh run (labels included), and gc frees only cells no
    config folder lists."""
    out, fresh = tmp_path / "results", tmp_path / "fresh"
    first = tmp_path / "first.toml"
    first.write_text(config.to_toml(tiny))
    assert run_cli("run", str(first), "--out", str(out), "--workers", "1", "--no-report", "--no-analysis") == 0
    tiny["experiment"]["name"] = "second"
    tiny["optimizers"][0]["learning_rate"] = [2.0, 1.0]
    tiny["optimizers"][1]["label"] = "irprop-"
    second = tmp_path / "second.toml"
    second.write_text(config.to_toml(tiny))
    capsys.readouterr()
    assert run_cli("run", str(second), "--out", str(out), "--workers", "1", "--no-report", "--no-analysis") == 0
    err = capsys.readouterr().err
    assert "skipping 2 finished cells" in err and "of each of the 1 cells" in err
    assert run_cli("run", str(second), "--out", str(fresh), "--workers", "1", "--no-report", "--no-analysis") == 0
    for name in ("runs", "curves", "plateaus"):
        shared = pd.read_parquet(next(out.glob(f"second/*/{name}.parquet")))
        alone = pd.read_parquet(next(fresh.glob(f"second/*/{name}.parquet")))
        drop = ["wall_time"] if name == "runs" else []
        pd.testing.assert_frame_equal(shared.drop(columns=drop), alone.drop(columns=drop))
    assert set(pd.read_parquet(next(out.glob("second/*/runs.parquet")))["optimizer"]) == {
        "gd(learning_rate=2)", "gd(learning_rate=1)", "irprop-"
    }  # fmt: skip
    assert len(list(out.glob(".cells/*/*/runs.parquet"))) == 3
    capsys.readouterr()
    assert run_cli("gc", "--out", str(out)) == 0
    assert capsys.readouterr().out.startswith("0 cells no results folder uses")
    import shutil

    shutil.rmtree(
        next(out.glob("second/*/manifest.json")).parent
    )  # the second config's folder goes: its own cell is unused
    assert run_cli("gc", "--out", str(out), "--dry-run") == 0
    assert "1 cells no results folder uses; would free" in capsys.readouterr().out
    assert len(list(out.glob(".cells/*/*/runs.parquet"))) == 3
    assert run_cli("gc", "--out", str(out)) == 0
    assert len(list(out.glob(".cells/*/*/runs.parquet"))) == 2
    assert run_cli("report", str(out / "tiny")) == 0


def test_run_analyzes_end_points_and_analyze_redoes_it(tiny_file, tmp_path, capsys):
    out = tmp_path / "results"
    assert run_cli("run", str(tiny_file), "--out", str(out), "--workers", "1") == 0
    printed = capsys.readouterr().out
    assert "end points (the analysis took" in printed
    version = next((out / "tiny").glob("*/runs.parquet")).parent
    runs = pd.read_parquet(version / "runs.parquet")
    for column in ("endpoint", "hess_min", "hess_max", "n_negative", "n_flat", "saturation", "attractor"):
        assert column in runs.columns, column
    assert set(runs["endpoint"]) <= {"solved", "diverged", "minimum", "saddle", "plateau", "saturated", "unfinished"}
    assert (runs.loc[runs["status"] == "solved", "endpoint"] == "solved").all()
    cells = pd.concat(pd.read_parquet(p) for p in out.glob(".cells/*/*/runs.parquet"))
    # The analysis never touches a run's training record.
    pd.testing.assert_series_equal(
        runs.set_index(["optimizer", "run"])["cost"].sort_index(),
        cells.set_index(["optimizer", "run"])["cost"].sort_index(),
    )
    for table in ("attractors", "pairs", "paths", "slices", "plateaus"):
        assert (version / f"{table}.parquet").is_file(), table
    info = json.loads((version / "analysis.json").read_text())
    assert info["settings"]["grad_tol"] == 1e-4 and info["cost"]["hessian_vector_products"] == len(runs) * 9
    report = (version / "REPORT.md").read_text()
    assert "## Where runs ended" in report and "![End-point classes](figures/endpoints.png)" in report
    for figure in ("endpoints", "attractors", "pairs", "plateaus", "barriers", "slices"):
        assert (version / "figures" / f"{figure}.png").is_file(), figure

    # Tolerances are not part of the hash: a changed [analysis] table reanalyses the same folder.
    stored = (version / "config.toml").read_text()
    assert "\ngrad_tol = 0.0001\n" in stored
    (version / "config.toml").write_text(stored.replace("\ngrad_tol = 0.0001\n", "\ngrad_tol = 1e9\n"))
    assert run_cli("analyze", str(out / "tiny"), "--no-report") == 0
    again = pd.read_parquet(version / "runs.parquet")
    unsolved = again["status"] != "solved"
    assert not (again.loc[unsolved, "endpoint"] == "unfinished").any()  # every gradient is now "small"


def test_run_without_analysis(tiny_file, tmp_path):
    out = tmp_path / "results"
    assert run_cli("run", str(tiny_file), "--out", str(out), "--workers", "1", "--no-analysis") == 0
    version = next((out / "tiny").glob("*/runs.parquet")).parent
    assert "endpoint" not in pd.read_parquet(version / "runs.parquet").columns
    assert not (version / "analysis.json").exists() and not (version / "figures" / "endpoints.png").exists()
    assert "## Where runs ended" not in (version / "REPORT.md").read_text()


def test_analysis_and_report_take_diverged_runs_as_data(tiny, tmp_path):
    tiny["datasets"] = [{"name": "diabetes", "model": {"hidden": [4], "activation": "identity", "reduction": "mean"}}]
    tiny["optimizers"] = [{"name": "gd", "learning_rate": [1e-3, 1e3]}]
    tiny["experiment"]["budget"] = 300
    path = tmp_path / "d.toml"
    path.write_text(config.to_toml(config.from_dict(tiny).to_dict()))
    assert run_cli("run", str(path), "--out", str(tmp_path / "r"), "--workers", "1") == 0  # warnings are errors here
    runs = pd.read_parquet(next((tmp_path / "r" / "tiny").glob("*/runs.parquet")))
    diverged = runs["status"] == "diverged"
    assert diverged.sum() == 6 and (runs.loc[diverged, "endpoint"] == "diverged").all()
    assert (runs.loc[diverged, "attractor"] == -1).all() and runs.loc[diverged, "barrier_init"].isna().all()


def test_no_arguments_prints_the_help(capsys):
    assert run_cli() == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m bench") and all(c in out for c in ("run", "list", "validate", "report"))


def test_a_misspelt_command_gets_a_suggestion(capsys):
    assert run_cli("lsit") == 2
    assert capsys.readouterr().err == "python -m bench: error: unknown command 'lsit' (did you mean 'list'?)\n"
    assert run_cli("frobnicate") == 2
    assert (
        "unknown command 'frobnicate'; commands: run, tune, list, validate, analyze, report, perf, gc"
        in capsys.readouterr().err
    )


def test_version_is_the_installed_one(capsys):
    from importlib.metadata import version

    assert run_cli("--version") == 0
    assert capsys.readouterr().out == f"bench {version('bench')}\n"


def test_help_loads_no_numerical_library():
    """--help answers at once: numpy, pandas, scikit-learn and matplotlib load only for real work."""
    code = (
        "import sys\nfrom bench.cli import main\n"
        "try:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'numpy', 'pandas', 'sklearn', 'matplotlib', 'scipy', 'deap', 'optuna'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip().endswith("[]"), done.stdout + done.stderr


BAD_EVERYWHERE = """
[experiment]
name = "x y"
runs = 0
budget = 100
[stopping]
patince = 3
[[datasets]]
name = "xr"
[[datasets]]
name = "parity"
params = { n = 3 }
[[optimizers]]
name = "gd"
learning_rate = -1
[[optimizers]]
name = "rprop"
eta_minus = 1.3
"""


def test_validate_reports_every_error_at_once(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(BAD_EVERYWHERE)
    assert run_cli("validate", str(path)) == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[2] for line in lines] == [
        "experiment.name",
        "experiment.runs",
        "stopping.patince",
        "datasets[0].name",
        "datasets[1].params",
        "optimizers[0].learning_rate",
        "optimizers[1].eta_minus",
    ]
    assert all(line.startswith(f"error: {path}: ") for line in lines)
    assert "(did you mean 'patience'?)" in lines[2] and "parity takes: n_bits" in lines[4]
    with pytest.raises(config.ConfigErrors) as caught:  # the API raises them together too
        config.load(str(path))
    assert len(caught.value.errors) == 7 and str(caught.value) == "\n".join(line[len("error: ") :] for line in lines)


def test_validate_estimates_cost_and_time(tiny_file, capsys):
    assert run_cli("validate", str(tiny_file), "--workers", "1") == 0
    out = capsys.readouterr().out
    # 2 cells of 6 runs x 900 units; the time is measured on a sample, so only its form is fixed
    assert "cost: 10,800 units in all (runs x budget); time on 1 worker(s), at most about" in out
    assert re.search(r"^  xor +10,800 units +(< 1 s|\d+ s) on one worker$", out, flags=re.M), out


def test_the_time_of_cells_on_workers_is_the_executors_schedule():
    from bench.progress import makespan as _makespan

    # cells go in order to the first free worker: [5, 1, 1, 1, 1] on two workers ends at 5, not 4.5
    assert _makespan([5, 1, 1, 1, 1], 2) == 5
    assert _makespan([1, 1, 1, 1, 5], 2) == 7
    assert _makespan([3, 2, 2], 1) == 7


def test_progress_counts_cost_units_and_schedules_the_time_left(tiny, monkeypatch):
    """The bar's total is every cell's runs x budget; the time left is the schedule of the unfinished
    cells' sampled times on the workers, each scaled by how the finished cells of its dataset
    compared with their samples (shrunk towards 1 by PRIOR seconds; 1 for a dataset with none)."""
    from bench import progress

    tiny["datasets"] = [{"name": "xor"}, {"name": "parity", "params": {"n_bits": 3}, "budget": 300}]
    cells = config.from_dict(tiny).cells()  # xor / gd, xor / rprop, parity / gd, parity / rprop
    estimates = {c.key: s for c, s in zip(cells, [10.0, 20.0, 30.0, 40.0], strict=True)}
    clock = [100.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    watch = progress.Progress(cells, estimates, workers=2, enabled=False)
    assert watch.bar.total == 2 * 6 * 900 + 2 * 6 * 300
    assert watch.seconds_left() == 60  # 10 -> w1, 20 -> w2, 30 -> w1 (ends 40), 40 -> w2 (ends 60)
    watch.start(cells[0])
    watch.start(cells[1])
    clock[0] += 15.0  # the first xor cell took 15 s against its sample of 10
    watch.done(cells[0])
    xor = (15 + progress.PRIOR) / (10 + progress.PRIOR)
    assert watch.scale("xor") == xor and watch.scale("parity") == 1.0
    busy = 20 * xor - 15  # the second xor cell has run for 15 s of its expected 20 x scale
    assert watch.seconds_left() == pytest.approx(max(30, busy + 40))
    clock[0] += 100.0  # now it is far past its expected time: a tenth of that is still left
    assert watch.seconds_left() == pytest.approx(max(30, 0.1 * 20 * xor + 40))
    assert watch.units_done == 6 * 900
    watch.close()


def test_the_run_shows_cost_units_the_time_left_and_the_cells_being_computed(tiny_file, tmp_path, capsys):
    assert run_cli("run", str(tiny_file), "--out", str(tmp_path), "--workers", "1", "--no-analysis") == 0
    err = capsys.readouterr().err
    assert "estimating the time from a short sample of each of the 2 cells" in err
    assert "cost units: 100%" in err and "10.8k/10.8k" in err
    assert re.search(r"about (< 1 s|\d+ s) left; computing xor / (gd|rprop)", err), err


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4, "< 1 s"),
        (59.4, "59 s"),
        (59.6, "1 min 00 s"),
        (839.6, "14 min 00 s"),
        (3599.6, "1 h 00 min"),
        (7649.9, "2 h 07 min"),
    ],
)
def test_durations_round_once_and_never_read_60(seconds, text):
    from bench.progress import duration

    assert duration(seconds) == text
