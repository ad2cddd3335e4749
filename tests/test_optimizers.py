"""Gradient rules: hand-computed steps, ascent == descent, purity, settings checks."""

from __future__ import annotations

import numpy as np
import pytest

from bench import datasets, optimizers
from bench.mlp import MLP

THETA = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
G1 = np.array([[0.5, -1.0, 2.0], [-0.2, 0.0, 4.0]])
G2 = np.array([[0.25, 1.0, 2.0], [0.3, -0.1, -1.0]])


def two_steps(rule, grads=(G1, G2), losses=(None, None)):
    theta, state = THETA, rule.init(THETA)
    for g, loss in zip(grads, losses):
        theta, state = rule.update(theta, g, state, loss=loss)
    return theta, state


def test_gd_two_steps_by_hand():
    theta, _ = two_steps(optimizers.gradient_rule("gd", learning_rate=0.1))
    np.testing.assert_array_equal(theta, THETA - 0.1 * G1 - 0.1 * G2)


@pytest.mark.parametrize(
    ("schedule", "rates"),
    [
        ("constant", [0.4, 0.4, 0.4, 0.4]),
        ("step", [0.4, 0.4, 0.2, 0.2]),  # decay_rate 0.5 every 2 updates
        ("exponential", [0.4, 0.4 * 0.5**0.5, 0.2, 0.4 * 0.5**1.5]),
        ("inverse_time", [0.4, 0.4 / 1.25, 0.4 / 1.5, 0.4 / 1.75]),  # decay_rate 0.5 -> 0.25 per update
    ],
)
def test_learning_rate_schedules_by_hand(schedule, rates):
    rule = optimizers.gradient_rule("gd", learning_rate=0.4, schedule=schedule, decay_rate=0.5, decay_steps=2.0)
    theta, state = THETA, rule.init(THETA)
    expected = THETA.copy()
    for rate in rates:
        theta, state = rule.update(theta, G1, state)
        expected = expected - rate * G1
        np.testing.assert_allclose(theta, expected, rtol=1e-15, atol=1e-15)


def test_gradient_ascent_follows_gradient_descent_on_xor():
    data = datasets.load("xor")
    net = MLP([2, 2, 1])
    theta0 = net.init(np.random.default_rng(5), 16, "uniform", 1.0)
    trajectories = []
    for name in ("gd", "gradient_ascent"):
        rule = optimizers.gradient_rule(name, learning_rate=0.7, schedule="inverse_time", decay_rate=0.1)
        theta, state = theta0, rule.init(theta0)
        for _ in range(300):
            loss, grad = net.loss_and_grad(theta, data.X_train, data.Y_train)
            theta, state = rule.update(theta, grad, state, loss=loss)
        trajectories.append(theta)
    np.testing.assert_allclose(trajectories[0], trajectories[1], rtol=0, atol=1e-12)
    assert not np.allclose(trajectories[0], theta0)


def test_classical_momentum_two_steps_by_hand():
    theta, state = two_steps(optimizers.gradient_rule("momentum", learning_rate=0.1, momentum=0.9))
    v1 = -0.1 * G1
    v2 = 0.9 * v1 - 0.1 * G2
    np.testing.assert_allclose(state.velocity, v2, rtol=1e-15)
    np.testing.assert_allclose(theta, THETA + v1 + v2, rtol=1e-15)


def test_nesterov_momentum_two_steps_by_hand():
    theta, _ = two_steps(optimizers.gradient_rule("momentum", learning_rate=0.1, momentum=0.9, nesterov=True))
    v1 = -0.1 * G1
    step1 = 0.9 * v1 - 0.1 * G1
    v2 = 0.9 * v1 - 0.1 * G2
    step2 = 0.9 * v2 - 0.1 * G2
    np.testing.assert_allclose(theta, THETA + step1 + step2, rtol=1e-15)


def rprop(variant, **kw):
    return optimizers.gradient_rule("rprop", variant=variant, delta_0=0.1, eta_plus=1.2, eta_minus=0.5, **kw)


# Per-weight gradient signs of G1 then G2, row 0: (+,+) (-,+) (+,+); row 1: (-,+) (0,-) (+,-).
def test_rprop_minus_two_steps_by_hand():
    theta, state = two_steps(rprop("rprop-"))
    step1 = -np.sign(G1) * 0.1
    delta2 = np.array([[0.12, 0.05, 0.12], [0.05, 0.1, 0.05]])
    np.testing.assert_allclose(state.step_size, delta2, rtol=1e-15)
    np.testing.assert_allclose(theta, THETA + step1 - np.sign(G2) * delta2, rtol=1e-15)


