"""The loss around end points: along straight lines (barriers) and on 2-D slices.

Small functions that take the model and return arrays, in the spirit of loss-landscapes and of
Li et al. (2018, "Visualizing the loss landscape of neural nets"); plotting is elsewhere.

* ``interpolate``: the loss at ``points`` evenly spaced points of the segments x_k -> y_k.
* ``barrier``: max over the segment of L((1-a) x + a y) - ((1-a) L(x) + a L(y)): how far the
  loss rises above the straight line between the ends (0 for a convex path).
* ``filter_normalized``: a random direction whose every unit's incoming weights have the norm
  of that unit's weights in theta (biases left out), so a step of 1 is "one weight scale" in
  every unit whatever its size.
* ``plane``: the loss on a grid over [-r, r]^2 around a point in two such directions, and
  ``project`` for a trajectory's coordinates in that plane.
"""

from __future__ import annotations

import numpy as np

from bench.mlp import MLP


def interpolate(net: MLP, X: np.ndarray, Y: np.ndarray, x: np.ndarray, y: np.ndarray, points: int) -> np.ndarray:
    """Losses (K, points) along the K segments from x (K, P) to y (K, P), ends included."""
    alphas = np.linspace(0.0, 1.0, points)
    rows = x[:, None, :] * (1.0 - alphas)[None, :, None] + y[:, None, :] * alphas[None, :, None]
    with np.errstate(all="ignore"):
        return net.loss(rows.reshape(-1, x.shape[1]), X, Y).reshape(len(x), points)


def barrier(losses: np.ndarray) -> np.ndarray:
    """The largest rise of each loss curve (K, points) above the chord between its ends, (K,)."""
    alphas = np.linspace(0.0, 1.0, losses.shape[1])
    with np.errstate(invalid="ignore"):  # a line to a diverged end point: NaN, as data
        chord = losses[:, :1] * (1.0 - alphas) + losses[:, -1:] * alphas
        return np.max(losses - chord, axis=1)


def filter_normalized(net: MLP, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random direction (P,) normalised unit by unit to theta's weights (Li et al. 2018)."""
    direction = np.zeros(net.n_params)
    for lay, (W, _) in zip(net.layers, net.unflatten(theta[None, :])):
        d = rng.normal(size=(lay.n_in, lay.n_out))
        d *= np.linalg.norm(W[0], axis=0) / np.maximum(np.linalg.norm(d, axis=0), 1e-300)
        direction[lay.w_start : lay.b_start] = d.reshape(-1)
    return direction


def plane(
    net: MLP,
    X: np.ndarray,
    Y: np.ndarray,
    center: np.ndarray,
    directions: np.ndarray,
    radius: float,
    points: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The loss on a points x points grid, center + a d_1 + b d_2 for a, b in [-radius, radius]:
    (the coordinates (points,), the losses (points, points) indexed [b, a])."""
    grid = np.linspace(-radius, radius, points)
    a, b = np.meshgrid(grid, grid)
    rows = center[None, :] + a.reshape(-1, 1) * directions[0] + b.reshape(-1, 1) * directions[1]
    with np.errstate(all="ignore"):
        return grid, net.loss(rows, X, Y).reshape(points, points)


def project(trajectory: np.ndarray, center: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Coordinates (T, 2) of the points (T, P) in the plane through ``center`` spanned by the two
    ``directions`` (2, P), by least squares (the directions need not be orthogonal)."""
    coordinates, *_ = np.linalg.lstsq(directions.T, (trajectory - center).T, rcond=None)
    return coordinates.T
