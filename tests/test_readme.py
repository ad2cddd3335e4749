"""What the README promises, held against what the code does: definitions, defaults, columns."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bench.optimizers.restarts import RestartSettings

from bench import config, datasets
from bench.cli import main
from bench.config import Record, Stopping, from_dict
from bench.runner import hyperparameter_columns, run_cell, status_meanings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_statuses_are_defined_in_the_words_of_every_report():
    for status, meaning in status_meanings(Stopping()).items():
        assert f"- **{status}**: {meaning}" in README, status


def test_the_stopping_defaults_are_the_readmes():
    default = Stopping()
    assert f"`patience` = {default.patience}" in README and f"`min_delta` = {default.min_delta}" in README
    assert default.stagnation is False and "it is off by default" in README
    assert Record().spacing == "log" and "log-spaced in cost by default" in README


def test_the_restart_trigger_defaults_are_the_readmes():
    default = RestartSettings()
    assert f"`patience` cost units, default {default.patience:,.0f}" in README
    assert f"`min_delta`, default {default.min_delta}" in README


def test_an_epoch_is_a_step_and_the_first_evaluation_is_not_one(tiny):
    assert "`grad_evals = epochs + 1`" in README
    runs, curves, *_ = run_cell(from_dict(tiny).cells()[0])
    np.testing.assert_array_equal(runs["grad_evals"], runs["epochs"] + 1)
    assert (curves.groupby("run")["epoch"].min() == 0).all()


def test_curves_are_log_spaced_by_default(tiny):
    tiny["optimizers"] = [{"name": "gd", "learning_rate": 0.01}]  # never solves: runs to the budget
    tiny.pop("record")
    _, curves, *_ = run_cell(from_dict(tiny).cells()[0])
    budget = tiny["experiment"]["budget"]
    one = curves[curves["run"] == 0]["cost"].to_numpy()
    # A point at the first evaluation (cost 3) and at the first evaluation at or past each of 50
    # log-spaced marks from 1 to the budget, up to the stop (the last step that fits).
    marks = np.ceil(np.geomspace(1, budget, Record().checkpoints))
    due = np.unique(np.concatenate([[3.0], 3 * np.ceil(marks / 3)]))
    np.testing.assert_array_equal(one, np.append(due[due < one[-1]], one[-1]))
    assert (one <= budget / 10).sum() > 4 * (one >= budget * 0.9).sum()


def documented_columns(table_heading: str) -> list[str]:
    """Column names in backticks from the README's table after ``table_heading``."""
    section = README[README.index(table_heading) :]
    rows = re.findall(r"^\| (`[^|]+`) \|", section[: section.index("\n\n", section.index("| ---"))], re.M)
    return [name for row in rows for name in re.findall(r"`([^`]+)`", row)]


def test_the_runs_table_has_the_documented_columns(tiny):
    tiny["optimizers"] = [
        {"name": "gd"},
        {"name": "restarts", "patience": 60},
        {"name": "ga", "population_size": 6},
    ]
    base = documented_columns("`runs.parquet` has one row per run")
    assert len(base) == 30
    extras = {"gd": [], "restarts": ["restarts", "restart_cost"], "ga": ["generations", "evaluations"]}
    for cell in from_dict(tiny).cells():
        runs, curves, *_ = run_cell(cell)
        assert list(runs.columns[: len(base)]) == base
        rest = list(runs.columns[len(base) :])
        assert rest == extras[cell.optimizer.name] + list(hyperparameter_columns(cell))
        written = re.search(r"with the columns (.+?)\.\n", README, re.S).group(1)
        assert list(curves.columns) == re.findall(r"`([a-z_]+)`", written)


@pytest.mark.parametrize(("name", "share"), [("moons", 0.25), ("iris", 0.25), ("wine", 0.25), ("digits", 0.2)])
def test_the_scikit_learn_splits_are_the_readmes(name, share):
    assert "split 75/25 (digits 80/20; stratified, seeded)" in README
    data = datasets.load(name)
    n = len(data.X_train) + len(data.X_test)
    assert len(data.X_test) == math.ceil(share * n)


