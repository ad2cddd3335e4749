"""Tuning: every optimizer at its best, on the same tuning budget (``python -m bench tune``).

A comparison at hand-picked settings compares the hand, not the optimizers (Sivaprasad et al.
2020; Schmidt et al. 2021).  The tuner gives every dataset x optimizer entry of a config the same
number of trials (``[tuning] trials``), each trial a setting drawn from the optimizer's search
space (``optimizers.space``) and scored on ``seeds`` tuning runs.  It writes ``tuned.toml``, a
runnable config with each entry's best setting per dataset, which ``python -m bench run`` then
evaluates on the experiment's own runs: fresh seeds, since the tuning seeds come from streams no
experiment uses (``runner.TUNING_STREAMS``).

How a trial is scored (lower is better, except ``success_rate``):

* ``art``: the aRT to success over its seeds, the total cost of all seeds divided by the number
  that solved.  A trial none of whose seeds solved scores (2 + p) x the seeds' total budget,
  where p in [0, 1] is the mean over seeds of best loss / initial loss: worse than any trial
  that solved (an aRT is at most the seeds' total budget), and lower the further the losses fell.
* ``final_loss``: the mean final loss over the seeds; a seed whose loss became inf or NaN counts
  its initial loss (it made no progress).
* ``success_rate``: the share of seeds that solved (maximized).

Every trial records all three (``trials.parquet``), and the cost units it spent.

Studies are Optuna's, driven by ask-and-tell: per study, ``batch`` trials are asked together and
all their seeds run as one engine call (``runner.run_trials``: the runs axis carries per-run
settings); trials that differ in a setting that cannot vary per run (a population size) run in
separate calls.  The default settings are enqueued as trial 0.  The sampler is seeded per batch
from the experiment's seed, the study and the batch's index, so the trials are the same whatever
the engine's batch size or the number of workers, and a tuning interrupted and resumed (the
journal file keeps every trial; trials left running are evaluated again) asks the same trials
as one that ran through.  What changes the trials: the seed, the sampler, ``batch`` (trials
asked together see the same history) and the search space.  Optuna's own parallel mode (several
processes asking one study) does not reproduce; the tuner never uses it: its workers take whole
studies.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import kernels, seeding
from bench.config import Cell, Config, OptimizerSpec, Tuning, settings_with, stable_hash, to_toml, tuning_space
from bench.optimizers import space as sp
from bench.optimizers.base import per_run_setting
from bench.runner import build_optimizer, run_trials

JOURNAL = "journal.log"
OBJECTIVE_COLUMNS = ("art", "final_loss", "success_rate")


# ---------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Score:
    """One trial over its seeds."""

    art: float
    final_loss: float
    success_rate: float
    cost: float  # cost units spent by all its seeds
    solved: int

    def value(self, objective: str) -> float:
        return float(getattr(self, objective))


def score(runs: pd.DataFrame, initial_loss: np.ndarray, budget: int) -> Score:
    """The score of one trial from its seeds' rows of the runs table (see the module docstring)."""
    solved = int((runs["status"] == "solved").sum())
    total = float(runs["cost"].sum())
    initial = np.asarray(initial_loss, dtype=np.float64)
    if solved:
        art = total / solved
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.clip(np.nan_to_num(runs["best_loss"].to_numpy() / initial, nan=1.0, posinf=1.0), 0.0, 1.0)
        art = (2.0 + float(share.mean())) * budget * len(runs)
    final = runs["final_loss"].to_numpy(dtype=np.float64)
    final = np.where(np.isfinite(final), final, initial)
    return Score(art, float(final.mean()), solved / len(runs), total, solved)


# ---------------------------------------------------------------------------- one study


def study_name(cell: Cell) -> str:
    return f"{cell.dataset.label} | {cell.optimizer.label}"


