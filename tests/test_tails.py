"""Saturated units keep their tails: activations, slopes, losses and gradients to a few ulp.

References are independent: mpmath at 2,400 bits (exact for float64 purposes) and scipy.special.
A relative error is measured in units of float64's epsilon (one ulp at 1.0).
"""

from __future__ import annotations

import warnings

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit, log_expit, logsumexp

from bench.mlp import HIDDEN_ACTIVATIONS, MLP, OUTPUT_LOSS_PAIRS, sigmoid, sigmoid_slope, tanh_slope

BACKENDS = ["numpy", "numba"]  # every check of the math holds for both paths

EPS = np.finfo(np.float64).eps
TINY = np.finfo(np.float64).tiny  # smallest normal float
PREC = 2400  # bits: 1 - sigma(700) = 1e-304 must survive a subtraction from 1


def exact(fn, z: np.ndarray) -> np.ndarray:
    """fn evaluated in mpmath at PREC bits, rounded to float64, elementwise."""
    with mp.workprec(PREC):
        return np.array([float(fn(mp.mpf(float(x)))) for x in np.ravel(z)]).reshape(np.shape(z))


def mp_sigmoid(x):
    return 1 / (1 + mp.exp(-x))


def relative_error(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    return np.abs(got - want) / np.abs(want)


finite_z = st.lists(st.floats(-745.0, 745.0, allow_nan=False), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(z=finite_z)
def test_logistic_and_its_slope_are_accurate_in_both_tails(z):
    z = np.array(z)
    value, slope = sigmoid(z), sigmoid_slope(z)
    want_value = exact(mp_sigmoid, z)
    want_slope = exact(lambda x: mp_sigmoid(x) * mp_sigmoid(-x), z)
    normal = want_value >= TINY
    assert np.all(relative_error(value[normal], want_value[normal]) <= 4 * EPS)
    normal = want_slope >= TINY
    assert np.all(relative_error(slope[normal], want_slope[normal]) <= 4 * EPS)
    # scipy's expit is an independent float64 implementation with the same accuracy.
    normal = want_value >= TINY
    assert np.all(relative_error(value[normal], expit(z[normal])) <= 8 * EPS)
    assert np.all((value >= 0) & (value <= 1) & (slope >= 0) & (slope <= 0.25 * (1 + 4 * EPS)))


@settings(max_examples=150, deadline=None)
@given(z=finite_z)
def test_tanh_slope_keeps_the_tail_that_one_minus_tanh_squared_loses(z):
    z = np.array(z)
    want = exact(lambda x: 1 / mp.cosh(x) ** 2, z)
    normal = want >= TINY
    assert np.all(relative_error(tanh_slope(z)[normal], want[normal]) <= 4 * EPS)


def test_the_tails_are_not_zero_where_the_math_is_not():
    # The old shortcuts: (1 + tanh(z/2)) / 2 is 0 below z = -37.4 and a (1 - a) is 0 above z = 37.
    z = np.array([-40.0, -300.0, 40.0, 300.0, 700.0])
    assert np.all(sigmoid(z[:2]) > 0)
    assert np.all(sigmoid_slope(z) > 0)
    assert np.all(tanh_slope(np.array([20.0, -20.0, 300.0])) > 0)
    np.testing.assert_allclose(sigmoid(np.array([-40.0])), np.exp(-40.0) / (1 + np.exp(-40.0)), rtol=4 * EPS)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_issue_example_has_the_exact_gradient(backend):
    """A 1-1 logistic unit at z = -40 with target 1: dE/dw = dE/db = (o - 1) o (1 - o) = -4.2e-18 ..."""
    net = MLP([1, 1], backend=backend)
    _, grad = net.loss_and_grad(np.array([[1.0, -40.0]]), np.array([[1.0]]), np.array([[1.0]]))
    want = exact(lambda z: (mp_sigmoid(z) - 1) * mp_sigmoid(z) * mp_sigmoid(-z), np.array([-39.0]))[0]
    np.testing.assert_allclose(grad[0], [want, want], rtol=8 * EPS)
    assert want < 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("target", [0.0, 1.0])
def test_output_losses_of_a_saturated_logistic_unit(target, backend):
    """One output unit, z = bias, summed loss of one pattern, against log_expit and mpmath."""
    z = np.concatenate([-np.geomspace(1e-3, 700, 40), np.geomspace(1e-3, 700, 40)])
    theta = np.stack([np.zeros_like(z), z], axis=1)  # w = 0, b = z
    X, Y = np.ones((1, 1)), np.full((1, 1), target)
    bce = MLP([1, 1], "identity", "sigmoid", "bce", backend=backend)
    sign = 1.0 if target == 1.0 else -1.0
    want_bce = -log_expit(sign * z)  # -log sigma(z) for t = 1, -log sigma(-z) for t = 0
    loss, grad = bce.loss_and_grad(theta, X, Y)
    ok = want_bce >= TINY
    assert np.all(relative_error(loss[ok], want_bce[ok]) <= 4 * EPS)
    want_delta = exact(lambda x: mp_sigmoid(x) - target, z)  # dE/db = o - t
    assert np.all(relative_error(grad[:, 1], want_delta) <= 4 * EPS)

    mse = MLP([1, 1], "identity", "sigmoid", "mse", backend=backend)
    loss, grad = mse.loss_and_grad(theta, X, Y)
    want_loss = exact(lambda x: (mp_sigmoid(x) - target) ** 2 / 2, z)
    want_grad = exact(lambda x: (mp_sigmoid(x) - target) * mp_sigmoid(x) * mp_sigmoid(-x), z)
    ok = np.abs(want_loss) >= TINY
    assert np.all(relative_error(loss[ok], want_loss[ok]) <= 8 * EPS)
    ok = np.abs(want_grad) >= TINY
    assert np.all(relative_error(grad[ok, 1], want_grad[ok]) <= 8 * EPS)
    assert np.all(np.sign(grad[:, 1]) == np.sign(want_grad))


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_cross_entropy_keeps_a_dominant_class_tail(backend):
    """Logits (0, -g, -2g): the loss of class 0 is log(1 + e^-g + e^-2g), not 0."""
    net = MLP([1, 3], "identity", "softmax", "cross_entropy", backend=backend)
    gaps = np.geomspace(1e-2, 700, 30)
    theta = np.zeros((len(gaps), net.n_params))
    theta[:, 3:] = np.stack([np.zeros_like(gaps), -gaps, -2 * gaps], axis=1)  # biases = logits
    X = np.zeros((1, 1))
    for target in range(3):
        Y = np.eye(3)[[target]]
        loss, grad = net.loss_and_grad(theta, X, Y)
        logits = theta[:, 3:]
        want = logsumexp(logits, axis=1) - logits[:, target]
        ok = want >= TINY
        assert np.all(relative_error(loss[ok], want[ok]) <= 4 * EPS)
        for k in range(3):
            # dE/dz_k = p_k - t_k, exactly in mpmath
            def d(g, k=k, target=target):
                zs = [mp.mpf(0), -g, -2 * g]
                p = mp.exp(zs[k]) / sum(mp.exp(v) for v in zs)
                return p - (1 if k == target else 0)

            want_k = exact(d, gaps)
            ok = np.abs(want_k) >= TINY
            assert np.all(relative_error(grad[ok, 3 + k], want_k[ok]) <= 8 * EPS), (target, k)


# ------------------------------------------------------------------ whole networks in deep saturation


def mp_network_loss(theta, X, Y, net: MLP):
    """The loss of one parameter row, in mpmath: an independent forward pass of the same network."""
    act = {
        "sigmoid": mp_sigmoid,
        "tanh": mp.tanh,
        "relu": lambda v: v if v > 0 else mp.mpf(0),
        "identity": lambda v: v,
    }[net.hidden_activation]
    total = mp.mpf(0)
    for x, y in zip(X, Y):
        a = [mp.mpf(float(v)) for v in x]
        for i, lay in enumerate(net.layers):
            W = theta[lay.w_start : lay.b_start]
            b = theta[lay.b_start : lay.end]
            z = [sum(a[j] * W[j * lay.n_out + k] for j in range(lay.n_in)) + b[k] for k in range(lay.n_out)]
            a = z if i == len(net.layers) - 1 else [act(v) for v in z]
        t = [mp.mpf(float(v)) for v in y]
        if net.loss_name == "cross_entropy":
            m = max(a)
            lse = m + mp.log(sum(mp.exp(v - m) for v in a))
            total += sum(tk * (lse - zk) for tk, zk in zip(t, a))
        elif net.loss_name == "bce":
            # -t log sigma(z) - (1 - t) log sigma(-z)
            total += sum(-tk * mp.log(mp_sigmoid(zk)) - (1 - tk) * mp.log(mp_sigmoid(-zk)) for tk, zk in zip(t, a))
        else:
            o = [mp_sigmoid(v) for v in a] if net.output_activation == "sigmoid" else a
            total += sum((ok - tk) ** 2 for ok, tk in zip(o, t)) / 2
    return total / len(X) if net.reduction == "mean" else total


def mp_gradient(theta_row: np.ndarray, X, Y, net: MLP) -> np.ndarray:
    """Gradient of one row by central differences in mpmath, with a step of 2^-1000 at PREC bits.

    The truncation error (of order step^2) and the rounding error (2^-PREC / step) are both far
    below float64's resolution, even for a gradient of 1e-300 against a loss of order 1.
    """
    with mp.workprec(PREC):
        base = [mp.mpf(float(v)) for v in theta_row]
        step = mp.mpf(2) ** -1000
        grad = []
        for p in range(len(base)):
            up, down = list(base), list(base)
            up[p] += step
            down[p] -= step
            grad.append(float((mp_network_loss(up, X, Y, net) - mp_network_loss(down, X, Y, net)) / (2 * step)))
    return np.array(grad)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 3), min_size=3, max_size=3),
    hidden=st.sampled_from(HIDDEN_ACTIVATIONS),
    pair=st.sampled_from(sorted(OUTPUT_LOSS_PAIRS)),
    reduction=st.sampled_from(["sum", "mean"]),
    scale=st.floats(15.0, 60.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_gradient_in_deep_saturation_matches_an_exact_reference(sizes, hidden, pair, reduction, scale, seed, backend):
    """Pre-activations of tens: the float64 gradient has the exact gradient's signs and values.

    Each component is a sum over patterns; where the patterns' contributions cancel, float64
    cannot carry the small difference, so the bound is relative to the sum of their magnitudes,
    and signs are compared where the exact component is not such a cancellation.  Nor where it
    is below float64's normal range (TINY, the bound's absolute floor): a component of 1.5e-323
    is a product whose factors (a slope of e^-746) underflow, and is 0 in any float64 arithmetic.
    """
    output, loss = pair
    if output == "softmax":
        sizes[-1] = max(sizes[-1], 2)
    rng = np.random.default_rng(seed)
    net = MLP(sizes, hidden, output, loss, reduction, backend=backend)
    theta = net.init(rng, 1, "uniform", 1.0) * scale
    X = rng.integers(0, 2, size=(3, sizes[0])).astype(float)
    if output == "softmax":
        Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], 3)]
    else:
        Y = rng.integers(0, 2, size=(3, sizes[-1])).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, grad = net.loss_and_grad(theta, X, Y)
    per_pattern = np.array([mp_gradient(theta[0], X[[p]], Y[[p]], net) for p in range(len(X))])
    if reduction == "mean":
        per_pattern /= len(X)  # the network's mean over 3 patterns; each call above saw one
    want, magnitude = per_pattern.sum(axis=0), np.abs(per_pattern).sum(axis=0)
    np.testing.assert_array_less(np.abs(grad[0] - want), 1e-12 * magnitude + TINY)
    clear = (np.abs(want) > 1e-6 * magnitude) & (np.abs(want) >= TINY)
    np.testing.assert_array_equal(np.sign(grad[0][clear]), np.sign(want[clear]))
