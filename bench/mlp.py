"""The shared multilayer perceptron, batched over a leading axis of independent runs.

Every run's parameters are one row of a float64 matrix ``theta`` of shape (R, P).  All R networks
see the same inputs, so the first layer of all runs is one matrix product of the inputs against
the runs' weights side by side, (N, n_in) @ (n_in, R * n_hidden); deeper layers use stacked
``np.matmul`` on (R, N, n) arrays.  Row r of every result is what the same network computes for
``theta[r]`` alone.

Parameter layout of one row: for each layer in order, the weight matrix W of shape (n_in, n_out)
in row-major order, then the bias b of shape (n_out,).

Losses (per run, shape (R,)):

* ``"mse"``: half the squared error, summed over outputs, E = 1/2 sum_p sum_k (o_pk - t_pk)^2;
* ``"bce"``: binary cross-entropy of sigmoid outputs, computed from the logits z as
  softplus(z) - t z, which never overflows;
* ``"cross_entropy"``: softmax cross-entropy with one-hot targets, via log-sum-exp.

``reduction="sum"`` adds over patterns (the classic papers' E), ``"mean"`` averages over them.

Small networks are evaluated by a compiled kernel with the same formulas (``bench.kernels``,
``backend``); ``dtype="float32"`` runs this module's numpy arithmetic in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench import kernels

HIDDEN_ACTIVATIONS = ("sigmoid", "tanh", "relu", "identity")
OUTPUT_LOSS_PAIRS = {
    ("sigmoid", "mse"),
    ("sigmoid", "bce"),
    ("softmax", "cross_entropy"),
    ("identity", "mse"),
}
INIT_SCHEMES = ("uniform", "glorot", "he")
REDUCTIONS = ("sum", "mean")
BACKENDS = ("auto", "numpy", "numba")
DTYPES = ("float64", "float32")
# "auto" compiles networks whose every layer has at most this many weights (n_in x n_out): there
# numpy's per-call overhead outweighs its arithmetic.  Wider layers pay for a BLAS product.
COMPILED_MAX_WEIGHTS = 256


def resolve_backend(
    backend: str, layer_sizes: Sequence[int], dtype: str = "float64", hidden_activation: str = "sigmoid"
) -> str:
    """The backend that evaluates a network: "numpy" or "numba" ("auto" decides by size).

    "auto" is "numba" for float64 networks whose layers all have at most COMPILED_MAX_WEIGHTS
    weights and whose hidden units are not tanh, if numba imports here; otherwise "numpy".  (numpy's
    tanh is one vectorized pass, the compiled loop's an exp and a division per unit: compiled, the
    quick preset's moons and iris cells took 1.4x as long.)  The choice depends on the network only, never on
    the number of runs, so a run computes the same in a batch of any size.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if backend == "numba":
        if dtype != "float64":
            raise ValueError(
                "the numba backend computes in float64; float32 pays where matrix products are big, "
                'which is the numpy backend\'s domain: use backend = "numpy" or "auto" with dtype = "float32"'
            )
        if not kernels.available():
            raise ValueError('backend "numba" needs the numba package (pip install numba), or use backend = "numpy"')
        return backend
    if backend == "numpy":
        return backend
    small = all(n_in * n_out <= COMPILED_MAX_WEIGHTS for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:]))
    compiled = small and hidden_activation != "tanh" and dtype == "float64" and kernels.available()
    return "numba" if compiled else "numpy"


_CHUNK = 1 << 13  # elements per chunk: elementwise passes then stay in the L2 cache