def _as_settings(space: dict[str, sp.Dimension], params: dict[str, Any]) -> dict[str, Any]:
    """Optuna's parameters (``1-momentum``) as settings (``momentum``)."""
    out = {}
    for setting, dim in space.items():
        name = sp.parameter_name(setting, dim)
        if name in params:
            out[setting] = sp.to_setting(dim, params[name])
    return out


def evaluate_trials(
    cell: Cell, settings: list[dict[str, Any]], seeds: int, batch: int | None = None
) -> list[Score | str]:
    """Score each trial's settings on ``seeds`` tuning runs: a Score, or the reason it cannot run.

    Trials whose settings differ only in per-run settings (``PER_RUN``) run as one engine call
    (their seeds side by side on the runs axis); the others in one call per group.
    """
    names = {k for values in settings for k in values}
    per_run = {k for k in names if per_run_setting(cell.optimizer.settings, k)}
    groups: dict[str, list[int]] = {}
    for i, values in enumerate(settings):
        key = stable_hash({k: v for k, v in values.items() if k not in per_run})
        groups.setdefault(key, []).append(i)
    out: list[Score | str] = [""] * len(settings)
    budget = cell.dataset.budget
    for members in groups.values():
        first = settings[members[0]]
        varying = sorted({k for i in members for k in settings[i]} & per_run)
        values = {k: v for k, v in first.items() if k not in per_run}
        values |= {k: np.repeat([float(settings[i][k]) for i in members], seeds) for k in varying}
        try:
            merged = settings_with(cell.optimizer, values)
            opt = build_optimizer(cell, merged)
        except ValueError as exc:
            for i in members:
                out[i] = str(exc)
            continue
        need = opt.init_cost + opt.max_step_cost
        if budget < need:
            for i in members:
                out[i] = f"the budget {budget} is below the {need} cost units of a first evaluation and one step"
            continue
        tables = run_trials(cell, merged, list(range(seeds)) * len(members), batch)
        runs = tables.runs
        first_points = tables.curves.sort_values(["run", "cost"], kind="stable").groupby("run")["loss"].first()
        initial = first_points.reindex(runs["run"]).to_numpy()
        for j, i in enumerate(members):
            rows = slice(j * seeds, (j + 1) * seeds)
            out[i] = score(runs.iloc[rows], initial[rows], budget)
    return out


def _sampler(kind: str, seed: int) -> Any:
    import optuna

    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True)
    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


def _distribution(dim: sp.Dimension) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(dim, sp.Choice):
        return CategoricalDistribution(list(dim.choices))
    if isinstance(dim, sp.Integer):
        return IntDistribution(dim.low, dim.high, log=dim.log)
    if dim.complement:
        return FloatDistribution(1.0 - dim.high, 1.0 - dim.low, log=True)
    return FloatDistribution(dim.low, dim.high, log=dim.log)


def _batch_seed(config: Config, name: str, index: int, kind: str) -> int:
    """The sampler's seed for batch ``index`` of study ``name`` (QMC: one seed per study, since
    its points are indexed by the trial's number)."""
    parts = ("tuning-sampler", name) if kind == "qmc" else ("tuning-sampler", name, index)
    return int(seeding.generator(config.seed, *parts).integers(2**31 - 1))


@dataclass
class StudyResult:
    name: str
    cell: Cell
    space: dict[str, sp.Dimension]
    fixed: dict[str, Any]
    trials: pd.DataFrame  # one row per trial
    storage: str = ""  # where the study is (a journal file or a URL)


