"""Comparison statistics on the stored tables, after COCO, Dolan & More and AlgoPerf.

Every function reads the tidy tables the runner writes (``runs``, ``hits``) and returns a table;
figures are views of these tables.  Nothing reruns training.

* **aRT** (COCO's average runtime) for a target: the total cost of all runs, each counted up to
  the cost at which it reached the target or, if it never did, to its end, divided by the number
  of runs that reached it (inf if none did).  Its confidence interval is a bootstrap of simulated
  restarts: a simulated run draws runs with replacement until one reached the target, and costs
  the failed draws' whole runs plus the successful draw's cost to the target; a bootstrap
  replicate of aRT is the mean of as many simulated runs as there were runs (its expectation is
  aRT exactly).
* **Runtime ECDFs** (the fixed-target view): for each (dataset, optimizer, target), ``samples``
  simulated runs; the ECDF at cost x is the share of (target, simulated run) pairs that reached
  their target within x.  The targets are the dataset's informative ones (``informative_targets``):
  the ladder's targets that some run reached, that not every run reached at its first evaluation
  and that no solved run stopped above, plus ``success``.
* **Performance profiles** (Dolan & More 2002): per dataset the ratio of an optimizer's aRT to
  the best aRT on that dataset (inf where it never succeeded; datasets where no optimizer succeeded
  are left out); rho(tau) is the share of datasets with ratio <= tau.  The score is AlgoPerf's: the
  area under rho from tau = 1 to tau_max = 4, divided by 3 (1: best on every dataset).
* **Pairwise tests** per dataset: two-sided Mann-Whitney U on final loss and on cost to success (a
  run that did not succeed counts as worse than every one that did; a non-finite loss as worse than
  every finite one), Holm's correction over all pairs of a dataset and metric, and the effect size
  A = P(X_a < X_b) + P(X_a = X_b) / 2 (Vargha & Delaney 2000, oriented so that A > 0.5 means a's
  runs tend to be lower: better).  An optimizer's rank on a dataset is 1 + the number of optimizers
  significantly better than it (adjusted p < alpha and A > 0.5 in their favour), so optimizers the
  tests cannot separate share a rank.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.stats import mannwhitneyu

from bench import seeding
from bench.analysis.stats import average_runtime
from bench.runner import FIXED_BUDGETS, SUCCESS_TARGET, budget_column

GROUP = ["dataset", "optimizer"]
TAU_MAX = 4.0
ART_COLUMNS = [*GROUP, "target", "target_loss", "runs", "reached", "art", "art_low", "art_high"]
TEST_COLUMNS = ["dataset", "metric", "a", "b", "n_a", "n_b", "U", "p", "p_holm", "A", "significant"]
METRICS = {"final loss": "final_loss", "cost to success": "cost_to_success"}


def _order(frame: pd.DataFrame, column: str) -> list:
    return list(pd.unique(frame[column]))


# ----------------------------------------------------------------------------- aRT and restarts


def simulated_restarts(hit_cost: ArrayLike, run_cost: ArrayLike, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` simulated runs: draw runs with replacement until one reached the target; the
    runtime is the whole cost of every failed draw plus the cost to the target of the last.
    All inf when no run reached the target."""
    hit, total = np.asarray(hit_cost, float), np.asarray(run_cost, float)
    reached = ~np.isnan(hit)
    if not reached.any():
        return np.full(size, np.inf)
    successes, failures = hit[reached], total[~reached]
    p = reached.mean()
    failed = rng.geometric(p, size) - 1  # failed draws before the first success
    runtime = rng.choice(successes, size)
    if len(failures) and failed.sum():
        draws = rng.choice(failures, int(failed.sum()))
        owner = np.repeat(np.arange(size), failed)
        runtime += np.bincount(owner, weights=draws, minlength=size)
    return runtime


