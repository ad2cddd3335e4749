"""A generational genetic algorithm on the MLP's flat parameter vector, built on DEAP.

The genome of an individual is one parameter row theta (length P); its fitness is the training
loss L(theta), minimized.  Each run keeps a population x_1..x_n (n = ``population_size``) and
one generation (one ``step``) is DEAP's ``eaSimple`` with elitism (Holland 1975; Goldberg 1989;
DEAP: Fortin et al. 2012, "DEAP: Evolutionary algorithms made easy", JMLR 13):

1. select n parents by tournaments: each is the best of ``tournament_size`` individuals drawn
   uniformly with replacement (ties to the first drawn; a NaN loss loses to any number);
2. vary as DEAP's ``varAnd``: consecutive pairs (x_2i, x_2i+1) are crossed with probability
   ``crossover_probability``, gene by gene with u ~ U(0, 1):

   blend (BLX-alpha, Eshelman & Schaffer 1993), gamma = (1 + 2 alpha) u - alpha:
       y_1 = (1 - gamma) x_1 + gamma x_2,   y_2 = gamma x_1 + (1 - gamma) x_2
   simulated binary (SBX, Deb & Agrawal 1995), beta = (2u)^(1/(eta+1)) if u <= 1/2,
   else (1 / (2 (1 - u)))^(1/(eta+1)):
       y_1 = ((1 + beta) x_1 + (1 - beta) x_2) / 2,   y_2 = ((1 - beta) x_1 + (1 + beta) x_2) / 2

   then each individual is mutated with probability ``mutation_probability``: every gene, with
   probability ``gene_probability``, gets Gaussian noise, x_j <- x_j + N(0, sigma^2);
3. evaluate only the individuals an operator touched (DEAP's "invalid fitness" rule);
4. elitism: the ``elite_count`` best individuals ever seen (the hall of fame, as it stood before
   this generation) replace the worst offspring; the hall of fame is then updated with every
   individual evaluated in this generation, and the logbook records the generation.

The incumbent of a run (``state.theta``, ``state.loss``) is the best individual ever seen,
HallOfFame[0], so it never gets worse.  Cost: one forward pass per evaluated individual; ``init``
evaluates the first population (``population_size`` units), a generation at most as many.  The
first population is the run's common start theta0 plus ``population_size - 1`` rows drawn from
the model's init distribution, so every method starts from the same distribution.

What is DEAP's own and what is vectorized
-----------------------------------------
DEAP's own: ``creator`` (the fitness and individual classes), ``base.Toolbox`` (the operator
registry), ``tools.HallOfFame`` (elites and incumbent, one
per run) and ``tools.Logbook`` (per-generation min/mean/max loss and evaluation count, one per
run).  Vectorized here, and registered in the toolbox in place of DEAP's per-gene Python loops:
``select`` (``sel_tournament``: the math of ``tools.selTournament`` with numpy draws), ``mate``
(``cx_blend``, ``cx_simulated_binary``: the math of ``tools.cxBlend`` and
``tools.cxSimulatedBinary`` on whole (pairs, P) arrays), ``mutate`` (``mut_gaussian``: the math of
``tools.mutGaussian`` with a per-gene mask) and ``evaluate`` (``evaluate_invalid``: every
individual that needs a fitness, across all runs being stepped, in one stacked forward pass;
it replaces ``toolbox.map(toolbox.evaluate, ...)``).

Randomness and reproducibility
------------------------------
Each run draws only from its own numpy generator ``rngs[r]``: the initial population, the
tournaments, crossover and mutation.  Nothing draws from Python's global ``random`` module (which
DEAP's own selection uses): another thread of the process (a Dask worker's event loop, a
notebook's) may draw from it at any moment, which would change a run's tournaments.  So a run's
numbers depend neither on how many runs share a batch, nor on the order they are stepped in, nor
on what else runs in the process.  Python loops over runs do only per-run work of size
O(population): the hall of fame, the logbook and the draws; never per gene and never per forward
pass.  The per-run objects in the state (generators, hall of fame, logbook) are advanced in place,
as a numpy generator is: a state is meant to be stepped once.  (Copying the logbook every
generation would cost time quadratic in the number of generations.)
"""

