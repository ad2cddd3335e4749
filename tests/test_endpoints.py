"""End-point classes on constructed cases with known answers, and the XOR 2-2-1 theorem."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.sparse.linalg import ArpackNoConvergence

from bench import seeding
from bench.analysis import endpoints
from bench.analysis.endpoints import (
    Cost,
    analyze_endpoints,
    classify,
    escape_drops,
    saturation,
    spectra,
    symmetry_dimension,
)
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


# ------------------------------------------------------------------ costs, by hand


def test_a_cost_starts_at_zero_and_adds_up():
    assert Cost() == Cost(0.0, 0, 0, {})
    total = Cost(1.5, 2, 3, {"hessian": 0.25})
    total.add(Cost(0.5, 10, 20, {"hessian": 0.5, "escape": 2.0}))
    assert total == Cost(2.0, 12, 23, {"hessian": 0.75, "escape": 2.0})


def bowl():
    """Least squares with one linear unit on 6 patterns: minimum at the least-squares weights."""
    rng = np.random.default_rng(10)
    net = MLP([2, 1], "identity", "identity", "mse")
    X, Y = rng.normal(size=(6, 2)), rng.normal(size=(6, 1))
    W, *_ = np.linalg.lstsq(np.hstack([X, np.ones((6, 1))]), Y, rcond=None)
    return net, X, Y, W[:, 0]


def test_the_analysis_counts_what_it_spends():
    """Three runs: a minimum (escape-tested), one away from it (unfinished), one with a NaN
    weight (diverged, no Hessian).  Hessian-vector products: P per finite run (a full spectrum);
    gradients: one per run, and escape_directions x (escape_steps + 1) per escape-tested run."""
    net, X, Y, w = bowl()
    settings = Analysis(escape_directions=3, escape_steps=7)
    runs = pd.DataFrame(
        {
            "status": ["stuck", "stuck", "diverged"],
            "run": [0, 1, 2],
            "optimizer": "x",
            "theta_final": [w, w + 1.0, np.array([np.nan, 0.0, 0.0])],
        }
    )
    before = time.perf_counter()
    table, cost = analyze_endpoints(net, X, Y, runs, settings, 0, "t")
    elapsed = time.perf_counter() - before
    assert list(table["endpoint"]) == ["minimum", "unfinished", "diverged"]
    assert cost.hessian_vector_products == 2 * net.n_params
    assert cost.gradient_evaluations == 3 + 3 * (7 + 1)
    # The finite runs' Hessian, per pattern: [X 1]^T [X 1] / N (half the squared error).
    A = np.hstack([X, np.ones((6, 1))])
    eig = np.linalg.eigvalsh(A.T @ A / 6)
    np.testing.assert_allclose(table["hess_min"][:2], eig[0], rtol=1e-10)
    np.testing.assert_allclose(table["hess_max"][:2], eig[-1], rtol=1e-10)
    assert np.isnan(table["hess_min"][2]) and np.isnan(table["escape_drop"][1:]).all()
    assert set(cost.parts) == {"hessian", "escape"}
    assert 0 <= cost.parts["hessian"] + cost.parts["escape"] <= cost.seconds <= elapsed
    assert min(cost.parts.values()) >= 0


def test_no_runs_no_rows_and_nothing_spent():
    net, X, Y, _ = bowl()
    runs = pd.DataFrame({"status": [], "run": [], "optimizer": [], "theta_final": []}, dtype=object)
    table, cost = analyze_endpoints(net, X, Y, runs, SETTINGS, 0, "t")
    assert table.empty and list(table.columns) == endpoints.COLUMNS
    assert (cost.hessian_vector_products, cost.gradient_evaluations) == (0, 0)


# ------------------------------------------------------------------ spectra


def test_the_hessian_limit_is_the_largest_size_with_a_full_spectrum():
    net, X, Y, w = bowl()  # 3 parameters
    at = analyze_endpoints(net, X, Y, one_run(w), Analysis(hessian_limit=3), 0, "t")[0].iloc[0]
    below = analyze_endpoints(net, X, Y, one_run(w), Analysis(hessian_limit=2), 0, "t")[0].iloc[0]
    assert at["n_flat"] == 0 and below["n_flat"] == -1


class StubNet:
    """A model that only has Hessians, given in advance."""

    def __init__(self, H: np.ndarray) -> None:
        self.H = H

    def hessian(self, theta, X, Y):
        return self.H


def test_a_hessian_with_a_non_finite_entry_has_no_spectrum():
    """NaN eigenvalues for a Hessian with an inf or a NaN in it (LAPACK answers [0, 0] for the
    second: numbers that mean nothing), the spectrum of the others."""
    H = np.array(
        [
            [[2.0, 1.0], [1.0, 3.0]],
            [[1.0, np.inf], [np.inf, 1.0]],
            [[np.nan, 0.0], [0.0, 1.0]],
            [[4.0, 0.0], [0.0, -1.0]],
        ]
    )
    values, low, high, products = spectra(StubNet(H), np.zeros((4, 2)), None, None, 10)
    want = np.linalg.eigvalsh(H[[0, 3]])
    np.testing.assert_allclose(values[[0, 3]], want, rtol=1e-14)
    assert np.isnan(values[1:3]).all() and np.isnan(low[1:3]).all() and np.isnan(high[1:3]).all()
    np.testing.assert_array_equal(low[[0, 3]], want[:, 0])
    np.testing.assert_array_equal(high[[0, 3]], want[:, -1])
    assert products == 4 * 2


def test_a_run_with_an_infinite_weight_gets_no_spectrum_even_if_its_loss_is_finite():
    """A sigmoid unit with an infinite bias outputs 1 on every pattern: the loss is finite, but
    there is no Hessian to speak of there, and none is computed (or charged)."""
    net = MLP([1, 1, 1])
    X, Y = np.array([[0.0], [1.0], [-1.0]]), np.array([[0.2], [0.4], [0.9]])
    theta = np.array([1.0, np.inf, 0.5, -0.2])
    assert np.isfinite(net.loss(theta[None], X, Y)).all()
    table, cost = analyze_endpoints(net, X, Y, one_run(theta), SETTINGS, 0, "t")
    assert np.isnan(table["hess_min"]).all() and np.isnan(table["hess_max"]).all()
    assert cost.hessian_vector_products == 0


def test_lanczos_counts_each_hessian_vector_product():
    rng = np.random.default_rng(11)
    net = MLP([3, 4, 2], "tanh", "softmax", "cross_entropy")
    X, Y = rng.normal(size=(6, 3)), np.eye(2)[rng.integers(0, 2, 6)]
    theta = net.init(rng, 2, "glorot")
    calls = []

    def counted(theta_, X_, Y_, V):
        calls.append(len(theta_))
        return MLP.hvp(net, theta_, X_, Y_, V)

    net.hvp = counted
    values, low, high, products = spectra(net, theta, X, Y, 5)
    assert values is None and products == len(calls) > 0 and set(calls) == {1}
    H = net.hessian(theta, X, Y)
    for r in range(2):
        eig = np.linalg.eigvalsh(H[r])
        np.testing.assert_allclose([low[r], high[r]], [eig[0], eig[-1]], rtol=1e-6, atol=1e-10)


def test_lanczos_that_does_not_converge_reports_what_it_found(monkeypatch):
    """ARPACK's partial answer when there is one (the first eigenvalue it converged), else NaN."""

    def unconverged(operator, k, which, **kwargs):
        found = np.array([-2.0, 7.0]) if which == "SA" else np.array([])
        raise ArpackNoConvergence("no convergence", found, np.zeros((operator.shape[0], len(found))))

    monkeypatch.setattr(endpoints, "eigsh", unconverged)
    net, X, Y, w = bowl()
    values, low, high, _ = spectra(net, w[None], X, Y, 1)
    assert values is None and low[0] == -2.0 and np.isnan(high[0])


