"""``python -m bench perf``: the engine's speed on fixed workloads, as ratios (a benchmark, not a test).

Workloads, all in one process with one BLAS thread:

(a) XOR 2-2-1 (sigmoid, summed squared error), 1,000 runs x 2,000 epochs of momentum;
(b) digits 64-32-10 (tanh, softmax cross-entropy), 32 runs x 500 epochs of momentum;
(c) a genetic algorithm's population evaluation: XOR 2-2-1 with 1,000 individuals and digits
    64-32-10 with 200, one batched call against one individual at a time;
(d) tuning: 40 trials x 5 seeds of momentum on XOR 2-2-1 (budget 6,000, runs stop when solved),
    the same 40 settings scored three ways: all 200 runs in one engine call (the tuner's batched
    trials, per-run settings on the runs axis), one call per trial (the usual one-trial-at-a-time
    Optuna loop, seeds batched), and one call per run.

The engine is the real runner (``bench.runner.run_cell``, success switched off so every run
does every epoch).  It is compared with a plain one-run-at-a-time numpy loop of the same math
(``plain_momentum``, which also serves the tests as an independent implementation) and with
scikit-learn's MLPClassifier trained the same way (full batch, SGD with momentum, no L2, no early
stopping; its output is logistic/softmax with log-loss).  The slow baselines train fewer runs and
are extrapolated linearly, as the printout says.  (b) is also given as a share of the float64
matrix-multiply peak of one BLAS thread, measured here.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import expit

from bench import datasets
from bench.config import from_dict
from bench.problem import Problem
from bench.runner import initial_parameters, run_cell

TARGETS = {
    "xor_compiled": 3.5,
    "digits_float32": 2.0,
    "xor_vs_loop": 50.0,
    "xor_vs_sklearn": 100.0,
    "digits_peak_share": 0.45,
    "ga_xor": 20.0,
    "ga_digits": 1.3,
    "tuning_batched": 5.0,
}


def matmul_peak(size: int = 1024, repeats: int = 5) -> float:
    """Best float64 matrix-multiply rate in FLOP/s of this process's BLAS (call with one thread)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((size, size)), rng.random((size, size))
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2.0 * size**3 / best


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def plain_momentum(
    theta: np.ndarray,
    sizes: list[int],
    X: np.ndarray,
    Y: np.ndarray,
    hidden: str,
    output: str,
    epochs: int,
    learning_rate: float,
    momentum: float,
    mean: bool,
) -> np.ndarray:
    """One run of classical momentum on a one-hidden-layer MLP, written plainly for one run.

    theta : ndarray of shape (P,) in the engine's layout (W1, b1, W2, b2).  Returns the final
    parameters.  Output/loss: sigmoid with half squared error, or softmax with cross-entropy.
    """
    n_in, n_hid, n_out = sizes
    theta = theta.copy()
    velocity = np.zeros_like(theta)
    cut1, cut2, cut3 = n_in * n_hid, n_in * n_hid + n_hid, n_in * n_hid + n_hid + n_hid * n_out
    norm = 1.0 / X.shape[0] if mean else 1.0
    for _ in range(epochs):
        W1, b1 = theta[:cut1].reshape(n_in, n_hid), theta[cut1:cut2]
        W2, b2 = theta[cut2:cut3].reshape(n_hid, n_out), theta[cut3:]
        h = X @ W1 + b1
        h = expit(h) if hidden == "sigmoid" else np.tanh(h)
        z = h @ W2 + b2
        if output == "sigmoid":
            o = expit(z)
            dz = (o - Y) * o * (1 - o) * norm
        else:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            dz = (e / e.sum(axis=1, keepdims=True) - Y) * norm
        dh = dz @ W2.T
        dh *= h * (1 - h) if hidden == "sigmoid" else 1 - h * h
        grad = np.concatenate([(X.T @ dh).ravel(), dh.sum(axis=0), (h.T @ dz).ravel(), dz.sum(axis=0)])
        velocity = momentum * velocity - learning_rate * grad
        theta += velocity
    return theta


WORKLOADS = {
    "xor": {
        "dataset": "xor",
        "hidden": 2,
        "activation": "sigmoid",
        "reduction": "sum",
        "learning_rate": 0.5,
        "momentum": 0.9,
        "init": "uniform",
    },
    "digits": {
        "dataset": "digits",
        "hidden": 32,
        "activation": "tanh",
        "reduction": "mean",
        "learning_rate": 0.1,
        "momentum": 0.9,
        "init": "glorot",
    },
}