def tune_study(
    cell: Cell,
    storage: Any,
    tuning: Tuning,
    batch: int | None = None,
    log: Callable[[str], None] = lambda _: None,
    evaluate: Callable[..., list[Score | str]] | None = None,
) -> StudyResult:
    """Run (or resume) the study of one dataset x optimizer entry to ``tuning.trials`` trials.

    ``evaluate(cell, settings, seeds, batch)`` scores a list of trials' settings (default:
    ``evaluate_trials``, which trains; tests pass a toy objective with a known best).
    """
    evaluate = evaluate or evaluate_trials
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name(cell)
    space, fixed = tuning_space(tuning, cell.optimizer, cell.config.source)
    distributions = {sp.parameter_name(k, d): _distribution(d) for k, d in space.items()}
    direction = "maximize" if tuning.objective == "success_rate" else "minimize"
    study = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True)
    if not study.trials:
        defaults = _defaults(cell.optimizer, space)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a default outside the range is evaluated all the same
            study.enqueue_trial(defaults)
        study.set_user_attr("space", {k: d.describe() for k, d in space.items()})
        study.set_user_attr("fixed", fixed)

    def run(trials: list[Any]) -> None:
        params = [_as_settings(space, t.params) for t in trials]
        start = time.perf_counter()
        scores = evaluate(cell, [{**fixed, **p} for p in params], tuning.seeds, batch)
        share = (time.perf_counter() - start) / len(trials)  # the call's wall time, shared by its trials
        for t, s in zip(trials, scores):
            study._storage.set_trial_user_attr(t._trial_id, "seconds", share)
            if isinstance(s, str):
                study._storage.set_trial_user_attr(t._trial_id, "failed", s)
                study.tell(t.number, state=TrialState.FAIL)
                continue
            for key, value in dataclasses.asdict(s).items():
                study._storage.set_trial_user_attr(t._trial_id, key, value)
            study.tell(t.number, s.value(tuning.objective))

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if stale:  # asked by a tuning that was interrupted: evaluate them as it would have
        log(f"{name}: resuming; evaluating {len(stale)} trials the interrupted tuning left running")
        run(stale)
    while (done := len(study.get_trials(deepcopy=False))) < tuning.trials:
        index = done // tuning.batch
        count = min(tuning.batch, tuning.trials - done)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=optuna.exceptions.ExperimentalWarning)  # QMC's
            study.sampler = _sampler(tuning.sampler, _batch_seed(cell.config, name, index, tuning.sampler))
            asked = [study.ask(distributions) for _ in range(count)]
        run(asked)
    return StudyResult(name, cell, space, fixed, trials_table(study, cell, space, tuning))


def _defaults(opt: OptimizerSpec, space: dict[str, sp.Dimension]) -> dict[str, Any]:
    """The entry's own settings as the study's parameters (trial 0); a nested setting is read
    from the resolved base settings (restarts' base optimizer, defaults filled in)."""
    out = {}
    for setting, dim in space.items():
        outer, _, inner = setting.partition(".")
        value = getattr(opt.settings.base_optimizer_settings(), inner) if inner else getattr(opt.settings, setting)
        if value is not None:
            out[sp.parameter_name(setting, dim)] = sp.to_parameter(dim, value)
    return out


