"""TUNING.md and the tuning figures (``python -m bench tune``).

Each figure is a view of ``trials.parquet`` (one row per trial):

* ``history.png``: the best objective so far against the trial number, per dataset.
* ``sensitivity.png``: every trial's objective against its step size (the learning rate;
  delta_0 for Rprop; the mutation sigma for the GA), per dataset (DeepOBS's sensitivity plot).
* ``best_after_k.png``: the expected best objective after k trials, bootstrapped from the
  trials (Sivaprasad et al. 2020): how much each optimizer depends on its tuning budget.
* ``importances.png``: fANOVA importances of the settings (Optuna's evaluator), per study with
  more than one setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.report.plots import MAX_COLUMNS, Palette, _facets, _text_width, optimizer_palette, save

STEP_SIZE = ("learning_rate", "base_settings.learning_rate", "delta_0", "mutation_sigma")
BOOTSTRAP = 1000


def step_setting(trials: pd.DataFrame) -> str | None:
    """The step-size setting of one optimizer's trials (the first of STEP_SIZE it has)."""
    for name in STEP_SIZE:
        column = f"setting.{name}"
        if column in trials and trials[column].notna().any():
            return name
    return None


def best_after_k(values: np.ndarray, maximize: bool, replicates: int = BOOTSTRAP, seed: int = 0) -> pd.DataFrame:
    """The best of k trials drawn with replacement from ``values``, for k = 1..n: the median and
    the 5 % and 95 % quantiles over ``replicates`` bootstrap draws."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    rng = np.random.default_rng(seed)
    draws = values[rng.integers(0, n, size=(replicates, n))]
    best = np.maximum.accumulate(draws, axis=1) if maximize else np.minimum.accumulate(draws, axis=1)
    low, mid, high = np.quantile(best, [0.05, 0.5, 0.95], axis=0)
    return pd.DataFrame({"k": np.arange(1, n + 1), "median": mid, "low": low, "high": high})


def _objective_axis(ax: Any, objective: str, values: pd.Series) -> None:
    positive = values[values > 0]
    if objective != "success_rate" and len(positive) and positive.max() / positive.min() > 20:
        ax.set_yscale("log")
    ax.set_ylabel(
        {"art": "aRT to success (cost units)", "final_loss": "mean final loss"}.get(objective, "share solved")
    )


def _no_success_line(ax: Any, trials: pd.DataFrame, objective: str) -> None:
    if objective == "art":
        limit = float((trials["budget"] * trials["seeds"]).iloc[0])
        ax.axhline(2 * limit, color="0.4", linestyle=":", linewidth=1)
        ax.annotate("above: no seed solved", (0.01, 2 * limit), xycoords=("axes fraction", "data"),
                    va="bottom", fontsize=7, color="0.3")  # fmt: skip


def _legend(fig: Figure, palette: Palette, present: list[str]) -> None:
    handles = [Line2D([], [], color=palette[o], linewidth=2.5, marker="o", label=o) for o in present]
    fig.legend(handles=handles, title="optimizer", loc="outside right center", frameon=False)


def _per_dataset(table: pd.DataFrame, title: str, xlabel: str, draw: Any, palette: Palette | None) -> Figure:
    """One panel per dataset of ``table``; ``draw(ax, panel, palette)`` fills a panel."""
    palette = palette or optimizer_palette(table["optimizer"])
    datasets = list(pd.unique(table["dataset"]))
    present = [o for o in palette if o in set(table["optimizer"])]
    fig, axes = _facets(datasets, title, 3.2, _text_width(present) + 1.0)
    for i, (ax, dataset) in enumerate(zip(axes, datasets, strict=True)):
        draw(ax, table[table["dataset"] == dataset], palette)
        ax.set_title(dataset)
        ax.set_xlabel(xlabel)
        if i % MAX_COLUMNS:
            ax.set_ylabel("")
    _legend(fig, palette, present)
    return fig


def figure_history(trials: pd.DataFrame, objective: str, palette: Palette | None = None) -> Figure:
    """Best objective so far against the trial number; points: each trial's own value."""

    def draw(ax: Any, panel: pd.DataFrame, palette: Palette) -> None:
        for optimizer, g in panel.groupby("optimizer", sort=False):
            g = g.sort_values("trial")
            running = np.maximum if objective == "success_rate" else np.minimum
            ax.scatter(g["trial"], g["value"], s=8, color=palette[optimizer], alpha=0.35, linewidths=0)
            ax.step(g["trial"], running.accumulate(g["value"]), where="post", color=palette[optimizer], linewidth=1.8)
        _objective_axis(ax, objective, panel["value"])
        _no_success_line(ax, panel, objective)

    done = trials[trials["state"] == "complete"]
    return _per_dataset(done, f"Tuning history: the best {objective} so far", "trial", draw, palette)