def workload_cell(name: str, runs: int, epochs: int, backend: str = "numpy", dtype: str = "float64") -> Any:
    """A runner cell for workload ``name``: success off, so every run does ``epochs`` epochs."""
    w = WORKLOADS[name]
    doc = {
        "experiment": {"name": f"perf-{name}", "seed": 0, "runs": runs, "budget": 3 * (epochs + 1)},
        "engine": {"backend": backend},
        "record": {"checkpoints": 10},
        "datasets": [
            {
                "name": w["dataset"],
                "success": {"kind": "loss", "split": "train", "target": 0.0},
                "model": {
                    "hidden": [w["hidden"]],
                    "activation": w["activation"],
                    "init": w["init"],
                    "reduction": w["reduction"],
                    "dtype": dtype,
                },
            }
        ],
        "optimizers": [{"name": "momentum", "learning_rate": w["learning_rate"], "momentum": w["momentum"]}],
    }
    return from_dict(doc, f"perf:{name}").cells()[0]


def time_engine(
    name: str, runs: int, epochs: int, repeats: int = 1, backend: str = "numpy", dtype: str = "float64"
) -> float:
    """Best wall time of ``repeats`` runs of the real runner on the workload."""
    cell = workload_cell(name, runs, epochs, backend, dtype)
    return min(_timed(lambda: run_cell(cell)) for _ in range(repeats))


def time_plain_loop(name: str, runs: int, epochs: int) -> float:
    w, cell = WORKLOADS[name], workload_cell(name, runs, epochs)
    data = datasets.load(w["dataset"])
    theta0 = initial_parameters(cell, range(runs))
    sizes = cell.dataset.layer_sizes()
    output = data.output_activation
    return _timed(
        lambda: [
            plain_momentum(
                theta0[r],
                sizes,
                data.X_train,
                data.Y_train,
                w["activation"],
                output,
                epochs,
                w["learning_rate"],
                w["momentum"],
                w["reduction"] == "mean",
            )
            for r in range(runs)
        ]
    )