def test_rprop_plus_backtracks_after_a_sign_change():
    theta, state = two_steps(rprop("rprop+"))
    step1 = -np.sign(G1) * 0.1
    flipped = G1 * G2 < 0
    delta2 = np.array([[0.12, 0.05, 0.12], [0.05, 0.1, 0.05]])
    step2 = np.where(flipped, -step1, -np.sign(G2) * delta2)
    np.testing.assert_allclose(theta, THETA + step1 + step2, rtol=1e-15)
    np.testing.assert_array_equal(state.prev_grad, np.where(flipped, 0.0, G2))
    # After the backtrack the stored gradient is zero, so the next step is a plain step.
    theta3, state3 = rprop("rprop+").update(theta, G2, state)
    np.testing.assert_allclose(
        theta3, theta - np.sign(G2) * np.where(flipped, delta2, np.minimum(delta2 * 1.2, 50)), rtol=1e-15
    )


def test_irprop_minus_skips_the_step_after_a_sign_change():
    theta, state = two_steps(rprop("irprop-"))
    step1 = -np.sign(G1) * 0.1
    flipped = G1 * G2 < 0
    delta2 = np.array([[0.12, 0.05, 0.12], [0.05, 0.1, 0.05]])
    np.testing.assert_allclose(theta, THETA + step1 + np.where(flipped, 0.0, -np.sign(G2) * delta2), rtol=1e-15)
    np.testing.assert_array_equal(state.prev_grad, np.where(flipped, 0.0, G2))


def test_irprop_plus_backtracks_only_where_the_error_rose():
    # Row 0's error rose (2 -> 3): backtrack its flipped weights; row 1's fell (2 -> 1): no step.
    theta, _ = two_steps(rprop("irprop+"), losses=(np.array([2.0, 2.0]), np.array([3.0, 1.0])))
    step1 = -np.sign(G1) * 0.1
    flipped = G1 * G2 < 0
    delta2 = np.array([[0.12, 0.05, 0.12], [0.05, 0.1, 0.05]])
    rose = np.array([[True], [False]])
    step2 = np.where(flipped, np.where(rose, -step1, 0.0), -np.sign(G2) * delta2)
    np.testing.assert_allclose(theta, THETA + step1 + step2, rtol=1e-15)


def test_irprop_plus_does_not_backtrack_when_the_error_is_unchanged():
    # E(t) = E(t-1) is not a rise: flipped weights take no step, as in irprop-.
    theta, state = two_steps(rprop("irprop+"), losses=(np.array([2.0, 0.5]), np.array([2.0, 0.5])))
    _, minus = two_steps(rprop("irprop-"))
    step1 = -np.sign(G1) * 0.1
    flipped = G1 * G2 < 0
    delta2 = np.array([[0.12, 0.05, 0.12], [0.05, 0.1, 0.05]])
    np.testing.assert_allclose(theta, THETA + step1 + np.where(flipped, 0.0, -np.sign(G2) * delta2), rtol=1e-15)
    np.testing.assert_array_equal(state.prev_update, np.where(flipped, 0.0, -np.sign(G2) * delta2))
    np.testing.assert_array_equal(state.prev_grad, minus.prev_grad)


def test_irprop_plus_needs_the_loss():
    rule = rprop("irprop+")
    with pytest.raises(ValueError, match="irprop\\+ needs the loss"):
        rule.update(THETA, G1, rule.init(THETA))


def test_rprop_step_sizes_stay_within_bounds():
    rule = optimizers.gradient_rule("rprop", variant="rprop-", delta_0=1.0, delta_max=2.0, delta_min=0.3)
    theta, state = THETA, rule.init(THETA)
    for _ in range(10):
        theta, state = rule.update(theta, G1, state)
    assert np.all(state.step_size[G1 != 0] == 2.0)
    for k in range(10):
        theta, state = rule.update(theta, G1 * (-1) ** k, state)
    assert np.all(state.step_size[G1 != 0] == 0.3)


def test_clipping_by_value_and_by_norm():
    g = np.array([[3.0, -4.0], [0.1, 0.2]])
    theta = np.zeros((2, 2))
    by_value = optimizers.gradient_rule("gd", learning_rate=1.0, clip_value=1.0)
    np.testing.assert_array_equal(
        by_value.update(theta, g, by_value.init(theta))[0], -np.array([[1.0, -1.0], [0.1, 0.2]])
    )
    by_norm = optimizers.gradient_rule("gd", learning_rate=1.0, clip_norm=1.0)
    # Row 0 has norm 5 and is scaled to norm 1; row 1 (norm 0.22) is left alone.
    np.testing.assert_allclose(by_norm.update(theta, g, by_norm.init(theta))[0], -np.array([[0.6, -0.8], [0.1, 0.2]]))


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("gd", {}),
        ("gradient_ascent", {}),
        ("momentum", {"nesterov": True}),
        ("rprop", {"variant": "rprop+"}),
        ("rprop", {"variant": "irprop+"}),
        ("gd", {"clip_norm": 0.5}),
    ],
)
def test_rules_never_mutate_their_inputs(name, settings):
    rule = optimizers.gradient_rule(name, **settings)
    theta, grad, loss = THETA.copy(), G1.copy(), np.array([1.0, 2.0])
    state = rule.init(theta)
    snapshot = [np.copy(x) for x in state]
    rule.update(theta, grad, state, loss=loss)
    np.testing.assert_array_equal(theta, THETA)
    np.testing.assert_array_equal(grad, G1)
    for before, after in zip(snapshot, state):
        np.testing.assert_array_equal(before, after)


