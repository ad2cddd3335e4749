"""Compiled kernels (numba): the MLP's loss, gradient and outputs in one pass for small networks,
and the momentum and Rprop updates in one pass (below, "update rules").

For the networks this suite lives on (XOR 2-2-1, encoders, parity, two spirals) a numpy call
costs more than its arithmetic: a step of 1,000 XOR runs is dozens of calls on arrays of a few
thousand numbers.  ``evaluate`` does the whole forward and backward pass of every run in one
compiled loop instead, one run at a time (so row r never depends on the other rows, nor on R),
with its activations in per-run scratch laid out (units, patterns) so the innermost loops run
along the patterns.

Same math, same formulas, term by term, as ``bench.mlp``'s numpy path: the logistic from one
exp(-|z|) by sign and its slope as sigma(z) sigma(-z), tanh's slope as 4t / (1 + t)^2 with
t = exp(-2|z|), the output error from the tail that keeps its precision, cross-entropies from the
logits (softplus; log1p of the softmax's "rest").  What may differ:

* the order of additions in the sums over patterns (BLAS and einsum pick their own; here the
  gradient sums may be reassociated by the compiler into vector lanes, ``_radd``), so a call
  agrees with numpy to a few units in the last place of the sum's terms; the tests hold it to
  1e-12 of them.  The order is fixed by the compiled code: the same on a machine, whatever R or
  the other runs (a row gives the same bits alone or in a batch); another CPU's vector width
  may round differently, as another BLAS does;
* the logistic's exp(-|z|), computed in vector lanes (``_exp_lane``, within 0.67 ulp, where
  numpy's exp is within 0.70 and libm's 0.51), and by libm wherever the result is subnormal or
  0 (|z| > 708), so the tails deep in saturation are libm's, exactly.

Compiled with ``cache=True``: the first call on a machine compiles (``compile_seconds``), later
processes load the machine code from ``__pycache__``.
"""

from __future__ import annotations

import functools
import math
import time

import numpy as np

try:  # numba is a dependency; without it (an unsupported platform) "auto" means numpy
    import numba
except ImportError:  # pragma: no cover - exercised only where numba cannot be installed
    numba = None

HIDDEN_CODES = {"identity": 0, "sigmoid": 1, "tanh": 2, "relu": 3}
OUTPUT_CODES = {("sigmoid", "mse"): 0, ("sigmoid", "bce"): 1, ("softmax", "cross_entropy"): 2, ("identity", "mse"): 3}


def available() -> bool:
    """Whether numba imports here (it is a dependency; a platform without wheels may lack it)."""
    return numba is not None


def jit(function, inline: bool = False):
    """``function`` compiled by numba on first call (cached on disk, NaN and inf as numpy has them),
    or itself where numba is missing: plain loops over small arrays, cheaper compiled than as
    numpy calls.  ``inline``: a helper of other compiled functions, compiled into each caller."""
    if numba is None:  # pragma: no cover - exercised only where numba cannot be installed
        return function
    if inline:
        return numba.njit(inline="always", cache=True)(function)
    return numba.njit(cache=True, nogil=True, error_model="numpy")(function)