def test_the_stored_config_reproduces_the_results(tiny, tmp_path):
    """Run a config, then run the config.toml it wrote: the same tables."""
    tiny["optimizers"].append({"name": "restarts", "base": "rprop", "patience": 60})
    source = tmp_path / "mine.toml"
    source.write_text(config.to_toml(config.from_dict(tiny).to_dict()))
    assert main(["run", str(source), "--out", str(tmp_path / "a"), "--workers", "1", "--no-report"]) == 0
    first = next((tmp_path / "a" / "tiny").glob("*/config.toml"))
    assert main(["run", str(first), "--out", str(tmp_path / "b"), "--workers", "1", "--no-report"]) == 0
    tables = []
    for out in ("a", "b"):
        version = next((tmp_path / out / "tiny").glob("*/runs.parquet")).parent
        tables.append([pd.read_parquet(version / f"{t}.parquet") for t in ("runs", "curves")])
    pd.testing.assert_frame_equal(tables[0][0].drop(columns="wall_time"), tables[1][0].drop(columns="wall_time"))
    pd.testing.assert_frame_equal(tables[0][1], tables[1][1])


def readme_block(heading: str, language: str, index: int = 0) -> str:
    """The ``index``-th fenced ``language`` block of the README section under ``heading``."""
    section = README.split(heading + "\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)[index]


def test_the_api_example_runs_as_pasted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(readme_block("## From Python", "python"), scope)  # noqa: S102  (the README's own code)
    res = scope["res"]
    assert res.path.resolve() == (tmp_path / "results" / "notebook" / res.config.hash).resolve()
    assert len(res.runs) == 40 and (res.path / "REPORT.md").is_file() and "endpoint" in res.runs.columns
    assert scope["fig"].axes
    import matplotlib.pyplot as plt

    plt.close("all")


def test_the_plugin_example_runs_as_pasted(tmp_path):
    """The README's my_rprop.py and its config, written as a student would, compared with irprop-."""
    (tmp_path / "my_rprop.py").write_text(readme_block("### Your own optimizer: plug-ins", "python"))
    path = tmp_path / "my.toml"
    path.write_text(readme_block("### Your own optimizer: plug-ins", "toml"))
    assert main(["run", str(path), "--out", str(tmp_path / "r"), "--set", "experiment.runs=8", "--no-report"]) == 0
    runs = pd.read_parquet(next((tmp_path / "r" / "my-rprop").glob("*/runs.parquet")))
    solved = runs.groupby("optimizer")["status"].apply(lambda s: int((s == "solved").sum())).to_dict()
    assert set(solved) == {"my_rprop(floor=0)", "my_rprop(floor=0.001)", "rprop(variant=irprop-)"}
    assert all(count > 0 for count in solved.values()), solved


def test_the_report_section_names_every_figure_and_its_constants():
    import inspect

    from bench.analysis import compare
    from bench.report import FIGURES
    from bench.report.compare_plots import spaghetti_table
    from bench.report.plots import OPTIMIZER_COLOURS

    section = README[README.index("## The report") : README.index("## Configs")]
    assert re.findall(r"^- `([a-z_]+\.png)`", section, re.M) == [figure[0] for figure in FIGURES]
    assert f"({inspect.signature(compare.art_table).parameters['replicates'].default:,} replicates" in section
    assert f"one of {len(OPTIMIZER_COLOURS)} colours" in section
    assert f"from ratio 1 to {compare.TAU_MAX:g} divided by\n  {compare.TAU_MAX - 1:g}" in section
    assert f"the first {inspect.signature(spaghetti_table).parameters['sample'].default} runs" in section
    assert "(1 = best on every dataset)" in section and "ties counting half" in section


def test_the_auto_backend_rule_is_the_readmes():
    from bench.mlp import COMPILED_MAX_WEIGHTS, resolve_backend

    assert (
        f"picks numba for a\nnetwork whose every layer has at most {COMPILED_MAX_WEIGHTS} weights (n_in x n_out) and whose "
        "hidden units are not\ntanh, in float64, and numpy otherwise"
    ) in README
    assert resolve_backend("auto", [2, COMPILED_MAX_WEIGHTS // 2, 2], "float64", "sigmoid") == "numba"
    assert resolve_backend("auto", [2, COMPILED_MAX_WEIGHTS, 1], "float64", "sigmoid") == "numpy"  # 2 x 256 weights
    assert resolve_backend("auto", [2, 3, 1], "float64", "tanh") == "numpy"
    assert resolve_backend("auto", [2, 3, 1], "float32", "sigmoid") == "numpy"