def art_bootstrap(hit_cost: ArrayLike, run_cost: ArrayLike, rng: np.random.Generator, replicates: int) -> np.ndarray:
    """Bootstrap replicates of aRT, each the mean of n simulated restarts (n = number of runs).

    The n restarts together fail a negative-binomial number of draws, each a uniform draw among
    the failed runs (drawn as counts, so a replicate costs O(n) whatever the success rate), and
    succeed n times, each a uniform draw among the runs that reached the target."""
    hit, total = np.asarray(hit_cost, float), np.asarray(run_cost, float)
    reached = ~np.isnan(hit)
    n = len(hit)
    if not reached.any():
        return np.full(replicates, np.inf)
    successes, failures = hit[reached], total[~reached]
    failed = rng.negative_binomial(n, reached.mean(), replicates)
    sums = successes[rng.integers(len(successes), size=(replicates, n))].sum(axis=1)
    if len(failures):
        sums = sums + rng.multinomial(failed, np.full(len(failures), 1 / len(failures))) @ failures
    return sums / n


def runtimes(runs: pd.DataFrame, hits: pd.DataFrame) -> pd.DataFrame:
    """The hits table with each run's whole cost (``run_cost``) beside its hitting costs."""
    total = runs[["cell", "run", "cost"]].rename(columns={"cost": "run_cost"})
    return hits.merge(total, on=["cell", "run"], how="left", validate="many_to_one")


def art_table(
    runs: pd.DataFrame,
    hits: pd.DataFrame,
    seed: int = 0,
    replicates: int = 1000,
    confidence: float = 0.95,
    targets: list[str] | None = None,
) -> pd.DataFrame:
    """aRT per dataset, optimizer and target, with its bootstrap interval (simulated restarts,
    seeded per dataset and target: every optimizer draws from the same stream, so identical runs
    give identical intervals and differences are not bootstrap noise; the same seed, the same
    intervals)."""
    table = runtimes(runs, hits)
    if targets is not None:
        table = table[table["target"].isin(targets)]
    tail = (1 - confidence) / 2
    rows = []
    for (dataset, optimizer, target), group in table.groupby([*GROUP, "target"], sort=False):
        rng = seeding.generator(seed, "art", dataset, target)  # common to all optimizers
        hit, total = group["cost"].to_numpy(), group["run_cost"].to_numpy()
        low, high = np.quantile(art_bootstrap(hit, total, rng, replicates), [tail, 1 - tail], method="inverted_cdf")
        rows.append(
            {
                "dataset": dataset,
                "optimizer": optimizer,
                "target": target,
                "target_loss": group["target_loss"].iloc[0],
                "runs": len(group),
                "reached": int((~np.isnan(hit)).sum()),
                "art": average_runtime(hit, total),
                "art_low": float(low),  # "inverted_cdf": never interpolates between infs
                "art_high": float(high),
            }
        )
    return pd.DataFrame(rows, columns=ART_COLUMNS)


def informative_targets(runs: pd.DataFrame, curves: pd.DataFrame, hits: pd.DataFrame) -> dict[str, list[str]]:
    """Per dataset, the ladder's targets that can tell optimizers apart, plus ``success``: those
    that some run reached, that not every run reached at its first evaluation, and that are at or
    above the highest best loss at which a run of the dataset was solved (a solved run stops, so
    below that loss a missing hit would mean "stopped: solved", not "failed")."""
    first = curves.groupby(["cell", "run"])["cost"].min().rename("first_cost")
    table = hits.join(first, on=["cell", "run"])
    solved = runs[runs["status"] == "solved"].groupby("dataset")["best_loss"].max()
    out = {}
    for dataset, group in table.groupby("dataset", sort=False):
        ladder = group[group["target"] != SUCCESS_TARGET]
        floor = solved.get(dataset, -np.inf)
        at_start = ladder["cost"] <= ladder["first_cost"]
        by_target = pd.DataFrame(
            {
                "target": ladder["target"],
                "some": ladder["cost"].notna(),
                "start": at_start,
                "loss": ladder["target_loss"],
            }
        )
        keep = by_target.groupby("target", sort=False).agg(
            some=("some", "any"), start=("start", "all"), loss=("loss", "first")
        )
        chosen = keep[keep["some"] & ~keep["start"] & (keep["loss"] >= floor)].index
        out[dataset] = [*chosen, SUCCESS_TARGET]
    return out