def test_per_run_hyperparameters_broadcast_like_separate_runs():
    lrs = np.array([0.1, 0.5])
    rule = optimizers.gradient_rule("momentum", learning_rate=lrs, momentum=np.array([0.0, 0.9]))
    theta, _ = two_steps(rule)
    for r, (lr, mu) in enumerate([(0.1, 0.0), (0.5, 0.9)]):
        single = optimizers.gradient_rule("momentum", learning_rate=lr, momentum=mu)
        theta_r, state = THETA[r : r + 1], single.init(THETA[r : r + 1])
        for g in (G1, G2):
            theta_r, state = single.update(theta_r, g[r : r + 1], state)
        np.testing.assert_allclose(theta[r], theta_r[0], rtol=1e-15)


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("rprop", {"eta_minus": 1.3}, r"eta_minus must be in \(0, 1\), got 1.3"),
        ("rprop", {"eta_plus": 0.9}, r"eta_plus must be in \(1, inf\), got 0.9"),
        ("rprop", {"variant": "irprop"}, "variant must be one of .* got 'irprop' \\(did you mean"),
        ("rprop", {"delta_min": 1.0, "delta_max": 0.5}, "delta_min must be <= delta_max"),
        ("momentum", {"momentum": 1.0}, r"momentum must be in \[0, 1\), got 1.0"),
        ("gd", {"learning_rate": -0.1}, r"learning_rate must be in \(0, inf\), got -0.1"),
        ("gd", {"learning_rat": 0.1}, "unknown setting 'learning_rat' \\(did you mean 'learning_rate'\\?\\)"),
        ("gd", {"learning_rate": "fast"}, "setting 'learning_rate' must be float, got 'fast'"),
        ("gd", {"schedule": "cosine"}, "schedule must be one of"),
        ("gd", {"clip_norm": 0.0}, r"clip_norm must be in \(0, inf\)"),
    ],
)
def test_bad_settings_are_named(name, settings, message):
    with pytest.raises(ValueError, match=message):
        optimizers.gradient_rule(name, **settings)


def test_unknown_rule_suggests_a_name():
    with pytest.raises(KeyError, match="did you mean 'momentum'"):
        optimizers.gradient_rule("momentun")


# ---------------------------------------------------------------------------- settings checks


def test_ranges_are_closed_unless_said_open_and_name_the_first_bad_value():
    from bench.optimizers.base import SettingError, check_range

    check_range("x", 1.0, 0, 1)  # [0, 1] holds both ends
    check_range("x", 0.0, 0, 1)
    with pytest.raises(SettingError, match=r"^x must be in \[0, 1\), got 1.0$"):
        check_range("x", 1.0, 0, 1, high_open=True)
    with pytest.raises(SettingError, match=r"^x must be in \(0, 1\], got 0.0$"):
        check_range("x", 0.0, 0, 1, low_open=True)
    with pytest.raises(SettingError, match=r"^x must be in \[0, 1\], got 2.0$"):
        check_range("x", np.array([0.5, 2.0, 3.0, -1.0]), 0, 1)  # per-run values: the first bad one
    with pytest.raises(SettingError, match=r"^x must be a finite number, got inf$"):
        check_range("x", np.array([0.5, np.inf, np.nan]), 0, None)
    with pytest.raises(SettingError, match=r"^x must be a finite number, got nan$"):
        check_range("x", float("nan"))
    check_range("x", np.array([0.0, 0.5, 1.0]), 0, 1)  # every value fits


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"clip_value": 0.0}, r"clip_value must be in \(0, inf\), got 0.0"),
        ({"clip_value": -1.0}, r"clip_value must be in \(0, inf\), got -1.0"),
        ({"clip_norm": 0.0}, r"clip_norm must be in \(0, inf\), got 0.0"),
        ({"schedule": "step", "decay_rate": 0.0}, r"decay_rate must be in \(0, 1\], got 0.0"),
        ({"schedule": "step", "decay_rate": 1.5}, r"decay_rate must be in \(0, 1\], got 1.5"),
        ({"schedule": "inverse_time", "decay_rate": -0.5}, r"decay_rate must be in \[0, inf\), got -0.5"),
        ({"decay_steps": 0.0}, r"decay_steps must be in \(0, inf\), got 0.0"),
        ({"learning_rate": True}, r"setting 'learning_rate' must be float, got True"),
    ],
)
def test_bad_gradient_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        optimizers.gradient_rule("gd", **settings)


