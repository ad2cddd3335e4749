"""``bench export``: a results folder in other tools' formats.

``ioh``: IOHprofiler's format, as IOHexperimenter's analyzer logger writes it (the JSON meta-data
and ``evaluations raw_y`` data files that IOHanalyzer reads), one folder per optimizer::

    <out>/<optimizer>/IOHprofiler_f<id>_<name>.json
    <out>/<optimizer>/data_f<id>_<name>/IOHprofiler_f<id>_DIM<d>.dat

The mapping: a problem (function) is a dataset with its network (``function_name`` = the
dataset's label and the ``model`` column, ``function_id`` = the dataset's 1-based place in the
config), an algorithm is an optimizer label, an instance is a run index, the dimension is the
number of network parameters, an evaluation is a cost unit, and ``raw_y`` is the training loss
(minimized).  A run's block of the data file lists the improvements of its best-so-far loss: the
union of its curve points and its exact target hits, by cost, kept where the best loss strictly
falls (the first evaluation always).

``csv``: runs.csv, curves.csv, hits.csv and plateaus.csv with the parquet tables' columns; the
parameter vectors (and any other column of vectors) as space-separated numbers, each with the
digits that read back to the same float.

Either is written whole: into a temporary folder beside the target, renamed into place at the
end, and an existing target is refused.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bench.errors import DamagedResults
from bench.store import atomic_path, write_text_atomic

if TYPE_CHECKING:
    from bench.api import Results

FORMATS = ("ioh", "csv")
CSV_TABLES = ("runs", "curves", "hits", "plateaus")
# IOHanalyzer reads a JSON meta-data file as the evaluations / raw_y format from this version of
# IOHexperimenter on; the files here follow that format.
IOH_VERSION = "0.3.3"
IOH_SUITE = "bench"
IOH_COLUMNS = ("evaluations", "raw_y")
RUN_KEYS = ["dataset", "optimizer", "run"]


def export(results: Results, fmt: str, out: str | Path | None = None) -> Path:
    """Write ``results`` in format ``fmt`` ("ioh" or "csv") to ``out`` (default: the folder
    ``export-<fmt>`` in the results folder); returns the folder."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    target = Path(out) if out is not None else default_out(results, fmt)
    if fmt == "ioh":
        return export_ioh(results, target)
    export_csv(results, target)
    return target


def default_out(results: Results, fmt: str) -> Path:
    return Path(results.path) / f"export-{fmt}"


