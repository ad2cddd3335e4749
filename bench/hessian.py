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

The full Hessian takes the unit vectors as directions, with one forward and backward pass per run
shared by all of them.  The unit vector of weight (i, o) of layer l (i = n_in: the bias o) leaves
the layers below l untouched, R{z_k} = R{a_k} = 0 for k < l, and starts with R{z_l} = a_{l-1}[:, i]
in column o alone.  Every later step is linear and acts pattern by pattern, so each R-quantity of
that direction is a_{l-1}[n, i] times the response Q of pattern n to a unit R{z_l} = e_o: only the
n_out responses of a block are propagated, (N, n_out, units) arrays, not its (n_in + 1) n_out
directions.  The Hessian's rows then come out of large matrix products over the patterns: with
[a, 1] per layer and Q{a}, Q{delta} the responses of R{a}, R{delta},

    H[(i, o), (j, m) of layer k] = sum_n a_{l-1}[n, i] ([a, 1]_{k-1}[n, j] Q{delta_k}[n, o, m]
                                                       + Q{a_{k-1}}[n, o, j] delta_k[n, m])

(the products (a_{l-1} x [a, 1]_{k-1})^T Q{delta_k} and (a_{l-1} x delta_k)^T Q{a_{k-1}}).  The
Hessian is symmetric, so a block's rows are computed in its own and the later layers' columns
only (the responses go back to layer l, no further); the earlier columns are transposes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.mlp import MLP, Layer, _activate, _logistic_pair, _softmax_cross_entropy

_MEMORY_ELEMENTS = 1 << 22  # float64 elements of activations per batch of rows (32 MiB each array)
# ``hessian`` takes runs together (one pass for many small networks) up to this many elements of
# their largest arrays (1 MiB), which stay in the cache: larger networks go one or two at a time.
_GROUP_ELEMENTS = 1 << 17


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


def _output_delta(net: MLP, z: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, object, float]:
    """dL/dz at the output (R, N, K), what its derivative along R{z} needs (for ``_output_R_delta``)
    and the reduction's factor."""
    norm = 1.0 / z.shape[1] if net.reduction == "mean" else 1.0
    if net.loss_name == "cross_entropy":
        _, delta, p = _softmax_cross_entropy(z, Y, True, True)
        curvature = (p, Y.sum(axis=1)[None, :, None], p.argmax(axis=2)[..., None])
    elif net.output_activation == "sigmoid":
        o, complement = _logistic_pair(z)
        err = np.where(z >= 0.0, (1.0 - Y) - complement, o - Y)
        slope = o * complement
        if net.loss_name == "bce":
            delta, curvature = err, slope
        else:
            curvature = -slope * np.tanh(z / 2.0)
            delta, curvature = err * slope, slope * slope + err * curvature
    else:
        delta, curvature = z - Y, None
    return delta * norm, curvature, norm


def _output_R_delta(curvature: object, norm: float, Rz: np.ndarray) -> np.ndarray:
    """R{dL/dz} at the output along R{z}, the loss's own curvature in the logits.

    ``Rz`` is laid out like z, (R, N, K), or holds D directions per pattern, (R, N, D, K).
    """
    spread = Rz.ndim == 4
    if curvature is None:  # identity output, squared error
        R_delta = Rz
    elif isinstance(curvature, tuple):  # softmax cross-entropy: sum(t) (diag(p) - p p^T) R{z}
        # (R{z} - p . R{z}) from the differences to the top class's R{z} (p sums to 1): at the top
        # class, -sum_j p_j (R{z_j} - R{z_top}) keeps the precision that R{z_top} - p . R{z}
        # loses where p_top rounds towards 1 (a saturated softmax).
        p, y_sums, top = curvature
        if spread:
            shifted = Rz - np.take_along_axis(Rz, top[:, :, None], axis=3)
            dots = np.einsum("rnk,rndk->rnd", p, shifted)
            p, y_sums = p[:, :, None], y_sums[..., None]
        else:
            shifted = Rz - np.take_along_axis(Rz, top, axis=2)
            dots = np.einsum("rnk,rnk->rn", p, shifted)
        R_delta = y_sums * p * (shifted - dots[..., None])
    else:  # sigmoid output: a diagonal curvature
        R_delta = (curvature[:, :, None] if spread else curvature) * Rz
    return R_delta * norm