from __future__ import annotations

import dataclasses
from numbers import Integral
from typing import Any, NamedTuple

import numpy as np
from bench.optimizers.base import SettingError, check_choice, check_range
from bench.optimizers.registry import register_direct
from bench.optimizers.space import Choice, Real
from deap import base, creator, tools

from bench.problem import FORWARD_COST, ProblemView

CROSSOVERS = ("blend", "sbx")
LOGBOOK_HEADER = ("gen", "nevals", "min", "mean", "max")


# creator writes global classes: create them once, here only.
if not hasattr(creator, "FitnessMin"):
    creator.create("FitnessMin", base.Fitness, weights=(-1.0,))
if not hasattr(creator, "GAIndividual"):  # a genome, as the hall of fame keeps it
    creator.create("GAIndividual", np.ndarray, fitness=creator.FitnessMin)


# ---------------------------------------------------------------------------- settings


@dataclasses.dataclass(frozen=True)
class GASettings:
    """Genetic algorithm settings (see the module docstring).

    population_size : individuals per run, n >= 2.
    crossover : "blend" (BLX-alpha, ``blend_alpha``) or "sbx" (simulated binary, ``sbx_eta``).
    crossover_probability : probability that a consecutive pair is crossed.
    mutation_probability : probability that an individual is mutated.
    mutation_sigma : standard deviation of the Gaussian noise added to a mutated gene.
    gene_probability : probability that a gene of a mutated individual gets noise.
    tournament_size : individuals per tournament, in [2, population_size].
    elite_count : best-ever individuals copied into each generation, in [0, population_size).
    """

    population_size: int = 50
    crossover: str = "blend"
    crossover_probability: float = 0.7
    blend_alpha: float = 0.5
    sbx_eta: float = 15.0
    mutation_probability: float = 0.3
    mutation_sigma: float = 0.3
    gene_probability: float = 0.2
    tournament_size: int = 3
    elite_count: int = 2

    PER_RUN = (
        "crossover_probability",
        "blend_alpha",
        "sbx_eta",
        "mutation_probability",
        "mutation_sigma",
        "gene_probability",
    )
    SEARCH_SPACE = {
        "population_size": Choice((20, 50, 100, 200)),  # a few sizes: trials of one size share an engine call
        "mutation_sigma": Real(0.01, 3.0, log=True),
        "mutation_probability": Real(0.05, 1.0),
        "crossover_probability": Real(0.1, 1.0),
    }

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "int" and (isinstance(value, bool) or not isinstance(value, Integral)):
                raise SettingError(field.name, f"{field.name} must be an integer, got {value!r}")
            if field.type == "float" and np.ndim(value) > 1:
                raise SettingError(field.name, f"{field.name} must be a number or one per run (R,), got {value!r}")
        check_range("population_size", self.population_size, 2, None)
        check_choice("crossover", self.crossover, CROSSOVERS)
        check_range("crossover_probability", self.crossover_probability, 0, 1)
        check_range("blend_alpha", self.blend_alpha, 0, None)
        check_range("sbx_eta", self.sbx_eta, 0, None)
        check_range("mutation_probability", self.mutation_probability, 0, 1)
        check_range("mutation_sigma", self.mutation_sigma, 0, None, low_open=True)
        check_range("gene_probability", self.gene_probability, 0, 1, low_open=True)
        check_range("tournament_size", self.tournament_size, 2, self.population_size)
        check_range("elite_count", self.elite_count, 0, self.population_size, high_open=True)


# ---------------------------------------------------------------------------- vectorized operators