def _evaluate(theta, XT, Y, sizes, w_starts, hidden, output, mean, one_hot, need_grad, need_out, loss, grad, out):  # noqa: C901, PLR0912, PLR0915
    """Loss into ``loss`` (R,), gradient into ``grad`` (R, P) if ``need_grad``, outputs into
    ``out`` (R, N, K) if ``need_out``.  XT is the inputs transposed, (n_in, N); ``sizes`` the
    layer sizes; ``w_starts`` where each layer's weights start in a row; ``hidden`` and
    ``output`` the codes of HIDDEN_CODES and OUTPUT_CODES; ``one_hot`` whether every target row
    sums to 1 (softmax's gradient p - t, else p sum(t) - t)."""
    n_runs, n_patterns = theta.shape[0], XT.shape[1]
    n_layers = sizes.shape[0] - 1
    n_outputs = sizes[n_layers]
    width = 1
    units = 0
    for layer in range(1, n_layers):
        units += sizes[layer]
        width = max(width, sizes[layer])
    width = max(width, n_outputs)
    acts = np.empty((max(units, 1), n_patterns))  # hidden activations, layer after layer
    slopes = np.empty((max(units, 1), n_patterns))
    z = np.empty((n_outputs, n_patterns))
    delta = np.empty((width, n_patterns))
    delta_prev = np.empty((width, n_patterns))
    norm = 1.0 / n_patterns if mean else 1.0
    y_sums = np.zeros(n_patterns)
    for p in range(n_patterns):
        for k in range(n_outputs):
            y_sums[p] += Y[p, k]
    e = np.empty(n_outputs)
    for r in range(n_runs):
        th = theta[r]
        # ---------------------------------------------------------------- forward
        in_start = 0
        for layer in range(n_layers):
            n_in, n_out = sizes[layer], sizes[layer + 1]
            ws = w_starts[layer]
            bs = ws + n_in * n_out
            last = layer == n_layers - 1
            source = XT if layer == 0 else acts
            source_start = 0 if layer == 0 else in_start
            target = z if last else acts
            target_start = 0 if last else in_start + (n_in if layer > 0 else 0)
            for j in range(n_out):
                row = target_start + j
                # sum_i w_ij a_i + b_j; the innermost loops run along the patterns (contiguous)
                _weighted_sum(target, row, source, source_start, th, ws + j, n_out, n_in, th[bs + j], n_patterns)
                logistic = (output == 0 or output == 1) if last else hidden == 1
                if logistic:  # exp(-|v|) of the row, vectorized: the outputs' into scratch, the hidden
                    exps = delta_prev if last else slopes  # units' into their slopes (one call site, so
                    _exp_neg_abs_row(target, row, exps, row, n_patterns)  # compiled once)
                if last or hidden == 0:
                    continue
                if hidden == 1:  # the logistic from one exp(-|v|): both tails exact
                    for p in range(n_patterns):
                        v = target[row, p]
                        x = slopes[row, p]
                        d = 1.0 / (x + 1.0)
                        t = x * d
                        slopes[row, p] = t * d
                        target[row, p] = t if v < 0.0 else d
                elif hidden == 2:  # tanh; its slope 4t / (1 + t)^2 with t = exp(-2|v|)
                    for p in range(n_patterns):
                        v = target[row, p]
                        t = math.exp(abs(v) * -2.0)
                        if need_grad:
                            d = 2.0 / (t + 1.0)
                            slopes[row, p] = t * d * d
                        # tanh|v| = (1 - t) / (1 + t), or -m / (2 + m) with m = expm1(-2|v|) where
                        # 1 - t would cancel: a few ulp either way (libm's tanh is 3x slower)
                        if t <= 0.5:
                            a = (1.0 - t) / (1.0 + t)
                        else:
                            m = math.expm1(abs(v) * -2.0)
                            a = -m / (m + 2.0)
                        target[row, p] = -a if v < 0.0 else (a if v == v else v)
                else:  # relu; NaN stays NaN (as np.maximum), its slope 0
                    for p in range(n_patterns):
                        v = target[row, p]
                        slopes[row, p] = 1.0 if v > 0.0 else 0.0
                        if not v >= 0.0 and v == v:
                            target[row, p] = 0.0
            if layer > 0:
                in_start += n_in
        # ---------------------------------------------------------------- loss and output delta
        total = 0.0
        if output == 2:  # softmax cross-entropy from the logits (bench.mlp._softmax_cross_entropy)
            log_terms, target_logits = 0.0, 0.0
            for p in range(n_patterns):
                m = z[0, p]
                for k in range(1, n_outputs):
                    v = z[k, p]
                    if v > m or v != v:  # as np.maximum: NaN wins
                        m = v
                rest, tops = 0.0, 0.0
                for k in range(n_outputs):
                    s = z[k, p] - m
                    target_logits += s * Y[p, k]
                    if s == 0.0:
                        tops += 1.0
                        e[k] = 1.0
                    else:
                        e[k] = math.exp(s)
                        rest += e[k]
                rest += tops - 1.0
                log_terms += math.log1p(rest) * y_sums[p]
                p_top = 1.0 / (rest + 1.0)
                for k in range(n_outputs):
                    prob = e[k] * p_top
                    if need_out:
                        out[r, p, k] = prob
                    if need_grad:
                        if one_hot:
                            dk = prob - Y[p, k]
                        else:
                            dk = prob * y_sums[p] - Y[p, k]
                        if z[k, p] - m == 0.0 and Y[p, k] == 1.0 and y_sums[p] == 1.0:
                            dk = -(rest * p_top)
                        delta[k, p] = dk * norm if mean else dk
            total = log_terms - target_logits
        elif output == 3:  # identity + squared error
            for k in range(n_outputs):
                for p in range(n_patterns):
                    err = z[k, p] - Y[p, k]
                    total += err * err
                    if need_out:
                        out[r, p, k] = z[k, p]
                    if need_grad:
                        delta[k, p] = err * norm if mean else err
            total = 0.5 * total
        else:  # sigmoid outputs: the error o - t from the tail that keeps its precision
            for k in range(n_outputs):
                for p in range(n_patterns):
                    v = z[k, p]
                    y = Y[p, k]
                    x = delta_prev[k, p]  # exp(-|v|), from the forward pass
                    d = 1.0 / (x + 1.0)
                    t = x * d
                    o = t if v < 0.0 else d  # sigma(v)
                    complement = d if v < 0.0 else t  # sigma(-v)
                    err = (1.0 - y) - complement if v >= 0.0 else o - y
                    if output == 1:  # softplus(v) - y v; NaN at infinite logits, as in numpy
                        top = v if (v > 0.0 or v != v) else 0.0
                        total += (top - v * y) + math.log1p(x)
                        dk = err
                    else:
                        total += err * err
                        dk = err * (o * complement)
                    if need_out:
                        out[r, p, k] = o
                    if need_grad:
                        delta[k, p] = dk * norm if mean else dk
            if output == 0:
                total = 0.5 * total
        loss[r] = total * norm
        if not need_grad:
            continue
        # ---------------------------------------------------------------- backward
        for layer in range(n_layers - 1, -1, -1):
            n_in, n_out = sizes[layer], sizes[layer + 1]
            ws = w_starts[layer]
            bs = ws + n_in * n_out
            if layer > 0:
                in_start -= n_in
            source = XT if layer == 0 else acts
            source_start = 0 if layer == 0 else in_start
            _layer_gradient(grad, r, ws, n_in, n_out, source, source_start, delta, n_patterns)
            if layer == 0:
                break
            for i in range(n_in):
                _weighted_sum(delta_prev, i, delta, 0, th, ws + i * n_out, 1, n_out, -0.0, n_patterns)
                if hidden != 0:
                    for p in range(n_patterns):
                        delta_prev[i, p] *= slopes[in_start + i, p]
            delta, delta_prev = delta_prev, delta