# ------------------------------------------------------------------ saturation, by hand


@pytest.mark.parametrize(
    ("activation", "share", "slope"),
    [
        ("sigmoid", 0.5, lambda z: 1 / (1 + np.exp(-z)) * (1 - 1 / (1 + np.exp(-z))) / 0.25),
        ("tanh", 0.5, lambda z: 1 - np.tanh(z) ** 2),
        ("relu", 0.75, lambda z: (z > 0).astype(float)),
    ],
)
def test_saturation_is_the_share_of_patterns_below_a_share_of_the_largest_slope(activation, share, slope):
    """One hidden unit with z = x on patterns x: saturated where slope(z) / max slope < share
    (largest slopes: 1/4 for sigmoid, 1 for tanh and relu)."""
    net = MLP([1, 1, 1], activation)
    z = np.array([-3.0, -1.5, -0.5, 0.0, 0.7, 1.5, 2.5, 4.0])
    want = float(np.mean(slope(z) < share))
    assert 0 < want < 1
    got = saturation(net, np.array([[1.0, 0.0, 1.0, 0.0]]), z[:, None], share)
    assert got.shape == (1, 1) and got[0, 0] == pytest.approx(want, abs=1e-15)


def test_no_saturation_columns_without_saturating_hidden_units():
    X = np.ones((3, 2))
    for net in (MLP([2, 3, 1], "identity", "identity", "mse"), MLP([2, 1])):
        assert saturation(net, np.zeros((2, net.n_params)), X, 0.5).shape == (2, 0)


