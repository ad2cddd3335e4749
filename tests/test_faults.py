"""Stopping when asked, and faults at the edges: real signals to real process groups, bad values,
unwritable and damaged results, two runs sharing a folder."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bench import config, executors
from bench.cli import main

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and /proc are Linux's")

# Three quick cells, then three of a second or two each, so that a signal lands in the work.
SLOW = {
    "experiment": {"name": "slow", "seed": 0, "runs": 30, "budget": 3000},
    "model": {"init_scale": 1.0},
    "datasets": [{"name": "xor"}, {"name": "parity", "params": {"n_bits": 3}, "budget": 20000}],
    "optimizers": [{"name": "gd", "learning_rate": [0.5, 1.0]}, {"name": "momentum"}],
}


def write(doc: dict, path: Path) -> Path:
    path.write_text(config.to_toml(config.from_dict(doc).to_dict()))
    return path


def start(*args: str, **kwargs) -> subprocess.Popen:
    """``python -m bench ARGS`` in its own session, with Ctrl-C at its default (a shell running
    a command in the background ignores SIGINT, and children inherit that)."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **kwargs,
    )


def session(sid: int) -> list[int]:
    """Processes of session ``sid`` still alive (zombies excluded)."""
    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        if fields[3] == str(sid) and fields[0] != "Z":
            alive.append(int(pid))
    return alive


