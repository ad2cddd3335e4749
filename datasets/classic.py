"""The classic benchmark problems of the neural-network optimization literature.

All use logistic-unit targets in {0, 1}, summed squared error by default and the 40-20-40
success rule (every output of every pattern in the correct 40 % of its range).
"""

from __future__ import annotations

import itertools

import numpy as np
from bench.datasets.base import Dataset, Success
from bench.datasets.registry import register

from bench.memory import available_bytes, human


def _classic(name: str, X: np.ndarray, Y: np.ndarray, hidden: tuple[int, ...], description: str) -> Dataset:
    return Dataset(
        name=name,
        X_train=X.astype(np.float64),
        Y_train=Y.astype(np.float64),
        X_test=None,
        Y_test=None,
        task="classification",
        output_activation="sigmoid",
        loss="mse",
        success=Success("40-20-40"),
        hidden=hidden,
        description=description,
    )


@register("xor")
def xor() -> Dataset:
    """Exclusive or: 4 patterns, 2 inputs, 1 output; classically a 2-2-1 network."""
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    Y = np.array([[0], [1], [1], [0]])
    return _classic("xor", X, Y, (2,), "exclusive or, 4 patterns")


@register("parity")
def parity(n_bits: int = 4) -> Dataset:
    """N-bit parity: all 2^n binary patterns, target 1 when the number of ones is odd."""
    if not 2 <= n_bits <= 16:
        raise ValueError(f"n_bits must be in [2, 16], got {n_bits}")
    X = np.array(list(itertools.product([0, 1], repeat=n_bits)))
    Y = (X.sum(axis=1) % 2)[:, None]
    return _classic("parity", X, Y, (n_bits,), f"{n_bits}-bit parity, {2**n_bits} patterns")


@register("encoder")
def encoder(n: int = 8, m: int = 3) -> Dataset:
    """N-M-N encoder: n one-hot patterns reproduced at the output through m hidden units."""
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    if not 1 <= m:
        raise ValueError(f"m (hidden units) must be >= 1, got {m}")
    need, available = 2 * 8 * n * n, available_bytes()  # inputs and targets, n x n float64 each
    if need > available:
        raise ValueError(
            f"the {n}-{m}-{n} encoder's n x n patterns and targets need {human(need)}; this machine has "
            f"{human(available)} available: use a smaller n"
        )
    eye = np.eye(n)
    return _classic("encoder", eye, eye, (m,), f"{n}-{m}-{n} encoder, {n} one-hot patterns")


@register("two_spirals")
def two_spirals(points_per_spiral: int = 97) -> Dataset:
    """Two interleaved spirals (Lang & Witbrock 1988, the CMU benchmark): 194 points.

    Point i of the first spiral has angle i pi / 16 and radius 6.5 (104 - i) / 104, at
    (r sin a, r cos a), class 1; the second spiral is its reflection through the origin, class
    0.  Coordinates are left unscaled, as in the benchmark.
    """
    if not 2 <= points_per_spiral <= 97:
        raise ValueError(f"points_per_spiral must be in [2, 97], got {points_per_spiral}")
    i = np.arange(points_per_spiral)
    angle = i * np.pi / 16.0
    radius = 6.5 * (104 - i) / 104.0
    xy = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    X = np.empty((2 * points_per_spiral, 2))
    X[0::2], X[1::2] = xy, -xy
    Y = np.tile([[1.0], [0.0]], (points_per_spiral, 1))
    return _classic("two_spirals", X, Y, (5, 5, 5), f"two spirals, {2 * points_per_spiral} points")
