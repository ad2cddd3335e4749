"""The compiled kernel (bench.kernels) against the numpy path: same math, same numbers.

Each call agrees to 1e-12: the loss relative to itself; a sigmoid or softmax output relative to
itself times (1 + |log o|), the error its logit carries into a tail, and an identity output (a
logit itself, a sum that may cancel) relative to the run's largest output; a gradient component relative to the sum
of the magnitudes of the per-pattern terms it adds, or to the largest such sum of its row (the two
paths add in different orders, and where terms cancel, no float64 sum carries the small
difference).  The deep-saturation test in test_tails holds both paths to an exact reference.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import config, kernels
from bench.mlp import COMPILED_MAX_WEIGHTS, HIDDEN_ACTIVATIONS, MLP, OUTPUT_LOSS_PAIRS, resolve_backend
from bench.runner import run_cell

PAIRS = sorted(OUTPUT_LOSS_PAIRS)


def pair_of_nets(sizes, hidden, output, loss, reduction):
    return (MLP(sizes, hidden, output, loss, reduction, backend=b) for b in ("numpy", "numba"))


def targets(rng, n, n_out, output):
    if output == "softmax":
        return np.eye(n_out)[rng.integers(0, n_out, n)]
    if output == "sigmoid":
        return rng.integers(0, 2, size=(n, n_out)).astype(float)
    return rng.normal(size=(n, n_out))


def pre_activation_terms(net, theta, X):
    """Per run, the largest sum of |terms| of any unit's pre-activation, sum_i |a_i w_i| + |b|,
    over the layers and patterns (a plain forward pass)."""
    plain = {"relu": lambda z: np.maximum(z, 0.0), "tanh": np.tanh, "sigmoid": lambda z: 0.5 + 0.5 * np.tanh(0.5 * z)}
    largest = np.zeros(len(theta))
    with np.errstate(all="ignore"):
        for r, row in enumerate(theta):
            a = X
            for W, b in net.unflatten(row):
                largest[r] = max(largest[r], np.nanmax(np.abs(a) @ np.abs(W[0]) + np.abs(b[0])))
                a = plain.get(net.hidden_activation, lambda z: z)(a @ W[0] + b[0])
    return largest


def assert_same_call(numpy_net, numba_net, theta, X, Y):
    """Both paths' loss, gradient and outputs; the bound of the module docstring."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss_a, grad_a, out_a = numpy_net.evaluate(theta, X, Y)
        loss_b, grad_b, out_b = numba_net.evaluate(theta, X, Y)
        per_pattern = np.stack([numpy_net.loss_and_grad(theta, X[[p]], Y[[p]])[1] for p in range(len(X))])
    if numpy_net.reduction == "mean":
        per_pattern /= len(X)
    magnitude = np.abs(per_pattern).sum(axis=0)
    finite = np.isfinite(loss_a)
    np.testing.assert_array_equal(np.isfinite(loss_b), finite)
    np.testing.assert_allclose(loss_b[finite], loss_a[finite], rtol=1e-12, atol=0)
    # An output in a tail, o ~ e^z, carries its logit's rounding as a relative error: |log o| x eps.
    o_a, o_b = out_a[finite], out_b[finite]
    if numpy_net.output_activation == "identity":  # the outputs are the logits, sums that may cancel:
        bound = 1e-12 * np.abs(o_a).max(axis=(1, 2), keepdims=True)  # within 1e-12 of the run's largest
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = np.where(o_a == 0.0, 0.0, 1e-12 * (1.0 + np.abs(np.log(np.abs(o_a)))) * np.abs(o_a))
    assert np.all(np.abs(o_b - o_a) <= bound + 1e-300)
    # Each component within 1e-12 of its own terms' magnitude, or of the row's largest (errors of
    # the inner sums over units, where a pattern's own terms cancel, spread across the row).  A
    # pre-activation z that is a sum of large terms carries their rounding, eps x sum |terms|, into
    # every tail e^-|z| it passes, as a relative error (hypothesis found a logit of -267 summed
    # from terms of 27,910: both paths 1e-12 to 3e-12 off the exact gradient, 2e-12 apart).
    relative = np.maximum(1e-12, 4 * np.finfo(float).eps * pre_activation_terms(numpy_net, theta, X))
    bound = relative[:, None] * np.maximum(magnitude, magnitude.max(axis=1, keepdims=True))
    np.testing.assert_array_less(np.abs(grad_b - grad_a)[finite], bound[finite] + 1e-300)
    # The same sign wherever the component is not a cancellation of its patterns' terms (where
    # it is, each path's result is a rounding of a tiny sum, 0 included).
    clear = (np.abs(grad_a) > 1e-6 * magnitude) & finite[:, None]
    np.testing.assert_array_equal(np.sign(grad_b[clear]), np.sign(grad_a[clear]))
    assert np.all(grad_b[clear] != 0.0)