def cx_blend(x1: np.ndarray, x2: np.ndarray, u: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Blend crossover (``tools.cxBlend``) of parent arrays, all genes at once.

    x1, x2 : ndarray of shape (pairs, P), the parents; u : same shape, uniform draws in [0, 1)
    (DEAP's ``random.random()`` per gene).  Returns the two children (new arrays).
    """
    gamma = (1.0 + 2.0 * alpha) * u - alpha
    return (1.0 - gamma) * x1 + gamma * x2, gamma * x1 + (1.0 - gamma) * x2


def cx_simulated_binary(x1: np.ndarray, x2: np.ndarray, u: np.ndarray, eta: float) -> tuple[np.ndarray, np.ndarray]:
    """Simulated binary crossover (``tools.cxSimulatedBinary``) of parent arrays, all genes at once.

    x1, x2 : ndarray of shape (pairs, P), the parents; u : same shape, uniform draws in [0, 1).
    Returns the two children (new arrays).
    """
    beta = np.where(u <= 0.5, 2.0 * u, 1.0 / (2.0 * (1.0 - u))) ** (1.0 / (eta + 1.0))
    return 0.5 * ((1.0 + beta) * x1 + (1.0 - beta) * x2), 0.5 * ((1.0 - beta) * x1 + (1.0 + beta) * x2)


def mut_gaussian(x: np.ndarray, gene_mask: np.ndarray, z: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    """Gaussian mutation (``tools.mutGaussian``) of individuals, all genes at once.

    x : ndarray of shape (k, P); gene_mask : (k, P) bool, the genes that mutate (DEAP's
    ``random.random() < indpb``); z : (k, P) standard normal draws.  Returns x with
    mu + sigma z added where the mask is set (a new array).
    """
    return x + np.where(gene_mask, mu + sigma * z, 0.0)


def sel_tournament(fitness: np.ndarray, k: int, tournsize: int, rng: np.random.Generator) -> np.ndarray:
    """Tournament selection (``tools.selTournament``) with numpy draws: the indices (k,) of the
    winners of k tournaments among one population's losses ``fitness`` (n,), each of
    ``tournsize`` individuals drawn uniformly with replacement.  The lowest loss wins; among
    equal losses the first drawn, as DEAP's ``max`` picks; a NaN loss loses to any number."""
    aspirants = rng.integers(0, len(fitness), size=(k, tournsize))
    losses = np.where(np.isnan(fitness), np.inf, fitness)[aspirants]
    return aspirants[np.arange(k), np.argmin(losses, axis=1)]


def evaluate_invalid(
    problem: ProblemView, population: np.ndarray, fitness: np.ndarray, invalid: np.ndarray
) -> np.ndarray:
    """Fitness of every individual marked invalid, all runs in one stacked forward pass.

    population : ndarray of shape (R, n, P); fitness : (R, n), the known losses; invalid :
    (R, n) bool.  Returns a new fitness array (R, n) with the invalid entries evaluated; each
    evaluation costs 1 unit, charged to its run.
    """
    runs, members = np.nonzero(invalid)
    fitness = np.array(fitness, dtype=np.float64)
    if len(runs):
        fitness[runs, members] = problem.loss(population[runs, members], owners=runs)
    return fitness


# ---------------------------------------------------------------------------- the optimizer


class GAState(NamedTuple):
    theta: np.ndarray  # (R, P) best individual ever (HallOfFame[0]): the incumbent
    loss: np.ndarray  # (R,) its training loss
    population: np.ndarray  # (R, n, P) current population
    fitness: np.ndarray  # (R, n) its training losses
    generation: np.ndarray  # (R,) generations done
    evaluations: np.ndarray  # (R,) individuals evaluated, the first population included
    rng: np.ndarray  # (R,) object: the run's np.random.Generator
    hall_of_fame: np.ndarray  # (R,) object: the run's tools.HallOfFame
    logbook: np.ndarray  # (R,) object: the run's tools.Logbook


def _individual(genome: np.ndarray, loss: float) -> Any:
    """A genome (P,) as a DEAP individual, without a per-gene copy (the hall of fame copies)."""
    individual = genome.view(creator.GAIndividual)
    individual.fitness = creator.FitnessMin((loss,))
    return individual


def _object_array(items: list[Any]) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        array[i] = item
    return array


def _row_settings(settings: GASettings, run: int) -> GASettings:
    """The settings of row ``run``: per-run arrays (R,) replaced by that row's value."""
    rows = {f: float(v[run]) for f in GASettings.PER_RUN if np.ndim(v := getattr(settings, f)) == 1}
    return dataclasses.replace(settings, **rows) if rows else settings


@register_direct(
    "ga", GASettings, "genetic algorithm (DEAP): tournament selection, blend/SBX crossover, Gaussian mutation, elitism"
)
class GeneticAlgorithm:
    """A generational GA with elitism on R runs (see the module docstring)."""

    stream = "ga"

    def __init__(self, settings: GASettings) -> None:
        self.settings = s = settings
        self.init_cost = FORWARD_COST * s.population_size
        self.max_step_cost = FORWARD_COST * s.population_size
        self.toolbox = base.Toolbox()
        self.toolbox.register("select", sel_tournament, tournsize=s.tournament_size)
        if s.crossover == "blend":
            self.toolbox.register("mate", cx_blend, alpha=s.blend_alpha)
        else:
            self.toolbox.register("mate", cx_simulated_binary, eta=s.sbx_eta)
        self.toolbox.register("mutate", mut_gaussian, mu=0.0, sigma=s.mutation_sigma)
        self.toolbox.register("evaluate", evaluate_invalid)

    # ------------------------------------------------------------------ protocol
    def init(self, theta0: np.ndarray, problem: ProblemView, rngs: np.ndarray | None) -> GAState:
        """Build and evaluate the first population of every run.

        theta0 : ndarray of shape (R, P), each run's common start (individual 0);
        rngs : R ``np.random.Generator``, one per run.
        """
        s = self.settings
        theta0 = np.asarray(theta0, dtype=np.float64)
        n_runs, n_params = theta0.shape
        if rngs is None or len(rngs) != n_runs:
            raise ValueError(f"ga needs one random generator per run: {n_runs} runs, got {rngs!r}")
        population = np.empty((n_runs, s.population_size, n_params))
        for r, rng in enumerate(rngs):
            population[r, 0] = theta0[r]
            population[r, 1:] = problem.draw(rng, s.population_size - 1)
        fitness = self.toolbox.evaluate(
            problem, population, np.full((n_runs, s.population_size), np.nan), np.ones(population.shape[:2], bool)
        )
        halls, logbooks = [], []
        for r in range(n_runs):
            hall = tools.HallOfFame(max(s.elite_count, 1), similar=np.array_equal)
            hall.update([_individual(genome, loss) for genome, loss in zip(population[r], fitness[r].tolist())])
            halls.append(hall)
            logbook = tools.Logbook()
            logbook.header = LOGBOOK_HEADER
            logbooks.append(logbook)
        self._record(logbooks, np.zeros(n_runs, dtype=np.int64), fitness, np.full(n_runs, s.population_size))
        theta, loss = self._incumbents(halls)
        return GAState(
            theta=theta,
            loss=loss,
            population=population,
            fitness=fitness,
            generation=np.zeros(n_runs, dtype=np.int64),
            evaluations=np.full(n_runs, s.population_size, dtype=np.int64),
            rng=_object_array(list(rngs)),
            hall_of_fame=_object_array(halls),
            logbook=_object_array(logbooks),
        )

    def step(self, state: GAState, problem: ProblemView) -> GAState:
        """One generation of every run: select, vary, evaluate, keep the elites, record."""
        s = self.settings
        n_runs, size, _ = state.population.shape
        offspring = np.empty_like(state.population)
        parent_fitness = np.empty_like(state.fitness)
        invalid = np.zeros((n_runs, size), dtype=bool)
        for r in range(n_runs):
            chosen = self.toolbox.select(state.fitness[r], size, rng=state.rng[r])
            offspring[r], invalid[r] = self._vary(state.population[r, chosen], state.rng[r], r)
            parent_fitness[r] = state.fitness[r, chosen]

        fitness = self.toolbox.evaluate(problem, offspring, parent_fitness, invalid)

        # Elites come from the hall of fame as it stood before this generation; they replace the
        # worst offspring (NaN losses sort last, so a broken individual goes first).
        worst_first = np.argsort(fitness, axis=1, kind="stable")[:, ::-1]
        for r in range(n_runs):
            hall = state.hall_of_fame[r]
            elites = [(np.array(e), e.fitness.values[0]) for e in hall[: s.elite_count]]
            new = invalid[r]
            if len(hall) == hall.maxsize:  # the hall's own entry test, vectorized: it sees only candidates
                new = new & (fitness[r] < hall[-1].fitness.values[0])
            new = np.flatnonzero(new)
            hall.update([_individual(offspring[r, j], loss) for j, loss in zip(new, fitness[r, new].tolist())])
            for slot, (genome, loss) in zip(worst_first[r], elites):
                offspring[r, slot], fitness[r, slot] = genome, loss
        generation = state.generation + 1
        n_evaluated = invalid.sum(axis=1)
        self._record(state.logbook, generation, fitness, n_evaluated)
        theta, loss = self._incumbents(state.hall_of_fame)
        return state._replace(
            theta=theta,
            loss=loss,
            population=offspring,
            fitness=fitness,
            generation=generation,
            evaluations=state.evaluations + n_evaluated,
        )

    def extra_columns(self, state: GAState) -> dict[str, np.ndarray]:
        """Per-run columns for the runs table: generations done and individuals evaluated, (R,)."""
        return {"generations": state.generation.copy(), "evaluations": state.evaluations.copy()}

    # ------------------------------------------------------------------ parts
    def _vary(self, parents: np.ndarray, rng: np.random.Generator, run: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """DEAP's ``varAnd`` on one run's selected parents (n, P), with numpy draws from ``rng``
        and the settings of row ``run`` (settings may be per-run arrays).

        Returns the offspring (n, P) and which of them an operator touched (n,) bool.
        """
        s = _row_settings(self.settings, run)
        size, n_params = parents.shape
        offspring = parents.copy()
        touched = np.zeros(size, dtype=bool)
        first, second = offspring[0 : size - 1 : 2], offspring[1:size:2]  # consecutive pairs (views)
        pairs = np.flatnonzero(rng.random(len(second)) < s.crossover_probability)
        if len(pairs):
            first[pairs], second[pairs] = self.toolbox.mate(
                first[pairs], second[pairs], rng.random((len(pairs), n_params)), **self._mate_setting(s)
            )
            touched[2 * pairs] = touched[2 * pairs + 1] = True
        mutants = np.flatnonzero(rng.random(size) < s.mutation_probability)
        if len(mutants):
            gene_mask = rng.random((len(mutants), n_params)) < s.gene_probability
            z = np.zeros(gene_mask.shape)
            z[gene_mask] = rng.standard_normal(np.count_nonzero(gene_mask))
            offspring[mutants] = self.toolbox.mutate(offspring[mutants], gene_mask, z, sigma=s.mutation_sigma)
            touched[mutants] = True
        return offspring, touched

    @staticmethod
    def _mate_setting(s: GASettings) -> dict[str, float]:
        return {"alpha": s.blend_alpha} if s.crossover == "blend" else {"eta": s.sbx_eta}

    @staticmethod
    def _record(logbooks: Any, generation: np.ndarray, fitness: np.ndarray, n_evaluated: np.ndarray) -> None:
        """Append one generation's population statistics to each run's logbook."""
        stats = zip(
            generation.tolist(), n_evaluated.tolist(), *(f(fitness, axis=1).tolist() for f in (np.min, np.mean, np.max))
        )
        for logbook, (gen, nevals, low, mean, high) in zip(logbooks, stats):
            logbook.record(gen=gen, nevals=nevals, min=low, mean=mean, max=high)

    @staticmethod
    def _incumbents(halls: Any) -> tuple[np.ndarray, np.ndarray]:
        """Each run's best individual ever (R, P) and its loss (R,)."""
        theta = np.stack([np.asarray(hall[0]) for hall in halls])
        loss = np.array([hall[0].fitness.values[0] for hall in halls], dtype=np.float64)
        return theta, loss