def _exp_lane(x):
    """exp(x) for -708 <= x <= 0 (a normal result), branch-free, so that a loop of them
    vectorizes (libm's exp is a call): within 0.67 ulp, where math.exp is within 0.51, so the two
    differ by at most 1 ulp.  Elsewhere the result is meaningless (its scale 2^k is assembled
    from bits; no step traps or is undefined): callers recompute such arguments with math.exp.

    x = k ln2 + r, |r| <= ln2 / 2, k = round(x / ln2) by adding and subtracting 1.5 * 2^52 (k
    then sits in the low bits of the sum); r = hi - lo with ln2 split as fdlibm's ln2_hi + ln2_lo
    (k ln2_hi and hi = x - k ln2_hi are exact).  exp(r) = 1 + r + r^2 q(r), q a minimax
    polynomial of degree 10 (error 1.4e-18), added as (1 + hi) + (the rounding error of 1 + hi
    + r^2 q - lo); then times 2^k, exactly."""
    shifted = x * 1.4426950408889634 + 6755399441055744.0
    k = np.float64(shifted).view(np.int64) - 0x4338000000000000  # the bits of 1.5 * 2^52
    kf = shifted - 6755399441055744.0
    hi = x - kf * 6.93147180369123816490e-01
    lo = kf * 1.90821492927058770002e-10
    r = hi - lo
    q = 2.7557255424100354e-06 + r * (2.755725293752941e-07 + r * (2.5105206981610066e-08 + r * 2.0921580875577855e-09))
    q = 0.0013888888888874409 + r * (0.0001984126987480198 + r * (2.480158734731361e-05 + r * q))
    q = 0.5 + r * (0.1666666666666667 + r * (0.041666666666666685 + r * (0.008333333333326141 + r * q)))
    s = 1.0 + hi
    y = s + (((1.0 - s) + hi) + (r * r * q - lo))
    return y * np.int64((k + 1023) << 52).view(np.float64)