def _forward_parts(
    net: MLP, params: list[tuple[np.ndarray, np.ndarray]], X: np.ndarray
) -> tuple[list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]], np.ndarray]:
    """The forward pass: per layer its input a (R, N, n_in) and the slope and curvature of its
    activation (None for the output layer, and as ``_activation_parts`` says); and the logits z."""
    a = np.broadcast_to(X, (len(params[0][0]), *X.shape))
    layers = []
    for i, (W, b) in enumerate(params):
        z = a @ W + b[:, None, :]
        if i == len(params) - 1:
            layers.append((a, None, None))
            return layers, z
        a_next, slope, curvature = _activation_parts(net.hidden_activation, z)
        layers.append((a, slope, curvature))
        a = a_next
    raise AssertionError("unreachable")


def _backward_deltas(
    params: list[tuple[np.ndarray, np.ndarray]],
    forward: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]],
    delta: np.ndarray,
) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Backpropagation: per layer delta = dL/dz and, below the output, dL/da of its output
    (delta of the next layer times its W^T; None for the output layer)."""
    deltas: list[np.ndarray] = [delta] * len(params)
    grads: list[np.ndarray | None] = [None] * len(params)
    for i in range(len(params) - 1, 0, -1):
        grad_a = delta @ np.swapaxes(params[i][0], 1, 2)
        slope = forward[i - 1][1]
        delta = grad_a if slope is None else grad_a * slope
        deltas[i - 1], grads[i - 1] = delta, grad_a
    return deltas, grads


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
    forward, z = _forward_parts(net, params, X)
    delta, curvature, norm = _output_delta(net, z, Y)
    deltas, grads = _backward_deltas(params, forward, delta)
    Ra = np.zeros_like(forward[0][0])
    saved = []  # per layer: R{a} of its input and R{z}
    for (W, _), (VW, Vb), (a, slope, _) in zip(params, directions, forward):
        Rz = Ra @ W + a @ VW + Vb[:, None, :]
        saved.append((Ra, Rz))
        Ra = Rz if slope is None else slope * Rz
    R_delta = _output_R_delta(curvature, norm, Rz)

    n_runs = len(theta)
    grad_v = np.empty_like(theta)
    for i in range(len(params) - 1, -1, -1):
        lay = net.layers[i]
        block = grad_v[:, lay.w_start : lay.end].reshape(n_runs, lay.n_in + 1, lay.n_out)
        block[:, :-1] = np.swapaxes(saved[i][0], 1, 2) @ deltas[i] + np.swapaxes(forward[i][0], 1, 2) @ R_delta
        block[:, -1] = R_delta.sum(axis=1)
        if i == 0:
            break
        W_t = np.swapaxes(params[i][0], 1, 2)
        VW_t = np.swapaxes(directions[i][0], 1, 2)
        _, slope, curvature = forward[i - 1]
        R_grad_a = R_delta @ W_t + deltas[i] @ VW_t
        if slope is None:  # identity: f' = 1, f'' = 0
            R_delta = R_grad_a
            continue
        R_delta = R_grad_a * slope
        if curvature is not None:
            R_delta += grads[i - 1] * curvature * saved[i - 1][1]
    return grad_v


def hessian(net: MLP, theta: np.ndarray, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """The Hessian of the training loss for every run, (R, P, P), symmetric.

    Row j of run r is H(theta_r) e_j, each layer's block of rows from the responses of its units
    (see the module's notes), in groups of runs, units and rows that keep each array within
    about ``_MEMORY_ELEMENTS``.  The diagonal blocks are symmetrized, (H + H^T) / 2, which only
    removes rounding; each block below the diagonal is the transpose of the one above it.  A run
    with a non-finite weight gets NaN throughout.
    """
    theta = net._check_theta(theta)
    X = net._check_inputs(X)
    Y = np.asarray(Y, dtype=np.float64)
    n_runs, n_params = theta.shape
    H = np.empty((n_runs, n_params, n_params))
    # Per run: a whole layer's responses (N, n_out, units), and per row i of its block (at most
    # ``width`` rows) the pairs (N, units) and the products (n_out, block) of a layer.
    width = max(net.layer_sizes) + 1
    per_run = width * max(X.shape[0] * width, max(net.layer_sizes[1:]) * _largest_block(net.layers))
    runs = max(1, min(_GROUP_ELEMENTS, _MEMORY_ELEMENTS) // per_run)
    with np.errstate(all="ignore"):
        for start in range(0, n_runs, runs):
            _hessian_rows(net, theta[start : start + runs], X, Y, H[start : start + runs])
        for i, lay in enumerate(net.layers):
            rows = slice(lay.w_start, lay.end)
            diagonal = H[:, rows, rows]
            H[:, rows, rows] = (diagonal + np.swapaxes(diagonal, 1, 2)) / 2.0
            for later in net.layers[i + 1 :]:
                cols = slice(later.w_start, later.end)
                H[:, cols, rows] = np.swapaxes(H[:, rows, cols], 1, 2)
    # No Hessian at a non-finite weight.  (The unit responses never multiply the first layer's
    # weights, so an infinite one there would otherwise leave the saturated limit, finite.)
    H[~np.isfinite(theta).all(axis=1)] = np.nan
    return H


def _hessian_rows(net: MLP, theta: np.ndarray, X: np.ndarray, Y: np.ndarray, H: np.ndarray) -> None:
    """Fill the rows of H (R, P, P) for the runs ``theta`` (R, P): each layer block's rows, in
    its own and the later blocks' columns (the rest is left to ``hessian``)."""
    params = net.unflatten(theta)
    forward, z = _forward_parts(net, params, X)
    delta, curvature, norm = _output_delta(net, z, Y)
    deltas, grads = _backward_deltas(params, forward, delta)
    n_runs, n_patterns, _ = z.shape
    ones = np.ones((n_runs, n_patterns, 1))
    shared = _Shared(
        weights=[W for W, _ in params],
        slopes=[slope for _, slope, _ in forward],
        inputs=[np.concatenate([a, ones], axis=2) for a, _, _ in forward],
        deltas=deltas,
        bent=[None if f2 is None else g * f2 for (_, _, f2), g in zip(forward, grads)],
        curvature=curvature,
        norm=norm,
    )
    width = max(net.layer_sizes) + 1
    units = max(1, _MEMORY_ELEMENTS // (n_runs * n_patterns * width))
    for layer, lay in enumerate(net.layers):
        rows = H[:, lay.w_start : lay.end].reshape(n_runs, lay.n_in + 1, lay.n_out, -1)  # (R, i, o, P)
        for o0 in range(0, lay.n_out, units):
            o1 = min(o0 + units, lay.n_out)
            Q_a, Q_delta = _responses(net, shared, layer, o0, o1)
            per_row = max(n_patterns * width, (o1 - o0) * _largest_block(net.layers[layer:]))
            step = max(1, _MEMORY_ELEMENTS // (n_runs * per_row))
            for i0 in range(0, lay.n_in + 1, step):
                i1 = min(i0 + step, lay.n_in + 1)
                for k in range(layer, len(net.layers)):
                    out = rows[:, i0:i1, o0:o1, net.layers[k].w_start : net.layers[k].end]
                    _rows_block(shared, layer, k, (i0, i1), o0, Q_a.get(k), Q_delta[k], out)


def _largest_block(layers: tuple[Layer, ...]) -> int:
    """Parameters in the largest layer block [W; b] among ``layers``."""
    return max(lay.end - lay.w_start for lay in layers)


@dataclass
class _Shared:
    """What all unit vectors of a group of runs share: weights, the forward pass ([a, 1] per
    layer, slopes f' or None for 1), the errors delta per layer, dL/da f'' per hidden layer
    (None where f'' = 0) and the output's curvature (``_output_delta``)."""

    weights: list[np.ndarray]
    slopes: list[np.ndarray | None]
    inputs: list[np.ndarray]
    deltas: list[np.ndarray]
    bent: list[np.ndarray | None]
    curvature: object
    norm: float


def _responses(
    net: MLP, shared: _Shared, layer: int, o0: int, o1: int
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """The responses of every pattern to R{z_layer} = e_o for the units o0 <= o < o1 of layer
    ``layer``: Q{a} entering each layer k > layer, (R, N, O, n_in of k) (for k = layer + 1 only
    the value in column o, (R, N, O)), and Q{delta} of each layer k >= layer, (R, N, O, n_out of k).
    """
    last = len(net.layers) - 1
    n_runs, n_patterns, _ = shared.inputs[layer].shape
    n_units = o1 - o0
    Q_a: dict[int, np.ndarray] = {}
    Q_z: dict[int, np.ndarray] = {}  # hidden layers k > layer with f'' != 0
    if layer == last:
        Qz = np.broadcast_to(
            np.eye(net.layers[layer].n_out)[o0:o1], (n_runs, n_patterns, n_units, net.layers[layer].n_out)
        )
    else:
        slope = shared.slopes[layer]
        Q_a[layer + 1] = np.ones((n_runs, n_patterns, n_units)) if slope is None else slope[:, :, o0:o1]
        Qz = Q_a[layer + 1][..., None] * shared.weights[layer + 1][:, None, o0:o1]
        for k in range(layer + 1, last + 1):
            if k > layer + 1:
                W = shared.weights[k]
                Qz = (Q_a[k].reshape(n_runs, -1, W.shape[1]) @ W).reshape(n_runs, n_patterns, n_units, -1)
            if k == last:
                break
            slope = shared.slopes[k]
            if shared.bent[k] is not None:
                Q_z[k] = Qz
            Q_a[k + 1] = Qz if slope is None else slope[:, :, None] * Qz
    Q_delta = {last: _output_R_delta(shared.curvature, shared.norm, Qz)}
    for k in range(last, layer, -1):
        W_t = np.swapaxes(shared.weights[k], 1, 2)
        Qd = (Q_delta[k].reshape(n_runs, -1, W_t.shape[1]) @ W_t).reshape(n_runs, n_patterns, n_units, -1)
        slope, bent = shared.slopes[k - 1], shared.bent[k - 1]
        if slope is not None:
            Qd *= slope[:, :, None]
        if bent is not None:
            if k - 1 == layer:  # Q{z_layer} = e_o: the (o, o) diagonal, a writeable view by einsum
                np.einsum("rnoo->rno", Qd[..., o0:o1])[...] += bent[:, :, o0:o1]
            else:
                Qd += bent[:, :, None] * Q_z[k - 1]
        Q_delta[k - 1] = Qd
    return Q_a, Q_delta


def _rows_block(
    shared: _Shared,
    layer: int,
    k: int,
    units_in: tuple[int, int],
    o0: int,
    Q_a: np.ndarray | None,
    Q_delta: np.ndarray,
    out: np.ndarray,
) -> None:
    """The rows of the unit vectors (i, o) of layer ``layer``'s block, i in ``units_in`` and o
    the units of the responses, in the columns of layer k's block: ``out`` (R, I, O, block k)."""
    n_runs, n_patterns, n_units, n_out = Q_delta.shape
    n_in = shared.inputs[k].shape[2] - 1
    a = shared.inputs[layer][:, :, units_in[0] : units_in[1], None]  # (R, N, I, 1)
    n_rows = a.shape[2]
    out = out.reshape(n_runs, n_rows, n_units, n_in + 1, n_out)  # a view into H: only the last axis splits
    # sum_n a[n, i] [a, 1]_k[n, j] Q{delta}[n, o, m]
    pairs = (a * shared.inputs[k][:, :, None]).reshape(n_runs, n_patterns, -1)
    product = np.swapaxes(pairs, 1, 2) @ Q_delta.reshape(n_runs, n_patterns, -1)
    out[...] = product.reshape(n_runs, n_rows, n_in + 1, n_units, n_out).transpose(0, 1, 3, 2, 4)
    if k == layer:  # R{a} = 0 below the direction's layer
        return
    # sum_n a[n, i] Q{a}[n, o, j] delta_k[n, m]
    if k == layer + 1:  # Q{a}[n, o, j] is zero but for j = o
        weighted = (Q_a[..., None] * shared.deltas[k][:, :, None]).reshape(n_runs, n_patterns, -1)
        product = np.swapaxes(a[..., 0], 1, 2) @ weighted
        diagonal = out[:, :, :, o0 : o0 + n_units]
        np.einsum("rioom->riom", diagonal)[...] += product.reshape(n_runs, n_rows, n_units, n_out)
    else:
        weighted = (a * shared.deltas[k][:, :, None]).reshape(n_runs, n_patterns, -1)
        product = np.swapaxes(weighted, 1, 2) @ Q_a.reshape(n_runs, n_patterns, -1)
        out[:, :, :, :-1] += product.reshape(n_runs, n_rows, n_out, n_units, n_in).transpose(0, 1, 3, 4, 2)
