"""The Python API (bench.run, bench.load, Results, register_*), plug-ins and your own data files."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

import bench
from bench import config
from bench.cli import main

ROOT = Path(__file__).resolve().parents[1]

PLAIN_GD = '''
"""A plug-in: plain gradient descent written from scratch, as a student would."""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

import bench


@dataclass(frozen=True)
class PlainSettings:
    learning_rate: float = 0.5


class Count(NamedTuple):
    count: np.ndarray


class PlainGD:
    def __init__(self, settings):
        self.lr = settings.learning_rate

    def init(self, theta):
        return Count(np.zeros(theta.shape[0], dtype=np.int64))

    def update(self, theta, grad, state, loss=None):
        return theta - self.lr * grad, Count(state.count + 1)


bench.register_optimizer("plain_gd", PlainSettings, PlainGD, description="plain gradient descent")
'''


def tiny_doc(**experiment) -> dict:
    return {
        "experiment": {"name": "api", "seed": 4, "runs": 5, "budget": 300, **experiment},
        "model": {"init_scale": 1.0},
        "record": {"checkpoints": 8},
        "datasets": [{"name": "xor"}, {"name": "parity", "params": {"n_bits": 3}}],
        "optimizers": [{"name": "gd", "learning_rate": 2.0}, {"name": "rprop", "variant": "irprop-"}],
    }


def same_tables(a: pd.DataFrame, b: pd.DataFrame) -> None:
    drop = [c for c in ("wall_time",) if c in a.columns]  # the only measured, not computed, column
    pd.testing.assert_frame_equal(a.drop(columns=drop), b.drop(columns=drop))


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    return bench.run(tiny_doc(), out=out, executor="serial", analysis=False, report=False, progress=False)


def test_run_returns_results_that_load_back(serial):
    res = serial
    assert len(res.runs) == 4 * 5 and set(res.runs["dataset"]) == {"xor", "parity"}
    assert {"run", "epoch", "loss"} <= set(res.curves.columns)
    loaded = bench.load(res.path.parent)  # the experiment folder: its latest finished version
    assert loaded.path == res.path
    same_tables(loaded.runs, res.runs)
    summary = res.summary()
    assert len(summary) == 4 and set(summary.columns) >= {"dataset", "optimizer"}
    solved = res.runs.groupby(["dataset", "optimizer"])["status"].apply(lambda s: int((s == "solved").sum()))
    assert summary.set_index(["dataset", "optimizer"])["solved"].to_dict() == solved.to_dict()
    manifest = json.loads((res.path / "manifest.json").read_text())
    (command,) = manifest["runs"][-1]["command"]
    assert command.startswith("bench.run({'experiment': {'name': 'api'") and command.endswith("executor='serial')")


def test_figures_are_matplotlib_figures(serial):
    for name in ("convergence", "final_loss", "success", "plateaus"):
        figure = getattr(serial.plot, name)()
        assert isinstance(figure, matplotlib.figure.Figure), name
        assert figure.axes and any(ax.has_data() for ax in figure.axes), name
        matplotlib.pyplot.close(figure)
    with pytest.raises(ValueError, match=r"needs the end-point analysis: call results.analyze\(\) first"):
        bench.load(serial.path).plot.endpoints()


def test_a_config_object_a_dict_and_a_file_give_the_same_numbers(serial, tmp_path):
    cfg = config.from_dict(tiny_doc())
    path = tmp_path / "api.toml"
    path.write_text(config.to_toml(cfg.to_dict()))
    for source in (cfg, str(path)):
        res = bench.run(source, out=tmp_path / "r", executor="serial", analysis=False, report=False, progress=False)
        assert res.path.name == serial.path.name  # the same config hash
        same_tables(res.runs, serial.runs)


def test_keyword_overrides_are_the_config_values(tmp_path):
    res = bench.run(
        tiny_doc(), runs=3, seed=9, budget=100, out=tmp_path, executor="serial", analysis=False, report=False,
        progress=False,
    )  # fmt: skip
    assert (res.config.runs, res.config.seed, res.config.budget) == (3, 9, 100)
    assert len(res.runs) == 4 * 3


SCRIPT = """
import bench
res = bench.run({doc!r}, out={out!r}, workers=2, analysis=False, report=False, progress=False)
res.runs.to_parquet({table!r})
print("ok", len(res.runs))
"""


@pytest.mark.parametrize("how", ["script", "stdin"])
def test_two_workers_from_a_script_without_main_guard_and_from_stdin(serial, tmp_path, how):
    """loky's workers do not re-run the calling module: no __main__ guard needed, stdin works."""
    code = SCRIPT.format(doc=tiny_doc(), out=str(tmp_path / "r"), table=str(tmp_path / "runs.parquet"))
    if how == "script":
        script = tmp_path / "script.py"
        script.write_text(code)
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    else:
        done = subprocess.run([sys.executable, "-"], input=code, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok 20"
    same_tables(pd.read_parquet(tmp_path / "runs.parquet"), serial.runs)


def test_an_optimizer_registered_in_a_script_runs_in_worker_processes(tmp_path):
    """A rule defined in the calling script (as in a notebook) is shipped to the workers by value;
    plain gradient descent written from scratch retraces the built-in gd to the last bit."""
    doc = tiny_doc()
    doc["optimizers"] = [{"name": "plain_gd", "learning_rate": 2.0}, {"name": "gd", "learning_rate": 2.0}]
    script = tmp_path / "notebook.py"
    script.write_text(
        PLAIN_GD
        + textwrap.dedent(f"""
        res = bench.run({doc!r}, out={str(tmp_path / "r")!r}, workers=2, analysis=False, report=False,
                        progress=False)
        res.runs.to_parquet({str(tmp_path / "runs.parquet")!r})
        """)
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    runs = pd.read_parquet(tmp_path / "runs.parquet")
    mine = runs[runs["optimizer"].str.startswith("plain_gd")].reset_index(drop=True)
    builtin = runs[runs["optimizer"].str.startswith("gd")].reset_index(drop=True)
    assert len(mine) == len(builtin) == 10
    for column in ("final_loss", "best_loss", "status", "cost", "theta_initial", "theta_final"):
        assert mine[column].map(repr).tolist() == builtin[column].map(repr).tolist(), column


def test_a_plugin_next_to_the_config_adds_an_optimizer(tmp_path, capsys):
    """plugins = ["my_rule"]: a one-file module beside the config registers a rule; the CLI runs it
    with two workers and the resolved config.toml (which lists the plug-in) reproduces it."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "my_rule.py").write_text(PLAIN_GD)
    doc = tiny_doc(plugins=["my_rule"])
    doc["optimizers"] = [{"name": "plain_gd", "learning_rate": 2.0}]
    path = project / "mine.toml"
    path.write_text(config.to_toml(doc))
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "run", str(path), "--out", str(out), "--no-analysis", "--no-report"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    version = next((out / "api").glob("*/config.toml")).parent
    runs = pd.read_parquet(version / "runs.parquet")
    assert set(runs["optimizer"]) == {"plain_gd(learning_rate=2)"}
    assert 'plugins = ["my_rule"]' in (version / "config.toml").read_text()


def test_a_missing_or_broken_plugin_is_named(tmp_path, capsys):
    doc = tiny_doc(plugins=["no_such_rule"])
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(doc))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "experiment.plugins[0]: no plug-in module 'no_such_rule': put no_such_rule.py next to the config" in err
    (tmp_path / "broken_rule.py").write_text("import numpy\n1 / 0\n")
    path.write_text(config.to_toml(tiny_doc(plugins=["broken_rule"])))
    assert main(["validate", str(path)]) == 2
    assert "plug-in 'broken_rule' failed to import: ZeroDivisionError: division by zero" in capsys.readouterr().err


# ---------------------------------------------------------------------------- data files


def classes_frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 3))
    return pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "kind": np.where(X[:, 0] > 0, "up", "down")})


def file_config(folder: Path, **params) -> Path:
    doc = {
        "experiment": {"name": "mine", "runs": 3, "budget": 60},
        "datasets": [{"name": "file", **params}],
        "optimizers": [{"name": "rprop"}],
    }
    path = folder / "c.toml"
    path.write_text(config.to_toml(doc))
    return path


def test_csv_parquet_and_npz_give_the_same_arrays(tmp_path):
    frame = classes_frame()
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    np.savez(tmp_path / "d.npz", X=frame[["a", "b", "c"]].to_numpy(), y=frame["kind"].to_numpy().astype(str))
    loaded = [
        config.load(str(file_config(tmp_path, path=f"d.{ext}", target="kind"))).datasets[0].load()
        for ext in ("csv", "parquet", "npz")
    ]
    for data in loaded[1:]:
        for split in ("X_train", "Y_train", "X_test", "Y_test"):
            np.testing.assert_allclose(getattr(data, split), getattr(loaded[0], split), rtol=1e-15, atol=1e-15)
    data = loaded[0]
    assert data.X_train.shape == (45, 3) and data.X_test.shape == (15, 3)  # test_size 0.25
    assert (data.output_activation, data.loss, data.success.describe()) == ("sigmoid", "bce", "test accuracy >= 0.95")
    # standardized on the training split only; "up" (after "down") is class 1
    np.testing.assert_allclose(data.X_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(data.X_train.std(axis=0), 1, atol=1e-12)
    assert data.Y_train.sum() + data.Y_test.sum() == (frame["kind"] == "up").sum()


def test_a_relative_path_is_read_from_the_config_folder_and_pinned_by_hash(tmp_path, monkeypatch):
    classes_frame().to_csv(tmp_path / "d.csv", index=False)
    path = file_config(tmp_path, path="d.csv")  # target: the last column
    monkeypatch.chdir("/")
    cfg = config.load(str(path))
    params = cfg.datasets[0].params
    assert params["path"] == str(tmp_path / "d.csv") and len(params["sha256"]) == 64
    resolved = tmp_path / "resolved.toml"
    resolved.write_text(config.to_toml(cfg.to_dict()))
    assert config.load(str(resolved)).hash == cfg.hash
    with open(tmp_path / "d.csv", "a") as f:  # the data changes after the results were computed
        f.write("0.1,0.2,0.3,up\n")
    with pytest.raises(config.ConfigError, match="d.csv has changed since this config was resolved"):
        config.load(str(resolved))


def test_regression_targets_and_several_columns(tmp_path):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(40, 4)), columns=["x1", "x2", "t1", "t2"])
    frame.to_csv(tmp_path / "r.csv", index=False)
    data = config.load(str(file_config(tmp_path, path="r.csv", target="t1, t2", task="regression"))).datasets[0]
    loaded = data.load()
    assert loaded.Y_train.shape == (30, 2) and (loaded.output_activation, loaded.loss) == ("identity", "mse")
    np.testing.assert_allclose(loaded.Y_train.mean(axis=0), 0, atol=1e-12)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(b=f["b"].astype(object).where(f.index != 7, "abc")),
         "feature column 'b' is not numeric (row 7 (line 9 of the file) holds 'abc')"),
        (lambda f: f.assign(c=f["c"].where(f.index != 9, np.nan)),
         "row 9 (line 11 of the file), column 'c', is missing (NaN): drop or fill it"),
        (lambda f: f.assign(a=f["a"].where(f.index != 3, np.inf)),
         "row 3 (line 5 of the file), column 'a', is inf (infinite)"),
        (lambda f: f.assign(kind="same"), "the target has one class only ('same'); a classifier needs two"),
    ],
)  # fmt: skip
def test_bad_data_is_refused_with_row_and_column(tmp_path, capsys, change, message):
    change(classes_frame()).to_csv(tmp_path / "d.csv", index=False)
    assert main(["validate", str(file_config(tmp_path, path="d.csv"))]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_missing_file_unknown_column_and_format_are_named(tmp_path, capsys):
    classes_frame().to_csv(tmp_path / "d.csv", index=False)
    cases = [
        ({"path": "nothere.csv"}, f"no such data file: {tmp_path / 'nothere.csv'}"),
        ({"path": "d.csv", "target": "knd"}, "has no column 'knd' (did you mean 'kind'?)"),
        ({"path": "d.txt"}, "unknown format '.txt'; use a .csv, .parquet or .npz file"),
        ({"pth": "d.csv"}, "datasets[0].pth: unknown key (did you mean 'path'?)"),
    ]
    for params, message in cases:
        assert main(["validate", str(file_config(tmp_path, **params))]) == 2
        assert message in capsys.readouterr().err, params


# ---------------------------------------------------------------------------- the tables


def test_settings_keep_their_types_across_optimizers(tmp_path):
    doc = tiny_doc()
    doc["datasets"] = [{"name": "xor"}]
    doc["optimizers"] = [
        {"name": "gd", "learning_rate": 2.0, "clip_value": 1.0},
        {"name": "momentum", "nesterov": True},
        {"name": "ga", "population_size": 6},
        {"name": "restarts", "base": "momentum", "patience": 60, "base_settings": {"learning_rate": 0.5}},
    ]
    res = bench.run(doc, out=tmp_path, executor="serial", analysis=False, report=False, progress=False)
    runs = res.runs
    for column, dtype in [("population_size", "Int64"), ("tournament_size", "Int64"), ("generations", "Int64"),
                          ("restarts", "Int64"), ("nesterov", "boolean"), ("clip_value", "float64"),
                          ("learning_rate", "float64"), ("base_settings__learning_rate", "float64")]:  # fmt: skip
        assert str(runs[column].dtype) == dtype, column
    assert not [c for c in runs.columns if not c.isidentifier()]  # every name works in query
    ga = runs.query("optimizer_name == 'ga'")
    assert ga["population_size"].tolist() == [6] * 5 and runs["population_size"].isna().sum() == 15
    assert runs.query("nesterov == True")["optimizer_name"].unique().tolist() == ["momentum"]
    assert runs.query("optimizer_name == 'gd'")["clip_value"].tolist() == [1.0] * 5
    assert runs["clip_value"].isna().sum() == 15


def test_test_curves_and_the_parameter_layout(tmp_path):
    """test_loss and test_accuracy at every checkpoint, recomputed independently from the stored
    trajectory; unflatten gives the layers a plain numpy forward pass reproduces."""
    doc = {
        "experiment": {"name": "moons", "seed": 1, "runs": 3, "budget": 600},
        "record": {"checkpoints": 10, "trajectories": 3},
        "datasets": [{"name": "moons", "params": {"n_samples": 80}}],
        "optimizers": [{"name": "rprop"}],
    }
    res = bench.run(doc, out=tmp_path, executor="serial", analysis=False, report=False, progress=False)
    net, data = res.network("moons"), res.config.datasets[0].load()
    curves = res.curves
    assert curves["test_loss"].notna().all() and curves["test_accuracy"].between(0, 1).all()
    theta = np.stack(curves["theta"].to_list())
    X, Y = data.X_test, data.Y_test  # 20 test patterns, one sigmoid output with cross-entropy
    (W1, b1), (W2, b2) = net.unflatten(theta)
    hidden = 1 / (1 + np.exp(-(np.einsum("ni,rij->rnj", X, W1) + b1[:, None, :])))
    logit = (np.einsum("rnj,rjk->rnk", hidden, W2) + b2[:, None, :])[..., 0]
    p = 1 / (1 + np.exp(-logit))
    bce = (np.logaddexp(0, logit) - Y[:, 0] * logit).mean(axis=1)  # -log p or -log(1 - p), from the logit
    np.testing.assert_allclose(curves["test_loss"], bce, rtol=1e-10)
    np.testing.assert_array_equal(curves["test_accuracy"], ((p > 0.5) == (Y[:, 0] > 0.5)).mean(axis=1))
    no_test = bench.run(tiny_doc(), out=tmp_path, executor="serial", analysis=False, report=False, progress=False)
    assert no_test.curves["test_loss"].isna().all() and no_test.curves["test_accuracy"].isna().all()
    with pytest.raises(ValueError, match="no dataset 'mons' in these results \\(did you mean 'moons'\\?\\)"):
        res.network("mons")


def test_the_report_states_each_dataset_and_the_real_compute_time(tmp_path):
    doc = tiny_doc()
    doc["datasets"][1]["budget"] = 450
    first = bench.run(doc, out=tmp_path, executor="serial", analysis=False, progress=False)
    report = (first.path / "REPORT.md").read_text()
    assert (
        "| xor | exclusive or, 4 patterns | 2-2-1, sigmoid hidden, sigmoid output, mse loss (sum), uniform init x1 | 300 |"
        in report
    )
    assert "| parity | 3-bit parity, 8 patterns | 3-3-1, sigmoid hidden" in report
    assert "| 450 | 40-20-40 rule on every training pattern |" in report
    per_cell = first.runs.groupby("cell")["wall_time"].max().sum()
    line = next(x for x in report.splitlines() if x.startswith("- **compute time**"))
    assert line.startswith(f"- **compute time**: {per_cell:,.1f} s of cell computation in all (4 cells")
    again = bench.run(doc, out=tmp_path, executor="serial", analysis=False, progress=False)  # reuses every cell
    rerun = (again.path / "REPORT.md").read_text()
    assert line in rerun.splitlines()
    runs_line = next(x for x in rerun.splitlines() if x.startswith("- **runs of this config**"))
    assert (
        runs_line.count(" to ") == 2 and "4 cells computed; " in runs_line and runs_line.endswith("every cell reused")
    )
