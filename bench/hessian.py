"""Exact curvature of the shared MLP: Hessian-vector products and full Hessians, for R runs at once.

A Hessian-vector product H v is the directional derivative of the gradient along v.  It is computed
exactly, by Pearlmutter's R-operator (Pearlmutter 1994, "Fast exact multiplication by the
Hessian"): forward-mode differentiation R{.} = d/dt (.)(theta + t v) at t = 0 carried through the
forward pass and the backward pass of backpropagation, at the cost of about two gradients.  With
z_l = a_{l-1} W_l + b_l, a_l = f(z_l), the error delta_l = dL/dz_l and V = (V_W, V_b) the direction:

    R{z_l} = R{a_{l-1}} W_l + a_{l-1} V_W_l + V_b_l          R{a_l} = f'(z_l) R{z_l}
    R{dL/dW_l} = R{a_{l-1}}^T delta_l + a_{l-1}^T R{delta_l}    R{dL/db_l} = sum_n R{delta_l}
    R{delta_{l-1}} = (R{delta_l} W_l^T + delta_l V_W_l^T) f'(z_{l-1}) + (delta_l W_l^T) f''(z_{l-1}) R{z_{l-1}}

and at the output R{delta_L} = (d delta_L / d z_L) R{z_L}, the loss's own curvature in the logits.
No step size is involved, so it stays exact where finite differences fail: deep saturation and
weights of 1e5.  The slopes keep their tails (``bench.mlp``); second derivatives are
sigma'' = -sigma' tanh(z / 2) and tanh'' = -2 tanh tanh', both accurate in the tails too.

The full Hessian is P products with the unit vectors, batched along the runs axis.
"""

from __future__ import annotations

import numpy as np

from bench.mlp import MLP, _activate, _logistic_pair, _softmax_cross_entropy

_MEMORY_ELEMENTS = 1 << 22  # float64 elements of activations per batch of rows (32 MiB each array)


def _activation_parts(name: str, z: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """f(z), f'(z) and f''(z) (None for a slope of 1 or a curvature of 0)."""
    if name == "identity":
        return z, None, None
    a, slope = _activate(name, np.array(z, order="C", copy=True), True)
    if name == "relu":
        return a, slope.astype(np.float64), None
    if name == "sigmoid":
        return a, slope, -slope * np.tanh(z / 2.0)
    return a, slope, -2.0 * a * slope  # tanh


def _output_delta_and_curvature(
    net: MLP, z: np.ndarray, Y: np.ndarray, Rz: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """dL/dz at the output and its directional derivative along R{z}, both (R, N, K)."""
    norm = 1.0 / z.shape[1] if net.reduction == "mean" else 1.0
    if net.loss_name == "cross_entropy":
        _, delta, p = _softmax_cross_entropy(z, Y, True, True)
        y_sums = Y.sum(axis=1)[None, :, None]
        R_delta = y_sums * p * (Rz - np.einsum("rnk,rnk->rn", p, Rz)[..., None])
    elif net.output_activation == "sigmoid":
        o, complement = _logistic_pair(z)
        err = np.where(z >= 0.0, (1.0 - Y) - complement, o - Y)
        slope = o * complement
        if net.loss_name == "bce":
            delta, R_delta = err, slope * Rz
        else:
            curvature = -slope * np.tanh(z / 2.0)
            delta, R_delta = err * slope, (slope * slope + err * curvature) * Rz
    else:
        delta, R_delta = z - Y, Rz
    return delta * norm, R_delta * norm


def hvp(net: MLP, theta: np.ndarray, X: np.ndarray, Y: np.ndarray, V: np.ndarray) -> np.ndarray:
    """H(theta_r) V_r for every run r: the Hessian of the training loss times a direction, (R, P).

    theta, V : ndarray of shape (R, P); X : (N, n_in); Y : (N, n_out).  The loss and its
    reduction are the network's, as in ``MLP.loss_and_grad``.
    """
    theta = net._check_theta(theta)
    V = np.asarray(V, dtype=np.float64)
    if V.shape != theta.shape:
        raise ValueError(f"V must have the shape of theta, {theta.shape}, got {V.shape}")
    X = net._check_inputs(X)
    Y = np.asarray(Y, dtype=np.float64)
    rows = max(1, _MEMORY_ELEMENTS // (X.shape[0] * max(net.layer_sizes)))
    out = np.empty_like(theta)
    with np.errstate(all="ignore"):
        for start in range(0, len(theta), rows):
            part = slice(start, start + rows)
            out[part] = _hvp_rows(net, theta[part], X, Y, V[part])
    return out


def _hvp_rows(net: MLP, theta: np.ndarray, X: np.ndarray, Y: np.ndarray, V: np.ndarray) -> np.ndarray:
    params, directions = net.unflatten(theta), net.unflatten(V)
    n_runs = len(theta)
    a = np.broadcast_to(X, (n_runs, *X.shape))
    Ra = np.zeros_like(a)
    saved = []  # per layer: input a, R{a}, and for hidden layers f', f'', R{z}
    for i, ((W, b), (VW, Vb)) in enumerate(zip(params, directions)):
        z = a @ W + b[:, None, :]
        Rz = Ra @ W + a @ VW + Vb[:, None, :]
        if i == len(params) - 1:
            saved.append((a, Ra, None, None, None))
            break
        a_next, slope, curvature = _activation_parts(net.hidden_activation, z)
        saved.append((a, Ra, slope, curvature, Rz))
        Ra = Rz if slope is None else slope * Rz
        a = a_next
    delta, R_delta = _output_delta_and_curvature(net, z, Y, Rz)

    grad_v = np.empty_like(theta)
    for i in range(len(params) - 1, -1, -1):
        lay = net.layers[i]
        a, Ra, *_ = saved[i]
        block = grad_v[:, lay.w_start : lay.end].reshape(n_runs, lay.n_in + 1, lay.n_out)
        block[:, :-1] = np.swapaxes(Ra, 1, 2) @ delta + np.swapaxes(a, 1, 2) @ R_delta
        block[:, -1] = R_delta.sum(axis=1)
        if i == 0:
            break
        W_t = np.swapaxes(params[i][0], 1, 2)
        VW_t = np.swapaxes(directions[i][0], 1, 2)
        _, _, slope, curvature, Rz_prev = saved[i - 1]
        grad_a = delta @ W_t
        R_grad_a = R_delta @ W_t + delta @ VW_t
        if slope is None:  # identity: f' = 1, f'' = 0
            delta, R_delta = grad_a, R_grad_a
            continue
        R_delta = R_grad_a * slope
        if curvature is not None:
            R_delta += grad_a * curvature * Rz_prev
        delta = grad_a * slope
    return grad_v


def hessian(net: MLP, theta: np.ndarray, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """The Hessian of the training loss for every run, (R, P, P), symmetric.

    Column j of run r is H(theta_r) e_j, all P columns of all runs in one batched R-operator pass
    (in memory-sized groups); the result is symmetrized, (H + H^T) / 2, which only removes
    rounding.
    """
    theta = net._check_theta(theta)
    n_runs, n_params = theta.shape
    eye = np.eye(n_params)
    H = np.empty((n_runs, n_params, n_params))
    for r in range(n_runs):
        H[r] = hvp(net, np.repeat(theta[r : r + 1], n_params, axis=0), X, Y, eye)
    return (H + np.swapaxes(H, 1, 2)) / 2.0