def _exp_neg_abs_row(z, i, out, j, n):
    """out[j, p] = exp(-|z[i, p]|) for p < n: math.exp's to 1 ulp, and exactly math.exp's below
    e^-708 (subnormal results, 0) and for NaN.  ``_exp_lane`` over the first n - n % 8 patterns,
    a vectorized pass, then math.exp for the arguments beyond its range (|z| > 708, NaN), which a
    saturated or diverged unit brings, and for the last n % 8 patterns (one at a time, libm's exp
    is the faster: its chain of dependent operations is the shorter)."""
    m = n >> 3 << 3  # (numba's % and // are Python's: branches for the signs)
    beyond = 0
    for p in range(m):
        x = -abs(z[i, p])
        out[j, p] = _exp_lane(x)
        beyond += 0 if x >= -708.0 else 1
    if beyond:
        for p in range(m):
            x = -abs(z[i, p])
            if not x >= -708.0:
                out[j, p] = math.exp(x)
    for p in range(m, n):
        out[j, p] = math.exp(-abs(z[i, p]))


def _weighted_sum(target, row, source, first, th, w_first, w_step, count, end, n):
    """target[row, p] = sum_c th[w_first + c w_step] source[first + c, p] over c < count (>= 1),
    added in the order of c from 0.0 and then ``end`` (-0.0 for none: x + -0.0 is x, a sum the
    compiler drops), for p < n.  Up to four rows of ``source`` per pass over the target row (a
    pass loads and stores the target row once for up to four products).  (The order is numpy's,
    [a, 1] @ [W; b]: in deep saturation a logit's rounding shows in its unit's tail, e^-|z|.)"""
    k = count - ((count - 1) >> 2 << 2)  # 1 to 4: the first pass takes the odd rows, the others four each
    e = end if k == count else -0.0  # the first pass is also the last
    w0 = th[w_first]
    if k == 1:
        for p in range(n):
            target[row, p] = (0.0 + w0 * source[first, p]) + e
    elif k == 2:
        w1 = th[w_first + w_step]
        for p in range(n):
            t = (0.0 + w0 * source[first, p]) + w1 * source[first + 1, p]
            target[row, p] = t + e
    elif k == 3:
        w1, w2 = th[w_first + w_step], th[w_first + 2 * w_step]
        for p in range(n):
            t = ((0.0 + w0 * source[first, p]) + w1 * source[first + 1, p]) + w2 * source[first + 2, p]
            target[row, p] = t + e
    else:
        w1, w2, w3 = th[w_first + w_step], th[w_first + 2 * w_step], th[w_first + 3 * w_step]
        for p in range(n):
            t = ((0.0 + w0 * source[first, p]) + w1 * source[first + 1, p]) + w2 * source[first + 2, p]
            target[row, p] = (t + w3 * source[first + 3, p]) + e
    for c in range(k, count, 4):
        w0, w1 = th[w_first + c * w_step], th[w_first + (c + 1) * w_step]
        w2, w3 = th[w_first + (c + 2) * w_step], th[w_first + (c + 3) * w_step]
        r = first + c
        for p in range(n):
            t = (target[row, p] + w0 * source[r, p]) + w1 * source[r + 1, p]
            target[row, p] = (t + w2 * source[r + 2, p]) + w3 * source[r + 3, p]
    if count > 4:  # then ``end``, in a pass of its own (folded into the last pass, it slowed the
        for p in range(n):  # small networks' calls by half, whose single pass never ran it)
            target[row, p] += end


