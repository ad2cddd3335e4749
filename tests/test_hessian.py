"""The exact Hessian (Pearlmutter's R-operator) against finite differences of the gradient and mpmath."""

from __future__ import annotations

import warnings

import mpmath as mp
import numpy as np
import pytest
from helpers import away_from_relu_kinks, make_data
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.mlp import HIDDEN_ACTIVATIONS, MLP, OUTPUT_LOSS_PAIRS


def gradient_differences(net, theta, X, Y, h=1e-5):
    """Column p of each run's Hessian as central differences of the analytic gradient."""
    H = np.empty((len(theta), net.n_params, net.n_params))
    for p in range(net.n_params):
        step = np.zeros(net.n_params)
        step[p] = h
        H[:, :, p] = (net.loss_and_grad(theta + step, X, Y)[1] - net.loss_and_grad(theta - step, X, Y)[1]) / (2 * h)
    return H


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), min_size=2, max_size=4),
    hidden=st.sampled_from(HIDDEN_ACTIVATIONS),
    pair=st.sampled_from(sorted(OUTPUT_LOSS_PAIRS)),
    reduction=st.sampled_from(["sum", "mean"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_hessian_matches_differences_of_the_gradient(sizes, hidden, pair, reduction, seed):
    output, loss = pair
    if output == "softmax":
        sizes[-1] = max(sizes[-1], 2)
    rng = np.random.default_rng(seed)
    net = MLP(sizes, hidden, output, loss, reduction)
    X, Y = make_data(rng, 5, sizes[0], sizes[-1], output)
    theta = away_from_relu_kinks(net, lambda: net.init(rng, 2, "uniform", 1.0), X)
    H = net.hessian(theta, X, Y)
    numeric = gradient_differences(net, theta, X, Y)
    scale = np.abs(numeric).max() + np.abs(H).max()
    assert np.abs(H - numeric).max() <= 1e-6 * max(scale, 1e-12)
    np.testing.assert_array_equal(H, np.swapaxes(H, 1, 2))


def test_hvp_is_the_hessian_times_the_direction():
    rng = np.random.default_rng(3)
    net = MLP([3, 5, 2], "tanh", "softmax", "cross_entropy", "mean")
    theta = net.init(rng, 4, "glorot")
    X, Y = make_data(rng, 7, 3, 2, "softmax")
    V = rng.normal(size=theta.shape)
    H = net.hessian(theta, X, Y)
    np.testing.assert_allclose(net.hvp(theta, X, Y, V), np.einsum("rpq,rq->rp", H, V), rtol=1e-10, atol=1e-13)
    # Row r does not depend on the other rows.
    np.testing.assert_array_equal(net.hvp(theta[2:3], X, Y, V[2:3])[0], net.hvp(theta, X, Y, V)[2])


@pytest.mark.parametrize(
    "sizes, hidden, output, loss, reduction, scale",
    [
        ([3, 4, 5, 3, 2], "tanh", "softmax", "cross_entropy", "mean", 1.0),  # three hidden layers
        ([2, 4, 3, 5, 1], "sigmoid", "sigmoid", "mse", "sum", 1.0),
        ([2, 6, 1], "sigmoid", "sigmoid", "mse", "sum", 30.0),  # saturated hidden units
        ([3, 5, 4, 2], "tanh", "identity", "mse", "mean", 30.0),  # saturated, two hidden layers
        ([4, 3, 3], "relu", "sigmoid", "bce", "sum", 1.0),
        ([3, 5, 4, 2], "identity", "identity", "mse", "mean", 1.0),
        ([3, 2], "sigmoid", "softmax", "cross_entropy", "sum", 1.0),  # no hidden layer
    ],
)
def test_hessian_rows_are_hessian_vector_products_with_unit_vectors(sizes, hidden, output, loss, reduction, scale):
    """The full Hessian (one pass per run, unit responses) against the independent path: hvp with
    each unit vector as the direction, one column at a time."""
    rng = np.random.default_rng(11)
    net = MLP(sizes, hidden, output, loss, reduction)
    X, Y = make_data(rng, 9, sizes[0], sizes[-1], output)
    theta = net.init(rng, 2, "uniform", scale)
    if scale > 1.0:  # the first hidden layer is deep in its tails somewhere
        W, b = net.unflatten(theta)[0]
        assert np.abs(X @ W + b[:, None, :]).max() > 50.0
    H = net.hessian(theta, X, Y)
    for r in range(len(theta)):
        columns = net.hvp(np.repeat(theta[r : r + 1], net.n_params, axis=0), X, Y, np.eye(net.n_params))
        assert np.abs(H[r] - columns).max() <= 1e-12 * np.abs(H[r]).max()
    np.testing.assert_array_equal(H, np.swapaxes(H, 1, 2))


@pytest.mark.parametrize("budget", [1, 40, 300])
def test_hessian_in_small_groups_of_runs_units_and_rows_is_the_same(monkeypatch, budget):
    """A small memory budget splits runs, units and rows into groups: the same Hessian."""
    import bench.hessian

    rng = np.random.default_rng(5)
    net = MLP([3, 4, 5, 2], "sigmoid", "softmax", "cross_entropy", "sum")
    X, Y = make_data(rng, 6, 3, 2, "softmax")
    theta = net.init(rng, 3, "uniform", 1.0)
    whole = net.hessian(theta, X, Y)
    monkeypatch.setattr(bench.hessian, "_MEMORY_ELEMENTS", budget)
    grouped = net.hessian(theta, X, Y)
    assert np.abs(grouped - whole).max() <= 1e-14 * np.abs(whole).max()
    np.testing.assert_array_equal(grouped, np.swapaxes(grouped, 1, 2))


def test_hessian_of_a_saturated_unit_against_mpmath():
    """One logistic unit z = w + b (x = 1), target 1, squared error, deep in the negative tail:
    H = L''(z) [[1, 1], [1, 1]] with L'' = sigma'^2 + (sigma - 1) sigma''."""
    net = MLP([1, 1])
    X, Y = np.ones((1, 1)), np.ones((1, 1))
    for z in (-5.0, -40.0, -300.0, 40.0):
        H = net.hessian(np.array([[z / 2, z / 2]]), X, Y)[0]
        with mp.workprec(2400):
            s = 1 / (1 + mp.exp(-mp.mpf(z)))
            d1 = s * (1 - s)
            d2 = d1 * (1 - 2 * s)
            want = float(d1**2 + (s - 1) * d2)
        np.testing.assert_allclose(H, want * np.ones((2, 2)), rtol=1e-13)
        assert want != 0.0


def test_hessian_of_a_saturated_softmax_against_mpmath():
    """Softmax cross-entropy without hidden units, logits 38 or more apart (p_top rounds to 1):
    H[(i, o), (j, m)] = sum_n x_i x_j (delta_om p_o - p_o p_m) with x = [inputs, 1], each entry to
    1e-12 of itself, for the Hessian and for hvp (the top class's p (1 - p) is not a difference
    that rounds to 0)."""
    net = MLP([2, 3], "sigmoid", "softmax", "cross_entropy", "sum")
    X = np.array([[1.0, 0.5], [0.25, -1.0], [-0.5, 0.75]])
    Y = np.eye(3)[[0, 1, 0]]
    W, b = np.array([[120.0, 6.0, -15.0], [-9.0, 93.0, 18.0]]), np.array([1.0, -2.0, 0.5])
    theta = np.concatenate([W.ravel(), b])[None, :]
    with mp.workdps(60):
        want = mp.zeros(9, 9)
        for x in X:
            x1 = [mp.mpf(v) for v in (*x, 1.0)]
            z = [sum(x1[i] * mp.mpf(float(w)) for i, w in enumerate((*W[:, o], b[o]))) for o in range(3)]
            e = [mp.exp(v - max(z)) for v in z]
            p = [v / sum(e) for v in e]
            assert float(1 - max(p)) < 2.0**-53  # 1 - p_top rounds to 0
            for i in range(3):
                for j in range(3):
                    for o in range(3):
                        for m in range(3):
                            want[i * 3 + o, j * 3 + m] += x1[i] * x1[j] * ((p[o] if o == m else 0) - p[o] * p[m])
        want = np.array(want.tolist(), dtype=float)
    assert np.all(want != 0.0)
    for got in (net.hessian(theta, X, Y)[0], net.hvp(np.repeat(theta, 9, axis=0), X, Y, np.eye(9))):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_huge_weights_give_finite_silent_hessians():
    rng = np.random.default_rng(2)
    net = MLP([2, 3, 1], "sigmoid", "sigmoid", "mse")
    theta = net.init(rng, 3, "uniform", 1.0) * 1e5
    X, Y = rng.normal(size=(4, 2)), rng.random((4, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        H = net.hessian(theta, X, Y)
    assert np.all(np.isfinite(H))


@pytest.mark.parametrize("hidden", HIDDEN_ACTIVATIONS)
def test_non_finite_weights_give_nan_hessians_silently(hidden):
    rng = np.random.default_rng(4)
    net = MLP([3, 4, 2], hidden, "softmax", "cross_entropy")
    X, Y = make_data(rng, 5, 3, 2, "softmax")
    theta = net.init(rng, 4, "uniform", 1.0)
    theta[0, 3], theta[1, -1], theta[2, 20] = np.inf, np.nan, -np.inf  # first layer, output bias, second layer
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        H = net.hessian(theta, X, Y)
    assert np.isnan(H[:3]).all()
    np.testing.assert_array_equal(H[3], net.hessian(theta[3:], X, Y)[0])


def test_bad_direction_shape_is_named():
    net = MLP([2, 2, 1])
    with pytest.raises(ValueError, match=r"V must have the shape of theta, \(1, 9\)"):
        net.hvp(np.zeros((1, 9)), np.zeros((4, 2)), np.zeros((4, 1)), np.zeros((1, 8)))
