"""``python -m bench analyze DIR``: end points, attractors, barriers and slices of a results folder.

Reads the folder's config.toml (for the datasets, models and ``[analysis]`` tolerances) and its
tables, never reruns training, and writes:

    runs.parquet        the runs table with the analysis columns (ANALYSIS_COLUMNS) replaced
    attractors.parquet  dataset x optimizer x attractor: runs, basin share, loss, class, solved
    pairs.parquet       McNemar tests of every pair of optimizers per dataset (paired by run)
    paths.parquet       the loss along straight lines: initial -> end point of every run, end
                        point -> the best attractor, and between the distinct attractors
    slices.parquet      a 2-D loss slice around one run per dataset, with its trajectory
    analysis.json       the settings used and what the analysis cost (seconds, Hessian-vector
                        products, gradient evaluations): never part of any run's training cost
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from bench import seeding
from bench.analysis import attractors, endpoints, landscape
from bench.config import Config
from bench.config import load as load_config
from bench.mlp import MLP

ANALYSIS_COLUMNS = [*endpoints.COLUMNS, "attractor", "barrier_init", "barrier_to_best"]
TABLES = ("attractors", "pairs", "paths", "slices")
_MAX_ATTRACTOR_PAIRS = 8  # lowest-loss attractors whose pairwise barriers are measured


class Analyzed(NamedTuple):
    runs: pd.DataFrame
    attractors: pd.DataFrame
    pairs: pd.DataFrame
    paths: pd.DataFrame
    slices: pd.DataFrame
    cost: dict


def analyze_tables(config: Config, runs: pd.DataFrame, curves: pd.DataFrame, progress: bool = False) -> Analyzed:
    """The analysis of an experiment's stored tables (see the module docstring)."""
    from tqdm import tqdm

    settings = config.analysis
    runs = runs.drop(columns=[c for c in ANALYSIS_COLUMNS if c in runs.columns]).copy()
    total = endpoints.Cost()
    parts, paths, slices = [], [], []
    start = time.perf_counter()
    bar = tqdm(config.datasets, desc="analysis", unit="dataset", file=sys.stderr, disable=not progress)
    for spec in bar:
        bar.set_postfix_str(spec.label)
        rows = runs[runs["dataset"] == spec.label]
        if rows.empty:
            continue
        data, net = spec.load(), spec.network()
        X, Y = data.X_train, data.Y_train
        table, cost = endpoints.analyze_endpoints(net, X, Y, rows, settings, config.seed, spec.label)
        total.add(cost)
        t = time.perf_counter()
        theta = np.stack(rows["theta_final"].to_numpy())
        loss = rows["final_loss"].to_numpy(float)
        table["attractor"] = attractors.attractor_ids(
            attractors.outputs(net, theta, X), loss, rows["status"].to_numpy() == "solved", settings.attractor_tol
        )
        table["barrier_init"], table["barrier_to_best"], lines = _lines(net, X, Y, rows, theta, table, settings)
        total.parts["attractors and barriers"] = (
            total.parts.get("attractors and barriers", 0.0) + time.perf_counter() - t
        )
        parts.append(table)
        paths.append(lines.assign(dataset=spec.label))
        t = time.perf_counter()
        slices.append(_slice(net, X, Y, rows, curves, config, spec.label))
        total.parts["slices"] = total.parts.get("slices", 0.0) + time.perf_counter() - t
    bar.close()
    if parts:
        runs = runs.join(pd.concat(parts))
    total.seconds = time.perf_counter() - start
    cost = {
        "seconds": round(total.seconds, 3),
        "hessian_vector_products": total.hessian_vector_products,
        "gradient_evaluations": total.gradient_evaluations,
        "seconds_by_part": {k: round(v, 3) for k, v in total.parts.items()},
    }
    return Analyzed(
        runs,
        attractors.attractor_table(runs) if parts else pd.DataFrame(),
        attractors.paired_tests(runs),
        _concat(paths),
        _concat(slices),
        cost,
    )


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _lines(
    net: MLP, X: np.ndarray, Y: np.ndarray, rows: pd.DataFrame, theta: np.ndarray, table: pd.DataFrame, settings
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Barriers from each run's start to its end and from its end to the best attractor (aligned),
    and the loss along those lines and between the lowest-loss attractors."""
    points = settings.interpolation_points
    alphas = np.linspace(0.0, 1.0, points)
    theta0 = np.stack(rows["theta_initial"].to_numpy())
    ids = table["attractor"].to_numpy()
    loss = rows["final_loss"].to_numpy(float)
    frames = []

    def frame(kind: str, curves: np.ndarray, run: np.ndarray, optimizer: np.ndarray, a: np.ndarray, b: np.ndarray):
        k = len(curves)
        frames.append(
            pd.DataFrame(
                {
                    "kind": kind,
                    "optimizer": np.repeat(optimizer, points),
                    "run": np.repeat(run, points),
                    "from_attractor": np.repeat(a, points),
                    "to_attractor": np.repeat(b, points),
                    "alpha": np.tile(alphas, k),
                    "loss": curves.reshape(-1),
                }
            )
        )

    run_ids, labels = rows["run"].to_numpy(), rows["optimizer"].to_numpy()
    to_init = landscape.interpolate(net, X, Y, theta0, theta, points)
    frame("initial to end", to_init, run_ids, labels, np.full(len(rows), -1), ids)
    barrier_init = landscape.barrier(to_init)
    barrier_to_best = np.full(len(rows), np.nan)
    # Each attractor's lowest-loss run stands for it; attractor 0 (the solved runs, if any) first.
    founders = {k: int(np.flatnonzero(ids == k)[np.argmin(loss[ids == k])]) for k in np.unique(ids[ids >= 0])}
    if founders:
        best = theta[founders[min(founders)]]
        valid = np.flatnonzero(ids >= 0)
        toward = np.stack([attractors.align(net, theta[r], best) for r in valid])
        curves = landscape.interpolate(net, X, Y, theta[valid], toward, points)
        barrier_to_best[valid] = landscape.barrier(curves)
        frame("end to best", curves, run_ids[valid], labels[valid], ids[valid], np.full(len(valid), min(founders)))
        lowest = sorted(founders, key=lambda k: loss[founders[k]])[:_MAX_ATTRACTOR_PAIRS]
        pairs = list(itertools.combinations(lowest, 2))
        if pairs:
            x = np.stack([theta[founders[a]] for a, _ in pairs])
            y = np.stack([attractors.align(net, theta[founders[a]], theta[founders[b]]) for a, b in pairs])
            curves = landscape.interpolate(net, X, Y, x, y, points)
            frame(
                "between attractors",
                curves,
                np.array([run_ids[founders[a]] for a, _ in pairs]),
                np.array([labels[founders[a]] for a, _ in pairs]),
                np.array([a for a, _ in pairs]),
                np.array([b for _, b in pairs]),
            )
    return barrier_init, barrier_to_best, pd.concat(frames, ignore_index=True)


def _slice(
    net: MLP, X: np.ndarray, Y: np.ndarray, rows: pd.DataFrame, curves: pd.DataFrame, config: Config, label: str
) -> pd.DataFrame:
    """The loss on a 2-D slice around the end point of the chosen run, and its trajectory."""
    settings = config.analysis
    optimizer = settings.slice_optimizer or rows["optimizer"].iloc[0]
    chosen = rows[(rows["optimizer"] == optimizer) & (rows["run"] == settings.slice_run)]
    if chosen.empty or not np.isfinite(chosen["theta_final"].iloc[0]).all():
        return pd.DataFrame()
    center = np.asarray(chosen["theta_final"].iloc[0], dtype=np.float64)
    rng = seeding.generator(config.seed, "slice", label)
    directions = np.stack([landscape.filter_normalized(net, center, rng) for _ in range(2)])
    grid, values = landscape.plane(net, X, Y, center, directions, settings.slice_radius, settings.slice_points)
    a, b = np.meshgrid(grid, grid)
    table = pd.DataFrame(
        {"kind": "grid", "cost": np.nan, "a": a.reshape(-1), "b": b.reshape(-1), "loss": values.reshape(-1)}
    )
    if "theta" in curves.columns:
        path = curves[
            (curves["dataset"] == label) & (curves["optimizer"] == optimizer) & (curves["run"] == settings.slice_run)
        ]
        path = path[path["theta"].notna()]
        if len(path):
            xy = landscape.project(np.stack(path["theta"].to_numpy()), center, directions)
            table = pd.concat(
                [
                    table,
                    pd.DataFrame(
                        {
                            "kind": "trajectory",
                            "cost": path["cost"].to_numpy(),
                            "a": xy[:, 0],
                            "b": xy[:, 1],
                            "loss": path["loss"].to_numpy(),
                        }
                    ),
                ],
                ignore_index=True,
            )
    return table.assign(dataset=label, optimizer=optimizer, run=settings.slice_run)


def analyze_folder(path: Path, progress: bool = True) -> Analyzed:
    """Analyse a results folder and write its analysis tables (atomically, each one)."""
    from bench.store import read_table, write_parquet_atomic, write_text_atomic

    config = load_config(str(path / "config.toml"))
    runs, curves = read_table(path, "runs"), read_table(path, "curves")
    result = analyze_tables(config, runs, curves, progress=progress)
    for name in TABLES:
        write_parquet_atomic(path / f"{name}.parquet", getattr(result, name))
    write_parquet_atomic(path / "runs.parquet", result.runs)
    info = {"settings": dataclasses.asdict(config.analysis), "cost": result.cost}
    write_text_atomic(path / "analysis.json", json.dumps(info, indent=2))
    return result