def ecdf_table(
    runs: pd.DataFrame,
    hits: pd.DataFrame,
    curves: pd.DataFrame,
    seed: int = 0,
    samples: int = 100,
    points: int = 121,
    reach: float = 10.0,
) -> pd.DataFrame:
    """Runtime ECDFs per dataset and optimizer, and aggregated over datasets (``dataset`` "all").

    Columns: dataset, optimizer, cost (a log grid of ``points`` from 1e-4 to ``reach`` x the budget), relative_cost
    (cost / budget), share (of (target, simulated run) pairs reached within that cost), targets.
    The aggregate weighs every dataset equally, on the relative-cost grid.  The simulated runs
    of a dataset and target draw from one stream for every optimizer (common random numbers), so
    optimizers with identical runs get identical curves.
    """
    table = runtimes(runs, hits)
    targets = informative_targets(runs, curves, hits)
    relative = np.geomspace(1e-4, reach, points)
    rows = []
    for (dataset, optimizer), group in table.groupby(GROUP, sort=False):
        budget = float(group["budget"].iloc[0])
        mine = group[group["target"].isin(targets[dataset])]
        times = [
            simulated_restarts(
                t["cost"].to_numpy(),
                t["run_cost"].to_numpy(),
                seeding.generator(seed, "ecdf", dataset, name),
                samples,
            )
            for name, t in mine.groupby("target", sort=False)
        ]
        pooled = np.sort(np.concatenate(times))
        share = np.searchsorted(pooled, relative * budget, side="right") / len(pooled)
        rows.append(
            pd.DataFrame(
                {
                    "dataset": dataset,
                    "optimizer": optimizer,
                    "cost": relative * budget,
                    "relative_cost": relative,
                    "share": share,
                    "targets": len(times),
                }
            )
        )
    per = pd.concat(rows, ignore_index=True)
    together = (
        per.groupby(["optimizer", "relative_cost"], sort=False)
        .agg(share=("share", "mean"), targets=("targets", "sum"))
        .reset_index()
        .assign(dataset="all", cost=np.nan)
    )
    return pd.concat([per, together[per.columns]], ignore_index=True)