@settings(max_examples=80, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=5),
    hidden=st.sampled_from(HIDDEN_ACTIVATIONS),
    pair=st.sampled_from(PAIRS),
    reduction=st.sampled_from(["sum", "mean"]),
    scale=st.sampled_from([0.1, 1.0, 5.0, 40.0, 300.0]),
    n_patterns=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_kernel_agrees_with_numpy_on_every_shape_activation_and_loss(
    sizes, hidden, pair, reduction, scale, n_patterns, seed
):
    """Scales up to 300 put units in deep saturation, where exp(-|z|) is subnormal or 0: the
    tails (and the gradients that pass through them) must come out the same."""
    output, loss = pair
    if output == "softmax":
        sizes[-1] = max(sizes[-1], 2)
    rng = np.random.default_rng(seed)
    a, b = pair_of_nets(sizes, hidden, output, loss, reduction)
    X = (
        rng.integers(0, 2, size=(n_patterns, sizes[0])).astype(float)
        if seed % 2
        else rng.normal(size=(n_patterns, sizes[0]))
    )
    Y = targets(rng, n_patterns, sizes[-1], output)
    theta = a.init(rng, 4, "uniform", 1.0) * scale
    assert_same_call(a, b, theta, X, Y)


@pytest.mark.parametrize("hidden", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("pair", PAIRS)
def test_loss_only_and_outputs_only_calls_agree(hidden, pair):
    output, loss = pair
    rng = np.random.default_rng(3)
    a, b = pair_of_nets([3, 4, 3], hidden, output, loss, "mean")
    X, Y = rng.normal(size=(6, 3)), targets(rng, 6, 3, output)
    theta = a.init(rng, 5, "glorot")
    np.testing.assert_allclose(b.loss(theta, X, Y), a.loss(theta, X, Y), rtol=1e-12)
    np.testing.assert_allclose(b.forward(theta, X), a.forward(theta, X), rtol=1e-12, atol=1e-300)
    loss_b, grad_b, out_b = b.evaluate(theta, X, Y, need_grad=False, need_output=False)
    assert grad_b is None and out_b is None
    np.testing.assert_allclose(loss_b, a.loss(theta, X, Y), rtol=1e-12)


def test_the_kernel_keeps_the_exact_tail_where_one_minus_a_rounds_to_zero():
    """A 1-1-1 sigmoid net with its hidden unit at z = -40 and +40: the slope sigma(z) sigma(-z)
    is 4.2e-18, not 0 (a (1 - a) after a rounds to 1 would give exactly 0 at z = +40)."""
    _, b = pair_of_nets([1, 1, 1], "sigmoid", "sigmoid", "mse", "sum")
    for z in (-40.0, 40.0):
        theta = np.array([[z, 0.0, 1.0, 0.0]])  # w1, b1, w2, b2
        _, grad = b.loss_and_grad(theta, np.array([[1.0]]), np.array([[1.0]]))
        slope = np.exp(-40.0) / (1 + np.exp(-40.0)) ** 2
        o = 1 / (1 + np.exp(-(1 / (1 + np.exp(-z)))))
        want = (o - 1.0) * o * (1 - o) * 1.0 * slope  # dE/dw1 = delta_out * w2 * sigma'(z) * x
        assert grad[0, 0] != 0.0
        np.testing.assert_allclose(grad[0, 0], want, rtol=1e-12)


def ulps_apart(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How many doubles lie between a and b (both >= 0, finite): the distance of their bits."""
    return np.abs(a.view(np.int64) - b.view(np.int64))


def test_the_kernels_exp_is_libms_to_an_ulp_and_exactly_libms_below_e_to_the_minus_708():
    """exp(-|z|) as the kernel computes it for the logistic (branch-free vector lanes, libm's exp
    for the arguments beyond -708, whose results are subnormal or 0, and for NaN and inf): a
    million points over [-746, 0] and the edges of every range, against numpy's and libm's exp."""
    rng = np.random.default_rng(5)
    edges = np.array([
        0.0, 5e-324, 1e-300, 1e-17, 1e-8, 0.5 * np.log(2), np.log(2), 1.0, 20.0, 700.0,
        np.nextafter(708.0, 0.0), 708.0, np.nextafter(708.0, 1e3), 708.3964185322641, 708.4, 709.0,
        745.1332191019411, 745.1332191019412, 745.2, 746.0, 1000.0, 1e308, np.inf,
    ])  # fmt: skip
    z = np.concatenate([edges, -edges, [np.nan, -np.nan], rng.uniform(0, 746, 1_000_000), rng.uniform(0, 1, 10_001)])
    z = z[None, :]  # one row of patterns, its length not a multiple of the vector blocks
    got = np.empty_like(z)
    kernels._exp_neg_abs_row(z, 0, got, 0, z.shape[1])
    got, x = got[0], -np.abs(z[0])
    libm = np.array([math.exp(v) for v in x])
    assert np.array_equal(np.isnan(got), np.isnan(x))
    finite = ~np.isnan(x)
    got, x, libm = got[finite], x[finite], libm[finite]
    normal = libm >= np.finfo(np.float64).tiny
    assert normal.sum() > 900_000 and (~normal).sum() > 1_000  # both ranges well sampled
    assert ulps_apart(got[normal], libm[normal]).max() <= 1
    assert ulps_apart(got[normal], np.exp(x[normal])).max() <= 1
    np.testing.assert_array_equal(got[~normal], libm[~normal])  # subnormal, 0: exactly libm's


@pytest.mark.parametrize("hidden", HIDDEN_ACTIVATIONS)
@pytest.mark.parametrize("pair", PAIRS)
def test_the_vectorized_loops_agree_with_numpy_in_and_beyond_saturation(hidden, pair):
    """37 patterns, so that every loop runs its vector blocks and its remainder; scales that put
    units beyond |z| = 708 (subnormal and 0 tails, libm's exp); a NaN and an infinite weight."""
    output, loss = pair
    rng = np.random.default_rng(6)
    a, b = pair_of_nets([3, 9, 6, 2], hidden, output, loss, "sum")
    X = rng.normal(size=(37, 3))
    Y = targets(rng, 37, 2, output)
    theta = a.init(rng, 6, "uniform", 1.0) * np.array([0.1, 1.0, 5.0, 40.0, 300.0, 3000.0])[:, None]
    assert_same_call(a, b, theta, X, Y)
    batch, alone = b.evaluate(theta, X, Y), b.evaluate(theta[3:4], X, Y)  # vectorized sums: the same bits
    assert all(np.array_equal(x[3], y[0]) for x, y in zip(batch, alone))
    broken = theta[:2].copy()
    broken[0, 5], broken[1, 30] = np.nan, np.inf  # a weight; a bias (a unit at +inf: saturated, or inf)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss_a, loss_b = a.loss(broken, X, Y), b.loss(broken, X, Y)
    assert np.isnan(loss_b[0])
    np.testing.assert_array_equal(np.isfinite(loss_b), np.isfinite(loss_a))
    np.testing.assert_allclose(loss_b[1], loss_a[1], rtol=1e-12)


def test_nonfinite_weights_give_nonfinite_losses_without_warnings():
    _, b = pair_of_nets([2, 3, 2], "relu", "softmax", "cross_entropy", "sum")
    theta = np.full((3, b.n_params), 1e308)
    theta[1] = np.nan
    theta[2] = np.random.default_rng(0).normal(size=b.n_params)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, grad = b.loss_and_grad(theta, np.ones((4, 2)), np.eye(2)[[0, 1, 0, 1]])
    assert not np.isfinite(loss[:2]).any() and np.isfinite(loss[2]) and np.isfinite(grad[2]).all()


def test_a_row_computes_the_same_in_any_batch():
    """Bit for bit: the kernel loops over runs, one at a time."""
    _, b = pair_of_nets([2, 5, 5, 5, 1], "sigmoid", "sigmoid", "mse", "sum")
    rng = np.random.default_rng(4)
    theta = b.init(rng, 9, "uniform", 1.0)
    X, Y = rng.normal(size=(7, 2)), targets(rng, 7, 1, "sigmoid")
    loss, grad, out = b.evaluate(theta, X, Y)
    for r in (0, 4, 8):
        one = b.evaluate(theta[r : r + 1], X, Y)
        assert one[0][0] == loss[r] and np.array_equal(one[1][0], grad[r]) and np.array_equal(one[2][0], out[r])


def test_writable_inputs_are_not_remembered_between_calls():
    """The kernel remembers read-only data (the datasets') by identity; a writable array that
    changes between calls is read afresh."""
    _, b = pair_of_nets([1, 1], "sigmoid", "sigmoid", "mse", "sum")
    theta, X, Y = np.array([[1.0, 0.0]]), np.array([[1.0]]), np.array([[1.0]])
    first = b.loss(theta, X, Y)
    Y[0, 0] = 0.0
    assert b.loss(theta, X, Y)[0] != first[0]


def test_auto_picks_by_network_size_only():
    assert resolve_backend("auto", [2, 2, 1]) == "numba"
    assert resolve_backend("auto", [2, 5, 5, 5, 1]) == "numba"
    assert resolve_backend("auto", [64, 32, 10]) == "numpy"  # digits: BLAS products pay
    assert resolve_backend("auto", [2, COMPILED_MAX_WEIGHTS // 2, 1]) == "numba"
    assert resolve_backend("auto", [2, COMPILED_MAX_WEIGHTS // 2 + 1, 1]) == "numpy"
    assert resolve_backend("auto", [2, 2, 1], "float32") == "numpy"
    assert resolve_backend("auto", [2, 8, 1], "float64", "tanh") == "numpy"  # numpy's tanh is faster
    with pytest.raises(ValueError, match="numba backend computes in float64"):
        resolve_backend("numba", [2, 2, 1], "float32")
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("fortran", [2, 2, 1])


def classic_cell(backend: str, optimizer: dict, dataset: str = "xor"):
    doc = {
        "experiment": {"name": "k", "seed": 0, "runs": 12, "budget": 1500},
        "engine": {"backend": backend},
        "model": {"init_scale": 1.0},
        "datasets": [{"name": dataset}],
        "optimizers": [optimizer],
    }
    return config.from_dict(doc).cells()[0]


@pytest.mark.parametrize(
    "optimizer",
    [{"name": "momentum", "learning_rate": 0.5}, {"name": "rprop", "variant": "irprop-"}, {"name": "ga"}],
    ids=["momentum", "irprop-", "ga"],
)
def test_whole_runs_agree_between_the_backends(optimizer):
    """Whole trajectories: final losses within 1e-9 relative (the per-call differences of a few
    ulp compound over 500 epochs), and the same statuses (no run bifurcates on this setting)."""
    a, b = (run_cell(classic_cell(backend, optimizer)).runs for backend in ("numpy", "numba"))
    assert list(a.status) == list(b.status)
    np.testing.assert_allclose(b.final_loss, a.final_loss, rtol=1e-9)
    np.testing.assert_array_equal(b.cost, a.cost)


def test_the_backend_is_part_of_a_cells_identity_and_its_table():
    numpy_cell, numba_cell = classic_cell("numpy", {"name": "gd"}), classic_cell("auto", {"name": "gd"})
    assert (numpy_cell.backend, numba_cell.backend) == ("numpy", "numba")
    assert numpy_cell.content_key != numba_cell.content_key
    runs = run_cell(numba_cell, batch=5).runs
    assert set(runs.backend) == {"numba"} and set(runs.dtype) == {"float64"}
    whole = run_cell(numba_cell).runs
    np.testing.assert_array_equal(runs.final_loss, whole.final_loss)


def test_a_config_asking_numba_for_float32_is_refused_with_the_fix():
    doc = {
        "experiment": {"name": "k", "runs": 2, "budget": 100},
        "engine": {"backend": "numba"},
        "model": {"dtype": "float32"},
        "datasets": [{"name": "xor"}],
        "optimizers": [{"name": "gd"}],
    }
    with pytest.raises(config.ConfigError, match=r"engine\.backend.*use backend = \"numpy\" or \"auto\""):
        config.from_dict(doc)
    doc["engine"]["backend"] = "numbaa"
    with pytest.raises(config.ConfigError, match="did you mean 'numba'"):
        config.from_dict(doc)


def awkward_gradients(rng, shape):
    """Gradients with zeros, sign flips, huge and tiny values, inf and NaN."""
    g = rng.normal(size=shape) * 10.0 ** rng.integers(-300, 300, size=shape)
    g[rng.random(shape) < 0.1] = 0.0
    g[rng.random(shape) < 0.02] = np.inf
    g[rng.random(shape) < 0.02] = -np.inf
    g[rng.random(shape) < 0.02] = np.nan
    return g


def assert_same_bits_both_ways(rule, rng, n, p, monkeypatch):
    """Six updates of ``rule`` on the same awkward gradients and losses, through the compiled
    kernel and through numpy (the path taken where numba is missing): every state leaf, bit for bit."""
    theta0 = rng.normal(size=(n, p))
    steps = [(awkward_gradients(rng, (n, p)), rng.random(n)) for _ in range(6)]

    def trajectory():
        theta, state, out = theta0, rule.init(theta0), []
        for g, loss in steps:
            theta, state = rule.update(theta, g, state, loss=loss)
            out.append((theta, *state))
        return out

    compiled = trajectory()
    monkeypatch.setattr(kernels, "available", lambda: False)
    with np.errstate(all="ignore"):  # the awkward gradients overflow numpy's products (values compared)
        reference = trajectory()
    for a, b in zip(compiled, reference):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("variant", ["rprop+", "rprop-", "irprop+", "irprop-"])
@pytest.mark.parametrize("per_run", [False, True])
def test_the_fused_rprop_update_gives_the_numpy_updates_bits(variant, per_run, monkeypatch):
    """Six steps of each variant, compiled and numpy, on the same awkward gradients and losses."""
    from bench.optimizers.rprop import Rprop, RpropSettings

    rng = np.random.default_rng(11)
    n, p = 7, 5
    settings = {"variant": variant}
    if per_run:
        settings |= {
            "eta_plus": rng.uniform(1.1, 1.5, n),
            "delta_max": rng.uniform(1, 50, n),
            "delta_min": np.full(n, 1e-6),
        }
    rule = Rprop(RpropSettings(**settings))
    assert_same_bits_both_ways(rule, rng, n, p, monkeypatch)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("schedule", ["constant", "inverse_time"])
def test_the_fused_momentum_update_gives_the_numpy_updates_bits(nesterov, schedule, monkeypatch):
    from bench.optimizers.momentum import Momentum, MomentumSettings

    rng = np.random.default_rng(12)
    n, p = 6, 4
    rule = Momentum(
        MomentumSettings(learning_rate=rng.uniform(0.01, 1, n), momentum=0.9, nesterov=nesterov, schedule=schedule)
    )
    assert_same_bits_both_ways(rule, rng, n, p, monkeypatch)


def test_the_report_says_which_engine_computed_each_dataset():
    from bench.report.markdown import _what_was_run

    runs = pd.DataFrame(
        {
            "dataset": ["xor", "xor", "digits"],
            "optimizer": ["gd"] * 3,
            "backend": ["numba", "numba", "numpy"],
            "dtype": ["float64", "float64", "float32"],
        }
    )
    assert "- **engine**: numba in float64 for xor; numpy in float32 for digits" in _what_was_run(runs, None)
    assert not any("engine" in line for line in _what_was_run(runs.drop(columns=["backend", "dtype"]), None))


def test_runs_and_tunings_say_how_the_kernel_was_made_ready(monkeypatch):
    said = []
    kernels.warm_up_for(["numpy", "numpy"], said.append)
    assert said == []  # no compiled network: nothing compiled or loaded
    monkeypatch.setattr(kernels, "_compiled", None)  # as in a fresh process
    kernels.warm_up_for(["numpy", "numba"], said.append)
    assert len(said) == 1 and said[0].startswith("compiled kernel") and " s" in said[0]
    kernels.warm_up_for(["numba"], said.append)
    assert len(said) == 1  # ready now: said once