def _layer_gradient(grad, r, ws, n_in, n_out, source, first, delta, n):
    """A layer's gradient into grad[r]: its weights' sum_p source[first + i, p] delta[j, p] at
    ws + i n_out + j, its biases' sum_p delta[j, p] after them, over p < n.

    The sums' additions may be reassociated (``_radd``): the compiler splits each sum into vector
    lanes and several vector accumulators (so its rounding order is the compiler's).  Four
    weights per pass share the loads of the delta row."""
    bs = ws + n_in * n_out
    for j in range(n_out):
        s = 0.0
        for p in range(n):
            s = _radd(s, delta[j, p])
        grad[r, bs + j] = s
        i = 0
        while i + 4 <= n_in:
            s0 = s1 = s2 = s3 = 0.0
            a = first + i
            for p in range(n):
                d = delta[j, p]
                s0 = _radd(s0, source[a, p] * d)
                s1 = _radd(s1, source[a + 1, p] * d)
                s2 = _radd(s2, source[a + 2, p] * d)
                s3 = _radd(s3, source[a + 3, p] * d)
            grad[r, ws + i * n_out + j] = s0
            grad[r, ws + (i + 1) * n_out + j] = s1
            grad[r, ws + (i + 2) * n_out + j] = s2
            grad[r, ws + (i + 3) * n_out + j] = s3
            i += 4
        while i < n_in:
            s = 0.0
            for p in range(n):
                s = _radd(s, source[first + i, p] * delta[j, p])
            grad[r, ws + i * n_out + j] = s
            i += 1


def _radd(a, b):
    """a + b; compiled, an addition the compiler may reassociate (below)."""
    return a + b


if numba is not None:
    from numba.core import types as _types
    from numba.extending import intrinsic as _intrinsic

    @_intrinsic
    def _radd(typingctx, a, b):
        """a + b (float64), an addition the compiler may reassociate (LLVM's ``reassoc`` flag, and
        no other fast-math flag: NaN and inf propagate as ever).  A sum of them along a loop
        vectorizes: LLVM keeps partial sums in vector lanes and several vector accumulators."""
        if not (isinstance(a, _types.Float) and isinstance(b, _types.Float)):
            return None

        def codegen(context, builder, signature, args):
            return builder.fadd(args[0], args[1], flags=("reassoc",))

        return _types.float64(_types.float64, _types.float64), codegen


_layer_gradient, _exp_lane, _exp_neg_abs_row, _weighted_sum = (
    jit(f, inline=True) for f in (_layer_gradient, _exp_lane, _exp_neg_abs_row, _weighted_sum)
)

_compiled = None
compile_seconds: float | None = None  # the first call's compile (or cache load) time in this process


# The one signature every call uses (writable C-contiguous arrays): compiled once, eagerly.
_SIGNATURE = "void(f8[:, ::1], f8[:, ::1], f8[:, ::1], i8[::1], i8[::1], i8, i8, b1, b1, b1, b1, f8[::1], f8[:, ::1], f8[:, :, ::1])"


def _kernel():
    global _compiled, compile_seconds
    if _compiled is None:
        start = time.perf_counter()
        _compiled = numba.njit(_SIGNATURE, cache=True, nogil=True, error_model="numpy")(_evaluate)
        compile_seconds = time.perf_counter() - start
    return _compiled


# ---------------------------------------------------------------------------- update rules
#
# The gradient rules' updates, elementwise over (R, P), each in one pass: the same IEEE operations
# in the same order as the rules' numpy expressions (no sums, no contraction into fused
# multiply-adds), so they give the same bits, and a test holds them to it.  Per-run settings
# arrive as (R,) arrays.