def trials_table(study: Any, cell: Cell, space: dict[str, sp.Dimension], tuning: Tuning) -> pd.DataFrame:
    """One row per trial of ``study``: its settings, its scores and what it cost."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        row = {
            "dataset": cell.dataset.label,
            "optimizer": cell.optimizer.label,
            "optimizer_name": cell.optimizer.name,
            "trial": t.number,
            "state": t.state.name.lower(),
            "value": t.value if t.value is not None else np.nan,
            **{c: t.user_attrs.get(c, np.nan) for c in (*OBJECTIVE_COLUMNS, "cost", "solved", "seconds")},
            "seeds": tuning.seeds,
            "budget": cell.dataset.budget,
            "failed": t.user_attrs.get("failed", ""),
        }
        row |= {f"setting.{k}": v for k, v in _as_settings(space, t.params).items()}
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- the whole config


@dataclass
class Tuned:
    """What ``tune`` wrote: the folder, the trials and the tuned config."""

    path: Path
    trials: pd.DataFrame
    config_path: Path
    seconds: float  # compute time of all trials (each engine call's wall time; summed over workers and resumes)


def folder(config: Config, root: Path) -> Path:
    """Where the tuning of ``config`` lives: results/<experiment>/tuning-<hash>, the hash of
    everything that decides its trials (so a rerun resumes the same journal)."""
    content = {"config": config.hash, "tuning": dataclasses.asdict(config.tuning)}
    return root / config.name / f"tuning-{stable_hash(content)}"


def tune(
    config: Config,
    out: str | Path = "results",
    storage: str | None = None,
    batch: int | None = None,
    workers: int = 1,
    progress: bool = True,
) -> Tuned:
    """Tune every dataset x optimizer entry of ``config`` that has something to tune; write
    trials.parquet, tuned.toml, TUNING.md and the figures into ``folder(config, out)``.

    ``storage`` is an Optuna storage URL (an RDB such as PostgreSQL, for several machines on one
    study); default: a journal file in the folder.  ``workers`` processes take whole studies.
    """
    from bench.store import write_parquet_atomic, write_text_atomic

    def log(message: str) -> None:
        if progress:
            print(message, file=sys.stderr)

    start = time.perf_counter()
    path = folder(config, Path(out))
    path.mkdir(parents=True, exist_ok=True)
    url = storage or str(path / JOURNAL)
    cells = [c for c in config.cells() if tuning_space(config.tuning, c.optimizer, config.source)[0]]
    t = config.tuning
    log(
        f"tuning {len(cells)} dataset x optimizer entries: {t.trials} trials x {t.seeds} seeds each, "
        f"{t.sampler} sampler, objective {t.objective}, {t.batch} trials per engine call -> {path}"
    )
    kernels.warm_up_for((c.backend for c in cells), log)
    results = _run_studies(cells, url, t, batch, workers, log)
    trials = pd.concat([r.trials for r in results], ignore_index=True) if results else pd.DataFrame()
    write_parquet_atomic(path / "trials.parquet", trials)
    seconds = float(trials["seconds"].sum()) if not trials.empty else 0.0
    log(f"tuned in {time.perf_counter() - start:.1f} s wall; the trials' engine calls took {seconds:.1f} s")
    tuned = tuned_config(config, results, path, seconds)
    config_path = path / "tuned.toml"
    write_text_atomic(config_path, _tuned_header(config, path) + to_toml(tuned))
    result = Tuned(path, trials, config_path, seconds)
    from bench.report.tune_report import write_tuning_report

    write_tuning_report(result, config, results)
    return result


def _run_studies(
    cells: list[Cell], url: str, tuning: Tuning, batch: int | None, workers: int, log: Callable[[str], None]
) -> list[StudyResult]:
    if workers <= 1 or len(cells) <= 1:
        storage = _storage(url)
        out = []
        for cell in cells:
            out.append(dataclasses.replace(tune_study(cell, storage, tuning, batch, log), storage=url))
            log(_summary_line(out[-1], tuning))
        return out
    from joblib import Parallel, delayed

    jobs = (delayed(_study_job)(cell, url, tuning, batch) for cell in cells)
    out = []
    for result in Parallel(n_jobs=workers, backend="loky", return_as="generator")(jobs):
        out.append(result)
        log(_summary_line(result, tuning))
    return out


def _study_job(cell: Cell, url: str, tuning: Tuning, batch: int | None) -> StudyResult:
    return dataclasses.replace(tune_study(cell, _storage(url), tuning, batch), storage=url)


def _storage(url: str) -> Any:
    if "://" in url:
        return url  # an RDB URL: Optuna opens it
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(url))


def best_trial(trials: pd.DataFrame, objective: str) -> pd.Series:
    """The best complete trial (the lowest value; the highest success rate); ties: the first."""
    done = trials[trials["state"] == "complete"]
    if done.empty:
        raise ValueError("no trial completed")
    order = done["value"].to_numpy()
    pick = np.argmax(order) if objective == "success_rate" else np.argmin(order)
    return done.iloc[int(pick)]


def _summary_line(result: StudyResult, tuning: Tuning) -> str:
    trials = result.trials
    try:
        best = best_trial(trials, tuning.objective)
    except ValueError:
        reasons = sorted(set(trials["failed"]))
        return f"  {result.name}: no trial could run ({'; '.join(reasons)}); tuned.toml keeps its settings"
    settings = ", ".join(f"{k.removeprefix('setting.')}={v:.3g}" if isinstance(v, float) else f"{k.removeprefix('setting.')}={v}"
                         for k, v in best.items() if k.startswith("setting."))  # fmt: skip
    return (
        f"  {result.name}: {len(trials)} trials, {int(trials['cost'].sum()):,} cost units; best "
        f"{tuning.objective} {best['value']:.4g} (solved {int(best['solved'])}/{tuning.seeds}) at {settings}"
    )


def tuned_label(opt: OptimizerSpec, tuned: set[str]) -> str:
    """The label of a tuned entry: the entry's label without the tuned settings it showed
    (``gd(learning_rate=0.5)`` -> ``gd``; ``rprop(variant=rprop+)`` keeps its variant)."""
    label = opt.label
    match = re.fullmatch(re.escape(opt.name) + r"\((.*)\)", label)
    if not match:
        return label
    kept = [part for part in match.group(1).split(", ") if part.split("=", 1)[0] not in tuned]
    return opt.name + (f"({', '.join(kept)})" if kept else "")


def tuned_config(config: Config, results: list[StudyResult], path: Path, seconds: float) -> dict[str, Any]:
    """``config`` with each tuned entry replaced by its best settings, one entry per dataset."""
    from bench.optimizers.base import settings_dict

    raw = config.to_dict()
    raw["experiment"]["name"] = f"{config.name}-tuned"
    raw["experiment"]["description"] = f"{config.name} with every optimizer tuned ({config.tuning.trials} trials each)"
    raw.pop("tuning")
    tuned_of = {o.label: [r for r in results if r.cell.optimizer.label == o.label] for o in config.optimizers}
    proposed = {
        o.label: tuned_label(o, set().union(*(r.space for r in tuned_of[o.label]))) if tuned_of[o.label] else o.label
        for o in config.optimizers
    }
    shared = {label for label in proposed.values() if list(proposed.values()).count(label) > 1}
    entries, cost = [], {}
    for o in config.optimizers:
        tuned_here = tuned_of[o.label]
        if not tuned_here:
            entries.append({"name": o.name, "label": o.label, **_plain(settings_dict(o.settings))})
            continue
        label = o.label if proposed[o.label] in shared else proposed[o.label]  # two would share a name
        cost[label] = int(sum(r.trials["cost"].sum() for r in tuned_here))
        for r in tuned_here:
            try:
                best = best_trial(r.trials, config.tuning.objective)
            except ValueError:  # no trial could run (each one's reason is in trials.parquet): keep the entry's own
                best = pd.Series(dtype=object)
            chosen = {k.removeprefix("setting."): _py(v) for k, v in best.items() if k.startswith("setting.")}
            settings = settings_dict(settings_with(o, {**r.fixed, **chosen} if chosen else {}))
            entries.append({"name": o.name, "label": label, "datasets": [r.cell.dataset.label], **_plain(settings)})
    raw["optimizers"] = entries
    t = config.tuning
    raw["tuned"] = {
        "from": str(config.source),
        "folder": str(path),
        "objective": t.objective,
        "sampler": t.sampler,
        "trials": t.trials,
        "seeds": t.seeds,
        "seconds": round(seconds, 1),
        "cost": cost,
    }
    return raw


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _plain(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if v is not None}


def _tuned_header(config: Config, path: Path) -> str:
    return (
        f"# Written by python -m bench tune {config.source}: each optimizer at its best setting per dataset\n"
        f"# ({config.tuning.trials} trials x {config.tuning.seeds} seeds, objective {config.tuning.objective}).\n"
        f"# Evaluate it on fresh seeds: python -m bench run {path / 'tuned.toml'}\n\n"
    )
