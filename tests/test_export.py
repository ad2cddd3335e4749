"""``bench export``: IOHprofiler's format read back by a parser written from its documentation,
CSV read back by pandas, and bad input refused with nothing written."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import config, export
from bench.api import load
from bench.cli import main

SMALL = {
    "experiment": {"name": "small", "seed": 5, "runs": 4, "budget": 600},
    "record": {"checkpoints": 10},
    "datasets": [{"name": "xor"}, {"name": "parity", "params": {"n_bits": 3}, "label": "parity 3-bit"}],
    "optimizers": [
        {"name": "gd", "learning_rate": 2.0},
        {"name": "momentum", "learning_rate": 0.5, "nesterov": True},
        {"name": "rprop", "variant": "irprop-"},
        {"name": "ga", "population_size": 6},
        {"name": "restarts", "patience": 60},
        {"name": "random_search"},
    ],
}
KEYS = ["dataset", "optimizer", "run"]


def run_cli(*args: str) -> int:
    return main(list(args))


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """A finished results folder (2 datasets x 6 optimizers x 4 runs), shared by the tests, which
    export it to folders of their own."""
    root = tmp_path_factory.mktemp("export")
    source = root / "small.toml"
    source.write_text(config.to_toml(config.from_dict(SMALL).to_dict()))
    args = ["run", str(source), "--out", str(root / "results"), "--workers", "1", "--no-analysis", "--no-report"]
    assert run_cli(*args) == 0
    return root / "results" / "small"


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*")} if folder.exists() else set()


# ---------------------------------------------------------------------------- an IOHprofiler reader


def read_dat(path: Path, columns: list[str]) -> list[list[tuple[int, float]]]:
    """A raw data file as IOHprofiler documents it: each run's block starts with a header line of
    the column names (the ``attributes`` of the JSON), then one line per logged evaluation, the
    fields separated by single spaces."""
    header = " ".join(columns)
    blocks: list[list[tuple[int, float]]] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line == header:
            blocks.append([])
            continue
        fields = line.split(" ")
        assert blocks, f"{path}:{number}: a data line before the first header"
        assert len(fields) == len(columns) and all(fields), f"{path}:{number}: {line!r}"
        assert re.fullmatch(r"\d+", fields[0]), f"{path}:{number}: evaluations must be a whole number: {line!r}"
        blocks[-1].append((int(fields[0]), float(fields[1])))
    return blocks


def read_ioh(folder: Path) -> list[dict]:
    """Every JSON meta-data file under ``folder`` (as IOHanalyzer finds them, recursively), each
    with its folder, its file name and the blocks of its scenarios' data files."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    problems = []
    for path in sorted(folder.rglob("*.json")):
        meta = json.loads(path.read_text(), parse_constant=refuse)
        for scenario in meta["scenarios"]:
            scenario["blocks"] = read_dat(path.parent / scenario["path"], meta["attributes"])
        problems.append({"folder": path.parent, "file": path.name, **meta})
    return problems