def fixed_budget_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The best loss of every run within 10 %, 30 % and 100 % of its budget (long form)."""
    columns = {budget_column(share): share for share in FIXED_BUDGETS} | {"best_loss": 1.0}
    long = runs.melt(id_vars=[*GROUP, "run"], value_vars=list(columns), var_name="column", value_name="value")
    long["share"] = long.pop("column").map(columns)
    return long.rename(columns={"value": "best_loss"})[[*GROUP, "share", "run", "best_loss"]]


# ----------------------------------------------------------------------------- profiles


def performance_profile(art: pd.DataFrame, target: str = SUCCESS_TARGET, tau_max: float = TAU_MAX) -> pd.DataFrame:
    """Dolan-More ratios on ``target``'s aRT: dataset, optimizer, art, ratio (to the best on the
    dataset; inf where the optimizer never reached it).  Datasets where nobody did are left out."""
    table = art[art["target"] == target][[*GROUP, "art"]].copy()
    best = table.groupby("dataset", sort=False)["art"].transform("min")
    table = table[np.isfinite(best)]
    table["ratio"] = table["art"] / best[np.isfinite(best)]
    return table.reset_index(drop=True)


def profile_curve(ratios: pd.DataFrame, taus: ArrayLike) -> pd.DataFrame:
    """rho(tau) per optimizer: the share of datasets where its ratio is at most tau."""
    taus = np.asarray(taus, float)
    rows = []
    for optimizer, group in ratios.groupby("optimizer", sort=False):
        r = np.sort(group["ratio"].to_numpy())
        rows.append(
            pd.DataFrame({"optimizer": optimizer, "tau": taus, "rho": np.searchsorted(r, taus, "right") / len(r)})
        )
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["optimizer", "tau", "rho"])


def profile_scores(ratios: pd.DataFrame, tau_max: float = TAU_MAX) -> pd.DataFrame:
    """AlgoPerf's score per optimizer: the area under rho from 1 to tau_max over (tau_max - 1),
    exactly: the mean over datasets of (tau_max - ratio) / (tau_max - 1), clipped to [0, 1]."""
    score = ratios.assign(part=np.clip((tau_max - ratios["ratio"]) / (tau_max - 1), 0, 1))
    out = score.groupby("optimizer", sort=False).agg(score=("part", "mean"), datasets=("part", "size"))
    best = ratios.assign(best=ratios["ratio"] == 1).groupby("optimizer", sort=False)["best"].sum()
    return out.assign(best_on=best).reset_index().sort_values("score", ascending=False, kind="stable")


# ----------------------------------------------------------------------------- tests


def vargha_delaney(x: ArrayLike, y: ArrayLike) -> float:
    """A = P(X < Y) + P(X = Y) / 2 over all pairs (x from ``x``, y from ``y``): above 0.5, x tends
    lower.  inf compares as the largest value and equal to itself."""
    x, y = np.asarray(x, float)[:, None], np.asarray(y, float)[None, :]
    return float(((x < y).sum() + 0.5 * (x == y).sum()) / (x.size * y.size))


def holm(p: ArrayLike) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), in the input's order."""
    p = np.asarray(p, float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def _metric_values(frame: pd.DataFrame, column: str) -> np.ndarray:
    values = frame[column].to_numpy(float)
    return np.where(np.isnan(values), np.inf, values)  # not reached / NaN loss: worse than any number


def _mann_whitney(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    both = np.concatenate([x, y])
    if (both == both[0]).all():  # all tied: the test has nothing to rank
        return len(x) * len(y) / 2, 1.0
    # scipy ranks with rankdata, which orders inf last and ties it with itself.
    finite = np.where(np.isinf(both), np.nanmax(np.where(np.isinf(both), np.nan, both), initial=0) + 1, both)
    result = mannwhitneyu(finite[: len(x)], finite[len(x) :], alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


def pairwise_tests(runs: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Mann-Whitney U for every pair of optimizers on every dataset, on final loss and on cost to
    success, with Holm's correction per dataset and metric, and Vargha-Delaney A."""
    rows = []
    for dataset, frame in runs.groupby("dataset", sort=False):
        groups = {o: g for o, g in frame.groupby("optimizer", sort=False)}
        for metric, column in METRICS.items():
            part = []
            for a, b in combinations(groups, 2):
                x, y = _metric_values(groups[a], column), _metric_values(groups[b], column)
                u, p = _mann_whitney(x, y)
                part.append({"dataset": dataset, "metric": metric, "a": a, "b": b, "n_a": len(x), "n_b": len(y)})
                part[-1] |= {"U": u, "p": p, "A": vargha_delaney(x, y)}
            if part:
                adjusted = holm([r["p"] for r in part])
                for r, q in zip(part, adjusted):
                    rows.append(r | {"p_holm": q, "significant": bool(q < alpha)})
    return pd.DataFrame(rows, columns=TEST_COLUMNS)


def ranking(runs: pd.DataFrame, tests: pd.DataFrame, metric: str = "cost to success") -> pd.DataFrame:
    """Per dataset and optimizer: rank = 1 + the number of optimizers significantly better on
    ``metric``; ties where the tests cannot separate.  Also the median of the metric and whom it
    beats significantly."""
    column = METRICS[metric]
    rows = []
    for dataset, frame in runs.groupby("dataset", sort=False):
        mine = tests[(tests["dataset"] == dataset) & (tests["metric"] == metric) & tests["significant"]]
        for optimizer, group in frame.groupby("optimizer", sort=False):
            beaten_by = set(mine[(mine["b"] == optimizer) & (mine["A"] > 0.5)]["a"])
            beaten_by |= set(mine[(mine["a"] == optimizer) & (mine["A"] < 0.5)]["b"])
            beats = set(mine[(mine["a"] == optimizer) & (mine["A"] > 0.5)]["b"])
            beats |= set(mine[(mine["b"] == optimizer) & (mine["A"] < 0.5)]["a"])
            rows.append(
                {
                    "dataset": dataset,
                    "optimizer": optimizer,
                    "rank": 1 + len(beaten_by),
                    "median": float(np.median(_metric_values(group, column))),
                    "beats": len(beats),
                }
            )
    out = pd.DataFrame(rows, columns=["dataset", "optimizer", "rank", "median", "beats"])
    position = out["dataset"].map({d: i for i, d in enumerate(_order(runs, "dataset"))})
    return (
        out.assign(_at=position).sort_values(["_at", "rank"], kind="stable").drop(columns="_at").reset_index(drop=True)
    )


# ----------------------------------------------------------------------------- two results folders

FOLDER_COLUMNS = [
    "dataset",
    "optimizer",
    "solved A",
    "solved B",
    "aRT A",
    "aRT B",
    "median final loss A",
    "median final loss B",
    "p cost (Holm)",
    "A cost",
    "p loss (Holm)",
    "A loss",
    "verdict",
]


def compare_folders(runs_a: pd.DataFrame, runs_b: pd.DataFrame, alpha: float = 0.05) -> tuple[pd.DataFrame, list[str]]:
    """The cells (dataset x optimizer labels) present in both runs tables, side by side: solved
    runs, aRT to success, median final loss, and Mann-Whitney U of A against B on cost to success
    and on final loss (Holm-corrected over the cells, per metric), with Vargha-Delaney A (above
    0.5: A's runs tend to be lower, i.e. better).  The verdict names the better folder where a
    test separates them (cost to success first), else "no difference detected".

    Returns the table and the labels of the cells found in only one of the two.
    """
    keys_a = list(dict.fromkeys(zip(runs_a["dataset"], runs_a["optimizer"])))
    keys_b = set(zip(runs_b["dataset"], runs_b["optimizer"]))
    shared = [k for k in keys_a if k in keys_b]
    alone = [f"{d} / {o} (only in A)" for d, o in keys_a if (d, o) not in keys_b]
    alone += [
        f"{d} / {o} (only in B)"
        for d, o in dict.fromkeys(zip(runs_b["dataset"], runs_b["optimizer"]))
        if (d, o) not in set(keys_a)
    ]
    names = {"cost to success": ("p cost (Holm)", "A cost"), "final loss": ("p loss (Holm)", "A loss")}
    rows, p_values = [], {m: [] for m in METRICS}
    for dataset, optimizer in shared:
        a = runs_a[(runs_a["dataset"] == dataset) & (runs_a["optimizer"] == optimizer)]
        b = runs_b[(runs_b["dataset"] == dataset) & (runs_b["optimizer"] == optimizer)]
        row = {"dataset": dataset, "optimizer": optimizer}
        for side, frame in (("A", a), ("B", b)):
            solved = frame["status"] == "solved"
            row[f"solved {side}"] = f"{int(solved.sum())}/{len(frame)}"
            row[f"aRT {side}"] = average_runtime(frame["cost_to_success"].where(solved), frame["cost"])
            row[f"median final loss {side}"] = float(np.median(_metric_values(frame, "final_loss")))
        for metric, column in METRICS.items():
            x, y = _metric_values(a, column), _metric_values(b, column)
            p_values[metric].append(_mann_whitney(x, y)[1])
            row[names[metric][1]] = vargha_delaney(x, y)
        rows.append(row)
    table = pd.DataFrame(rows, columns=FOLDER_COLUMNS)
    if rows:
        for metric, (p_column, _) in names.items():
            table[p_column] = holm(p_values[metric])
        verdicts = []
        for _, r in table.iterrows():
            verdict = "no difference detected"
            for metric in ("cost to success", "final loss"):  # the first that separates them
                p_column, effect = names[metric]
                if r[p_column] < alpha:
                    verdict = f"{'A' if r[effect] > 0.5 else 'B'} better ({metric})"
                    break
            verdicts.append(verdict)
        table["verdict"] = verdicts
    return table, alone
