"""The perf command's baselines: the one-run loop is an independent implementation of the engine."""

from __future__ import annotations

import numpy as np
import pytest

from bench import datasets, perf
from bench.runner import run_cell


@pytest.mark.parametrize(
    ("name", "runs", "epochs", "backend"),
    [("xor", 5, 60, "numpy"), ("xor", 5, 60, "numba"), ("xor", 5, 400, "numba"), ("digits", 2, 4, "numpy")],
)
def test_engine_matches_the_plain_one_run_loop(name, runs, epochs, backend):
    """Whole trajectories of the runner (numpy or compiled kernels) against the plain loop."""
    cell = perf.workload_cell(name, runs, epochs, backend)
    assert cell.backend == backend
    table, _, *_ = run_cell(cell)
    assert (table["epochs"] == epochs).all()  # success is off: every run does every epoch
    w = perf.WORKLOADS[name]
    data = datasets.load(w["dataset"])
    for r in range(runs):
        plain = perf.plain_momentum(
            table["theta_initial"][r],
            cell.dataset.layer_sizes(),
            data.X_train,
            data.Y_train,
            w["activation"],
            data.output_activation,
            epochs,
            w["learning_rate"],
            w["momentum"],
            w["reduction"] == "mean",
        )
        np.testing.assert_allclose(table["theta_final"][r], plain, rtol=0, atol=1e-10)


def test_perf_quick_prints_every_ratio(capsys):
    assert perf.main(quick=True) == 0
    text = capsys.readouterr().out
    assert "GFLOP/s" in text and text.count("ratio") == 10 and "% of peak" in text
    assert "engine, compiled" in text and "engine, float32" in text and "compiled kernel" in text
    assert "(d) tuning: 8 trials x 5 seeds" in text and "one call a trial" in text