# ------------------------------------------------------------------ classify, by hand


def classify_one(eigenvalues, low, high, grad_norm=0.0, saturated=0.0, max_weight=0.0, symmetries=0):
    """The class of one stuck run, with tolerances made of binary fractions (exact comparisons)."""
    settings = Analysis(eig_tol=0.25, grad_tol=0.5, saturated_share=0.5, large_weight=8.0)
    classes, n_negative, n_flat, candidate = classify(
        np.array(["stuck"], dtype=object),
        np.array([grad_norm]),
        None if eigenvalues is None else np.array([eigenvalues], dtype=float),
        np.array([low], dtype=float),
        np.array([high], dtype=float),
        np.array([saturated]),
        np.array([max_weight]),
        symmetries,
        settings,
    )
    return classes[0], n_negative[0], n_flat[0], candidate[0]


def test_classify_at_the_edges_of_its_tolerances():
    # Largest |eigenvalue| 4, so the tolerance is 0.25 x 4 = 1: -1 is flat (not negative), explained
    # by one symmetry; the gradient at exactly grad_tol is small.
    assert classify_one([-1.0, 2.0, 4.0], -1.0, 4.0, grad_norm=0.5, symmetries=1) == ("minimum", 0, 1, True)
    assert classify_one([-1.0, 2.0, 4.0], -1.0, 4.0, symmetries=0) == ("plateau", 0, 1, False)
    assert classify_one([-1.25, 2.0, 4.0], -1.25, 4.0) == ("saddle", 1, 0, False)
    assert classify_one([-1.0, 2.0, 4.0], -1.0, 4.0, grad_norm=0.5 + 1e-12, symmetries=1)[0] == "unfinished"
    # A scale below 1 is still curvature; only a zero (or non-finite) Hessian has none.
    assert classify_one([0.25, 0.5, 0.5], 0.25, 0.5) == ("minimum", 0, 0, True)
    assert classify_one([0.0, 0.0, 0.0], 0.0, 0.0, symmetries=3)[0] == "plateau"
    # Beyond the Hessian limit: the extreme eigenvalues only.
    assert classify_one(None, -1.0, 4.0) == ("minimum", 0, -1, True)
    assert classify_one(None, -1.25, 4.0) == ("saddle", 1, -1, False)
    assert classify_one(None, 0.0, 0.0) == ("plateau", 0, -1, False)
    # Saturated: at least the share and at least the weight.
    assert classify_one([2.0, 3.0, 4.0], 2.0, 4.0, saturated=0.5, max_weight=8.0)[0] == "saturated"
    assert classify_one([2.0, 3.0, 4.0], 2.0, 4.0, saturated=0.5 - 1e-12, max_weight=8.0)[0] == "minimum"
    assert classify_one([2.0, 3.0, 4.0], 2.0, 4.0, saturated=0.5, max_weight=8.0 - 1e-12)[0] == "minimum"