def wait_until(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def finished_cells(out: Path) -> list[Path]:
    return [p for p in out.glob(".cells/*/*") if p.is_dir() and not p.name.startswith(".") and ".corrupt" not in p.name]


def tables_of(out: Path) -> pd.DataFrame:
    runs = pd.read_parquet(next(out.glob("*/*/runs.parquet")))
    return runs.drop(columns=["wall_time"]).sort_values(["dataset", "optimizer", "run"], ignore_index=True)


def test_ctrl_c_stops_the_workers_keeps_the_finished_cells_and_resumes(tmp_path):
    path, out = write(SLOW, tmp_path / "slow.toml"), tmp_path / "r"
    process = start("run", str(path), "--out", str(out), "--workers", "2", "--no-analysis", "--no-report")
    assert wait_until(lambda: len(finished_cells(out)) >= 1, 120)
    os.killpg(process.pid, signal.SIGINT)
    sent = time.monotonic()
    _, err = process.communicate(timeout=30)
    assert time.monotonic() - sent < 2.0
    err = err.decode()
    assert process.returncode == 130
    assert "Traceback" not in err
    kept = len(finished_cells(out))
    assert f"interrupted: {kept} of 6 cells finished; rerun the same command to resume" in err
    assert 1 <= kept < 6 and not list(out.rglob("*.tmp"))
    assert wait_until(lambda: not session(process.pid), 5), session(process.pid)
    assert not (out / "slow" / "latest").exists()  # the run did not finish

    resumed = start("run", str(path), "--out", str(out), "--workers", "2", "--no-analysis", "--no-report")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 and f"skipping {kept} finished cells" in err.decode()
    serial = subprocess.run(
        [sys.executable, "-m", "bench", "run", str(path), "--out", str(tmp_path / "s"), "--executor", "serial"]
        + ["--no-analysis", "--no-report"],
        cwd=ROOT,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert serial.returncode == 0
    pd.testing.assert_frame_equal(tables_of(out), tables_of(tmp_path / "s"))


def test_killing_the_main_process_leaves_no_worker_behind(tmp_path):
    path, out = write(SLOW, tmp_path / "slow.toml"), tmp_path / "r"
    process = start("run", str(path), "--out", str(out), "--workers", "2", "--no-analysis", "--no-report")
    assert wait_until(lambda: len(session(process.pid)) >= 3, 60)  # the main process and its workers
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    assert wait_until(lambda: not session(process.pid), 10), session(process.pid)
    process.stdout.close()
    process.stderr.close()


def test_a_closed_pipe_ends_the_listing_quietly():
    listing = start("list")
    listing.stdout.readline()
    listing.stdout.close()  # as `| head -1` does
    err = listing.stderr.read().decode()
    listing.wait(timeout=30)
    listing.stderr.close()
    assert listing.returncode == 141 and "Traceback" not in err and "BrokenPipe" not in err


# ---------------------------------------------------------------------------- bad values


def tiny_doc() -> dict:
    return {
        "experiment": {"name": "t", "seed": 0, "runs": 4, "budget": 300},
        "datasets": [{"name": "xor"}],
        "optimizers": [{"name": "gd"}],
    }


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.init_scale=inf", "model.init_scale: must be a finite number, got inf"),
        ("model.init_scale=1e308", "model.init_scale: must be in (0, 1e+100], got 1e+308"),
        ("experiment.runs=1000000000000", "needs about 3.48 PiB for 1,000,000,000,000 runs"),
        ("datasets.0.model.hidden=[100000,100000]", "use a smaller network (even one run at a time does not fit)"),
        ("optimizers.0.learning_rate=inf", "optimizers[0].learning_rate: learning_rate must be a finite number"),
        ("optimizers.0.learning_rate=nan", "must be a finite number, got nan"),
        ('experiment.name="a\\u0007b"', "experiment.name: must be a plain folder name"),
        ('experiment.name="a\\u0000b"', "experiment.name: must be a plain folder name"),
        (f'experiment.name="{"x" * 300}"', "experiment.name: must be at most 200 bytes"),
    ],
)
def test_values_that_cannot_run_are_refused_before_any_work(tmp_path, capsys, override, message):
    path, out = write(tiny_doc(), tmp_path / "t.toml"), tmp_path / "r"
    assert main(["run", str(path), "--out", str(out), "--set", override]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_an_encoder_too_large_for_memory_is_refused_at_config_load(tmp_path, capsys):
    doc = tiny_doc()
    doc["datasets"] = [{"name": "encoder", "params": {"n": 1000000, "m": 3}}]
    path = tmp_path / "e.toml"
    path.write_text(config.to_toml(doc))
    assert main(["validate", str(path)]) == 2
    assert "n x n patterns and targets need 14.6 TiB" in capsys.readouterr().err


# ---------------------------------------------------------------------------- the results folder


def test_out_pointing_at_a_file_is_refused(tmp_path, capsys):
    path, out = write(tiny_doc(), tmp_path / "t.toml"), tmp_path / "results"
    out.write_text("not a folder")
    assert main(["run", str(path), "--out", str(out)]) == 2
    assert "is a file; give a folder for the results" in capsys.readouterr().err
    assert out.read_text() == "not a folder"


def test_an_unwritable_results_folder_is_an_environment_error(tmp_path, capsys, monkeypatch):
    path, out = write(tiny_doc(), tmp_path / "t.toml"), tmp_path / "results"
    out.mkdir()
    # As root every folder is writable, so the refusal of the system is simulated.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == out else real_access(p, mode))
    assert main(["run", str(path), "--out", str(out)]) == 1
    assert "the results folder" in capsys.readouterr().err and not any(out.iterdir())


def test_a_full_disk_stops_the_run_and_keeps_the_saved_cells(tmp_path, capsys, monkeypatch):
    doc = tiny_doc()
    doc["optimizers"] = [{"name": "gd", "learning_rate": [0.5, 1.0, 2.0]}]
    path, out = write(doc, tmp_path / "t.toml"), tmp_path / "r"
    real = pd.DataFrame.to_parquet
    written = []

    def full_after_the_first_cell(self, target, *args, **kwargs):
        if (
            "cells" in str(target)
            and len({Path(p).parent for p in written}) >= 1
            and Path(target).parent not in {Path(p).parent for p in written}
        ):
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        written.append(str(target))
        return real(self, target, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full_after_the_first_cell)
    assert main(["run", str(path), "--out", str(out), "--executor", "serial"]) == 1
    err = capsys.readouterr().err
    assert "error: the disk is full" in err and "1 cells of this run were saved" in err and "rerun" in err
    assert len(finished_cells(out)) == 1 and not list(out.rglob("*.tmp"))
    monkeypatch.setattr(pd.DataFrame, "to_parquet", real)
    assert main(["run", str(path), "--out", str(out), "--executor", "serial", "--no-report"]) == 0
    assert "skipping 1 finished cells" in capsys.readouterr().err


def test_damaged_cells_and_manifest_are_set_aside_and_rebuilt(tmp_path, capsys):
    path, out = write(tiny_doc(), tmp_path / "t.toml"), tmp_path / "r"
    assert main(["run", str(path), "--out", str(out), "--no-analysis", "--no-report"]) == 0
    first = tables_of(out)
    version = next(out.glob("t/*/runs.parquet")).parent
    cell = finished_cells(out)[0]
    (cell / "runs.parquet").write_bytes((cell / "runs.parquet").read_bytes()[:100])  # truncated
    (version / "manifest.json").write_text("{ not json")
    capsys.readouterr()
    assert main(["run", str(path), "--out", str(out), "--no-analysis", "--no-report"]) == 0
    err = capsys.readouterr().err
    assert "could not be read" in err and "computing it again" in err and "manifest.json could not be read" in err
    assert list(out.glob(".cells/*/*.corrupt-*")) and list(version.glob("manifest.json.corrupt-*"))
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["runs"][-1]["end"] and manifest["runs"][-1]["cells_computed"] == 1
    pd.testing.assert_frame_equal(tables_of(out), first)


def test_report_names_a_damaged_table_and_the_fix(tmp_path, capsys):
    path, out = write(tiny_doc(), tmp_path / "t.toml"), tmp_path / "r"
    assert main(["run", str(path), "--out", str(out), "--no-analysis", "--no-report"]) == 0
    version = next(out.glob("t/*/runs.parquet")).parent
    (version / "curves.parquet").unlink()
    assert main(["report", str(out / "t")]) == 1
    err = capsys.readouterr().err
    assert "curves.parquet is missing; rebuild the tables from the finished cells with: python -m bench run" in err
    (version / "runs.parquet").write_text("garbage")
    assert main(["report", str(out / "t")]) == 1
    assert "runs.parquet cannot be read" in capsys.readouterr().err


def test_latest_only_names_a_finished_run(tmp_path, capsys, monkeypatch):
    path, out = write(tiny_doc(), tmp_path / "t.toml"), tmp_path / "r"
    assert main(["run", str(path), "--out", str(out), "--no-analysis", "--no-report"]) == 0
    finished = (out / "t" / "latest").read_text().strip()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(executors, "run_cell_job", crash)
    assert main(["run", str(path), "--out", str(out), "--set", "experiment.seed=5"]) == 130
    assert (out / "t" / "latest").read_text().strip() == finished
    monkeypatch.undo()
    assert main(["report", str(out / "t")]) == 0


def test_a_failing_cell_stops_the_run_in_order(tmp_path):
    """An error inside a worker: the message, the finished cells kept, the workers stopped."""
    cfg = config.from_dict(tiny_doc())
    good = cfg.cells()[0]
    broken = dataclasses.replace(good, dataset=dataclasses.replace(good.dataset, name="no_such_dataset"))
    saved = []
    with pytest.raises(executors.CellFailed) as failure:
        executors.run_cells([good, broken, good], None, lambda c, t: saved.append(c), "local", workers=2)
    assert "no_such_dataset" in str(failure.value) and "rerun the same command" in str(failure.value)


def test_two_runs_of_one_config_share_the_work(tmp_path):
    doc = dict(SLOW, experiment=dict(SLOW["experiment"], runs=10))
    path, out = write(doc, tmp_path / "slow.toml"), tmp_path / "r"
    args = ("run", str(path), "--out", str(out), "--workers", "1", "--no-analysis", "--no-report")
    a, b = start(*args), start(*args)
    for process in (a, b):
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err.decode()
    manifest = json.loads(next(out.glob("slow/*/manifest.json")).read_text())
    records = manifest["runs"]
    assert len(records) == 2 and all(r["end"] for r in records)
    assert sum(r["cells_computed"] for r in records) == 6  # every cell computed once
    assert len(finished_cells(out)) == 6
    single = tmp_path / "single"
    assert main(["run", str(path), "--out", str(single), "--no-analysis", "--no-report"]) == 0
    pd.testing.assert_frame_equal(tables_of(out), tables_of(single))


# ---------------------------------------------------------------------------- executors


def sweep() -> list:
    doc = {
        "experiment": {"name": "e", "seed": 2, "runs": 12, "budget": 2400},
        "model": {"init_scale": 1.0},
        "datasets": [{"name": "xor"}, {"name": "parity", "params": {"n_bits": 3}}],
        "optimizers": [
            {"name": "gd", "learning_rate": [0.5, 2.0]},
            {"name": "ga", "population_size": 8},
            {"name": "restarts", "base": "rprop", "patience": 300},
        ],
    }
    return config.from_dict(doc).cells()


def collect(cells, executor: str, **kwargs) -> dict:
    out = {}
    executors.run_cells(cells, None, lambda cell, tables: out.__setitem__(cell.key, tables), executor, **kwargs)
    return out


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        pd.testing.assert_frame_equal(a[key].runs.drop(columns="wall_time"), b[key].runs.drop(columns="wall_time"))
        pd.testing.assert_frame_equal(a[key].curves, b[key].curves)
        pd.testing.assert_frame_equal(a[key].plateaus, b[key].plateaus)


def test_serial_local_and_dask_give_identical_tables():
    cells = sweep()
    serial = collect(cells, "serial")
    assert_same(serial, collect(cells, "local", workers=2))
    assert_same(serial, collect(cells, "dask", workers=2))


def test_a_dask_worker_killed_mid_sweep_changes_nothing():
    from dask.distributed import Client, LocalCluster

    cells = sweep()
    serial = collect(cells, "serial")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            pids = list(client.run(os.getpid).values())
        killed = []

        def kill_one_after_the_first(cell, tables, out={}):  # noqa: B006 - a counter shared by the calls
            out[cell.key] = tables
            if not killed:
                os.kill(pids[0], signal.SIGKILL)  # the nanny starts a new worker; its cells go elsewhere
                killed.append(pids[0])
            collected.update(out)

        collected: dict = {}
        executors.run_cells(cells, None, kill_one_after_the_first, "dask", scheduler=cluster.scheduler_address)
    assert killed
    assert_same(serial, collected)
