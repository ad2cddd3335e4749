"""The shared MLP: exact gradients, batched == single, stability, init, views."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import away_from_relu_kinks, central_differences, make_data
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.mlp import HIDDEN_ACTIVATIONS, MLP, OUTPUT_LOSS_PAIRS

PAIRS = sorted(OUTPUT_LOSS_PAIRS)
BACKENDS = ["numpy", "numba"]  # every check of the math holds for both paths


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), min_size=2, max_size=4),
    hidden=st.sampled_from(HIDDEN_ACTIVATIONS),
    pair=st.sampled_from(PAIRS),
    reduction=st.sampled_from(["sum", "mean"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_gradient_matches_central_differences(sizes, hidden, pair, reduction, seed, backend):
    output, loss = pair
    if output == "softmax":
        sizes[-1] = max(sizes[-1], 2)
    rng = np.random.default_rng(seed)
    net = MLP(sizes, hidden, output, loss, reduction, backend=backend)
    X, Y = make_data(rng, 5, sizes[0], sizes[-1], output)
    theta = away_from_relu_kinks(net, lambda: net.init(rng, 3, "uniform", 1.0), X)
    _, grad = net.loss_and_grad(theta, X, Y)
    numeric = central_differences(net, theta, X, Y)
    scale = np.linalg.norm(grad) + np.linalg.norm(numeric)
    assert np.linalg.norm(grad - numeric) <= 1e-6 * max(scale, 1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hidden", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("pair", PAIRS)
def test_batched_rows_equal_single_rows(hidden, pair, backend):
    output, loss = pair
    rng = np.random.default_rng(1)
    net = MLP([3, 5, 4, 2], hidden, output, loss, "sum", backend=backend)
    theta = net.init(rng, 7, "glorot")
    X, Y = make_data(rng, 11, 3, 2, output)
    loss_b, grad_b = net.loss_and_grad(theta, X, Y)
    out_b = net.forward(theta, X)
    for r in range(7):
        loss_1, grad_1 = net.loss_and_grad(theta[r : r + 1], X, Y)
        np.testing.assert_allclose(loss_1[0], loss_b[r], rtol=0, atol=1e-12)
        np.testing.assert_allclose(grad_1[0], grad_b[r], rtol=0, atol=1e-12)
        np.testing.assert_allclose(net.forward(theta[r], X)[0], out_b[r], rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_classic_loss_by_hand(backend):
    """E = 1/2 sum_p sum_k (o - t)^2 for a 1-1 network with known weights."""
    net = MLP([1, 1], "sigmoid", "sigmoid", "mse", "sum", backend=backend)
    theta = np.array([[2.0, -1.0]])  # w = 2, b = -1
    X = np.array([[0.0], [1.0]])
    Y = np.array([[0.0], [1.0]])
    o = 1 / (1 + np.exp(-np.array([-1.0, 1.0])))
    expected = 0.5 * ((o[0] - 0) ** 2 + (o[1] - 1) ** 2)
    assert net.loss(theta, X, Y)[0] == pytest.approx(expected, rel=1e-14)
    mean_net = MLP([1, 1], "sigmoid", "sigmoid", "mse", "mean", backend=backend)
    assert mean_net.loss(theta, X, Y)[0] == pytest.approx(expected / 2, rel=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_cross_entropy_by_hand(backend):
    net = MLP([1, 3], "identity", "softmax", "cross_entropy", "sum", backend=backend)
    theta = np.array([[0.0, 0.0, 0.0, 1.0, 2.0, 3.0]])  # W = 0, b = (1, 2, 3)
    X, Y = np.zeros((1, 1)), np.array([[0.0, 1.0, 0.0]])
    p = np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum()
    assert net.loss(theta, X, Y)[0] == pytest.approx(-np.log(p[1]), rel=1e-14)
    np.testing.assert_allclose(net.forward(theta, X)[0, 0], p, rtol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hidden", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("pair", PAIRS)
def test_huge_weights_are_stable_and_silent(hidden, pair, backend):
    output, loss = pair
    rng = np.random.default_rng(2)
    net = MLP([2, 3, 2], hidden, output, loss, backend=backend)
    theta = net.init(rng, 4, "uniform", 1.0) * 1e6
    X, Y = make_data(rng, 6, 2, 2, output)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad = net.loss_and_grad(theta, X, Y)
        out = net.forward(theta, X)
    assert np.all(np.isfinite(out))
    if hidden != "relu" and hidden != "identity" or output != "identity":
        # Saturating units and log-sum-exp losses stay finite at any weight size.
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("backend", BACKENDS)
def test_overflowing_weights_give_nonfinite_loss_without_warnings(backend):
    net = MLP([2, 2, 1], "identity", "identity", "mse", backend=backend)
    theta = np.full((2, net.n_params), 1e300)
    X, Y = np.ones((3, 2)), np.zeros((3, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grad = net.loss_and_grad(theta, X, Y)
    assert not np.any(np.isfinite(value))


def test_unflatten_views_share_memory_and_layout():
    net = MLP([2, 3, 1])
    theta = np.arange(2 * net.n_params, dtype=np.float64).reshape(2, net.n_params)
    (W1, b1), (W2, b2) = net.unflatten(theta)
    assert W1.shape == (2, 2, 3) and b1.shape == (2, 3) and W2.shape == (2, 3, 1) and b2.shape == (2, 1)
    for view in (W1, b1, W2, b2):
        assert np.shares_memory(view, theta)
    assert W1[0, 1, 2] == 5.0 and b1[0, 0] == 6.0 and W2[0, 0, 0] == 9.0 and b2[1, 0] == net.n_params + 12.0
    W1[1, 0, 0] = -1.0
    assert theta[1, 0] == -1.0


def test_init_schemes_and_per_run_generators():
    net = MLP([4, 50, 3])
    assert net.n_params == 4 * 50 + 50 + 50 * 3 + 3
    uniform = net.init(np.random.default_rng(0), 20, "uniform", 0.3)
    assert uniform.shape == (20, net.n_params) and uniform.dtype == np.float64
    assert np.abs(uniform).max() <= 0.3 and np.abs(uniform).max() > 0.29
    glorot = net.init(np.random.default_rng(0), 20, "glorot")
    for (W, b), bound in zip(net.unflatten(glorot), [np.sqrt(6 / (4 + 50)), np.sqrt(6 / (50 + 3))]):
        # U(-a, a) with a = sqrt(6 / (in + out)): the range is filled, and var = a^2 / 3 (within
        # 5 standard errors; the standard error of the mean of w^2 is a^2 sqrt(4/45 / n)).
        assert np.abs(W).max() <= bound and np.abs(W).max() > 0.99 * bound and np.all(b == 0)
        assert abs(np.mean(W**2) - bound**2 / 3) < 5 * bound**2 * np.sqrt(4 / 45 / W.size)
        assert abs(W.mean()) < 5 * bound * np.sqrt(1 / 3 / W.size)
    he = net.init(np.random.default_rng(0), 200, "he")
    (W1, _), _ = net.unflatten(he)
    assert W1.std() == pytest.approx(np.sqrt(2 / 4), rel=0.05)
    # One generator per run: row r depends on its own generator only, not on how many rows.
    gens = [np.random.default_rng(s) for s in range(5)]
    five = net.init(gens, 5, "he")
    alone = net.init([np.random.default_rng(3)], 1, "he")
    np.testing.assert_array_equal(five[3], alone[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layer_sizes": [2]}, "at least an input and an output"),
        ({"layer_sizes": [2, 1], "hidden_activation": "softplus"}, "hidden_activation must be one of"),
        ({"layer_sizes": [2, 1], "output_activation": "softmax", "loss": "mse"}, "is not supported"),
        ({"layer_sizes": [2, 1], "reduction": "avg"}, "reduction must be one of"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLP(**kwargs)


def test_wrong_theta_shape_is_named():
    net = MLP([2, 2, 1])
    with pytest.raises(ValueError, match=r"theta must have shape \(n_runs, 9\)"):
        net.loss(np.zeros((3, 8)), np.zeros((4, 2)), np.zeros((4, 1)))


def test_uniform_init_defaults_and_fills_its_symmetric_range():
    net = MLP([3, 4, 2])
    theta = net.init(np.random.default_rng(5), 400)  # scheme "uniform", scale None -> U(-0.5, 0.5)
    assert theta.max() <= 0.5 and theta.min() >= -0.5
    assert theta.max() > 0.49 and theta.min() < -0.49
    n = theta.size
    assert abs(theta.mean()) < 5 * 0.5 * np.sqrt(1 / 3 / n)
    assert abs(np.mean(theta**2) - 0.25 / 3) < 5 * 0.25 * np.sqrt(4 / 45 / n)
    with pytest.raises(ValueError, match="init scale must be > 0, got 0"):
        net.init(np.random.default_rng(0), 1, "uniform", 0.0)


@pytest.mark.parametrize("scheme", ["uniform", "glorot", "he"])
def test_a_generator_per_run_draws_what_one_generator_draws_for_one_row(scheme):
    net = MLP([3, 4, 2])
    one = net.init(np.random.default_rng(9), 1, scheme)
    per_run = net.init([np.random.default_rng(9)], 1, scheme)
    np.testing.assert_array_equal(one, per_run)


@pytest.mark.parametrize("shape", [(4,), (4, 3), (4, 2, 1)])
def test_wrong_input_shape_is_named(shape):
    net = MLP([2, 2, 1])
    with pytest.raises(ValueError, match=r"X must have shape \(N, 2\)"):
        net.loss(np.zeros((1, net.n_params)), np.zeros(shape), np.zeros((4, 1)))


def test_large_batches_go_in_groups_with_the_same_numbers(monkeypatch):
    """Rows are evaluated in cache-sized groups when a batch is large; every output of the
    grouped path equals the one-group path."""
    from bench import mlp

    rng = np.random.default_rng(6)
    net = MLP([3, 5, 2], "tanh", "softmax", "cross_entropy", "mean", backend="numpy")
    theta = net.init(rng, 11, "glorot")
    X, Y = make_data(rng, 9, 3, 2, "softmax")
    whole = net.evaluate(theta, X, Y)
    monkeypatch.setattr(mlp, "_GROUP_ELEMENTS", 9 * 5 * 3)  # groups of 3 rows: 4 groups, the last short
    grouped = net.evaluate(theta, X, Y)
    for a, b in zip(whole, grouped):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    loss, grad, out = net.evaluate(theta, X, Y, need_grad=False, need_output=False)
    assert grad is None and out is None
    np.testing.assert_allclose(loss, whole[0], rtol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_gradient_with_soft_targets(backend):
    """Targets that are not one-hot (label smoothing, rows not summing to 1) take the general
    delta p * sum(t) - t: checked against central differences."""
    rng = np.random.default_rng(7)
    net = MLP([2, 3, 3], "tanh", "softmax", "cross_entropy", "sum", backend=backend)
    theta = net.init(rng, 2, "glorot")
    X = rng.normal(size=(4, 2))
    Y = rng.random((4, 3))  # soft and unnormalized
    _, grad = net.loss_and_grad(theta, X, Y)
    numeric = central_differences(net, theta, X, Y)
    assert np.linalg.norm(grad - numeric) <= 1e-7 * np.linalg.norm(numeric)


def test_he_init_draws_centred_weights_and_zero_biases():
    """He: weights N(0, 2 / n_in) in every layer (centred, not just the right spread), biases 0."""
    net = MLP([4, 50, 3])
    theta = net.init(np.random.default_rng(4), 200, "he")
    for (W, b), lay in zip(net.unflatten(theta), net.layers):
        sd = np.sqrt(2 / lay.n_in)
        assert abs(W.mean()) < 5 * sd / np.sqrt(W.size)
        assert W.std() == pytest.approx(sd, rel=0.05)
        assert np.all(b == 0)


def plain_softmax_cross_entropy(net: MLP, row: np.ndarray, X: np.ndarray, Y: np.ndarray) -> tuple[float, np.ndarray]:
    """Loss and probabilities of one parameter row by a plain forward pass and log-sum-exp."""
    a = X
    layers = net.unflatten(row)
    for W, b in layers[:-1]:
        a = np.tanh(a @ W[0] + b[0])
    W, b = layers[-1]
    z = a @ W[0] + b[0]
    m = z.max(axis=1, keepdims=True)
    log_norm = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    return float(np.sum(Y * (log_norm - z))), np.exp(z - log_norm)


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_cross_entropy_with_tied_top_logits(backend):
    """Tied largest logits (zero weights: every class ties) give log K per pattern and p = 1/K,
    and the gradient there is the central differences'."""
    net = MLP([2, 3, 4], "tanh", "softmax", "cross_entropy", "sum", backend=backend)
    X = np.random.default_rng(8).normal(size=(5, 2))
    Y = np.eye(4)[[0, 1, 2, 3, 1]]
    theta = np.zeros((1, net.n_params))
    loss, grad, out = net.evaluate(theta, X, Y)
    assert loss[0] == pytest.approx(5 * np.log(4), rel=1e-14)
    np.testing.assert_allclose(out[0], 0.25, rtol=1e-14)
    np.testing.assert_allclose(grad, central_differences(net, theta, X, Y), rtol=0, atol=1e-8)
    # Two of three classes tie at the top: log(2 e + 1) - z_target.
    net = MLP([1, 3], "identity", "softmax", "cross_entropy", "sum", backend=backend)
    theta = np.array([[0.0, 0.0, 0.0, 1.0, 1.0, 0.0]])  # W = 0, b = (1, 1, 0)
    X, Y = np.zeros((2, 1)), np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    expected = 2 * np.log(2 * np.e + 1) - 1.0
    assert net.loss(theta, X, Y)[0] == pytest.approx(expected, rel=1e-14)
    np.testing.assert_allclose(net.forward(theta, X)[0, 0], np.array([np.e, np.e, 1]) / (2 * np.e + 1), rtol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_gradient_with_one_hot_and_soft_targets_mixed(backend):
    """Some patterns one-hot, others soft with sums other than 1: each pattern's delta is
    p * sum(t) - t, checked against central differences."""
    rng = np.random.default_rng(10)
    net = MLP([2, 3, 3], "tanh", "softmax", "cross_entropy", "sum", backend=backend)
    theta = net.init(rng, 2, "glorot")
    X = rng.normal(size=(4, 2))
    Y = np.vstack([np.eye(3)[[0, 2]], rng.random((2, 3)) * 2])
    _, grad = net.loss_and_grad(theta, X, Y)
    numeric = central_differences(net, theta, X, Y)
    assert np.linalg.norm(grad - numeric) <= 1e-7 * np.linalg.norm(numeric)


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_with_more_than_32_classes(backend):
    """Many classes (the max over classes takes another path): loss and probabilities equal a
    plain log-sum-exp per row, and the gradient is the central differences'."""
    rng = np.random.default_rng(11)
    net = MLP([3, 4, 40], "tanh", "softmax", "cross_entropy", "mean", backend=backend)
    theta = net.init(rng, 2, "glorot", 3.0)
    X = rng.normal(size=(5, 3))
    Y = np.eye(40)[rng.integers(0, 40, 5)]
    loss, grad, out = net.evaluate(theta, X, Y)
    for r in range(2):
        plain_loss, plain_p = plain_softmax_cross_entropy(net, theta[r], X, Y)
        assert loss[r] == pytest.approx(plain_loss / 5, rel=1e-12)
        np.testing.assert_allclose(out[r], plain_p, rtol=1e-12, atol=1e-300)
    numeric = central_differences(net, theta, X, Y)
    assert np.linalg.norm(grad - numeric) <= 1e-7 * np.linalg.norm(numeric)


def test_a_batch_larger_than_one_cache_group_at_the_real_group_size():
    """With many patterns a batch splits into several groups at the module's own group size;
    every row's loss and outputs are a plain forward pass's, its gradient a single row's."""
    net = MLP([2, 1, 1], "tanh", "sigmoid", "mse", "mean", backend="numpy")
    rng = np.random.default_rng(12)
    n, runs = 4096, 300  # groups of 2**19 // 4096 = 128 rows: 3 groups, the last short
    X, Y = rng.normal(size=(n, 2)), rng.random((n, 1))
    theta = net.init(rng, runs, "uniform", 1.0)
    loss, grad, out = net.evaluate(theta, X, Y)
    (W1, b1), (W2, b2) = net.unflatten(theta)
    for r in range(runs):
        o = 1 / (1 + np.exp(-(np.tanh(X @ W1[r] + b1[r]) @ W2[r] + b2[r])))
        np.testing.assert_allclose(out[r], o, rtol=1e-13)
        assert loss[r] == pytest.approx(0.5 * np.sum((o - Y) ** 2) / n, rel=1e-12)
    for r in (0, 127, 128, 299):
        np.testing.assert_allclose(grad[r], net.loss_and_grad(theta[r], X, Y)[1][0], rtol=0, atol=1e-15)


def test_layers_are_immutable_values():
    """A net's layout (its Layer records) cannot be changed after construction, and equal
    layouts compare and hash equal."""
    import dataclasses

    net = MLP([2, 3, 1])
    with pytest.raises(dataclasses.FrozenInstanceError):
        net.layers[0].n_out = 4
    assert hash(net.layers) == hash(MLP([2, 3, 1]).layers) and net.layers == MLP([2, 3, 1]).layers
