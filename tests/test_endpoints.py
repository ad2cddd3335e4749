"""End-point classes on constructed cases with known answers, and the XOR 2-2-1 theorem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from bench.analysis.endpoints import analyze_endpoints, classify, escape_drops, saturation, symmetry_dimension
from bench.config import Analysis, from_dict
from bench.mlp import MLP
from bench.runner import run_cell

SETTINGS = Analysis()


def one_run(theta: np.ndarray, status: str = "stuck") -> pd.DataFrame:
    return pd.DataFrame({"status": [status], "run": [0], "optimizer": ["x"], "theta_final": [np.asarray(theta, float)]})


def endpoint_of(net: MLP, X: np.ndarray, Y: np.ndarray, theta: np.ndarray, status: str = "stuck") -> pd.Series:
    table, _ = analyze_endpoints(net, X, Y, one_run(theta, status), SETTINGS, 0, "test")
    return table.iloc[0]


def minimizer(net: MLP, X: np.ndarray, Y: np.ndarray, start) -> np.ndarray:
    result = minimize(
        lambda p: net.loss(p[None], X, Y)[0],
        np.asarray(start, float),
        jac=lambda p: net.loss_and_grad(p[None], X, Y)[1][0],
        method="BFGS",
        options={"gtol": 1e-14},
    )
    return result.x


# A single logistic unit on five points has two strict minima: a global one and a local one
# (found by a search over small data sets; Auer et al. 1996 show such minima exist).
LOCAL_X = np.array([[2.2], [-1.0], [2.1], [1.8], [-3.8]])
LOCAL_Y = np.array([[1.0], [0.0], [0.0], [1.0], [0.0]])


def test_a_quadratic_bowl_is_a_minimum():
    """Least squares with one linear unit: the loss is a convex quadratic, its minimizer a minimum."""
    rng = np.random.default_rng(0)
    net = MLP([2, 1], "identity", "identity", "mse")
    X, Y = rng.normal(size=(8, 2)), rng.normal(size=(8, 1))
    W, *_ = np.linalg.lstsq(np.hstack([X, np.ones((8, 1))]), Y, rcond=None)
    row = endpoint_of(net, X, Y, W[:, 0])
    assert row["endpoint"] == "minimum" and row["n_negative"] == 0 and row["n_flat"] == 0
    assert row["hess_min"] > 0 and row["escape_drop"] <= SETTINGS.escape_drop


def test_a_true_local_minimum_of_a_logistic_unit_is_found():
    net = MLP([1, 1])
    best = minimizer(net, LOCAL_X, LOCAL_Y, [1.0, -1.35])
    local = minimizer(net, LOCAL_X, LOCAL_Y, [-2.5, 5.7])
    losses = net.loss(np.stack([best, local]), LOCAL_X, LOCAL_Y)
    assert losses[1] > losses[0] + 0.9  # a different, worse basin
    for theta in (best, local):
        row = endpoint_of(net, LOCAL_X, LOCAL_Y, theta)
        assert row["endpoint"] == "minimum", row
    # Between the two lies a barrier: the straight line rises above both ends.
    from bench.analysis.landscape import barrier, interpolate

    assert barrier(interpolate(net, LOCAL_X, LOCAL_Y, best[None], local[None], 33))[0] > 0


def test_a_saddle_of_a_linear_network():
    """y = v (w x + b) + c at w = b = v = 0 with c = mean(y): a critical point whose Hessian
    has the eigenvalues +-sum((c - y) x), N and a zero from the network's scaling symmetry."""
    net = MLP([1, 1, 1], "identity", "identity", "mse")
    X = np.array([[-1.0], [0.5], [2.0], [3.0]])
    Y = np.array([[0.0], [1.0], [1.5], [4.0]])
    theta = np.array([0.0, 0.0, 0.0, Y.mean()])  # w, b, v, c
    row = endpoint_of(net, X, Y, theta)
    a = float(((Y.mean() - Y) * X).sum())
    assert row["endpoint"] == "saddle" and row["n_negative"] == 1
    np.testing.assert_allclose(row["hess_min"], -abs(a) / 4, rtol=1e-12)  # per-pattern: divided by N = 4
    assert symmetry_dimension(net) == 1 and row["n_flat"] == 1  # explained by the symmetry


def test_a_flat_valley_is_a_plateau():
    """One linear unit whose input never varies: w and b trade off along a line of minima that
    no symmetry of the network explains."""
    net = MLP([1, 1], "identity", "identity", "mse")
    X, Y = np.ones((4, 1)), np.array([[0.5], [1.0], [1.5], [1.0]])
    row = endpoint_of(net, X, Y, np.array([0.25, 0.75]))
    assert row["endpoint"] == "plateau" and row["n_flat"] == 1 and row["n_negative"] == 0


