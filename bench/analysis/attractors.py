"""Which runs ended at the same place: attractors in function space, canonical parameters, pairing.

Two end points are the same *attractor* when the networks compute the same function on the
training inputs: every output within ``attractor_tol`` of the other's.  Function space is blind
to the symmetries of a network (permuting hidden units; flipping a sigmoid or tanh unit's sign),
so twins count once without aligning anything.  Runs are grouped per dataset, all optimizers
together, so attractor ids compare across optimizers.  Solved runs are attractor 0, the solution
set: they stop as soon as they meet their criterion, wherever that happens inside it, so their
end points are not limit points to tell apart.  The other runs are attractors 1, 2, ... in order
of increasing loss.

In parameter space the same symmetries are removed by ``canonical``: layer by layer, each hidden
unit's sign is fixed so that its bias is >= 0, then the units are sorted by their incoming
weights.  A sigmoid unit flips as (w, b, v, c) -> (-w, -b, -v, c + v) (since sigma(-z) =
1 - sigma(z)), a tanh or identity unit as (w, b, v) -> (-w, -b, -v); a relu unit has no flip.
``align`` matches the units of one network to another's (linear assignment on the incoming
weights, flips included), so that straight lines between them do not cross a symmetry.

Paired view: run i starts from the same weights for every optimizer, so a pair of optimizers can be
compared run by run; McNemar's exact test on the runs that one solved and the other did not, with
Holm's correction over the pairs of a dataset.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.stats import binomtest

from bench.mlp import MLP

_FLIPS = ("sigmoid", "tanh", "identity")


def outputs(net: MLP, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """The network's outputs on X, flattened per run: (R, N * n_out)."""
    return net.forward(theta, X).reshape(len(theta), -1)


def cluster(points: np.ndarray, loss: np.ndarray, tol: float) -> np.ndarray:
    """Attractor ids (R,): runs in order of increasing loss each join the first attractor whose
    founding run's outputs are within ``tol`` of theirs (max norm), or found a new one.  Runs
    with non-finite outputs or loss get -1."""
    ids = np.full(len(points), -1, dtype=np.int64)
    valid = np.isfinite(points).all(axis=1) & np.isfinite(loss)
    founders: list[int] = []
    for r in np.flatnonzero(valid)[np.argsort(loss[valid], kind="stable")]:
        for k, f in enumerate(founders):
            if np.max(np.abs(points[r] - points[f])) <= tol:
                ids[r] = k
                break
        else:
            ids[r] = len(founders)
            founders.append(r)
    return ids


def attractor_ids(points: np.ndarray, loss: np.ndarray, solved: np.ndarray, tol: float) -> np.ndarray:
    """Attractor ids (R,): 0 for the solved runs, 1, 2, ... for the clusters (``cluster``) of
    the others, -1 for runs whose outputs or loss are not finite."""
    ids = np.zeros(len(points), dtype=np.int64)
    rest = np.flatnonzero(~solved)
    found = cluster(points[rest], loss[rest], tol)
    ids[rest] = np.where(found >= 0, found + 1, -1)
    return ids


def _layers(net: MLP, theta: np.ndarray) -> list[list[np.ndarray]]:
    """Copies of each layer's [W (n_in, n_out), b (n_out,)] for one parameter row."""
    return [[W[0].copy(), b[0].copy()] for W, b in net.unflatten(theta[None, :])]


def _flatten(net: MLP, layers: list[list[np.ndarray]]) -> np.ndarray:
    theta = np.empty(net.n_params)
    for lay, (W, b) in zip(net.layers, layers):
        theta[lay.w_start : lay.b_start] = W.reshape(-1)
        theta[lay.b_start : lay.end] = b
    return theta


def _flip(net: MLP, layers: list[list[np.ndarray]], i: int, units: np.ndarray) -> None:
    """Flip the sign of ``units`` of hidden layer ``i`` in place, keeping the function."""
    W, b = layers[i]
    W_next, b_next = layers[i + 1]
    W[:, units], b[units] = -W[:, units], -b[units]
    if net.hidden_activation == "sigmoid":
        b_next += W_next[units].sum(axis=0)  # sigma(-z) = 1 - sigma(z): c -> c + v
    W_next[units] = -W_next[units]


def _permute(layers: list[list[np.ndarray]], i: int, order: np.ndarray) -> None:
    """Reorder the units of hidden layer ``i`` in place (unit k becomes unit order[k])."""
    W, b = layers[i]
    layers[i] = [W[:, order], b[order]]
    layers[i + 1][0] = layers[i + 1][0][order]


