"""Helpers shared by several test modules."""

from __future__ import annotations

import numpy as np

from bench.mlp import MLP


def min_abs_hidden_preactivation(net: MLP, theta: np.ndarray, X: np.ndarray) -> float:
    """The smallest |z| of any hidden unit, pattern and run, by a plain forward pass."""
    smallest = np.inf
    for row in theta:
        a = X
        for W, b in net.unflatten(row)[:-1]:
            z = a @ W[0] + b[0]
            smallest = min(smallest, np.abs(z).min())
            a = np.maximum(z, 0.0)
    return smallest


def away_from_relu_kinks(net: MLP, draw, X: np.ndarray, margin: float = 1e-3) -> np.ndarray:
    """Parameter rows from ``draw()`` whose relu units are all at least ``margin`` from their kink
    (differences across a kink are not derivatives); any draw for other activations."""
    theta = draw()
    if net.hidden_activation != "relu":
        return theta
    for _ in range(100):
        if min_abs_hidden_preactivation(net, theta, X) >= margin:
            return theta
        theta = draw()
    raise AssertionError("no draw keeps the relu units off their kinks")


def make_data(rng: np.random.Generator, n: int, n_in: int, n_out: int, output: str) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, n_in) and targets that suit the output: one-hot, in [0, 1], or real."""
    X = rng.normal(size=(n, n_in))
    if output == "softmax":
        Y = np.eye(n_out)[rng.integers(0, n_out, n)]
    elif output == "sigmoid":
        Y = rng.random((n, n_out))
    else:
        Y = rng.normal(size=(n, n_out))
    return X, Y


def central_differences(net: MLP, theta: np.ndarray, X: np.ndarray, Y: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Numerical gradient, all runs at once: perturb parameter p in every row."""
    grad = np.empty_like(theta)
    for p in range(net.n_params):
        step = np.zeros(net.n_params)
        step[p] = h
        grad[:, p] = (net.loss(theta + step, X, Y) - net.loss(theta - step, X, Y)) / (2 * h)
    return grad