def test_the_edges_of_the_schedule_ranges_are_allowed():
    for settings in (
        {"schedule": "step", "decay_rate": 1.0},  # no decay at all: the closed end
        {"schedule": "inverse_time", "decay_rate": 2.0},  # 1/t decay may be fast
        {"schedule": "inverse_time", "decay_rate": 0.0},
        {"decay_steps": 0.5},
    ):
        optimizers.gradient_rule("gd", **settings)


def test_the_learning_rate_schedule_defaults():
    """lr 0.1, constant; a schedule halves it (decay_rate 0.5) every 1,000 updates (decay_steps)."""
    rule = optimizers.gradient_rule("gd", schedule="step")
    count = np.array([0, 999, 1000, 2500])
    np.testing.assert_array_equal(rule.settings.rate(count)[:, 0], [0.1, 0.1, 0.05, 0.025])
    assert optimizers.gradient_rule("gd").settings.rate(count) == 0.1


def test_clipping_by_norm_shrinks_small_gradients_too():
    """A gradient of norm 0.8 clipped to norm 0.5 (below 1, where a rule keyed to norm > 1 would
    leave it), a zero gradient left zero, one within the norm left alone."""
    from bench.optimizers.base import Clipping, clip_gradient

    grad = np.array([[0.48, 0.64], [0.0, 0.0], [0.3, 0.0]])
    clipped = clip_gradient(grad, Clipping(clip_norm=0.5))
    np.testing.assert_allclose(clipped, [[0.3, 0.4], [0.0, 0.0], [0.3, 0.0]], rtol=1e-15)
    assert not np.shares_memory(clipped, grad)


def test_momentum_counts_its_updates_for_the_schedule():
    """Classical momentum with a step schedule (lr halves every 2 updates) against a hand loop."""
    rng = np.random.default_rng(5)
    grads = rng.normal(size=(6, 2, 3))
    rule = optimizers.gradient_rule(
        "momentum", learning_rate=1.0, momentum=0.5, schedule="step", decay_rate=0.5, decay_steps=2.0
    )
    theta, state = np.zeros((2, 3)), rule.init(np.zeros((2, 3)))
    expected, velocity = np.zeros((2, 3)), np.zeros((2, 3))
    for t, grad in enumerate(grads):
        theta, state = rule.update(theta, grad, state)
        velocity = 0.5 * velocity - 0.5 ** (t // 2) * grad
        expected = expected + velocity
        np.testing.assert_allclose(theta, expected, rtol=1e-15, atol=1e-15)
    assert state.count.tolist() == [6, 6]


def test_rprop_defaults_are_the_literatures():
    """Riedmiller & Braun (1993): Delta_0 = 0.1, Delta_max = 50, eta+ = 1.2, eta- = 0.5; and the
    floor Delta_min = 1e-6 of Igel & Huesken (2000); iRprop- the default variant."""
    s = optimizers.make_settings("rprop")
    assert (s.variant, s.delta_0, s.delta_min, s.delta_max, s.eta_plus, s.eta_minus) == (
        "irprop-",
        0.1,
        1e-6,
        50.0,
        1.2,
        0.5,
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"delta_min": 0.0}, r"delta_min must be in \(0, inf\), got 0.0"),
        ({"delta_max": 0.0}, r"delta_max must be in \(0, inf\), got 0.0"),
        ({"delta_0": 0.0}, r"delta_0 must be in \(0, inf\), got 0.0"),
        ({"delta_min": 2.0, "delta_max": 1.0}, r"delta_min must be <= delta_max, got 2.0 > 1.0"),
        ({"delta_min": np.array([1e-6, 1.0]), "delta_max": np.array([50.0, 0.5])}, r"delta_min must be <= delta_max"),
    ],
)
def test_bad_rprop_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        optimizers.gradient_rule("rprop", **settings)


def test_rprop_may_pin_its_step_size():
    rule = optimizers.gradient_rule("rprop", delta_min=0.5, delta_max=0.5, delta_0=0.5)
    theta, state = rule.update(np.zeros((1, 2)), np.array([[1.0, -2.0]]), rule.init(np.zeros((1, 2))))
    np.testing.assert_array_equal(theta, [[-0.5, 0.5]])