def _logistic_parts(z: np.ndarray, e: np.ndarray, d: np.ndarray) -> None:
    """e = sigma(-|z|) and d = sigma(|z|), elementwise into the buffers ``e`` and ``d``.

    One exp(-|z|) = x in (0, 1] per element: d = 1 / (1 + x) and e = x d.  No step subtracts
    nearly equal numbers, so both keep their relative precision (a few ulp) down to the subnormal
    range (sigma(-745) is 5e-324, not 0), and nothing overflows.  ``d`` may be ``z`` itself.
    """
    np.abs(z, out=e)
    np.negative(e, out=e)
    np.exp(e, out=e)
    np.add(e, 1.0, out=d)
    np.reciprocal(d, out=d)
    np.multiply(e, d, out=e)


def _logistic_chunk(z: np.ndarray, slope: np.ndarray | None, e: np.ndarray, d: np.ndarray, neg: np.ndarray) -> None:
    """sigma(z) in place on the 1-D array ``z``, and sigma'(z) = sigma(z) sigma(-z) into ``slope``.

    sigma(z) is d = sigma(|z|) where z >= 0 and e = sigma(-|z|) where z < 0; the slope is e d,
    from both tails, never a (1 - a) after a has rounded to 1.  ``e``, ``d`` and ``neg`` are
    work buffers the size of ``z``.
    """
    np.less(z, 0.0, out=neg)
    _logistic_parts(z, e, d)
    if slope is not None:
        np.multiply(e, d, out=slope)
    np.copyto(z, d)
    np.copyto(z, e, where=neg)


def _tanh_chunk(z: np.ndarray, slope: np.ndarray | None, e: np.ndarray, d: np.ndarray, neg: np.ndarray) -> None:
    """tanh(z) in place on the 1-D array ``z``, and tanh'(z) into ``slope`` if given.

    tanh'(z) = 1 - tanh(z)^2 = 4 t / (1 + t)^2 with t = exp(-2|z|) in (0, 1]: the product form
    keeps the tails that 1 - tanh^2 rounds to 0 once |tanh(z)| rounds to 1 (|z| > 19).
    """
    if slope is not None:
        np.abs(z, out=e)
        np.multiply(e, -2.0, out=e)
        np.exp(e, out=e)  # t
        np.add(e, 1.0, out=d)
        np.divide(2.0, d, out=d)  # 2 / (1 + t)
        np.multiply(e, d, out=slope)
        slope *= d
    np.tanh(z, out=z)


_ACTIVATION_CHUNKS = {"sigmoid": _logistic_chunk, "tanh": _tanh_chunk}