def canonical(net: MLP, theta: np.ndarray) -> np.ndarray:
    """A parameter row (P,) with hidden-unit signs fixed (bias >= 0) and units sorted by their
    incoming weights: the same vector for a network and its permuted or sign-flipped twins."""
    layers = _layers(net, np.asarray(theta, dtype=np.float64))
    for i in range(len(net.layers) - 1):
        if net.hidden_activation in _FLIPS:
            _flip(net, layers, i, np.flatnonzero(layers[i][1] < 0))
        W, b = layers[i]
        order = np.lexsort(np.vstack([W[::-1], b[None, :]]))  # bias first, then the weights
        _permute(layers, i, order)
    return _flatten(net, layers)


def align(net: MLP, reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``other`` (P,) with its hidden units permuted (and flipped, where the activation allows)
    to best match ``reference`` (P,), layer by layer; the function it computes is unchanged."""
    ref = _layers(net, np.asarray(reference, dtype=np.float64))
    out = _layers(net, np.asarray(other, dtype=np.float64))
    for i in range(len(net.layers) - 1):
        a = np.vstack([ref[i][0], ref[i][1][None, :]])  # incoming weights and bias, per unit (column)
        c = np.vstack([out[i][0], out[i][1][None, :]])
        same = ((a[:, :, None] - c[:, None, :]) ** 2).sum(axis=0)  # (reference unit, other unit)
        cost = same
        if net.hidden_activation in _FLIPS:
            flipped = ((a[:, :, None] + c[:, None, :]) ** 2).sum(axis=0)
            cost = np.minimum(same, flipped)
        rows, cols = linear_sum_assignment(cost)
        order = cols[np.argsort(rows)]
        if net.hidden_activation in _FLIPS:
            flip = flipped[np.arange(len(order)), order] < same[np.arange(len(order)), order]
            _flip(net, out, i, order[flip])
        _permute(out, i, order)
    return _flatten(net, out)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as the input)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if not m:
        return p
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def mcnemar(a_solved: np.ndarray, b_solved: np.ndarray) -> dict[str, float]:
    """McNemar's exact test on paired outcomes: the discordant runs are binomial(1/2) under the
    null hypothesis that both optimizers solve as often."""
    a_only = int(np.sum(a_solved & ~b_solved))
    b_only = int(np.sum(~a_solved & b_solved))
    p = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    return {
        "both": int(np.sum(a_solved & b_solved)),
        "a_only": a_only,
        "b_only": b_only,
        "neither": int(np.sum(~a_solved & ~b_solved)),
        "p_value": float(p),
    }


def paired_tests(runs: pd.DataFrame) -> pd.DataFrame:
    """McNemar's test for every pair of optimizers on every dataset, paired by run index, with
    Holm-adjusted p-values within each dataset.  Columns: dataset, optimizer_a, optimizer_b,
    both, a_only, b_only, neither, p_value, p_holm."""
    rows = []
    for dataset, frame in runs.groupby("dataset", sort=False):
        solved = frame.pivot_table(index="run", columns="optimizer", values="status", aggfunc="first", sort=False)
        solved = solved == "solved"
        part = []
        for a, b in itertools.combinations(list(pd.unique(frame["optimizer"])), 2):
            both = solved[[a, b]].dropna()
            part.append(
                {
                    "dataset": dataset,
                    "optimizer_a": a,
                    "optimizer_b": b,
                    **mcnemar(both[a].to_numpy(), both[b].to_numpy()),
                }
            )
        adjusted = holm(np.array([r["p_value"] for r in part]))
        for r, p in zip(part, adjusted):
            r["p_holm"] = float(p)
        rows += part
    columns = ["dataset", "optimizer_a", "optimizer_b", "both", "a_only", "b_only", "neither", "p_value", "p_holm"]
    return pd.DataFrame(rows, columns=columns)


def attractor_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset x optimizer x attractor: runs, basin share (of that optimizer's runs),
    median final loss, the most common end-point class, and the share of its runs solved."""
    valid = runs[runs["attractor"] >= 0]
    rows = []
    for (dataset, optimizer), frame in runs.groupby(["dataset", "optimizer"], sort=False):
        n = len(frame)
        for attractor, group in valid[(valid["dataset"] == dataset) & (valid["optimizer"] == optimizer)].groupby(
            "attractor"
        ):
            rows.append(
                {
                    "dataset": dataset,
                    "optimizer": optimizer,
                    "attractor": int(attractor),
                    "runs": len(group),
                    "share": len(group) / n,
                    "loss": float(group["final_loss"].median()),
                    "endpoint": group["endpoint"].mode().iloc[0] if "endpoint" in group else None,
                    "solved": float((group["status"] == "solved").mean()),
                }
            )
    columns = ["dataset", "optimizer", "attractor", "runs", "share", "loss", "endpoint", "solved"]
    return pd.DataFrame(rows, columns=columns)