# ------------------------------------------------------------------ the escape test, by hand


def test_escape_drops_follow_gradient_descent_from_each_perturbed_copy():
    """f(p) = |p - m|^2 / 2 + 1: every call is recorded, and the points, the loss and the drops are
    recomputed here from the same random draws."""
    settings = Analysis(escape_directions=2, escape_steps=3, escape_radius=0.5)
    m = np.array([1.0, -2.0, 0.5])
    theta = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]])  # far from the bottom; at the bottom
    loss = np.array([np.sum(m**2) / 2 + 1, 1.0])
    calls = []

    def f(points):
        calls.append(points.copy())
        return ((points - m) ** 2).sum(axis=1) / 2 + 1, points - m

    step = np.array([0.25, 0.5])
    drops, evaluations = escape_drops(f, theta, loss, step, [np.random.default_rng(s) for s in (1, 2)], settings)
    assert len(calls) == 3 + 1 and evaluations == 4 * (3 + 1)
    draws = np.concatenate([np.random.default_rng(s).normal(size=(2, 3)) for s in (1, 2)])
    points = np.repeat(theta, 2, axis=0) + draws * 0.5 * np.sqrt(3) / np.linalg.norm(draws, axis=1, keepdims=True)
    lowest = np.full(4, np.inf)
    for call in calls:
        np.testing.assert_allclose(call, points, rtol=1e-14, atol=1e-15)
        lowest = np.minimum(lowest, ((points - m) ** 2).sum(axis=1) / 2 + 1)
        points = points - np.repeat(step, 2)[:, None] * (points - m)
    lowest = lowest.reshape(2, 2).min(axis=1)
    assert lowest[0] < loss[0] and lowest[1] > loss[1]  # the bottom has nothing lower around it
    np.testing.assert_allclose(drops, [(loss[0] - lowest[0]) / loss[0], 0.0], rtol=1e-14)


def test_no_escape_test_without_directions_or_points():
    never = pytest.fail  # the loss is never evaluated
    theta, loss = np.zeros((2, 3)), np.ones(2)
    rngs = [np.random.default_rng(0)] * 2
    drops, evaluations = escape_drops(never, theta, loss, np.ones(2), rngs, Analysis(escape_directions=0))
    assert drops.tolist() == [0.0, 0.0] and evaluations == 0
    drops, evaluations = escape_drops(never, theta[:0], loss[:0], np.ones(0), [], SETTINGS)
    assert drops.shape == (0,) and evaluations == 0
    one = Analysis(escape_directions=1, escape_steps=0)

    def flat(points):  # a loss of 0 everywhere
        return np.zeros(len(points)), 0 * points

    drops, evaluations = escape_drops(flat, theta, loss, np.ones(2), rngs, one)
    assert drops.tolist() == [1.0, 1.0] and evaluations == 2
    # At a loss of 0 nothing is lower: the drop is 0 (not 0 / 0).
    with np.errstate(invalid="ignore"):
        assert escape_drops(flat, theta, np.zeros(2), np.ones(2), rngs, one)[0].tolist() == [0.0, 0.0]


