"""The genetic algorithm: DEAP's operators vectorized, batched evaluation, elitism, reproducibility."""

from __future__ import annotations

import copy
import dataclasses
import random

import numpy as np
import pytest
from bench.optimizers.genetic import (
    GASettings,
    GeneticAlgorithm,
    cx_blend,
    cx_simulated_binary,
    evaluate_invalid,
    mut_gaussian,
    sel_tournament,
)
from deap import creator, tools

from bench import datasets, optimizers
from bench.config import from_dict
from bench.mlp import MLP
from bench.problem import Problem
from bench.runner import run_cell

# Tuned for XOR 2-2-1 (see test_ga_solves_xor_with_the_runner): less extrapolating blends and more
# mutated genes keep the population from saturating into the E = 0.25 attractor.
XOR_SETTINGS = {"gene_probability": 0.5, "blend_alpha": 0.1}


def run_generators(runs) -> list[np.random.Generator]:
    return [np.random.default_rng(np.random.SeedSequence(0, spawn_key=(r,))) for r in runs]


def xor_problem(n_runs: int) -> Problem:
    return Problem(datasets.load("xor"), MLP([2, 2, 1]), n_runs, "uniform", 0.5)


def start(runs) -> np.ndarray:
    """Each run's common start, from its own stream (independent of the batch)."""
    return MLP([2, 2, 1]).init([np.random.default_rng([99, r]) for r in runs], len(runs), "uniform", 0.5)


def evolve(runs, generations: int, **settings) -> tuple[GeneticAlgorithm, list, Problem]:
    """Run ``runs`` as one batch; returns the optimizer, the states after every generation, the problem."""
    ga = GeneticAlgorithm(GASettings(**settings))
    problem = xor_problem(len(runs))
    state = ga.init(start(runs), problem.view(), np.array(run_generators(runs), dtype=object))
    states = [state]
    for _ in range(generations):
        state = ga.step(state, problem.view())
        states.append(state)
    return ga, states, problem


# ---------------------------------------------------------------------------- settings


def test_defaults_and_registration():
    s = GASettings()
    assert (s.population_size, s.crossover_probability, s.mutation_probability, s.mutation_sigma) == (50, 0.7, 0.3, 0.3)
    assert (s.gene_probability, s.tournament_size, s.elite_count, s.crossover) == (0.2, 3, 2, "blend")
    assert (s.blend_alpha, s.sbx_eta) == (0.5, 15.0)
    entry = optimizers.OPTIMIZERS.get("ga")
    assert entry.kind == "direct" and entry.settings is GASettings
    ga = optimizers.build("ga", optimizers.make_settings("ga", population_size=30))
    assert isinstance(ga, GeneticAlgorithm)
    assert (ga.init_cost, ga.max_step_cost, ga.stream) == (30, 30, "ga")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"crossover_probability": 1.3}, "crossover_probability must be in [0, 1], got 1.3"),
        ({"mutation_probability": -0.1}, "mutation_probability must be in [0, 1], got -0.1"),
        ({"population_size": 1}, "population_size must be in [2, inf), got 1"),
        ({"mutation_sigma": 0.0}, "mutation_sigma must be in (0, inf), got 0.0"),
        ({"gene_probability": 0.0}, "gene_probability must be in (0, 1], got 0.0"),
        ({"tournament_size": 1}, "tournament_size must be in [2, 50], got 1"),
        ({"population_size": 10, "tournament_size": 11}, "tournament_size must be in [2, 10], got 11"),
        ({"elite_count": 50}, "elite_count must be in [0, 50), got 50"),
        ({"elite_count": -1}, "elite_count must be in [0, 50), got -1"),
        ({"blend_alpha": -0.5}, "blend_alpha must be in [0, inf), got -0.5"),
        ({"sbx_eta": -1.0}, "sbx_eta must be in [0, inf), got -1.0"),
        ({"crossover": "blx"}, "crossover must be one of 'blend', 'sbx', got 'blx'"),
        ({"population_size": 50.0}, "population_size must be an integer, got 50.0"),
        ({"mutation_sigma": np.ones((2, 2))}, "mutation_sigma must be a number or one per run (R,)"),
    ],
)
def test_bad_settings_are_refused_with_the_value(settings, message):
    with pytest.raises(ValueError) as info:
        GASettings(**settings)
    assert str(info.value).startswith(message)


def test_config_refuses_a_float_population_size():
    with pytest.raises(ValueError, match="population_size"):
        optimizers.make_settings("ga", population_size=2.5)


# ---------------------------------------------------------------------------- operators