def _activate(name: str, z: np.ndarray, need_slope: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply a hidden activation to pre-activations ``z`` in place: (a, slope).

    ``slope`` is the activation's derivative at z (laid out like z), or None if not asked for
    or if the activation is the identity (slope 1).  Sigmoid and tanh work in cache-sized chunks
    of the arrays' flat memory, since they take several passes.
    """
    if name == "identity":
        return z, None
    if name == "relu":
        slope = np.greater(z, 0.0) if need_slope else None
        return np.maximum(z, 0.0, out=z), slope
    slope = np.empty_like(z) if need_slope else None
    flat_z = _memory_order_flat(z)
    flat_s = _memory_order_flat(slope) if slope is not None else None
    size = min(_CHUNK, flat_z.size)
    e, d, neg = np.empty(size, dtype=z.dtype), np.empty(size, dtype=z.dtype), np.empty(size, dtype=bool)
    chunk = _ACTIVATION_CHUNKS[name]
    for start in range(0, flat_z.size, _CHUNK):
        cz = flat_z[start : start + _CHUNK]
        n = cz.size
        chunk(cz, None if flat_s is None else flat_s[start : start + n], e[:n], d[:n], neg[:n])
    return z, slope


def _elementwise(name: str, z: np.ndarray, want_slope: bool) -> np.ndarray:
    """The activation ``name`` (or its slope) of any array ``z``, as a new array."""
    a = np.array(z, dtype=np.float64, order="C", copy=True)
    a, slope = _activate(name, a, want_slope)
    return slope if want_slope else a


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function sigma(z) = 1 / (1 + e^-z), to a few ulp over all of float64.

    (The shortcut (1 + tanh(z / 2)) / 2 loses the negative tail: 35 % off at z = -37 and exactly
    0 below z = -37.4, which zeroes every gradient that passes through a saturated unit.)
    """
    return _elementwise("sigmoid", z, False)


def sigmoid_slope(z: np.ndarray) -> np.ndarray:
    """sigma'(z) = sigma(z) sigma(-z), from both tails (never a (1 - a) after a rounds to 1)."""
    return _elementwise("sigmoid", z, True)


def tanh_slope(z: np.ndarray) -> np.ndarray:
    """tanh'(z) = 4 sigma(2z) sigma(-2z), exact where 1 - tanh(z)^2 rounds to 0."""
    return _elementwise("tanh", z, True)


def _logistic_pair(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sigma(z) and sigma(-z) = 1 - sigma(z), each to a few ulp (the output layer's tails)."""
    e, d = np.empty_like(z), np.empty_like(z)
    _logistic_parts(z, e, d)  # sigma(-|z|), sigma(|z|)
    negative = z < 0.0
    return np.where(negative, e, d), np.where(negative, d, e)


def _with_ones(X: np.ndarray) -> np.ndarray:
    """[X, 1]: the inputs with a column of ones for the bias (in X's dtype)."""
    return np.concatenate([X, np.ones((X.shape[0], 1), dtype=X.dtype)], axis=1)


def _stacked_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """a @ b for stacks of per-run matrices, (R, n, k) @ (R, k, m).

    Tiny per-run products (the XOR-sized networks) run faster through einsum's loop than
    through one BLAS call per run; the choice depends on the per-run shapes only, never on R,
    so a row computes the same in a batch of any size.
    """
    if not _blas_sized(a.shape[1], a.shape[2], b.shape[2]):
        return np.einsum("rnk,rkm->rnm", a, b, out=out, order="C")
    return np.matmul(a, b, out=out)


def _blas_sized(n: int, k: int, m: int) -> bool:
    """Whether an (n, k) @ (k, m) product per run is worth a BLAS call (else einsum's loop)."""
    return n * k * m > 64


_GROUP_ELEMENTS = 1 << 19  # activations per group of runs evaluated together (4 MiB of float64)


def _memory_order_flat(x: np.ndarray) -> np.ndarray:
    """A flat view of ``x`` in memory order (``x`` is a C-contiguous array or a transpose of one)."""
    if x.flags.c_contiguous:
        return x.reshape(-1)
    base = x.transpose(1, 0, 2)
    if not base.flags.c_contiguous:
        raise AssertionError("activations are kept C-contiguous or as (1, 0, 2) transposes of such")
    return base.reshape(-1)


@dataclass(frozen=True)
class Layer:
    """Where one layer's weights and bias sit in a parameter row."""

    n_in: int
    n_out: int
    w_start: int
    b_start: int

    @property
    def end(self) -> int:
        return self.b_start + self.n_out


class MLP:
    """A fully connected network evaluated for R parameter rows at once.

    Parameters
    ----------
    layer_sizes : sequence of int
        Units per layer, input first, output last, e.g. ``[2, 2, 1]`` for XOR 2-2-1.
    hidden_activation : {"sigmoid", "tanh", "relu", "identity"}
    output_activation : {"sigmoid", "softmax", "identity"}
    loss : {"mse", "bce", "cross_entropy"}
        Must pair with the output: sigmoid+mse, sigmoid+bce, softmax+cross_entropy,
        identity+mse.
    reduction : {"sum", "mean"}
        Add the per-pattern losses (the classic E) or average them.
    backend : {"auto", "numpy", "numba"}
        Who evaluates the network: numpy (BLAS products), or a compiled loop (``bench.kernels``)
        that pays for small networks; "auto" picks by size and activation (``resolve_backend``).
    dtype : {"float64", "float32"}
        The arithmetic of forward and backward passes.  Parameters, losses and gradients are
        always handed over as float64 (the optimizers keep float64 "master" parameters, as in
        mixed-precision training); float32 halves the memory traffic of big matrix products.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        hidden_activation: str = "sigmoid",
        output_activation: str = "sigmoid",
        loss: str = "mse",
        reduction: str = "sum",
        backend: str = "auto",
        dtype: str = "float64",
    ) -> None:
        sizes = [int(n) for n in layer_sizes]
        if len(sizes) < 2 or any(n < 1 for n in sizes):
            raise ValueError(
                f"layer_sizes must list at least an input and an output size, each >= 1, got {list(layer_sizes)}"
            )
        if hidden_activation not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"hidden_activation must be one of {HIDDEN_ACTIVATIONS}, got {hidden_activation!r}")
        if (output_activation, loss) not in OUTPUT_LOSS_PAIRS:
            pairs = ", ".join(f"{o}+{lo}" for o, lo in sorted(OUTPUT_LOSS_PAIRS))
            raise ValueError(
                f"output activation {output_activation!r} with loss {loss!r} is not supported; use one of {pairs}"
            )
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if output_activation == "softmax" and sizes[-1] < 2:
            raise ValueError("a softmax output needs at least 2 units")
        self.layer_sizes = tuple(sizes)
        self.dtype = dtype
        self.backend = resolve_backend(backend, sizes, dtype, hidden_activation)
        self.hidden_activation = hidden_activation
        self.output_activation = output_activation
        self.loss_name = loss
        self.reduction = reduction
        layers, start = [], 0
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers.append(Layer(n_in, n_out, start, start + n_in * n_out))
            start += n_in * n_out + n_out
        self.layers: tuple[Layer, ...] = tuple(layers)
        self.n_params = start
        self._layout = (
            np.array(sizes, dtype=np.int64),
            np.array([lay.w_start for lay in layers], dtype=np.int64),
            kernels.HIDDEN_CODES[hidden_activation],
            kernels.OUTPUT_CODES[(output_activation, loss)],
            reduction == "mean",
        )

    def __repr__(self) -> str:
        extra = "" if self.dtype == "float64" else f", dtype={self.dtype!r}"
        return (
            f"MLP({list(self.layer_sizes)}, hidden={self.hidden_activation!r}, "
            f"output={self.output_activation!r}, loss={self.loss_name!r}, reduction={self.reduction!r}{extra})"
        )

    def _compute(self, a: np.ndarray) -> np.ndarray:
        """``a`` in the network's arithmetic dtype (float64 arrays pass through)."""
        return a if self.dtype == "float64" else a.astype(self.dtype)

    # ------------------------------------------------------------------ parameters
    def _check_theta(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=np.float64)
        if theta.ndim == 1:
            theta = theta[None, :]
        if theta.ndim != 2 or theta.shape[1] != self.n_params:
            raise ValueError(f"theta must have shape (n_runs, {self.n_params}) for {self!r}, got {theta.shape}")
        return theta

    def unflatten(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per-layer views of ``theta``: ``[(W (R, n_in, n_out), b (R, n_out)), ...]``.

        The views share memory with ``theta`` (no copies) when ``theta`` is a float64 array.
        """
        return self._views(self._check_theta(theta))

    def _views(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """``unflatten`` of a checked (R, P) array, in its own dtype."""
        n_runs = theta.shape[0]
        return [
            (
                theta[:, lay.w_start : lay.b_start].reshape(n_runs, lay.n_in, lay.n_out),
                theta[:, lay.b_start : lay.end],
            )
            for lay in self.layers
        ]

    def init(
        self,
        rng: np.random.Generator | Sequence[np.random.Generator],
        n_runs: int,
        scheme: str = "uniform",
        scale: float | None = None,
    ) -> np.ndarray:
        """Draw initial parameters, shape (n_runs, n_params).

        ``rng`` is one generator for all rows or a sequence of ``n_runs`` generators, one per
        row (row r then depends only on ``rng[r]``, never on how many rows are drawn).

        Schemes: ``"uniform"`` draws every weight and bias from U(-scale, scale) (the classic
        scheme); ``"glorot"`` draws weights from U(-a, a) with a = scale * sqrt(6 / (n_in +
        n_out)); ``"he"`` draws weights from N(0, (scale * sqrt(2 / n_in))^2).  Glorot and He
        set biases to zero; ``scale`` is their gain.  ``scale=None`` means 0.5 for uniform and a
        gain of 1 for Glorot and He.
        """
        if scheme not in INIT_SCHEMES:
            raise ValueError(f"init scheme must be one of {INIT_SCHEMES}, got {scheme!r}")
        if scale is None:
            scale = 0.5 if scheme == "uniform" else 1.0
        if not scale > 0:
            raise ValueError(f"init scale must be > 0, got {scale}")
        if isinstance(rng, np.random.Generator):
            return self._draw(rng, n_runs, scheme, scale)
        rngs = list(rng)
        if len(rngs) != n_runs:
            raise ValueError(f"got {len(rngs)} generators for {n_runs} runs; pass one per run")
        theta = np.empty((n_runs, self.n_params))
        for r, gen in enumerate(rngs):
            theta[r] = self._draw(gen, 1, scheme, scale)[0]
        return theta

    def _draw(self, gen: np.random.Generator, n_rows: int, scheme: str, scale: float) -> np.ndarray:
        """``n_rows`` parameter rows from one generator, layer by layer."""
        if scheme == "uniform":
            return gen.uniform(-scale, scale, size=(n_rows, self.n_params))
        theta = np.zeros((n_rows, self.n_params))
        for lay in self.layers:
            size = (n_rows, lay.n_in * lay.n_out)
            if scheme == "glorot":
                a = scale * np.sqrt(6.0 / (lay.n_in + lay.n_out))
                theta[:, lay.w_start : lay.b_start] = gen.uniform(-a, a, size=size)
            else:
                theta[:, lay.w_start : lay.b_start] = gen.normal(0.0, scale * np.sqrt(2.0 / lay.n_in), size=size)
        return theta

    # ------------------------------------------------------------------ forward and backward
    def _forward(
        self, theta: np.ndarray, X1: np.ndarray, need_slopes: bool = False
    ) -> tuple[list[tuple[np.ndarray, np.ndarray | None]], np.ndarray]:
        """Hidden layers as (activations, slopes), each (R, N, n), and output pre-activations z
        (R, N, n_out).  Slopes (the activation's derivative at each unit) only if ``need_slopes``.

        X1 is [X, 1], the inputs with a column of ones.

        The first layer's arrays live in "side by side" memory, (N, R, n) transposed to
        (R, N, n): that is the shape of one matrix product of X against all runs' weights.
        """
        params = self._views(theta)
        n_runs, n_patterns = theta.shape[0], X1.shape[0]
        hidden: list[tuple[np.ndarray, np.ndarray | None]] = []
        a = None
        for i, (W, b) in enumerate(params):
            if i == 0:
                # All runs see the same X: one matrix product against their weights side by side.
                # Each run's bias row follows its weights in theta, so [W; b] is one (n_in + 1,
                # n_out) block and [X, 1] @ [W; b] adds the bias inside the product.
                lay = self.layers[0]
                Wb = theta[:, lay.w_start : lay.end].reshape(n_runs, lay.n_in + 1, lay.n_out)
                Wb_side = Wb.transpose(1, 0, 2).reshape(lay.n_in + 1, n_runs * lay.n_out)
                z_side = X1 @ Wb_side
                z = z_side.reshape(n_patterns, n_runs, lay.n_out).transpose(1, 0, 2)
                if len(params) > 1 and _blas_sized(n_patterns, lay.n_out, self.layer_sizes[2]):
                    # One copy into per-run (R, N, n) memory: the stacked products of the next
                    # layer and of the backward pass run at BLAS speed on it, not on the view.
                    z = np.ascontiguousarray(z)
            else:
                z = _stacked_matmul(a, W)
                z += b[:, None, :]
            if i == len(params) - 1:
                return hidden, z
            a, slope = _activate(self.hidden_activation, z, need_slopes)
            hidden.append((a, slope))
        raise AssertionError("unreachable")

    def _output(self, z: np.ndarray) -> np.ndarray:
        if self.output_activation == "sigmoid":
            return sigmoid(z)
        if self.output_activation == "softmax":
            e = np.exp(z - z.max(axis=2, keepdims=True))
            e /= e.sum(axis=2, keepdims=True)
            return e
        return z.copy()

    def forward(self, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Network outputs, shape (R, N, n_out), for ``theta`` (R, P) and inputs ``X`` (N, n_in)."""
        theta = self._check_theta(theta)
        X = self._check_inputs(X)
        if self.backend == "numba":
            no_targets = kernels.no_targets(X.shape[0], self.layer_sizes[-1])
            return kernels.evaluate(theta, X, no_targets, self._layout, need_grad=False, need_output=True)[2]
        with np.errstate(all="ignore"):
            _, z = self._forward(self._compute(theta), _with_ones(self._compute(X)))
            return self._output(z).astype(np.float64, copy=False)

    def _check_inputs(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.layer_sizes[0]:
            raise ValueError(f"X must have shape (N, {self.layer_sizes[0]}), got {X.shape}")
        return X

    def _loss_and_output_delta(
        self, z: np.ndarray, Y: np.ndarray, need_delta: bool, need_output: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Per-run loss (R,), dLoss/dz (R, N, n_out) or None, and the outputs o (R, N, n_out)
        (None when neither they nor the delta are asked for: a loss alone skips their passes).

        Everything is computed from the logits z, so that a saturated output keeps its tail: a
        unit whose output rounds to its target still has a loss and a gradient of the right sign.
        """
        need_output = need_output or need_delta
        norm = 1.0 / z.shape[1] if self.reduction == "mean" else 1.0
        delta = out = None
        if self.loss_name == "cross_entropy":
            loss, delta, out = _softmax_cross_entropy(z, Y, need_delta, need_output)
        elif self.output_activation == "sigmoid":
            o, complement = _logistic_pair(z)  # sigma(z), sigma(-z)
            # The error o - t from the tail that keeps its precision: where z >= 0 and o rounds
            # towards 1 it is (1 - t) - sigma(-z), which is exactly -sigma(-z) for a target of 1.
            err = np.where(z >= 0.0, (1.0 - Y) - complement, o - Y)
            if self.loss_name == "bce":
                # softplus(z) - t z = max(z, 0) - t z + log1p(e^-|z|): for t = 1 and z > 0 the
                # first two terms cancel exactly, leaving the tail log1p(e^-z).
                with np.errstate(invalid="ignore"):  # inf - inf at infinite logits: NaN, as data
                    per_unit = np.maximum(z, 0.0) - z * Y + np.log1p(np.exp(-np.abs(z)))
                loss = per_unit.sum(axis=(1, 2))
                if need_delta:
                    delta = err
            else:
                loss = 0.5 * np.einsum("rnk,rnk->r", err, err)
                if need_delta:
                    delta = err * (o * complement)  # sigma'(z) = sigma(z) sigma(-z)
            out = o if need_output else None
        else:
            err = z - Y
            loss = 0.5 * np.einsum("rnk,rnk->r", err, err)
            out = z if need_output else None
            if need_delta:
                delta = err
        loss = loss * norm
        if delta is not None and norm != 1.0:
            delta *= norm
        return loss, delta, out

    def loss(self, theta: np.ndarray, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """Loss per run, shape (R,)."""
        loss, _, _ = self.evaluate(theta, X, Y, need_grad=False, need_output=False)
        return loss

    def loss_and_grad(self, theta: np.ndarray, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Loss (R,) and its gradient with respect to ``theta`` (R, P)."""
        loss, grad, _ = self.evaluate(theta, X, Y, need_grad=True)
        return loss, grad

    def evaluate(
        self, theta: np.ndarray, X: np.ndarray, Y: np.ndarray, need_grad: bool = True, need_output: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Loss (R,), gradient (R, P) or None, and outputs (R, N, n_out) (or None if not
        ``need_output``) in one pass.

        Non-finite values (from huge weights or learning rates) propagate as inf/NaN without
        warnings: the runner records them as a diverged run.
        """
        theta = self._check_theta(theta)
        X = self._check_inputs(X)
        Y = np.asarray(Y, dtype=np.float64)
        if Y.shape != (X.shape[0], self.layer_sizes[-1]):
            raise ValueError(f"Y must have shape ({X.shape[0]}, {self.layer_sizes[-1]}), got {Y.shape}")
        if self.backend == "numba":
            return kernels.evaluate(theta, X, Y, self._layout, need_grad, need_output)
        if self.dtype != "float64":
            computed = (self._compute(a) for a in (theta, X, Y))
            loss, grad, out = self._evaluate(*computed, need_grad, need_output)
            as64 = (None if a is None else a.astype(np.float64) for a in (grad, out))
            return loss.astype(np.float64), *as64
        return self._evaluate(theta, X, Y, need_grad, need_output)

    def _evaluate(
        self, theta: np.ndarray, X: np.ndarray, Y: np.ndarray, need_grad: bool, need_output: bool
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """``evaluate`` with numpy, in the dtype of the arrays given."""
        n_runs = theta.shape[0]
        X1 = _with_ones(X)
        # Rows are independent, so large batches go in groups whose activations fit in cache:
        # the results are the same, and a batch never gets slower than one run at a time.
        group = max(1, _GROUP_ELEMENTS // (X.shape[0] * max(self.layer_sizes[1:])))
        if group >= n_runs:
            with np.errstate(all="ignore"):
                hidden, z = self._forward(theta, X1, need_grad)
                loss, delta, out = self._loss_and_output_delta(z, Y, need_grad, need_output)
                return loss, self._backward(theta, X1, hidden, delta) if need_grad else None, out
        loss = np.empty(n_runs, dtype=theta.dtype)
        grad = np.empty_like(theta) if need_grad else None
        out = np.empty((n_runs, X.shape[0], self.layer_sizes[-1]), dtype=theta.dtype) if need_output else None
        with np.errstate(all="ignore"):
            for start in range(0, n_runs, group):
                rows = slice(start, start + group)
                hidden, z = self._forward(theta[rows], X1, need_grad)
                loss[rows], delta, out_rows = self._loss_and_output_delta(z, Y, need_grad, need_output)
                if need_output:
                    out[rows] = out_rows
                if need_grad:
                    grad[rows] = self._backward(theta[rows], X1, hidden, delta)
        return loss, grad, out

    def hvp(self, theta: np.ndarray, X: np.ndarray, Y: np.ndarray, V: np.ndarray) -> np.ndarray:
        """Hessian of the training loss times a direction per run, H(theta_r) V_r: (R, P).

        Exact (Pearlmutter's R-operator, ``bench.hessian``), about two gradients' cost.
        """
        from bench.hessian import hvp

        return hvp(self, theta, X, Y, V)

    def hessian(self, theta: np.ndarray, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """The Hessian of the training loss per run, (R, P, P), exact and symmetric (``bench.hessian``)."""
        from bench.hessian import hessian

        return hessian(self, theta, X, Y)

    def _backward(
        self,
        theta: np.ndarray,
        X1: np.ndarray,
        hidden: list[tuple[np.ndarray, np.ndarray | None]],
        delta: np.ndarray,
    ) -> np.ndarray:
        n_runs, n_patterns = theta.shape[0], X1.shape[0]
        grad = np.empty_like(theta)
        for i in range(len(self.layers) - 1, -1, -1):
            lay = self.layers[i]
            # [W; b] of this layer in the gradient row, as (R, n_in + 1, n_out) (a view).
            g_block = grad[:, lay.w_start : lay.end].reshape(n_runs, lay.n_in + 1, lay.n_out)
            if i == 0:
                # [X, 1]^T @ delta side by side: the weight and bias gradients in one product.
                d_side = delta.transpose(1, 0, 2).reshape(n_patterns, n_runs * lay.n_out)
                g_side = X1.T @ d_side
                g_block[...] = g_side.reshape(lay.n_in + 1, n_runs, lay.n_out).transpose(1, 0, 2)
                break
            g_block[:, -1] = np.einsum("rnk->rk", delta)
            a_prev, slope = hidden[i - 1]
            g_block[:, :-1] = _stacked_matmul(a_prev.transpose(0, 2, 1), delta)
            W_t = theta[:, lay.w_start : lay.b_start].reshape(n_runs, lay.n_in, lay.n_out).transpose(0, 2, 1)
            # Laid out like the activations and their slopes, so the product pairs them in order.
            delta = _stacked_matmul(delta, W_t, out=np.empty_like(a_prev))
            if slope is not None:  # None: the identity, slope 1
                delta *= slope
        return grad


def _softmax_cross_entropy(
    z: np.ndarray, Y: np.ndarray, need_delta: bool, need_output: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Softmax cross-entropy from the logits z (R, N, K) and targets Y (N, K): loss (R,), delta
    and probabilities (or None).

    With m the largest logit of a pattern and rest = sum of e^(z_k - m) over all classes but one
    that reaches m, log sum_k e^(z_k) = m + log1p(rest): exact where the top class dominates,
    where log(1 + rest) would round to 0.  Likewise the gradient of a one-hot pattern whose
    target reaches m, p_target - 1, is -rest / (1 + rest), not a difference after p rounds to 1.
    """
    n_runs, n_patterns, n_classes = z.shape
    shifted = z - _last_axis_max(z)  # <= 0, exactly 0 where a logit reaches the maximum
    y_sums = Y.sum(axis=1)
    # -sum_k t_k log p_k = sum_k t_k (log sum_j e^{z_j} - z_k), summed over patterns.
    target_logits = shifted.reshape(n_runs, -1) @ Y.reshape(-1)
    top = shifted == 0.0
    ones = np.ones(n_classes, dtype=z.dtype)
    e = np.exp(shifted, out=shifted)
    # Every top class contributes exactly 1; leave one of them out of the sum, not 1 after it.
    rest = np.where(top, 0.0, e) @ ones + (top @ ones - 1.0)  # (R, N)
    loss = np.log1p(rest) @ y_sums - target_logits
    if not need_output:
        return loss, None, None
    p_top = 1.0 / (1.0 + rest)
    p = np.multiply(e, p_top[..., None], out=e)  # e is 1 at a top class: p is p_top there
    if not need_delta:
        return loss, None, p
    one_hot = y_sums == 1.0
    delta = p - Y if np.all(one_hot) else p * y_sums[None, :, None] - Y
    exact = top & ((Y == 1.0) & one_hot[:, None])
    np.copyto(delta, -(rest * p_top)[..., None], where=exact)
    return loss, delta, p


def _last_axis_max(z: np.ndarray) -> np.ndarray:
    """max over the last axis, keepdims; a pass per column is faster than a reduce over a short axis."""
    if z.shape[-1] > 32:
        return z.max(axis=-1, keepdims=True)
    m = z[..., 0].copy()
    for k in range(1, z.shape[-1]):
        np.maximum(m, z[..., k], out=m)
    return m[..., None]
