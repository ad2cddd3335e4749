"""What kind of point each run ended at: gradient, Hessian spectrum, saturation, escape test.

A run's *status* says how it behaved (solved, stuck, unfinished, diverged); its *end-point class*
says where it is.  At the point a run reports (its incumbent) the analysis measures the gradient
of the per-pattern loss (the loss over the number of training patterns when the reduction is
"sum"), the spectrum of that loss's Hessian, the saturation of the hidden units and the largest
parameter, and classifies, in this order (tolerances: ``bench.config.Analysis``):

* ``solved``, ``diverged``: the run's own status;
* ``unfinished``: the gradient is not small (norm > grad_tol);
* ``saturated``: at least saturated_share of the hidden (unit, pattern) pairs are saturated and a
  parameter has magnitude >= large_weight: a minimum at infinity being approached;
* ``saddle``: an eigenvalue below -eig_tol x the largest |eigenvalue|: a direction of descent;
* ``plateau``: near-zero eigenvalues (|lambda| <= eig_tol x the largest) beyond those the
  network's continuous symmetries explain, or a failed escape test: flat ground, not a basin;
* ``minimum``: none of the above, and the escape test finds no lower ground: perturbed in random
  directions and followed downhill by plain gradient descent, the loss never falls by more than
  escape_drop (relative).

Continuous symmetries and the zero eigenvalues they explain: none for sigmoid and tanh units
(their symmetries, permutations and sign flips, are discrete); one per relu unit (w_in, b) -> c
(w_in, b), w_out -> w_out / c; n^2 per identity hidden layer of width n (any invertible mixing).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from bench import seeding
from bench.config import Analysis
from bench.mlp import MLP, _with_ones

CLASSES = ("solved", "diverged", "minimum", "saddle", "plateau", "saturated", "unfinished")
COLUMNS = [
    "endpoint",
    "hess_min",
    "hess_max",
    "n_negative",
    "n_flat",
    "saturation",
    "unit_saturation",
    "max_weight",
    "escape_drop",
]
_MAX_SLOPE = {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0}


def class_meanings(settings: Analysis) -> dict[str, str]:
    """What each end-point class means, with the tolerances in force (for REPORT.md)."""
    s = settings
    return {
        "solved": "the run met its success criterion.",
        "diverged": "its loss became inf or NaN.",
        "minimum": (
            f"gradient small (norm of the per-pattern loss's gradient <= {s.grad_tol:g}), no eigenvalue of the "
            f"Hessian below -{s.eig_tol:g} x the largest |eigenvalue|, no near-zero eigenvalue beyond those the "
            f"network's symmetries explain, and it survives the escape test: moved {s.escape_radius:g} (RMS per "
            f"parameter) in {s.escape_directions} random directions and followed downhill by gradient descent (step "
            f"1 / largest eigenvalue, {s.escape_steps} steps), the loss never falls by more than {s.escape_drop:.3g} "
            "(relative). A true local minimum."
        ),
        "saddle": "gradient small and a clearly negative eigenvalue: there is a way down.",
        "plateau": (
            "gradient small and flat: near-zero eigenvalues the symmetries do not explain, or a failed escape test "
            "(flat ground whose way down is higher-order or farther away)."
        ),
        "saturated": (
            f"gradient small, at least {s.saturated_share:.0%} of the hidden (unit, pattern) pairs saturated (slope "
            f"below {s.saturation_slope:g} of its maximum) and a parameter of magnitude >= {s.large_weight:g}: a minimum "
            "at infinity being approached."
        ),
        "unfinished": f"the gradient is not small (norm > {s.grad_tol:g}) where the run stopped.",
    }


@dataclass
class Cost:
    """What an analysis spent: never charged to a run's training cost."""

    seconds: float = 0.0
    hessian_vector_products: int = 0
    gradient_evaluations: int = 0
    parts: dict[str, float] = field(default_factory=dict)

    def add(self, other: Cost) -> None:
        self.seconds += other.seconds
        self.hessian_vector_products += other.hessian_vector_products
        self.gradient_evaluations += other.gradient_evaluations
        for key, value in other.parts.items():
            self.parts[key] = self.parts.get(key, 0.0) + value


def symmetry_dimension(net: MLP) -> int:
    """Zero eigenvalues of the Hessian that the network's continuous symmetries explain."""
    hidden = net.layer_sizes[1:-1]
    if net.hidden_activation == "relu":
        return sum(hidden)
    if net.hidden_activation == "identity":
        return sum(n * n for n in hidden)
    return 0