def test_vectorized_operators_equal_deaps_on_the_same_draws():
    """Replay DEAP's per-gene ``random`` draws into the vectorized operators: same children."""
    rng = np.random.default_rng(1)
    x1, x2 = rng.normal(size=7), rng.normal(size=7)
    for deap_op, ours, kwargs in (
        (tools.cxBlend, cx_blend, {"alpha": 0.5}),
        (tools.cxSimulatedBinary, cx_simulated_binary, {"eta": 15.0}),
    ):
        random.seed(4)
        expected = deap_op(list(x1), list(x2), *kwargs.values())
        random.seed(4)
        u = np.array([random.random() for _ in x1])
        got = ours(x1[None], x2[None], u[None], **kwargs)
        np.testing.assert_allclose(np.concatenate(got), np.array(expected), rtol=0, atol=1e-12)

    random.seed(5)
    (expected,) = tools.mutGaussian(list(x1), mu=0.0, sigma=0.3, indpb=0.4)
    random.seed(5)
    mask, z = np.zeros(7, dtype=bool), np.zeros(7)
    for j in range(7):  # mutGaussian draws random() per gene, then gauss() for a mutated one
        if random.random() < 0.4:
            mask[j], z[j] = True, random.gauss(0.0, 0.3) / 0.3
    assert 0 < mask.sum() < 7
    got = mut_gaussian(x1[None], mask[None], z[None], mu=0.0, sigma=0.3)[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got[~mask], x1[~mask])