@contextmanager
def _new_folder(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` that becomes ``out`` if the block succeeds (and is
    removed if it fails); an existing ``out`` is refused before anything is written."""
    if out.exists() or out.is_symlink():
        raise FileExistsError(f"{out} exists; remove it or give --out")
    with atomic_path(out) as temporary:
        temporary.mkdir()
        yield temporary


# ---------------------------------------------------------------------------- IOHprofiler


def export_ioh(results: Results, out: Path) -> Path:
    """IOHprofiler's format (for IOHanalyzer) in the new folder ``out``; returns ``out``."""
    out = Path(out)
    runs, curves, hits = results.runs, results.curves, results.hits
    events = improvement_events(curves, hits)
    blocks = {key: group for key, group in events.groupby(RUN_KEYS, sort=False)}
    datasets = _ordered(runs["dataset"], [d.label for d in results.config.datasets])
    optimizers = _ordered(runs["optimizer"], [o.label for o in results.config.optimizers])
    settings = {o.label: o for o in results.config.optimizers}
    folders = _unique_slugs(optimizers)
    with _new_folder(out) as temporary:
        for optimizer, folder in zip(optimizers, folders, strict=True):
            for function_id, dataset in enumerate(datasets, start=1):
                table = runs[(runs["optimizer"] == optimizer) & (runs["dataset"] == dataset)].sort_values("run")
                if table.empty:
                    continue
                meta, data = _ioh_problem(results, table, blocks, function_id, settings.get(optimizer))
                root = temporary / folder
                write_text_atomic(root / meta["scenarios"][0]["path"], data)
                name = f"IOHprofiler_f{function_id}_{_slug(meta['function_name'])}.json"
                write_text_atomic(root / name, json.dumps(meta, indent=2) + "\n")
    return out


def improvement_events(curves: pd.DataFrame, hits: pd.DataFrame) -> pd.DataFrame:
    """Per run (``dataset``, ``optimizer``, ``run``), the costs at which its best-so-far loss
    improved: its curve points (``cost``, ``best_loss``) and its target hits (``cost``, ``loss``;
    rows with a cost), by cost, kept where the best loss strictly falls; the first evaluation
    always.  Columns: the run keys, ``cost`` (integer cost units) and ``loss``."""
    points = curves[[*RUN_KEYS, "cost", "best_loss"]].rename(columns={"best_loss": "loss"})
    reached = hits.loc[hits["cost"].notna(), [*RUN_KEYS, "cost", "loss"]]
    events = pd.concat([points, reached], ignore_index=True)
    events = events.sort_values([*RUN_KEYS, "cost", "loss"], kind="stable", ignore_index=True)
    # NaN (a loss that never was a number) counts as no improvement.
    loss = events["loss"].astype(float).fillna(math.inf)
    before = loss.groupby([events[k] for k in RUN_KEYS], sort=False).cummin()
    before = before.groupby([events[k] for k in RUN_KEYS], sort=False).shift()
    events = events[before.isna() | (loss < before)].reset_index(drop=True)
    cost = events["cost"].to_numpy(dtype=float)
    if not np.array_equal(cost, np.floor(cost)):
        raise DamagedResults("a cost in curves.parquet or hits.parquet is not a whole number of cost units")
    return events.assign(cost=cost.astype(np.int64))


def _ioh_problem(
    results: Results, table: pd.DataFrame, blocks: dict, function_id: int, spec: Any
) -> tuple[dict[str, Any], str]:
    """The JSON meta-data and the data file of one dataset x optimizer."""
    dataset, optimizer = table["dataset"].iloc[0], table["optimizer"].iloc[0]
    model = " / ".join(dict.fromkeys(table["model"].astype(str)))
    name = f"{dataset} {model}"
    sizes = {len(theta) for theta in table["theta_initial"]}
    if len(sizes) != 1:
        raise DamagedResults(f"runs of {dataset} / {optimizer} have parameter vectors of sizes {sorted(sizes)}")
    dimension = sizes.pop()
    path = f"data_f{function_id}_{_slug(name)}/IOHprofiler_f{function_id}_DIM{dimension}.dat"
    lines, runs = [], []
    for row in table.itertuples(index=False):
        block = blocks.get((dataset, optimizer, row.run))
        if block is None:
            raise DamagedResults(f"curves.parquet has no point for run {row.run} of {dataset} / {optimizer}")
        lines.append(" ".join(IOH_COLUMNS))
        lines += [f"{cost} {float(loss)!r}" for cost, loss in zip(block["cost"], block["loss"], strict=True)]
        if int(row.cost) > int(block["cost"].iloc[-1]):
            # IOHexperimenter always logs a run's last evaluation: its length is the largest one logged.
            lines.append(f"{int(row.cost)} {float(block['loss'].iloc[-1])!r}")
        best_x = list(map(float, row.theta_final)) if row.final_loss == row.best_loss else []
        runs.append(
            {
                "instance": int(row.run),
                "evals": int(row.cost),
                "best": {"evals": int(block["cost"].iloc[-1]), "y": _number(row.best_loss), "x": best_x},
            }
        )
    if spec is not None:
        info = f"{spec.name}: " + ", ".join(f"{k}={v!r}" for k, v in spec.settings_dict().items())
    else:
        info = str(table["optimizer_name"].iloc[0])
    meta = {
        "version": IOH_VERSION,
        "suite": IOH_SUITE,
        "function_id": function_id,
        "function_name": name,
        "maximization": False,
        "algorithm": {"name": str(optimizer), "info": info},
        "experiment_attributes": [
            {"experiment": str(table["experiment"].iloc[0])},
            {"config_hash": Path(results.path).name},
            {"dataset": str(dataset)},
            {"model": model},
            {"budget": str(int(table["budget"].iloc[0]))},
            {"seed": str(int(table["seed"].iloc[0]))},
        ],
        "attributes": list(IOH_COLUMNS),
        "scenarios": [{"dimension": dimension, "path": path, "runs": runs}],
    }
    return meta, "\n".join(lines) + "\n"


def _number(value: float) -> float | None:
    """A float for JSON, which has no inf or NaN (null then)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _ordered(column: pd.Series, preferred: list[str]) -> list[str]:
    """The values of ``column``: those of ``preferred`` in its order, then any others as they come."""
    present = list(dict.fromkeys(column.astype(str)))
    return [x for x in preferred if x in present] + [x for x in present if x not in preferred]


def _slug(text: str) -> str:
    """``text`` as a file name: letters, digits, '.', '-' and '_' (runs of others become '_')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


def _unique_slugs(labels: list[str]) -> list[str]:
    taken: set[str] = set()
    slugs = []
    for label in labels:
        slug, n = _slug(label), 2
        while slug.lower() in taken:  # case-insensitive file systems too
            slug, n = f"{_slug(label)}-{n}", n + 1
        taken.add(slug.lower())
        slugs.append(slug)
    return slugs


# ---------------------------------------------------------------------------- CSV


def export_csv(results: Results, out: Path) -> list[Path]:
    """runs.csv, curves.csv, hits.csv and plateaus.csv in the new folder ``out``; returns their paths."""
    out = Path(out)
    frames = {name: getattr(results, name) for name in CSV_TABLES}  # all read before anything is written
    with _new_folder(out) as temporary:
        for name, frame in frames.items():
            write_text_atomic(temporary / f"{name}.csv", csv_text(frame))
    return [out / f"{name}.csv" for name in CSV_TABLES]


def csv_text(frame: pd.DataFrame) -> str:
    """``frame`` as CSV: columns of vectors as space-separated numbers, each written with the
    digits that read back to the same float (an empty field for a missing vector)."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object and frame[column].map(_is_vector).any():
            frame[column] = frame[column].map(_vector_text)
    return frame.to_csv(index=False, lineterminator="\n")


def _is_vector(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def _vector_text(value: Any) -> str:
    if not _is_vector(value):
        return ""
    return " ".join(repr(float(x)) for x in np.ravel(value))


def read_vector(text: Any) -> np.ndarray:
    """A vector column's field of a CSV export back as an array (empty for an empty field)."""
    if not isinstance(text, str) or not text.strip():
        return np.empty(0)
    return np.array([float(x) for x in text.split()])