def _momentum(theta, grad, velocity, rate, mu, nesterov, new_theta, new_velocity):
    for r in range(theta.shape[0]):
        lr, m = rate[_at(rate, r)], mu[_at(mu, r)]
        for p in range(theta.shape[1]):
            descent = lr * grad[r, p]
            v = m * velocity[r, p] - descent
            new_velocity[r, p] = v
            new_theta[r, p] = theta[r, p] + ((m * v - descent) if nesterov else v)


def _rprop(theta, grad, step_size, prev_grad, prev_update, error_rose, variant, eta_plus, eta_minus, delta_min,
           delta_max, new_theta, new_step, new_grad, new_update):  # fmt: skip
    """variant: 0 rprop+, 1 rprop-, 2 irprop+, 3 irprop- (optimizers.rprop.VARIANTS)."""
    for r in range(theta.shape[0]):
        grow, shrink = eta_plus[_at(eta_plus, r)], eta_minus[_at(eta_minus, r)]
        low, high = delta_min[_at(delta_min, r)], delta_max[_at(delta_max, r)]
        for p in range(theta.shape[1]):
            g = grad[r, p]
            product = g * prev_grad[r, p]
            step = step_size[r, p]
            if product > 0.0:  # np.minimum: a NaN wins
                grown = step * grow
                step = grown if (grown < high or grown != grown) else high
            flipped = product < 0.0
            if flipped:
                shrunk = step * shrink
                step = shrunk if (shrunk > low or shrunk != shrunk) else low
            sign = 1.0 if g > 0.0 else (-1.0 if g < 0.0 else (0.0 if g == 0.0 else g))  # np.sign
            update = -sign * step
            if flipped:
                if variant == 0:
                    update = -prev_update[r, p]
                elif variant == 2:
                    update = -prev_update[r, p] if error_rose[r] else 0.0
                elif variant == 3:
                    update = 0.0
                if variant != 1:
                    g = 0.0
            new_step[r, p] = step
            new_grad[r, p] = g
            new_update[r, p] = update
            new_theta[r, p] = theta[r, p] + update


def _at(values, r):
    """Where run r's setting is in ``values``: its own entry, or the one entry that all runs share."""
    return r if values.shape[0] > 1 else 0


_at = jit(_at, inline=True)

_MOMENTUM_SIGNATURE = "void(f8[:, ::1], f8[:, ::1], f8[:, ::1], f8[::1], f8[::1], b1, f8[:, ::1], f8[:, ::1])"
_RPROP_SIGNATURE = (
    "void(f8[:, ::1], f8[:, ::1], f8[:, ::1], f8[:, ::1], f8[:, ::1], b1[::1], i8, f8[::1], f8[::1], f8[::1], "
    "f8[::1], f8[:, ::1], f8[:, ::1], f8[:, ::1], f8[:, ::1])"
)
_updates: dict[str, object] = {}


def _update_kernel(name: str):
    if name not in _updates:
        function, signature = {"momentum": (_momentum, _MOMENTUM_SIGNATURE), "rprop": (_rprop, _RPROP_SIGNATURE)}[name]
        _updates[name] = numba.njit(signature, cache=True, nogil=True, error_model="numpy")(function)
    return _updates[name]


def _rows(value, n_runs: int) -> np.ndarray:
    """A hyperparameter as a contiguous float64 array: per-run values ((R,) or (R, 1)) as (R,),
    one value for all runs as (1,) (the kernels read entry ``_at(values, r)``)."""
    if isinstance(value, np.ndarray) and value.ndim:
        return np.array(value.reshape(n_runs), dtype=np.float64)
    return np.array((value,), dtype=np.float64)


def _c(a: np.ndarray) -> np.ndarray:
    return a if a.flags.c_contiguous and a.flags.writeable and a.dtype == np.float64 else np.array(a, np.float64)


def momentum_update(theta, grad, velocity, rate, mu, nesterov: bool) -> tuple[np.ndarray, np.ndarray]:
    """New parameters and velocity of classical (or Nesterov) momentum, in one pass."""
    n = theta.shape[0]
    new_theta, new_velocity = np.empty_like(theta), np.empty_like(theta)
    _update_kernel("momentum")(
        _c(theta), _c(grad), _c(velocity), _rows(rate, n), _rows(mu, n), bool(nesterov), new_theta, new_velocity
    )
    return new_theta, new_velocity


