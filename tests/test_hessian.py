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


def test_huge_weights_give_finite_silent_hessians():
    rng = np.random.default_rng(2)
    net = MLP([2, 3, 1], "sigmoid", "sigmoid", "mse")
    theta = net.init(rng, 3, "uniform", 1.0) * 1e5
    X, Y = rng.normal(size=(4, 2)), rng.random((4, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        H = net.hessian(theta, X, Y)
    assert np.all(np.isfinite(H))


def test_bad_direction_shape_is_named():
    net = MLP([2, 2, 1])
    with pytest.raises(ValueError, match=r"V must have the shape of theta, \(1, 9\)"):
        net.hvp(np.zeros((1, 9)), np.zeros((4, 2)), np.zeros((4, 1)), np.zeros((1, 8)))