def saturation(net: MLP, theta: np.ndarray, X: np.ndarray, slope_share: float) -> np.ndarray:
    """Per run and hidden unit (all hidden layers in order), the share of patterns on which the
    unit's slope is below ``slope_share`` of the activation's largest: (R, hidden units); no
    columns for identity units or a network without hidden units."""
    if net.hidden_activation not in _MAX_SLOPE or len(net.layer_sizes) < 3:
        return np.zeros((len(theta), 0))
    with np.errstate(all="ignore"):
        hidden, _ = net._forward(net._check_theta(theta), _with_ones(X), need_slopes=True)
    limit = slope_share * _MAX_SLOPE[net.hidden_activation]
    return np.concatenate([(np.asarray(slope, dtype=np.float64) < limit).mean(axis=1) for _, slope in hidden], axis=1)


def spectra(
    net: MLP, theta: np.ndarray, X: np.ndarray, Y: np.ndarray, limit: int
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, int]:
    """Eigenvalues of each run's Hessian: (all (R, P) or None beyond ``limit``, min (R,), max (R,),
    Hessian-vector products spent).  Beyond the limit, Lanczos (``eigsh``) on the exact
    Hessian-vector product gives the smallest algebraic and the largest eigenvalue."""
    n_runs, n_params = theta.shape
    if n_params <= limit:
        with np.errstate(all="ignore"):
            H = net.hessian(theta, X, Y)
        finite = np.isfinite(H).all(axis=(1, 2))
        values = np.full((n_runs, n_params), np.nan)
        if finite.any():
            values[finite] = np.linalg.eigvalsh(H[finite])
        return values, values[:, 0], values[:, -1], n_runs * n_params
    low, high, products = np.full(n_runs, np.nan), np.full(n_runs, np.nan), 0
    for r in range(n_runs):
        counter = [0]

        def matvec(v: np.ndarray, r: int = r, counter: list[int] = counter) -> np.ndarray:
            counter[0] += 1
            return net.hvp(theta[r : r + 1], X, Y, np.asarray(v, dtype=np.float64).reshape(1, -1))[0]

        operator = LinearOperator((n_params, n_params), matvec=matvec, dtype=np.float64)
        start = np.random.default_rng(r).normal(size=n_params)  # fixed: the same results every time
        for which, out in (("SA", low), ("LA", high)):
            try:
                out[r] = eigsh(operator, k=1, which=which, v0=start, return_eigenvectors=False, maxiter=20 * n_params)[
                    0
                ]
            except ArpackNoConvergence as exc:
                out[r] = exc.eigenvalues[0] if len(exc.eigenvalues) else np.nan
        products += counter[0]
    return None, low, high, products


def escape_drops(
    loss_and_grad: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    theta: np.ndarray,
    loss: np.ndarray,
    step: np.ndarray,
    rngs: list[np.random.Generator],
    settings: Analysis,
) -> tuple[np.ndarray, int]:
    """The escape test: the largest relative loss drop found from each point (R,), and the
    gradient evaluations spent.

    Point r is perturbed in ``escape_directions`` random directions (norm escape_radius x
    sqrt(P) each) and each copy follows plain gradient descent with step ``step[r]`` for
    ``escape_steps`` steps, all copies of all points in one batch; the drop is
    (L(theta_r) - the lowest loss seen) / L(theta_r), 0 if nothing went lower.
    ``loss_and_grad`` maps parameter rows (K, P) to their losses (K,) and gradients (K, P).
    """
    k, n_params = settings.escape_directions, theta.shape[1]
    if k == 0 or not len(theta):
        return np.zeros(len(theta)), 0
    directions = np.concatenate([rng.normal(size=(k, n_params)) for rng in rngs])
    directions *= settings.escape_radius * np.sqrt(n_params) / np.linalg.norm(directions, axis=1, keepdims=True)
    points = np.repeat(theta, k, axis=0) + directions
    rates = np.repeat(step, k)[:, None]
    lowest = np.full(len(points), np.inf)
    with np.errstate(all="ignore"):
        for _ in range(settings.escape_steps + 1):
            value, grad = loss_and_grad(points)
            lowest = np.fmin(lowest, value)
            points = points - rates * grad
    lowest = lowest.reshape(len(theta), k).min(axis=1)
    drops = np.where(lowest < loss, (loss - lowest) / np.abs(loss), 0.0)
    return drops, len(points) * (settings.escape_steps + 1)