def test_ioh_export_is_iohprofilers_format_and_holds_every_run(results):
    res = load(results)
    out = export.export(res, "ioh")
    assert out == res.path / "export-ioh"
    runs, curves, hits = res.runs, res.curves, res.hits
    labels = [d.label for d in res.config.datasets]
    problems = read_ioh(out)
    assert len(problems) == 2 * 6  # one per dataset and optimizer

    # One folder per optimizer (as IOHexperimenter writes one per algorithm), one file per dataset.
    folders = {p["folder"] for p in problems}
    assert {f.parent for f in folders} == {out} and len(folders) == 6
    for folder in folders:
        assert len({p["algorithm"]["name"] for p in problems if p["folder"] == folder}) == 1
    assert {p["algorithm"]["name"] for p in problems} == set(runs["optimizer"])

    first_cost = curves.groupby(KEYS)["cost"].min()
    first_best = curves.sort_values("cost", kind="stable").groupby(KEYS)["best_loss"].first()
    targets = hits[hits["target_loss"].notna()]
    checked_hits = 0
    for problem in problems:
        assert set(problem) == {"folder", "file", "version", "suite", "function_id", "function_name", "maximization",
                                "algorithm", "experiment_attributes", "attributes", "scenarios"}  # fmt: skip
        assert tuple(map(int, problem["version"].split("."))) >= (0, 3, 3)  # IOHanalyzer's JSON format
        assert isinstance(problem["suite"], str) and problem["maximization"] is False
        assert set(problem["algorithm"]) == {"name", "info"} and problem["algorithm"]["info"]
        assert problem["attributes"] == ["evaluations", "raw_y"]
        optimizer = problem["algorithm"]["name"]
        fid = problem["function_id"]
        dataset = labels[fid - 1]  # the dataset's 1-based place in the experiment
        table = runs[(runs["dataset"] == dataset) & (runs["optimizer"] == optimizer)].sort_values("run")
        assert problem["function_name"] == f"{dataset} {table['model'].iloc[0]}"
        assert re.fullmatch(rf"IOHprofiler_f{fid}_[A-Za-z0-9._-]+\.json", problem["file"])
        [scenario] = problem["scenarios"]
        dimension = len(table["theta_initial"].iloc[0])
        assert scenario["dimension"] == dimension
        assert re.fullmatch(rf"data_f{fid}_[A-Za-z0-9._-]+/IOHprofiler_f{fid}_DIM{dimension}\.dat", scenario["path"])

        blocks = scenario["blocks"]
        assert len(blocks) == len(scenario["runs"]) == len(table) == SMALL["experiment"]["runs"]
        for entry, block, run in zip(scenario["runs"], blocks, table.itertuples(), strict=True):
            key = (dataset, optimizer, run.run)
            evals = np.array([e for e, _ in block])
            raw_y = np.array([y for _, y in block])
            assert entry["instance"] == run.run and entry["evals"] == run.cost
            # Every improvement, then the run's last evaluation (its length, as IOHexperimenter
            # always logs it), repeating the best loss when it is not an improvement itself.
            assert evals[-1] == run.cost, key
            if len(raw_y) > 1 and raw_y[-1] == raw_y[-2]:
                evals, raw_y = evals[:-1], raw_y[:-1]
            assert np.all(np.diff(evals) > 0) and np.all(np.diff(raw_y) < 0), key
            assert evals[0] == first_cost[key] and raw_y[0] == first_best[key], key  # the first evaluation
            assert raw_y[-1] == run.best_loss, key  # exactly: written with every digit
            assert evals[-1] <= run.cost
            best = entry["best"]
            assert best["y"] == run.best_loss and best["evals"] == evals[-1]
            assert best["x"] == ([] if run.final_loss != run.best_loss else list(run.theta_final))
            # The exact target hits: the first logged loss at or below each target is at the hit's
            # cost, and a target never hit is below every logged loss.
            for hit in targets[(targets["dataset"] == dataset) & (targets["optimizer"] == optimizer)
                               & (targets["run"] == run.run)].itertuples():  # fmt: skip
                reached = np.flatnonzero(raw_y <= hit.target_loss)
                if np.isnan(hit.cost):
                    assert reached.size == 0, (key, hit.target)
                else:
                    assert reached.size and evals[reached[0]] == hit.cost, (key, hit.target)
                    assert raw_y[reached[0]] == hit.loss
                    checked_hits += 1
    assert checked_hits > 300
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_improvement_events_merge_curve_points_and_hits_by_cost():
    curves = pd.DataFrame({"dataset": "d", "optimizer": "o", "run": 0, "cost": [3.0, 9.0, 15.0, 21.0],
                           "best_loss": [0.5, 0.4, 0.4, 0.1]})  # fmt: skip
    hits = pd.DataFrame({"dataset": "d", "optimizer": "o", "run": 0, "cost": [3.0, 6.0, 6.0, 18.0, np.nan],
                         "loss": [0.5, 0.45, 0.45, 0.2, np.nan]})  # fmt: skip
    events = export.improvement_events(curves, hits)
    assert events["cost"].tolist() == [3, 6, 9, 18, 21] and events["cost"].dtype == np.int64
    assert events["loss"].tolist() == [0.5, 0.45, 0.4, 0.2, 0.1]


# ---------------------------------------------------------------------------- CSV