def escape_by_hand(net, X, Y, theta, settings, seed, stream, label, run):
    """The documented escape test, one direction at a time: directions from the run's stream,
    norm escape_radius x sqrt(P), gradient descent with step 1 / the largest eigenvalue of the
    loss's Hessian; the largest relative drop below the loss at theta, 0 if none."""
    rng = seeding.generator(seed, "escape", stream, label, run)
    n_params = len(theta)
    step = 1.0 / np.linalg.eigvalsh(net.hessian(theta[None], X, Y)[0])[-1]
    start = net.loss(theta[None], X, Y)[0]
    lowest = np.inf
    for d in rng.normal(size=(settings.escape_directions, n_params)):
        point = theta + d * (settings.escape_radius * np.sqrt(n_params) / np.linalg.norm(d))
        for _ in range(settings.escape_steps + 1):
            value, grad = net.loss_and_grad(point[None], X, Y)
            lowest = min(lowest, value[0])
            point = point - step * grad[0]
    return max(0.0, (start - lowest) / start)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_the_escape_test_of_a_local_minimum_by_hand(reduction):
    """The logistic unit's local minimum, shaken hard enough (and briefly enough) that some
    copies head for the other basin: the drop is the one recomputed here, a plateau at the default
    escape_drop; with escape_drop set to exactly that drop it is a minimum (no fall by *more*)."""
    net = MLP([1, 1], reduction=reduction)
    local = minimizer(MLP([1, 1]), LOCAL_X, LOCAL_Y, [-2.5, 5.7])
    settings = Analysis(escape_radius=2.0, escape_steps=40)
    row = analyze_endpoints(net, LOCAL_X, LOCAL_Y, one_run(local), settings, 0, "test")[0].iloc[0]
    want = escape_by_hand(net, LOCAL_X, LOCAL_Y, local, settings, 0, "test", "x", 0)
    assert 0.01 < want < 0.7  # lower ground found, not yet the other basin's bottom
    assert row["endpoint"] == "plateau" and row["escape_drop"] == pytest.approx(want, rel=1e-9)
    edge = analyze_endpoints(
        net,
        LOCAL_X,
        LOCAL_Y,
        one_run(local),
        dataclasses.replace(settings, escape_drop=row["escape_drop"]),
        0,
        "test",
    )
    assert edge[0].iloc[0]["endpoint"] == "minimum"


def test_per_pattern_quantities_do_not_depend_on_the_reduction():
    """Least squares on 50 patterns, one input nearly constant: a near-flat direction (about 1e-6 of
    the largest curvature, flat at eig_tol 1e-4).  Gradient, spectrum and escape test read the loss
    per pattern, so a sum and a mean give the same table; a run just off the bottom (per-pattern
    gradient about 1e-5) has a small gradient under both."""
    rng = np.random.default_rng(12)
    x = rng.normal(size=50)
    X = np.stack([x, 1.0 + 1e-3 * rng.normal(size=50)], axis=1)
    Y = (0.3 * x + rng.normal(scale=0.1, size=50))[:, None]
    A = np.hstack([X, np.ones((50, 1))])
    W, *_ = np.linalg.lstsq(A, Y, rcond=None)
    w = W[:, 0]
    off = w + 1e-5 * np.array([1.0, 0.0, 0.0]) / np.mean(x**2)
    runs = pd.DataFrame({"status": "stuck", "run": [0, 1], "optimizer": "x", "theta_final": [w, off]})
    tables = {}
    for reduction in ("sum", "mean"):
        net = MLP([2, 1], "identity", "identity", "mse", reduction)
        tables[reduction] = analyze_endpoints(net, X, Y, runs, SETTINGS, 0, "t")[0]
    eig = np.linalg.eigvalsh(A.T @ A / 50)
    assert eig[0] / eig[-1] < 1e-5
    for table in tables.values():
        assert list(table["endpoint"]) == ["plateau", "plateau"] and list(table["n_flat"]) == [1, 1]
        np.testing.assert_allclose(table["hess_max"], eig[-1], rtol=1e-9)
    pd.testing.assert_frame_equal(tables["sum"], tables["mean"], rtol=1e-6, atol=1e-12)