def test_batched_evaluator_equals_one_row_at_a_time():
    data, net = datasets.load("xor"), MLP([2, 2, 1])
    rng = np.random.default_rng(2)
    population = rng.normal(scale=3.0, size=(4, 6, net.n_params))
    invalid = rng.random((4, 6)) < 0.6
    known = rng.random((4, 6))
    problem = Problem(data, net, 4)
    fitness = evaluate_invalid(problem.view(), population, known, invalid)
    for r in range(4):
        for i in range(6):
            expected = net.loss(population[r, i][None], data.X_train, data.Y_train)[0] if invalid[r, i] else known[r, i]
            np.testing.assert_allclose(fitness[r, i], expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(problem.loss_evals, invalid.sum(axis=1))  # one unit per evaluated individual
    assert (problem.grad_evals == 0).all()


# ---------------------------------------------------------------------------- the algorithm


def test_init_charges_one_population_and_starts_from_theta0():
    ga, (state,), problem = evolve(range(3), 0, population_size=12)
    np.testing.assert_array_equal(problem.cost, [12, 12, 12])
    np.testing.assert_array_equal(state.population[:, 0], start(range(3)))
    assert state.population.shape == (3, 12, 9) and state.fitness.shape == (3, 12)
    np.testing.assert_array_equal(state.loss, state.fitness.min(axis=1))
    best = state.fitness.argmin(axis=1)
    np.testing.assert_array_equal(state.theta, state.population[np.arange(3), best])
    for logbook in state.logbook:
        assert logbook.select("gen", "nevals") == ([0], [12])


def test_best_loss_never_increases_and_elites_survive():
    ga, states, problem = evolve(range(5), 60, population_size=20, elite_count=2)
    losses = np.stack([s.loss for s in states])  # (generations + 1, R)
    assert (np.diff(losses, axis=0) <= 0).all()
    assert (losses[-1] < losses[0]).all()  # and it does improve
    for before, after in zip(states[:-1], states[1:]):
        assert (after.fitness.min(axis=1) <= before.loss).all()
        for r in range(5):  # the elite: last generation's best-ever individual is in the new population
            assert (after.population[r] == before.theta[r]).all(axis=1).any()
    final = states[-1]
    data, net = problem.data, problem.net
    np.testing.assert_array_equal(final.loss, net.loss(final.theta, data.X_train, data.Y_train))
    np.testing.assert_array_equal(final.evaluations, problem.loss_evals)
    assert (problem.cost <= 20 * 61).all() and (final.generation == 60).all()
    for r, logbook in enumerate(final.logbook):
        assert logbook.select("gen") == list(range(61))
        assert sum(logbook.select("nevals")) == problem.loss_evals[r]
        assert logbook[-1]["min"] == final.fitness[r].min() and logbook[-1]["max"] == final.fitness[r].max()
    columns = ga.extra_columns(final)
    np.testing.assert_array_equal(columns["generations"], [60] * 5)
    np.testing.assert_array_equal(columns["evaluations"], problem.loss_evals)


@pytest.mark.parametrize("crossover", ["blend", "sbx"])
def test_results_do_not_depend_on_batching_or_order(crossover):
    runs = list(range(6))
    _, batch, _ = evolve(runs, 25, population_size=16, crossover=crossover)
    _, again, _ = evolve(runs, 25, population_size=16, crossover=crossover)
    _, reverse, _ = evolve(runs[::-1], 25, population_size=16, crossover=crossover)
    for r in runs:
        _, alone, _ = evolve([r], 25, population_size=16, crossover=crossover)
        for other, row in ((batch, r), (again, r), (reverse, 5 - r)):
            np.testing.assert_array_equal(other[-1].theta[row], alone[-1].theta[0])
            np.testing.assert_array_equal(other[-1].loss[row], alone[-1].loss[0])
            np.testing.assert_array_equal(other[-1].population[row], alone[-1].population[0])
    assert len({tuple(t) for t in batch[-1].theta}) == 6  # the runs differ from each other


def test_steps_never_touch_pythons_random_and_keep_their_inputs():
    """Another thread of the process (a Dask worker's event loop) may draw from ``random`` at any
    moment: the GA must not depend on it, nor change it."""
    ga = GeneticAlgorithm(GASettings(population_size=10))
    results = []
    for seed in (1, 2):
        problem = xor_problem(2)
        state = ga.init(start(range(2)), problem.view(), np.array(run_generators(range(2)), dtype=object))
        population, fitness = state.population.copy(), state.fitness.copy()
        random.seed(seed)
        before = random.getstate()
        stepped = ga.step(state, problem.view())
        assert random.getstate() == before
        random.random()  # someone else draws between the generations
        results.append(ga.step(stepped, problem.view()).theta)
        np.testing.assert_array_equal(state.population, population)
        np.testing.assert_array_equal(state.fitness, fitness)
    np.testing.assert_array_equal(results[0], results[1])


def test_tournament_selection_is_deaps_rule_on_the_same_draws():
    """Replay the aspirants: DEAP's winner is the max of the fitnesses (weights -1: the lowest
    loss, ties to the first drawn); NaN losses lose."""
    fitness = np.array([0.5, 0.2, np.nan, 0.2, 0.9, 0.1])
    rng = np.random.default_rng(3)
    winners = sel_tournament(fitness, 200, 3, np.random.default_rng(3))
    aspirants = rng.integers(0, len(fitness), size=(200, 3))
    for row, won in zip(aspirants, winners):
        members = []
        for index in row:
            individual = creator.GAIndividual(np.zeros(1))
            individual.fitness = creator.FitnessMin((np.inf if np.isnan(fitness[index]) else fitness[index],))
            members.append((index, individual))
        assert won == max(members, key=lambda m: m[1].fitness)[0]
    assert 2 not in set(winners[np.isin(aspirants, [0, 1, 3, 4, 5]).any(axis=1)])  # NaN never beats a number


def test_ga_solves_xor_with_the_runner():
    doc = {
        "experiment": {"name": "t", "seed": 0, "runs": 10, "budget": 40000},
        "datasets": [{"name": "xor"}],
        "optimizers": [{"name": "ga", **XOR_SETTINGS}],
    }
    (cell,) = from_dict(doc).cells()
    runs, curves, *_ = run_cell(cell)
    assert (runs["status"] == "solved").sum() >= 7
    assert (runs["cost"] <= 40000).all()
    assert (runs["loss_evals"] == runs["evaluations"]).all() and (runs["grad_evals"] == 0).all()
    assert (runs["cost"] == runs["loss_evals"]).all()  # one unit per evaluated individual
    assert (runs["cost"] <= 50 * (runs["generations"] + 1)).all()  # only changed individuals are evaluated
    assert (runs["epochs"] == runs["generations"]).all()
    for _, points in curves.groupby("run"):
        assert (np.diff(points["best_loss"]) <= 0).all()
        assert (np.diff(points["loss"]) <= 0).all()  # the incumbent is the best ever
        assert points["cost"].iloc[0] == 50  # the first population
    solved = runs[runs["status"] == "solved"]
    assert (solved["cost_to_success"] == solved["cost"]).all()
    assert (solved["train_accuracy"] == 1.0).all()


def test_runner_results_do_not_depend_on_batch_size():
    doc = {
        "experiment": {"name": "t", "seed": 1, "runs": 5, "budget": 1500},
        "datasets": [{"name": "xor"}],
        "optimizers": [{"name": "ga", "population_size": 10}],
    }
    (cell,) = from_dict(doc).cells()
    runs, curves, *_ = run_cell(cell)
    runs_b, curves_b, *_ = run_cell(cell, batch=2)
    drop = ["wall_time"]
    for column in runs.columns.drop(drop):
        assert runs[column].astype(str).tolist() == runs_b[column].astype(str).tolist(), column
    assert curves.equals(curves_b)


@pytest.mark.parametrize(
    ("crossover_probability", "mutation_probability"),
    [(0.7, 0.0), (0.0, 0.3), (0.2, 0.0), (0.0, 0.8)],
)
def test_each_variation_probability_is_honoured(crossover_probability, mutation_probability):
    """Over 10,000 individuals, the share crossed and the share mutated are each its own
    probability (binomial test), with the other operator switched off."""
    from scipy.stats import binomtest

    ga = GeneticAlgorithm(
        GASettings(crossover_probability=crossover_probability, mutation_probability=mutation_probability)
    )
    rng = np.random.default_rng(7)
    parents = rng.normal(size=(50, 9))
    touched = sum(ga._vary(parents, rng)[1].sum() for _ in range(200))
    if crossover_probability:  # crossed pairs touch both members: count pairs
        trials, hits, p = 200 * 25, touched // 2, crossover_probability
    else:
        trials, hits, p = 200 * 50, touched, mutation_probability
    assert binomtest(int(hits), trials, p).pvalue > 1e-4


# ---------------------------------------------------------------------------- mutation-testing gaps


def test_settings_are_immutable():
    s = GASettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.population_size = 3  # type: ignore[misc]


@pytest.mark.parametrize("count", [None, 1, 4])
def test_init_refuses_a_wrong_number_of_generators(count):
    ga = GeneticAlgorithm(GASettings(population_size=6))
    rngs = None if count is None else np.array(run_generators(range(count)), dtype=object)
    with pytest.raises(ValueError, match="ga needs one random generator per run: 3 runs"):
        ga.init(start(range(3)), xor_problem(3).view(), rngs)


def test_fitness_is_deaps_single_objective_minimization():
    """DEAP's convention for a minimized loss: weight -1, so the weighted value is -loss."""
    assert creator.FitnessMin.weights == (-1.0,)
    _, states, _ = evolve(range(2), 3, population_size=8)
    for hall in states[-1].hall_of_fame:
        for individual in hall:
            assert individual.fitness.wvalues == (-individual.fitness.values[0],)


def replay_vary(settings: GASettings, parents: np.ndarray, rng: np.random.Generator):
    """varAnd as documented, one pair and one gene at a time, on the same draws."""
    size, n_params = parents.shape
    x = parents.copy()
    touched = [False] * size
    u_pairs = rng.random(size // 2)
    crossed = [i for i in range(size // 2) if u_pairs[i] < settings.crossover_probability]
    if crossed:
        u = rng.random((len(crossed), n_params))
        for k, i in enumerate(crossed):
            a, b = 2 * i, 2 * i + 1
            for j in range(n_params):
                x1, x2, uj = x[a, j], x[b, j], u[k, j]
                if settings.crossover == "blend":
                    g = (1 + 2 * settings.blend_alpha) * uj - settings.blend_alpha
                    x[a, j], x[b, j] = (1 - g) * x1 + g * x2, g * x1 + (1 - g) * x2
                else:
                    base = 2 * uj if uj <= 0.5 else 1 / (2 * (1 - uj))
                    beta = base ** (1 / (settings.sbx_eta + 1))
                    x[a, j] = 0.5 * ((1 + beta) * x1 + (1 - beta) * x2)
                    x[b, j] = 0.5 * ((1 - beta) * x1 + (1 + beta) * x2)
            touched[a] = touched[b] = True
    u_mut = rng.random(size)
    mutants = [i for i in range(size) if u_mut[i] < settings.mutation_probability]
    if mutants:
        mask = rng.random((len(mutants), n_params)) < settings.gene_probability
        noise = iter(rng.standard_normal(int(mask.sum())))
        for k, i in enumerate(mutants):
            for j in range(n_params):
                if mask[k, j]:
                    x[i, j] += settings.mutation_sigma * next(noise)
            touched[i] = True
    return x, np.array(touched)


@pytest.mark.parametrize("crossover", ["blend", "sbx"])
@pytest.mark.parametrize("size", [10, 9])
def test_vary_is_varand_on_the_documented_draws(crossover, size):
    """Consecutive pairs crossed by the chosen operator, then Gaussian mutation; exactly the
    crossed and the mutated individuals are marked for evaluation."""
    settings = GASettings(
        population_size=size,
        crossover=crossover,
        crossover_probability=0.5,
        mutation_probability=0.3,
        gene_probability=0.4,
        blend_alpha=0.3,
        sbx_eta=2.0,
    )
    ga = GeneticAlgorithm(settings)
    data_rng = np.random.default_rng(11)
    for seed in range(20):
        parents = data_rng.normal(size=(size, 9))
        got, touched = ga._vary(parents, np.random.default_rng(seed))
        expected, expected_touched = replay_vary(settings, parents, np.random.default_rng(seed))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(touched, expected_touched)
        np.testing.assert_array_equal(got[~touched], parents[~touched])


class RecordingView:
    """A problem view that records every evaluated individual, per run, in evaluation order.
    ``clone_draws``: the init distribution gives one row repeated (a population of duplicates)."""

    def __init__(self, view, clone_draws: bool = False) -> None:
        self.view, self.clone_draws = view, clone_draws
        self.evaluated: dict[int, list] = {}

    def draw(self, rng, count):
        rows = self.view.draw(rng, 1 if self.clone_draws else count)
        return np.repeat(rows, count, axis=0) if self.clone_draws else rows

    def loss(self, theta, owners=None):
        losses = self.view.loss(theta, owners)
        owners = np.arange(len(theta)) if owners is None else owners
        for genome, loss, run in zip(theta, losses.tolist(), np.asarray(owners).tolist()):
            self.evaluated.setdefault(run, []).append((genome.copy(), loss))
        return losses


@pytest.mark.parametrize(("elite_count", "clone_draws"), [(0, False), (1, False), (3, False), (11, True)])
def test_hall_of_fame_is_deaps_over_every_evaluated_individual(elite_count, clone_draws):
    """Each run's hall of fame equals a hand-fed ``tools.HallOfFame(max(elite_count, 1))`` given
    every individual the run evaluated (also while it is not yet full: a population of copies)."""
    ga = GeneticAlgorithm(GASettings(population_size=12, elite_count=elite_count))
    n_runs = 3
    view = RecordingView(xor_problem(n_runs).view(), clone_draws)
    state = ga.init(start(range(n_runs)), view, np.array(run_generators(range(n_runs)), dtype=object))
    if clone_draws:
        assert all(len(hall) == 2 for hall in state.hall_of_fame)  # theta0 and the repeated row
    for _ in range(15):
        state = ga.step(state, view)
        for r in range(n_runs):
            hand = tools.HallOfFame(max(elite_count, 1), similar=np.array_equal)
            for genome, loss in view.evaluated[r]:
                individual = creator.GAIndividual(genome)
                individual.fitness = creator.FitnessMin((loss,))
                hand.update([individual])
            hall = state.hall_of_fame[r]
            assert len(hall) == len(hand)
            assert [e.fitness.values[0] for e in hall] == [e.fitness.values[0] for e in hand]
            for ours, theirs in zip(hall, hand):
                np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    assert not clone_draws or all(len(hall) == 11 for hall in state.hall_of_fame)


def test_elites_replace_the_worst_offspring():
    """Replay selection and variation on copies of the generators: the new population is the
    offspring with their ``elite_count`` worst losses replaced by the elites' losses."""
    elite_count, size, n_runs = 3, 12, 3
    ga = GeneticAlgorithm(GASettings(population_size=size, elite_count=elite_count))
    problem = xor_problem(n_runs)
    data, net = problem.data, problem.net
    state = ga.init(start(range(n_runs)), problem.view(), np.array(run_generators(range(n_runs)), dtype=object))
    for _ in range(10):
        rngs = [copy.deepcopy(rng) for rng in state.rng]
        elites = [[e.fitness.values[0] for e in hall[:elite_count]] for hall in state.hall_of_fame]
        elite_genomes = [[np.asarray(e).copy() for e in hall[:elite_count]] for hall in state.hall_of_fame]
        after = ga.step(state, problem.view())
        for r in range(n_runs):
            chosen = sel_tournament(state.fitness[r], size, ga.settings.tournament_size, rngs[r])
            offspring, touched = ga._vary(state.population[r, chosen], rngs[r])
            losses = state.fitness[r, chosen].copy()
            losses[touched] = net.loss(offspring[touched], data.X_train, data.Y_train)
            kept = sorted(losses.tolist())[: size - elite_count]
            np.testing.assert_allclose(sorted(after.fitness[r].tolist()), sorted(kept + elites[r]), rtol=0, atol=1e-12)
            for genome in elite_genomes[r]:
                assert (after.population[r] == genome).all(axis=1).any()
        state = after