def test_csv_export_reads_back_as_the_parquet_tables(results, tmp_path):
    res = load(results)
    out = tmp_path / "tables"
    assert run_cli("export", str(results), "--format", "csv", "--out", str(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["curves.csv", "hits.csv", "plateaus.csv", "runs.csv"]
    vectors = {"theta_initial", "theta_final", "theta"}
    for name in ("runs", "curves", "hits", "plateaus"):
        stored = getattr(res, name)
        read = pd.read_csv(out / f"{name}.csv")
        assert list(read.columns) == list(stored.columns), name
        assert len(read) == len(stored) and len(stored) > 0, name
        for column in stored.columns:
            if column in vectors:
                for mine, theirs in zip(stored[column], read[column], strict=True):
                    expected = np.empty(0) if mine is None else np.asarray(mine, dtype=float)
                    np.testing.assert_array_equal(export.read_vector(theirs), expected, strict=True)
                continue
            pd.testing.assert_series_equal(
                read[column].astype(stored[column].dtype), stored[column], check_exact=True, obj=f"{name}.{column}"
            )
    assert res.runs["nesterov"].dtype == "boolean" and res.runs["population_size"].dtype == "Int64"
    assert res.curves["theta"].isna().any() and res.curves["theta"].notna().any()


def test_vector_columns_keep_every_digit():
    frame = pd.DataFrame({"name": ["a", "b", "c"], "v": [np.array([0.1, 1 / 3, -2.5e-300]), None, [1e300, 5e-324]]})
    read = pd.read_csv(io.StringIO(export.csv_text(frame)))
    assert export.read_vector(read["v"][0]).tolist() == [0.1, 1 / 3, -2.5e-300]
    assert export.read_vector(read["v"][1]).size == 0
    assert export.read_vector(read["v"][2]).tolist() == [1e300, 5e-324]


# ---------------------------------------------------------------------------- bad input


def test_export_refuses_bad_input_with_exit_code_2_and_writes_nothing(results, tmp_path, capsys):
    version = load(results).path
    before = files_under(version)
    assert run_cli("export", str(tmp_path / "nowhere"), "--format", "ioh") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere holds no finished results" in err and "python -m bench run" in err

    assert run_cli("export", str(results), "--format", "xml") == 2
    err = capsys.readouterr().err
    assert "unknown export format 'xml'" in err and "--format ioh" in err and "--format csv" in err
    assert run_cli("export", str(results), "--format", "iho") == 2
    assert "(did you mean 'ioh'?)" in capsys.readouterr().err
    assert files_under(version) == before
    with pytest.raises(SystemExit) as stop:  # no format at all: argparse's usage message
        run_cli("export", str(results))
    assert stop.value.code == 2
    assert "the following arguments are required: --format" in capsys.readouterr().err

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep me")
    assert run_cli("export", str(results), "--format", "csv", "--out", str(taken)) == 2
    assert capsys.readouterr().err == f"error: {taken} exists; remove it or give --out\n"
    assert files_under(taken) == {Path("mine.txt")} and (taken / "mine.txt").read_text() == "keep me"
    assert files_under(tmp_path) == {Path("taken"), Path("taken/mine.txt")}


def test_the_default_folder_is_in_the_results_folder_and_a_second_export_is_refused(results, tmp_path, capsys):
    assert run_cli("export", str(results), "--format", "csv") == 0
    out = load(results).path / "export-csv"
    assert capsys.readouterr().out == f"exported {load(results).path} (csv): {out}\n"
    assert (out / "runs.csv").is_file()
    assert run_cli("export", str(load(results).path), "--format", "csv") == 2  # the version folder works too
    assert "export-csv exists; remove it or give --out" in capsys.readouterr().err


def test_a_failure_part_way_leaves_no_folder(results, tmp_path, monkeypatch, capsys):
    calls = []
    problem = export._ioh_problem

    def fail_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return problem(*args, **kwargs)

    monkeypatch.setattr(export, "_ioh_problem", fail_on_third)
    out = tmp_path / "ioh"
    assert run_cli("export", str(results), "--format", "ioh", "--out", str(out)) == 1
    assert "No space left on device; nothing was written" in capsys.readouterr().err
    assert len(calls) == 3 and files_under(tmp_path) == set()


def test_damaged_results_are_named_and_nothing_is_written(results, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(load(results).path, copy)
    (copy / "hits.parquet").unlink()
    assert run_cli("export", str(copy), "--format", "ioh", "--out", str(tmp_path / "ioh")) == 1
    assert "hits.parquet is missing; rebuild the tables" in capsys.readouterr().err
    assert not (tmp_path / "ioh").exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