def figure_sensitivity(trials: pd.DataFrame, objective: str, palette: Palette | None = None) -> Figure:
    """Every trial's objective against its step size, one colour per optimizer."""

    def draw(ax: Any, panel: pd.DataFrame, palette: Palette) -> None:
        for optimizer, g in panel.groupby("optimizer", sort=False):
            setting = step_setting(g)
            if setting is None:
                continue
            g = g.sort_values(f"setting.{setting}")
            marker = {"delta_0": "s", "mutation_sigma": "^"}.get(setting, "o")
            # A line only where the step size is the only setting tuned: otherwise neighbours on
            # the x axis differ in other settings too, and a line would zigzag between them.
            alone = sum(c.startswith("setting.") and g[c].notna().any() for c in g.columns) == 1
            ax.plot(g[f"setting.{setting}"], g["value"], marker=marker, markersize=3.5, linewidth=0.9 if alone else 0,
                    color=palette[optimizer], alpha=0.8)  # fmt: skip
        ax.set_xscale("log")
        _objective_axis(ax, objective, panel["value"])
        _no_success_line(ax, panel, objective)

    title = "Sensitivity: each trial's objective against its step size (lines: the step size is all that was tuned)"
    done = trials[trials["state"] == "complete"]
    return _per_dataset(done, title, "step size (o learning rate, s delta_0, ^ sigma)", draw, palette)


def best_after_k_table(trials: pd.DataFrame, objective: str) -> pd.DataFrame:
    done = trials[trials["state"] == "complete"]
    parts = []
    for (dataset, optimizer), g in done.groupby(["dataset", "optimizer"], sort=False):
        table = best_after_k(g.sort_values("trial")["value"].to_numpy(), objective == "success_rate")
        parts.append(table.assign(dataset=dataset, optimizer=optimizer))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def figure_best_after_k(table: pd.DataFrame, objective: str, palette: Palette | None = None) -> Figure:
    """The expected best objective after k trials (median, band: 5-95 % of the bootstrap)."""

    def draw(ax: Any, panel: pd.DataFrame, palette: Palette) -> None:
        for optimizer, g in panel.groupby("optimizer", sort=False):
            ax.plot(g["k"], g["median"], color=palette[optimizer], linewidth=1.8)
            ax.fill_between(g["k"], g["low"], g["high"], color=palette[optimizer], alpha=0.15, linewidth=0)
        _objective_axis(ax, objective, pd.concat([panel["low"], panel["high"]]))
        ax.set_xscale("log")

    title = "Best result after k trials (bootstrap of the trials: median, 5-95 %)"
    return _per_dataset(table, title, "trials k", draw, palette)


def importance_table(results: list[Any]) -> pd.DataFrame:
    """fANOVA importances (Optuna's evaluator, seeded) of each study with two or more settings."""
    import optuna

    rows = []
    for r in results:
        done = r.trials[r.trials["state"] == "complete"]
        if len(r.space) < 2 or len(done) < 4:
            continue
        from bench.tuning import _storage

        study = optuna.load_study(study_name=r.name, storage=_storage(r.storage))
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        for name, value in optuna.importance.get_param_importances(study, evaluator=evaluator).items():
            rows.append({"dataset": r.cell.dataset.label, "optimizer": r.cell.optimizer.label, "setting": name,
                         "importance": value})  # fmt: skip
    return pd.DataFrame(rows, columns=["dataset", "optimizer", "setting", "importance"])


def figure_importances(table: pd.DataFrame) -> Figure:
    """Horizontal bars: each setting's share of the objective's variance, per study."""
    studies = list(dict.fromkeys(zip(table["dataset"], table["optimizer"])))
    labels = [f"{d} | {o}" for d, o in studies]
    fig, axes = _facets(labels, "Setting importances (fANOVA over the trials)", 2.2, 0.5)
    for ax, (dataset, optimizer), label in zip(axes, studies, labels, strict=True):
        g = table[(table["dataset"] == dataset) & (table["optimizer"] == optimizer)].sort_values("importance")
        ax.barh(g["setting"], g["importance"], color="0.45")
        ax.set_xlim(0, 1)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("importance")
    return fig


