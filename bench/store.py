"""Results on disk: one folder per config version, one atomically written folder per cell.

    results/<experiment>/<config hash>/
        config.toml        the resolved config (runnable: it reproduces these results)
        manifest.json      package versions, git commit, config hash, command, start/end times
        cells/<cell key>/  runs.parquet, curves.parquet and plateaus.parquet of one finished cell
        runs.parquet       all cells' runs, one row per run
        curves.parquet     all cells' curve points
        plateaus.parquet   all cells' plateau episodes
        REPORT.md, figures/
    results/<experiment>/latest   the hash of the most recently run config

A changed config has another hash, so its results never mix with older ones, which stay
untouched.  A cell folder appears only complete (written to a temporary folder, then renamed),
so an interrupted run leaves no partial cell and the next run skips the finished ones.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from bench.config import Cell, Config, to_toml
from bench.runner import CellTables

PACKAGES = ("numpy", "scipy", "scikit-learn", "deap", "optuna", "pandas", "pyarrow", "matplotlib", "seaborn", "tqdm")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    A unique name rather than ``mkstemp``, whose 0600 mode would make results private to their
    writer.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_parquet_atomic(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as temporary:
        frame.to_parquet(temporary, index=False)


class ResultStore:
    """The folder of one config version."""

    def __init__(self, root: Path | str, config: Config) -> None:
        self.config = config
        self.experiment_dir = Path(root) / config.name
        self.path = self.experiment_dir / config.hash
        self.cells_dir = self.path / "cells"

    def cell_dir(self, cell: Cell) -> Path:
        return self.cells_dir / cell.key

    def is_done(self, cell: Cell) -> bool:
        return (self.cell_dir(cell) / "runs.parquet").is_file()

    def start(self, command: list[str], workers: int, batch: int | None) -> None:
        """Create the folder with the resolved config and a manifest (end time still empty)."""
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(
            self.path / "config.toml", f"# resolved config {self.config.hash}\n" + to_toml(self.config.to_dict())
        )
        manifest = self.manifest()
        previous_starts = manifest.get("runs", [])
        manifest.update(
            {
                "experiment": self.config.name,
                "config_hash": self.config.hash,
                "config_source": self.config.source,
                "packages": package_versions(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "git": git_state(),
                "runs": [
                    *previous_starts,
                    {"command": command, "workers": workers, "batch": batch, "start": now(), "end": None},
                ],
            }
        )
        write_text_atomic(self.path / "manifest.json", json.dumps(manifest, indent=2))
        write_text_atomic(self.experiment_dir / "latest", self.config.hash + "\n")

    def finish(self) -> None:
        manifest = self.manifest()
        manifest["runs"][-1]["end"] = now()
        write_text_atomic(self.path / "manifest.json", json.dumps(manifest, indent=2))

    def manifest(self) -> dict[str, Any]:
        path = self.path / "manifest.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def save_cell(self, cell: Cell, tables: CellTables) -> None:
        """Write one finished cell: its tables appear together (a folder renamed into place)."""
        target = self.cell_dir(cell)
        if target.exists():  # another writer finished the same cell first: same numbers
            return
        with atomic_path(target) as temporary:
            temporary.mkdir()
            for name, table in tables._asdict().items():
                table.to_parquet(temporary / f"{name}.parquet", index=False)

    def load_cells(self, cells: Iterable[Cell]) -> CellTables:
        cells = list(cells)
        return CellTables(
            *(
                pd.concat([pd.read_parquet(self.cell_dir(c) / f"{name}.parquet") for c in cells], ignore_index=True)
                for name in CellTables._fields
            )
        )

    def save_tables(self, tables: CellTables) -> None:
        for name, table in tables._asdict().items():
            write_parquet_atomic(self.path / f"{name}.parquet", table)


def resolve_results_dir(path: Path | str) -> Path:
    """A config-version folder from itself or from its experiment folder (via ``latest``)."""
    path = Path(path)
    if (path / "runs.parquet").is_file():
        return path
    latest = path / "latest"
    if latest.is_file():
        candidate = path / latest.read_text().strip()
        if (candidate / "runs.parquet").is_file():
            return candidate
    raise FileNotFoundError(
        f"{path} holds no finished results (no runs.parquet there or in its 'latest' version); "
        "give a folder written by 'python -m bench run', e.g. results/quick"
    )


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state() -> dict[str, Any]:
    """The commit of the code that ran, and whether the work tree had changes."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def command_line(argv: list[str]) -> list[str]:
    """The command that runs ``bench`` with arguments ``argv``, as the manifest records it."""
    return [Path(sys.executable).name, "-m", "bench", *argv]