def rprop_update(theta, grad, step_size, prev_grad, prev_update, error_rose, variant: int, settings):
    """New parameters, step sizes, remembered gradient and update of an Rprop variant, in one pass."""
    n = theta.shape[0]
    out = [np.empty_like(theta) for _ in range(4)]
    _update_kernel("rprop")(
        _c(theta), _c(grad), _c(step_size), _c(prev_grad), _c(prev_update),
        np.array(error_rose, dtype=np.bool_), variant,
        *(_rows(getattr(settings, k), n) for k in ("eta_plus", "eta_minus", "delta_min", "delta_max")), *out,
    )  # fmt: skip
    return tuple(out)


def warm_up_for(backends, log) -> None:
    """Before starting workers: if any of ``backends`` is "numba", compile or load the kernel here
    and ``log`` which (the workers then all load the cache instead of compiling side by side)."""
    if "numba" in set(backends) and (message := warm_up()):
        log(message)


def warm_up() -> str:
    """Compile the kernel, or load it from numba's cache, in this process; say which and how long
    ("" if it was ready).  Runs call it before starting workers, which then all load the cache."""
    if _compiled is not None:
        return ""
    kernel = _kernel()
    if sum(kernel.stats.cache_hits.values()):
        return f"compiled kernel loaded from the cache in {compile_seconds:.1f} s"
    return (
        f"compiled kernel: first use on this machine, compiled in {compile_seconds:.1f} s "
        f"(cached in {kernel.stats.cache_path}; later runs load it)"
    )


def evaluate(
    theta: np.ndarray,
    X: np.ndarray,
    Y: np.ndarray,
    layout: tuple[np.ndarray, np.ndarray, int, int, bool],
    need_grad: bool,
    need_output: bool,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The MLP's loss (R,), gradient (R, P) or None and outputs (R, N, K) or None, compiled.

    ``layout`` is (sizes, weight starts, hidden code, output code, mean) from ``bench.mlp``.
    """
    sizes, starts, hidden, output, mean = layout
    n_runs, n_patterns = theta.shape[0], X.shape[0]
    loss = np.empty(n_runs)
    grad = np.empty_like(theta) if need_grad else _NO_GRAD
    out = np.empty((n_runs, n_patterns, int(sizes[-1]))) if need_output else _NO_OUT
    XT, Y, one_hot = _prepared(X, Y)
    if not (theta.flags.c_contiguous and theta.flags.writeable):
        theta = np.array(theta, order="C")
    _kernel()(
        theta, XT, Y, sizes, starts, hidden, output, mean, one_hot, need_grad, need_output,
        loss, grad, out,
    )  # fmt: skip
    return loss, grad if need_grad else None, out if need_output else None


_NO_GRAD, _NO_OUT = np.empty((0, 0)), np.empty((0, 0, 0))  # what the kernel gets for what it must not compute


@functools.lru_cache(maxsize=16)
def no_targets(n_patterns: int, n_outputs: int) -> np.ndarray:
    """Read-only zero targets for an outputs-only call (remembered, so prepared once)."""
    zeros = np.zeros((n_patterns, n_outputs))
    zeros.flags.writeable = False
    return zeros


_PREPARED: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]] = {}


def _prepared(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """X transposed, Y contiguous, and whether every target row sums to 1.

    Read-only arrays (the datasets') are prepared once and remembered by identity (the entry
    holds them, so their ids cannot be reused); writable ones, which may change, every call.
    """
    key = (id(X), id(Y))
    hit = _PREPARED.get(key)
    if hit is not None and hit[0] is X and hit[1] is Y:
        return hit[2], hit[3], hit[4]
    prepared = np.array(X.T, order="C"), np.array(Y, order="C"), bool(np.all(Y.sum(axis=1) == 1.0))
    if not (X.flags.writeable or Y.flags.writeable):
        if len(_PREPARED) >= 16:
            _PREPARED.clear()
        _PREPARED[key] = (X, Y, *prepared)
    return prepared