def time_sklearn(name: str, runs: int, epochs: int) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    w = WORKLOADS[name]
    data = datasets.load(w["dataset"])
    y = data.Y_train.argmax(axis=1) if data.Y_train.shape[1] > 1 else data.Y_train[:, 0]
    activation = "logistic" if w["activation"] == "sigmoid" else w["activation"]

    def train() -> None:
        for r in range(runs):
            model = MLPClassifier(
                hidden_layer_sizes=(w["hidden"],),
                activation=activation,
                solver="sgd",
                alpha=0.0,
                batch_size=len(y),
                learning_rate_init=w["learning_rate"],
                momentum=w["momentum"],
                nesterovs_momentum=False,
                max_iter=epochs,
                shuffle=False,
                tol=0.0,
                n_iter_no_change=epochs + 1,
                early_stopping=False,
                random_state=r,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is the intended stop
                model.fit(data.X_train, y)

    return _timed(train)


def time_population(name: str, population: int, repeats: int) -> tuple[float, float]:
    """Evaluations per second of a GA population: one batched call, and one individual at a time."""
    cell = workload_cell(name, 1, 1)
    problem = Problem(cell.dataset.load(), cell.dataset.network(), 1)
    view = problem.view()
    pop = view.draw(np.random.default_rng(0), population)
    owners = np.zeros(population, dtype=np.int64)
    batched = min(_timed(lambda: view.loss(pop, owners)) for _ in range(repeats))
    single = min(_timed(lambda: [view.loss(pop[i : i + 1]) for i in range(population)]) for _ in range(repeats))
    return population / batched, population / single


def time_tuning(trials: int, seeds: int) -> tuple[float, float, float, float]:
    """Seconds to score ``trials`` momentum settings on ``seeds`` XOR runs each: in one engine
    call, one call per trial, one call per run; and the cost units spent (the same each way)."""
    from bench.config import from_dict as config_from_dict
    from bench.tuning import evaluate_trials

    doc = {
        "experiment": {"name": "perf-tuning", "seed": 0, "runs": 1, "budget": 6000},
        "datasets": [{"name": "xor"}],
        "optimizers": [{"name": "momentum"}],
    }
    cell = config_from_dict(doc).cells()[0]
    rng = np.random.default_rng(0)
    settings = [
        {"learning_rate": float(10 ** rng.uniform(-3, 1)), "momentum": float(1 - 10 ** rng.uniform(-2, np.log10(0.5)))}
        for _ in range(trials)
    ]
    start = time.perf_counter()
    scores = evaluate_trials(cell, settings, seeds)
    batched = time.perf_counter() - start
    per_trial = _timed(lambda: [evaluate_trials(cell, [s], seeds) for s in settings])
    from bench.runner import run_trials

    def one_run_at_a_time() -> None:
        from bench.config import settings_with

        for s in settings:
            merged = settings_with(cell.optimizer, s)
            for seed in range(seeds):
                run_trials(cell, merged, [seed])

    per_run = _timed(one_run_at_a_time)
    return batched, per_trial, per_run, sum(s.cost for s in scores)


def main(quick: bool = False) -> int:
    from threadpoolctl import threadpool_limits

    scale = 10 if quick else 1
    xor_runs, xor_epochs = 1000 // scale, 2000 // scale
    dig_runs, dig_epochs = 32 // (4 if quick else 1), 500 // scale
    print(
        f"bench perf{' --quick (smaller workloads: a smoke test, not the targets)' if quick else ''}; one BLAS thread"
    )
    with threadpool_limits(1):
        peak = matmul_peak()
        print(f"float64 matrix-multiply peak (1024^3, best of 5): {peak / 1e9:.1f} GFLOP/s")
        from bench import kernels

        print(f"{kernels.warm_up() or 'compiled kernel ready'}\n")

        # (a) XOR: the engine on numpy and on the compiled kernel; the one-run loop and
        # scikit-learn (both extrapolated) against the compiled engine (auto's choice here).
        loop_runs, sk_runs = max(1, xor_runs // 50), max(1, xor_runs // 200)
        numpy_engine = time_engine("xor", xor_runs, xor_epochs, repeats=3, backend="numpy")
        engine = time_engine("xor", xor_runs, xor_epochs, repeats=3, backend="numba")
        loop = time_plain_loop("xor", loop_runs, xor_epochs) * xor_runs / loop_runs
        sk = time_sklearn("xor", sk_runs, xor_epochs) * xor_runs / sk_runs
        rate = xor_runs * xor_epochs / engine
        print(f"(a) xor 2-2-1, {xor_runs} runs x {xor_epochs} epochs of momentum")
        print(f"    engine, numpy     {numpy_engine:8.2f} s  (best of 3)")
        print(
            f"    engine, compiled  {engine:8.2f} s  (best of 3; {rate / 1e6:.1f} M run-epochs/s)  "
            f"ratio {numpy_engine / engine:5.2f}x  target {TARGETS['xor_compiled']}x"
        )
        print(
            f"    one-run loop      {loop:8.2f} s  (timed {loop_runs} runs, extrapolated)  ratio {loop / engine:7.1f}x"
            f"  target {TARGETS['xor_vs_loop']:.0f}x"
        )
        print(
            f"    scikit-learn MLP  {sk:8.2f} s  (timed {sk_runs} runs, extrapolated)  ratio {sk / engine:7.1f}x"
            f"  target {TARGETS['xor_vs_sklearn']:.0f}x\n"
        )

        # (b) digits: the engine's share of the matmul peak, float32 against float64, the baselines.
        engine = time_engine("digits", dig_runs, dig_epochs)
        single = time_engine("digits", dig_runs, dig_epochs, dtype="float32")
        n = datasets.load("digits").X_train.shape[0]
        flops_per_step = 2 * n * (2 * 64 * 32 + 3 * 32 * 10)  # forward 2 products, backward 3 (no input gradient)
        rate = flops_per_step * dig_runs * (dig_epochs + 1) / engine
        loop_runs, sk_runs = max(1, dig_runs // 8), max(1, dig_runs // 8)
        loop = time_plain_loop("digits", loop_runs, dig_epochs) * dig_runs / loop_runs
        sk = time_sklearn("digits", sk_runs, dig_epochs) * dig_runs / sk_runs
        print(f"(b) digits 64-32-10, {dig_runs} runs x {dig_epochs} epochs of momentum ({n} training patterns)")
        print(
            f"    engine            {engine:8.2f} s  {rate / 1e9:.1f} GFLOP/s of matrix products = "
            f"{rate / peak:.0%} of peak  target {TARGETS['digits_peak_share']:.0%}"
        )
        print(
            f"    engine, float32   {single:8.2f} s  ratio {engine / single:5.2f}x  target {TARGETS['digits_float32']}x"
        )
        print(
            f"    one-run loop      {loop:8.2f} s  (timed {loop_runs} runs, extrapolated)  ratio {loop / engine:7.1f}x"
        )
        print(f"    scikit-learn MLP  {sk:8.2f} s  (timed {sk_runs} runs, extrapolated)  ratio {sk / engine:7.1f}x\n")

        # (c) a GA's population evaluation: one batched call against one individual at a time.
        print("(c) population evaluation (training-set forward passes per second)")
        for name, size, key in (("xor", 1000 // scale, "ga_xor"), ("digits", 200, "ga_digits")):
            batched, single = time_population(name, size, 3 if quick else 7)
            print(
                f"    {name:7s} population {size:5d}: batched {batched:10.0f}/s, one at a time {single:9.0f}/s, "
                f"ratio {batched / single:5.1f}x  target {TARGETS[key]}x"
            )

        # (d) tuning: the same trials scored in one engine call, one per trial, one per run.
        trials, seeds = (8, 5) if quick else (40, 5)
        batched, per_trial, per_run, cost = time_tuning(trials, seeds)
        print(f"\n(d) tuning: {trials} trials x {seeds} seeds of momentum on xor 2-2-1 ({cost:,.0f} cost units)")
        print(f"    one engine call   {batched:8.2f} s  (the tuner's batched trials)")
        print(
            f"    one call a trial  {per_trial:8.2f} s  ratio {per_trial / batched:5.1f}x  "
            f"target {TARGETS['tuning_batched']:.0f}x"
        )
        print(f"    one call a run    {per_run:8.2f} s  ratio {per_run / batched:5.1f}x")
    return 0