def write_tuning_report(tuned: Any, config: Any, results: list[Any]) -> Path:
    """TUNING.md and the figures in the tuning folder; returns TUNING.md's path."""
    from bench.analysis import markdown_table
    from bench.store import write_text_atomic
    from bench.tuning import best_trial

    path: Path = tuned.path
    figures = path / "figures"
    figures.mkdir(exist_ok=True)
    trials, t = tuned.trials, config.tuning
    lines = [
        f"# Tuning of {config.name}",
        "",
        f"{t.trials} trials per dataset x optimizer, each scored on {t.seeds} tuning seeds (streams no "
        f"experiment's runs use); objective `{t.objective}`, sampler `{t.sampler}`, {t.batch} trials per "
        f"engine call; seed {config.seed}; the trials' engine calls took {tuned.seconds:.1f} s (summed over "
        "workers and resumed sessions).",
        "",
        f"Tuned config: `{tuned.config_path}`; evaluate it on fresh seeds with "
        f"`python -m bench run {tuned.config_path}`.",
        "",
    ]
    if trials.empty:
        lines.append("Nothing to tune: no optimizer of this config has a search space.")
        text = "\n".join(lines) + "\n"
        write_text_atomic(path / "TUNING.md", text)
        return path / "TUNING.md"
    rows = []
    for (dataset, optimizer), g in trials.groupby(["dataset", "optimizer"], sort=False):
        if not (g["state"] == "complete").any():
            rows.append({"dataset": dataset, "optimizer": optimizer,
                         "best settings": f"no trial could run: {'; '.join(sorted(set(g['failed'])))}"})  # fmt: skip
            continue
        best = best_trial(g, t.objective)
        default = g[g["trial"] == 0].iloc[0]
        shown = {k.removeprefix("setting."): v for k, v in best.items() if k.startswith("setting.") and pd.notna(v)}
        rows.append(
            {
                "dataset": dataset,
                "optimizer": optimizer,
                f"default {t.objective}": default["value"],
                "default solved": f"{int(default['solved'])}/{t.seeds}" if default["state"] == "complete" else "-",
                f"tuned {t.objective}": best["value"],
                "tuned solved": f"{int(best['solved'])}/{t.seeds}",
                "best settings": ", ".join(f"{k}={_fmt(v)}" for k, v in shown.items()),
                "tuning cost": int(g["cost"].sum()),
            }
        )
    lines += ["## Default (trial 0) against the best trial", "", markdown_table(pd.DataFrame(rows)), ""]
    cost = trials.groupby("optimizer", sort=False)["cost"].sum().astype(int).reset_index()
    lines += ["## Tuning budget spent per optimizer (cost units, all datasets)", "", markdown_table(cost), ""]
    palette = optimizer_palette(trials["optimizer"])
    if not (trials["state"] == "complete").any():
        write_text_atomic(path / "TUNING.md", "\n".join(lines) + "\n")
        return path / "TUNING.md"
    drawn = [
        ("history.png", figure_history(trials, t.objective, palette),
         "The best objective so far against the trial number (steps); points are single trials."),
        ("sensitivity.png", figure_sensitivity(trials, t.objective, palette),
         "Each trial's objective against its step size: a wide valley means a forgiving optimizer."),
        ("best_after_k.png", figure_best_after_k(best_after_k_table(trials, t.objective), t.objective, palette),
         "The best objective expected from k trials: a curve that falls late needs a large tuning budget."),
    ]  # fmt: skip
    importances = importance_table(results)
    if not importances.empty:
        importances.to_csv(path / "importances.csv", index=False)
        drawn.append(("importances.png", figure_importances(importances),
                      "Which settings the objective depends on (fANOVA), per study with two or more settings."))  # fmt: skip
    lines += ["## Figures", ""]
    for name, fig, caption in drawn:
        save(fig, figures / name)
        lines += [f"![{name}](figures/{name})", "", caption, ""]
    write_text_atomic(path / "TUNING.md", "\n".join(lines) + "\n")
    return path / "TUNING.md"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
