"""Attractors, canonical parameters, alignment, paired tests, barriers and slices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from bench.analysis import attractors, landscape
from bench.mlp import MLP


def twin(net: MLP, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """theta with every hidden layer's units permuted at random and a random half sign-flipped
    (by the flip rule of the activation), written out by hand from the definitions."""
    layers = [[W[0].copy(), b[0].copy()] for W, b in net.unflatten(theta[None])]
    for i in range(len(layers) - 1):
        W, b = layers[i]
        W_next, b_next = layers[i + 1]
        n = len(b)
        if net.hidden_activation in ("sigmoid", "tanh"):
            for j in np.flatnonzero(rng.random(n) < 0.5):
                W[:, j], b[j] = -W[:, j], -b[j]
                if net.hidden_activation == "sigmoid":
                    b_next += W_next[j]  # sigma(-z) = 1 - sigma(z)
                W_next[j] = -W_next[j]
        order = rng.permutation(n)
        layers[i] = [W[:, order], b[order]]
        layers[i + 1][0] = W_next[order]
    out = np.empty(net.n_params)
    for lay, (W, b) in zip(net.layers, layers):
        out[lay.w_start : lay.b_start], out[lay.b_start : lay.end] = W.reshape(-1), b
    return out


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_a_network_and_its_permuted_flipped_twin_share_one_canonical_vector(activation):
    rng = np.random.default_rng(1)
    net = MLP([3, 5, 4, 2], activation)
    X = rng.normal(size=(7, 3))
    for _ in range(5):
        theta = net.init(rng, 1, "uniform", 1.0)[0]
        other = twin(net, theta, rng)
        np.testing.assert_allclose(net.forward(other, X), net.forward(theta, X), rtol=1e-12, atol=1e-13)
        assert not np.allclose(other, theta)
        np.testing.assert_allclose(attractors.canonical(net, other), attractors.canonical(net, theta), atol=1e-12)
        # canonical keeps the function, and is idempotent
        canon = attractors.canonical(net, theta)
        np.testing.assert_allclose(net.forward(canon, X), net.forward(theta, X), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(attractors.canonical(net, canon), canon, atol=1e-12)


def test_align_undoes_a_permutation_and_flip():
    rng = np.random.default_rng(2)
    net = MLP([2, 6, 1], "sigmoid")
    theta = net.init(rng, 1, "uniform", 2.0)[0]
    other = twin(net, theta, rng)
    np.testing.assert_allclose(attractors.align(net, theta, other), theta, atol=1e-12)
    # Straight between twins the function is constant after alignment, not before.
    X = rng.normal(size=(5, 2))
    Y = net.forward(theta[None], X)[0]
    before = landscape.interpolate(net, X, Y, theta[None], other[None], 9)
    after = landscape.interpolate(net, X, Y, theta[None], attractors.align(net, theta, other)[None], 9)
    assert before.max() > 1e-3 and after.max() < 1e-20


def test_clusters_group_equal_functions_and_order_them_by_loss():
    points = np.array([[0.0, 1.0], [0.01, 1.02], [0.5, 0.5], [0.0, 0.99], [np.nan, 0.0], [0.52, 0.5]])
    loss = np.array([0.3, 0.2, 0.1, 0.25, 0.0, 0.15])
    ids = attractors.cluster(points, loss, tol=0.05)
    assert list(ids) == [1, 1, 0, 1, -1, 0]
    solved = np.array([False, False, True, False, False, False])
    assert list(attractors.attractor_ids(points, loss, solved, 0.05)) == [2, 2, 0, 2, -1, 1]


def test_mcnemar_on_a_constructed_table():
    a = np.array([True] * 10 + [True] * 7 + [False] * 1 + [False] * 2)
    b = np.array([True] * 10 + [False] * 7 + [True] * 1 + [False] * 2)
    result = attractors.mcnemar(a, b)
    assert (result["both"], result["a_only"], result["b_only"], result["neither"]) == (10, 7, 1, 2)
    assert result["p_value"] == pytest.approx(binomtest(7, 8, 0.5).pvalue)
    assert result["p_value"] == pytest.approx(2 * (1 + 8) / 2**8)  # exact: 2 P(X <= 1), X ~ B(8, 1/2)
    assert attractors.mcnemar(a, a)["p_value"] == 1.0


def test_holm_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> monotone: 0.06
    np.testing.assert_allclose(attractors.holm(p), [0.03, 0.06, 0.06, 0.02])


def test_paired_tests_pair_runs_by_index():
    rows = []
    for run in range(12):
        rows.append({"dataset": "d", "optimizer": "a", "run": run, "status": "solved"})
        rows.append({"dataset": "d", "optimizer": "b", "run": run, "status": "solved" if run < 2 else "stuck"})
        rows.append({"dataset": "d", "optimizer": "c", "run": run, "status": "solved" if run % 2 else "stuck"})
    tests = attractors.paired_tests(pd.DataFrame(rows))
    ab = tests[(tests["optimizer_a"] == "a") & (tests["optimizer_b"] == "b")].iloc[0]
    assert (ab["a_only"], ab["b_only"], ab["both"]) == (10, 0, 2)
    assert ab["p_value"] == pytest.approx(2 / 2**10)
    np.testing.assert_allclose(tests["p_holm"], attractors.holm(tests["p_value"].to_numpy()))


def test_barrier_on_a_constructed_pair():
    """A loss that is a double well along the line: L = (1 - s^2)^2 with s from -1 to 1 has a
    barrier of 1 at the middle; a convex loss has none."""
    net = MLP([1, 1], "identity", "identity", "mse")
    # L(w, b) for X = [1], Y = [0]: 1/2 (w + b)^2, convex: no barrier on any line.
    X, Y = np.ones((1, 1)), np.zeros((1, 1))
    curves = landscape.interpolate(net, X, Y, np.array([[1.0, 0.0]]), np.array([[-3.0, 1.0]]), 33)
    assert landscape.barrier(curves)[0] <= 1e-15
    s = np.linspace(-1, 1, 33)
    assert landscape.barrier(((1 - s**2) ** 2)[None])[0] == pytest.approx(1.0)


def test_filter_normalized_directions_and_projection():
    rng = np.random.default_rng(3)
    net = MLP([3, 4, 2])
    theta = net.init(rng, 1, "uniform", 2.0)[0]
    d = landscape.filter_normalized(net, theta, rng)
    for (W, _), (dW, db) in zip(net.unflatten(theta[None]), net.unflatten(d[None])):
        np.testing.assert_allclose(np.linalg.norm(dW[0], axis=0), np.linalg.norm(W[0], axis=0))
        assert np.all(db == 0)
    directions = np.stack([d, landscape.filter_normalized(net, theta, rng)])
    points = theta + np.array([[0.3, -0.2], [1.0, 2.0]]) @ directions
    np.testing.assert_allclose(landscape.project(points, theta, directions), [[0.3, -0.2], [1.0, 2.0]], atol=1e-12)
    grid, values = landscape.plane(net, rng.normal(size=(4, 3)), rng.random((4, 2)), theta, directions, 1.0, 5)
    assert values.shape == (5, 5) and grid[2] == 0.0


def test_interpolate_is_the_loss_at_evenly_spaced_points_of_each_segment():
    """Two segments, five points each: (1 - a) x + a y for a = 0, 1/4, ..., 1, ends included."""
    rng = np.random.default_rng(5)
    net = MLP([2, 3, 1], "tanh")
    X, Y = rng.normal(size=(6, 2)), rng.random((6, 1))
    x, y = rng.normal(size=(2, net.n_params)), rng.normal(size=(2, net.n_params))
    curves = landscape.interpolate(net, X, Y, x, y, 5)
    for k in range(2):
        for j, a in enumerate([0.0, 0.25, 0.5, 0.75, 1.0]):
            np.testing.assert_allclose(curves[k, j], net.loss(((1 - a) * x[k] + a * y[k])[None], X, Y)[0], rtol=1e-13)


def test_barrier_by_hand_on_uneven_ends():
    """Curve [2, 5, 1] over a = 0, 1/2, 1: the chord is [2, 1.5, 1], the rise 3.5 at the middle;
    [0, 1, 4] lies under its chord [0, 2, 4]: no rise (0, at the ends)."""
    np.testing.assert_allclose(landscape.barrier(np.array([[2.0, 5.0, 1.0], [0.0, 1.0, 4.0]])), [3.5, 0.0])


def test_plane_is_the_loss_at_center_plus_a_d1_plus_b_d2_indexed_b_a():
    rng = np.random.default_rng(6)
    net = MLP([3, 4, 2])
    X, Y = rng.normal(size=(4, 3)), rng.random((4, 2))
    center, directions = rng.normal(size=net.n_params), rng.normal(size=(2, net.n_params))
    grid, values = landscape.plane(net, X, Y, center, directions, 0.5, 3)
    np.testing.assert_array_equal(grid, [-0.5, 0.0, 0.5])
    for i, a in enumerate(grid):
        for j, b in enumerate(grid):
            point = center + a * directions[0] + b * directions[1]
            np.testing.assert_allclose(values[j, i], net.loss(point[None], X, Y)[0], rtol=1e-13)


def test_outputs_are_each_runs_outputs_on_every_pattern_in_one_row():
    rng = np.random.default_rng(7)
    net = MLP([2, 3, 2], "tanh", "softmax", "cross_entropy")
    theta, X = net.init(rng, 3, "glorot"), rng.normal(size=(5, 2))
    got = attractors.outputs(net, theta, X)
    assert got.shape == (3, 10)
    for r in range(3):
        np.testing.assert_array_equal(got[r], net.forward(theta[r : r + 1], X)[0].reshape(-1))


def test_a_run_exactly_tol_from_a_founder_joins_it():
    """'Within tol' includes tol: 0.5 from the founder joins it, 1.0 does not."""
    points, loss = np.array([[0.0], [0.5], [1.0]]), np.array([0.0, 1.0, 2.0])
    assert list(attractors.cluster(points, loss, tol=0.5)) == [0, 0, 1]


def test_holm_never_exceeds_one():
    """Sorted: 0.4 x 3 = 1.2 -> 1, 0.7 x 2 = 1.4 -> 1, 0.9 x 1 -> 1 (monotone)."""
    np.testing.assert_array_equal(attractors.holm(np.array([0.9, 0.4, 0.7])), [1.0, 1.0, 1.0])


def test_canonical_by_hand_with_zero_biases_and_tied_biases():
    """Sigmoid 2-3-1.  A bias of 0 already satisfies bias >= 0 (no flip); the unit of bias -0.5
    flips, (w, b, v, c) -> (-w, -b, -v, c + v); units are sorted by bias, then by the weight from
    input 0, then from input 1.  The result is canonical already: canonical leaves it as it is."""
    net = MLP([2, 3, 1])
    W, b = np.array([[0.0, 1.0, -1.0], [1.0, 0.0, 2.0]]), np.array([0.0, 0.0, -0.5])  # units (0, 1), (1, 0), (-1, 2)
    v, c = np.array([0.3, -0.7, 1.1]), 0.2
    theta = np.concatenate([W.reshape(-1), b, v, [c]])
    # Sorted: (w, b) = ((0, 1), 0), ((1, 0), 0), ((1, -2), 0.5); the flipped unit last.
    want = np.concatenate([[0.0, 1.0, 1.0, 1.0, 0.0, -2.0], [0.0, 0.0, 0.5], [0.3, -0.7, -1.1], [c + 1.1]])
    canon = attractors.canonical(net, theta)
    np.testing.assert_allclose(canon, want, rtol=1e-15)
    np.testing.assert_array_equal(attractors.canonical(net, canon), canon)
    X = np.random.default_rng(8).normal(size=(6, 2))
    np.testing.assert_allclose(net.forward(canon, X), net.forward(theta, X), rtol=1e-14)


def cell_runs() -> pd.DataFrame:
    """Two datasets and two optimizers, neither in alphabetical order; attractor 0 is the solved runs,
    -1 a diverged one."""
    cells = [
        (
            "xor",
            "rprop",
            [0, 0, 1, -1],
            ["solved", "solved", "stuck", "diverged"],
            [0.01, 0.03, 0.5, np.nan],
            ["solved", "solved", "saddle", "diverged"],
        ),
        ("xor", "gd", [1, 1, 2], ["stuck", "stuck", "stuck"], [0.5, 0.7, 0.9], ["plateau", "plateau", "saddle"]),
        ("and", "rprop", [0, 2], ["solved", "stuck"], [0.02, 0.4], ["solved", "minimum"]),
        ("and", "gd", [1], ["unfinished"], [0.3], ["unfinished"]),
    ]
    rows = []
    for dataset, optimizer, ids, statuses, losses, ends in cells:
        for run, (a, s, loss, e) in enumerate(zip(ids, statuses, losses, ends)):
            rows.append(
                {
                    "dataset": dataset,
                    "optimizer": optimizer,
                    "run": run,
                    "attractor": a,
                    "status": s,
                    "final_loss": loss,
                    "endpoint": e,
                }
            )
    return pd.DataFrame(rows)


def test_attractor_table_by_hand():
    table = attractors.attractor_table(cell_runs())
    want = pd.DataFrame(
        [
            ("xor", "rprop", 0, 2, 2 / 4, 0.02, "solved", 1.0),
            ("xor", "rprop", 1, 1, 1 / 4, 0.5, "saddle", 0.0),
            ("xor", "gd", 1, 2, 2 / 3, 0.6, "plateau", 0.0),
            ("xor", "gd", 2, 1, 1 / 3, 0.9, "saddle", 0.0),
            ("and", "rprop", 0, 1, 1 / 2, 0.02, "solved", 1.0),
            ("and", "rprop", 2, 1, 1 / 2, 0.4, "minimum", 0.0),
            ("and", "gd", 1, 1, 1.0, 0.3, "unfinished", 0.0),
        ],
        columns=["dataset", "optimizer", "attractor", "runs", "share", "loss", "endpoint", "solved"],
    )
    pd.testing.assert_frame_equal(table, want)
    assert attractors.attractor_table(cell_runs().drop(columns="endpoint"))["endpoint"].isna().all()


def test_paired_tests_keep_the_order_of_the_datasets_and_optimizers():
    tests = attractors.paired_tests(cell_runs()[lambda f: f["run"] == 0])  # run 0 of every cell: all paired
    assert list(zip(tests["dataset"], tests["optimizer_a"], tests["optimizer_b"])) == [
        ("xor", "rprop", "gd"),
        ("and", "rprop", "gd"),
    ]
    for _, row in tests.iterrows():  # rprop solved its run 0 on both, gd on neither
        assert (row["both"], row["a_only"], row["b_only"], row["neither"]) == (0, 1, 0, 0)