def classify(
    status: np.ndarray,
    grad_norm: np.ndarray,
    eigenvalues: np.ndarray | None,
    low: np.ndarray,
    high: np.ndarray,
    saturated: np.ndarray,
    max_weight: np.ndarray,
    symmetries: int,
    settings: Analysis,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """End-point classes before the escape test: (class (R,) object, n_negative, n_flat,
    candidate (R,) bool: would be a minimum if it survives the escape test).

    ``grad_norm`` and the eigenvalues are those of the per-pattern loss.  Without a full
    spectrum (beyond the Hessian limit) n_negative counts the smallest eigenvalue only (0 or 1)
    and n_flat is unknown (-1); the escape test then decides between minimum and plateau.
    """
    n = len(status)
    scale = np.fmax(np.abs(low), np.abs(high))
    tol = settings.eig_tol * scale
    if eigenvalues is not None:
        n_negative = (eigenvalues < -tol[:, None]).sum(axis=1)
        n_flat = (np.abs(eigenvalues) <= tol[:, None]).sum(axis=1)
        unexplained_flat = n_flat > symmetries
    else:
        n_negative = (low < -tol).astype(np.int64)
        n_flat = np.full(n, -1)
        unexplained_flat = np.zeros(n, dtype=bool)
    # A Hessian that is 0 (or not finite) has no curvature to speak of: every direction is flat.
    no_curvature = ~(scale > 0)
    unexplained_flat |= no_curvature
    small = grad_norm <= settings.grad_tol
    is_saturated = (saturated >= settings.saturated_share) & (max_weight >= settings.large_weight)
    conditions = [
        status == "solved",
        status == "diverged",
        ~small,
        is_saturated,
        (n_negative > 0) & ~no_curvature,
        unexplained_flat,
    ]
    classes = np.select(conditions, ["solved", "diverged", "unfinished", "saturated", "saddle", "plateau"], "minimum")
    return classes.astype(object), n_negative, n_flat, classes == "minimum"


def analyze_endpoints(
    net: MLP,
    X: np.ndarray,
    Y: np.ndarray,
    runs: pd.DataFrame,
    settings: Analysis,
    seed: int,
    stream: str,
) -> tuple[pd.DataFrame, Cost]:
    """The end-point columns (``COLUMNS``) for the runs of one dataset and model, and the cost.

    runs : rows with ``status``, ``run``, ``optimizer`` and ``theta_final``; X, Y : the
    training split.  ``stream`` names the dataset in the escape test's random streams, which
    are keyed by the experiment ``seed``, the optimizer label and the run index.
    """
    start = time.perf_counter()
    cost = Cost()
    theta = np.stack(runs["theta_final"].to_numpy()) if len(runs) else np.empty((0, net.n_params))
    status = runs["status"].to_numpy(dtype=object)
    per_pattern = X.shape[0] if net.reduction == "sum" else 1
    with np.errstate(all="ignore"):
        loss, grad = net.loss_and_grad(theta, X, Y)
        grad_norm = np.linalg.norm(grad, axis=1) / per_pattern
    cost.gradient_evaluations += len(theta)
    finite = np.isfinite(theta).all(axis=1) & np.isfinite(loss)

    t = time.perf_counter()
    eigenvalues, low, high = None, np.full(len(theta), np.nan), np.full(len(theta), np.nan)
    if finite.any():
        values, lo, hi, products = spectra(net, theta[finite], X, Y, settings.hessian_limit)
        cost.hessian_vector_products += products
        low[finite], high[finite] = lo / per_pattern, hi / per_pattern
        if values is not None:
            eigenvalues = np.full((len(theta), net.n_params), np.nan)
            eigenvalues[finite] = values / per_pattern
    cost.parts["hessian"] = time.perf_counter() - t

    units = saturation(net, theta, X, settings.saturation_slope)
    sat = units.mean(axis=1) if units.shape[1] else np.zeros(len(theta))
    with np.errstate(invalid="ignore"):
        max_weight = np.abs(theta).max(axis=1) if net.n_params else np.zeros(len(theta))
    classes, n_negative, n_flat, candidate = classify(
        status, grad_norm, eigenvalues, low, high, sat, max_weight, symmetry_dimension(net), settings
    )

    t = time.perf_counter()
    drops = np.full(len(theta), np.nan)
    idx = np.flatnonzero(candidate)
    if len(idx):
        rngs = [
            seeding.generator(seed, "escape", stream, label, int(run))
            for label, run in zip(runs["optimizer"].to_numpy()[idx], runs["run"].to_numpy()[idx])
        ]
        # Step 1 / lambda_max of the loss itself (the per-pattern scaling cancels).
        step = 1.0 / (high[idx] * per_pattern)
        drops[idx], evaluations = escape_drops(
            lambda rows: net.loss_and_grad(rows, X, Y), theta[idx], loss[idx], step, rngs, settings
        )
        cost.gradient_evaluations += evaluations
        classes[idx] = np.where(drops[idx] > settings.escape_drop, "plateau", "minimum")
    cost.parts["escape"] = time.perf_counter() - t
    cost.seconds = time.perf_counter() - start

    table = pd.DataFrame(
        {
            "endpoint": classes,
            "hess_min": low,
            "hess_max": high,
            "n_negative": n_negative,
            "n_flat": n_flat,
            "saturation": sat,
            "unit_saturation": list(units),
            "max_weight": max_weight,
            "escape_drop": drops,
        },
        index=runs.index,
    )
    return table, cost