def test_a_monkey_saddle_has_no_curvature_and_the_escape_test_finds_the_way_down():
    """f = x^3 - 3 x y^2 at 0: gradient and Hessian vanish, so the curvature test calls it flat
    (a plateau); the escape test, run on its own, finds lower ground."""
    classes, n_negative, n_flat, candidate = classify(
        np.array(["stuck"]),
        np.array([0.0]),
        np.zeros((1, 2)),
        np.array([0.0]),
        np.array([0.0]),
        np.array([0.0]),
        np.array([0.0]),
        0,
        SETTINGS,
    )
    assert classes[0] == "plateau" and n_flat[0] == 2 and not candidate[0]

    def monkey(points):
        x, y = points[:, 0], points[:, 1]
        return x**3 - 3 * x * y**2 + 1.0, np.stack([3 * x**2 - 3 * y**2, -6 * x * y], axis=1)

    drops, evaluations = escape_drops(
        monkey, np.zeros((1, 2)), np.array([1.0]), np.array([0.1]), [np.random.default_rng(1)], SETTINGS
    )
    assert drops[0] > SETTINGS.escape_drop and evaluations == SETTINGS.escape_directions * (SETTINGS.escape_steps + 1)


def test_a_saturated_sigmoid_unit():
    """A hidden logistic unit with weights of 60 on inputs +-1 is saturated on every pattern."""
    net = MLP([1, 1, 1])
    theta = np.array([60.0, 0.0, 0.5, -1.0])  # w, b, v, c
    X = np.array([[-1.0], [1.0]])
    Y = 1 / (1 + np.exp(-np.array([[-1.0], [-0.5]])))  # the outputs sit at their targets: c, v + c
    assert saturation(net, theta[None], X, SETTINGS.saturation_slope).tolist() == [[1.0]]
    two = MLP([1, 2, 1])  # a second unit with small weights is never saturated on these inputs
    shares = saturation(two, np.array([[60.0, 0.1, 0.0, 0.0, 0.5, 0.5, -1.0]]), X, SETTINGS.saturation_slope)
    assert shares.tolist() == [[1.0, 0.0]]
    row = endpoint_of(net, X, Y, theta)
    assert row["endpoint"] == "saturated" and row["max_weight"] == 60.0


def test_status_classes_and_unfinished():
    net = MLP([1, 1, 1])
    X, Y = np.array([[-1.0], [1.0]]), np.array([[0.0], [1.0]])
    theta = np.array([0.5, 0.1, 0.5, 0.1])
    assert endpoint_of(net, X, Y, theta, "solved")["endpoint"] == "solved"
    assert endpoint_of(net, X, Y, theta, "unfinished")["endpoint"] == "unfinished"  # a steep slope
    assert endpoint_of(net, X, Y, np.array([np.nan, 0, 0, 0]), "diverged")["endpoint"] == "diverged"


@pytest.mark.parametrize(("activation", "expected"), [("sigmoid", 0), ("tanh", 0), ("relu", 5), ("identity", 9 + 4)])
def test_symmetry_dimension(activation, expected):
    assert symmetry_dimension(MLP([2, 3, 2, 1], activation)) == expected


def test_beyond_the_hessian_limit_lanczos_finds_the_extreme_eigenvalues():
    rng = np.random.default_rng(4)
    net = MLP([3, 4, 2], "tanh", "softmax", "cross_entropy")
    X, Y = rng.normal(size=(6, 3)), np.eye(2)[rng.integers(0, 2, 6)]
    theta = net.init(rng, 2, "glorot")
    runs = pd.DataFrame({"status": "stuck", "run": [0, 1], "optimizer": "x", "theta_final": list(theta)})
    full, _ = analyze_endpoints(net, X, Y, runs, SETTINGS, 0, "t")
    lanczos, cost = analyze_endpoints(net, X, Y, runs, Analysis(hessian_limit=5), 0, "t")
    np.testing.assert_allclose(lanczos["hess_min"], full["hess_min"], rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(lanczos["hess_max"], full["hess_max"], rtol=1e-6)
    assert (lanczos["n_flat"] == -1).all() and cost.hessian_vector_products > 0


def test_no_unsolved_xor_2_2_1_run_ends_at_a_finite_minimum():
    """Hamey 1998; Sprinkhuizen-Kuyper & Boers 1998: every finite stationary point of XOR 2-2-1
    above the target is a saddle or on a plateau.  Runs that fail must not be called minima."""
    doc = {
        "experiment": {"name": "x", "seed": 1, "runs": 30, "budget": 3000},
        "model": {"init_scale": 1.0},
        "datasets": [{"name": "xor"}],
        "optimizers": [{"name": "gd", "learning_rate": 2.0}, {"name": "rprop", "variant": "irprop-"}],
    }
    from bench import datasets

    data, net = datasets.load("xor"), MLP([2, 2, 1])
    classes = []
    for cell in from_dict(doc).cells():
        runs, _, *_ = run_cell(cell)
        table, _ = analyze_endpoints(net, data.X_train, data.Y_train, runs, SETTINGS, 1, "xor")
        classes += list(table["endpoint"][runs["status"] != "solved"])
    assert len(classes) >= 10 and "minimum" not in classes
