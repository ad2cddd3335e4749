"""Results on disk: a store of cells shared by every config, and one folder per config version.

    results/.cells/<content key>/<code version>/   one finished cell: runs.parquet, curves.parquet,
                                                    plateaus.parquet, hits.parquet (written whole,
                                                    then renamed)
    results/.cells/locks/                          who is computing which cell
    results/<experiment>/<config hash>/
        config.toml        the resolved config (runnable: it reproduces these results)
        manifest.json      package versions, git commit, config hash, commands, times, its cells
        runs.parquet       all cells' runs, one row per run
        curves.parquet     all cells' curve points
        plateaus.parquet   all cells' plateau episodes
        hits.parquet       per run and target: the cost at which the run first reached it
        REPORT.md, figures/
    results/<experiment>/latest   the hash of the most recently finished config

Cells are content-addressed: a cell's content key is everything that decides its numbers (the
dataset and its parameters, the model, the optimizer and its settings, the seed, the number of
runs, the budget, the stopping and record settings; not the labels or the experiment's name), and
its code version a hash of the source files that compute it (``CODE_FILES``, and the plug-ins'
files).  Any config that contains a cell computed before, by the same code, reuses it: turning one
learning rate into a list computes only the new cells.  After a code change the cells are computed
again, unless the run is told to reuse cells of other code versions (``reuse_old_code``), which it
then says.  ``bench gc`` removes the cells that no config folder lists any more.

A changed config has another hash, so its results never mix with older ones, which stay
untouched.  A cell folder appears only complete (written to a temporary folder, then renamed),
so an interrupted run leaves no partial cell and the next run skips the finished ones.  A cell
that cannot be read back (a disk error, a truncated copy) is set aside under a ``.corrupt`` name,
with a warning, and computed again.

Several processes may run configs into one results folder at once: each takes a cell's lock
(``.cells/locks/<key>.lock``, an ``fcntl`` lock, released by the system if a process dies) before
computing it, so every cell is computed once and the processes share the work; a manifest is
read and rewritten under a lock too.  ``latest`` only ever names a version whose run finished.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
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
from bench.errors import DamagedResults
from bench.runner import CellTables, concat_runs

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


# The modules whose code decides a cell's numbers (besides optimizers/ and datasets/, all of them).
CODE_FILES = ("mlp.py", "kernels.py", "runner.py", "problem.py", "seeding.py", "config.py")
CELLS = ".cells"


@functools.lru_cache(maxsize=8)
def code_version(plugins: tuple[str, ...] = ()) -> str:
    """A hash of the source files that compute a cell: ``CODE_FILES`` of bench, every module of
    bench.optimizers and bench.datasets, and the plug-ins' files."""
    import importlib

    from bench import datasets, optimizers

    here = Path(__file__).parent
    files = [here / name for name in CODE_FILES]
    for package in (optimizers, datasets):
        files += sorted(Path(package.__file__).parent.glob("*.py"))
    for module in plugins:
        source = getattr(importlib.import_module(module), "__file__", None)
        if source:
            files.append(Path(source))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


class ResultStore:
    """The folder of one config version, and the shared store of cells beside it."""

    def __init__(self, root: Path | str, config: Config, reuse_old_code: bool = False) -> None:
        self.config = config
        self.root = Path(root)
        self.experiment_dir = self.root / config.name
        self.path = self.experiment_dir / config.hash
        self.cells_dir = self.root / CELLS
        self.code = code_version(config.plugins)
        self.reuse_old_code = reuse_old_code
        self.reused_old: set[str] = set()  # cells of another code version that this run reuses
        self.run_id = uuid.uuid4().hex  # this process's record in the manifest
        self._locks: dict[str, int] = {}  # cell key -> open lock file descriptor
        self.warnings: list[str] = []

    def cell_dir(self, cell: Cell) -> Path:
        """Where the cell is: this code's folder, or with ``reuse_old_code`` the newest finished
        folder of another code version when this code has none."""
        here = self.cells_dir / cell.content_key / self.code
        if self.reuse_old_code and not here.exists():
            others = [
                p
                for p in (self.cells_dir / cell.content_key).glob("*")
                if p.is_dir() and not p.name.startswith(".") and ".corrupt" not in p.name
            ]
            if others:
                self.reused_old.add(cell.key)
                return max(others, key=lambda p: p.stat().st_mtime)
        return here

    def is_done(self, cell: Cell) -> bool:
        """Whether the cell's tables are all there and readable; an unreadable cell is set aside
        (renamed ``<key>.corrupt-<time>``, with a warning) so that it is computed again."""
        folder = self.cell_dir(cell)
        if not folder.exists():
            return False
        import pyarrow.parquet as pq

        try:
            for name in CellTables._fields:
                pq.read_metadata(folder / f"{name}.parquet")
        except (OSError, ValueError) as exc:
            aside = folder.with_name(f"{folder.name}.corrupt-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}")
            os.replace(folder, aside)
            self.warnings.append(
                f"warning: cell {cell.dataset.label} / {cell.optimizer.label} could not be read ({exc}); "
                f"set aside as {aside.name}, computing it again"
            )
            return False
        return True

    # ------------------------------------------------------------------ claims on cells
    def claim(self, cell: Cell, block: bool = False) -> bool:
        """Take the cell's lock: True if this process now holds it (and should compute the cell
        unless it is done), False if another process holds it (only when not ``block``)."""
        if cell.key in self._locks:
            return True
        locks = self.cells_dir / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(locks / f"{cell.content_key}-{self.code}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        self._locks[cell.key] = fd
        return True

    def release(self, cell: Cell) -> None:
        fd = self._locks.pop(cell.key, None)
        if fd is not None:
            os.close(fd)  # closing the file releases the lock

    def release_all(self) -> None:
        for fd in self._locks.values():
            os.close(fd)
        self._locks.clear()

    # ------------------------------------------------------------------ the manifest
    @contextmanager
    def _manifest_locked(self) -> Iterator[dict[str, Any]]:
        """The manifest, read and then written back under an exclusive lock."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / "manifest.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            manifest = self.manifest()
            yield manifest
            write_text_atomic(self.path / "manifest.json", json.dumps(manifest, indent=2))
        finally:
            os.close(fd)

    def start(self, command: list[str], workers: int, batch: int | None) -> None:
        """Create the folder with the resolved config and add this run to the manifest (with the
        cells it needs, so that ``gc`` keeps them even before the run finishes)."""
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(
            self.path / "config.toml", f"# resolved config {self.config.hash}\n" + to_toml(self.config.to_dict())
        )
        git = git_state()
        with self._manifest_locked() as manifest:
            manifest.update(
                {
                    "experiment": self.config.name,
                    "config_hash": self.config.hash,
                    "config_source": self.config.source,
                    "packages": package_versions(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "git": git,
                }
            )
            manifest["cells"] = sorted(
                {
                    *manifest.get("cells", []),
                    *(self.cell_dir(c).relative_to(self.cells_dir).as_posix() for c in self.config.cells()),
                }
            )
            manifest.setdefault("runs", []).append(
                {
                    "id": self.run_id,
                    "git": git,
                    "command": command,
                    "workers": workers,
                    "batch": batch,
                    "start": now(),
                    "end": None,
                    "cells_computed": 0,
                }
            )

    def finish(self, cells_computed: int) -> None:
        """Close this run's record and point ``latest`` here (only now: the version is complete)."""
        with self._manifest_locked() as manifest:
            for record in manifest.get("runs", []):
                if record.get("id") == self.run_id:
                    record["end"], record["cells_computed"] = now(), cells_computed
        write_text_atomic(self.experiment_dir / "latest", self.config.hash + "\n")

    def manifest(self) -> dict[str, Any]:
        """The manifest; an unreadable one is set aside with a warning and started afresh (the
        cells, not the manifest, hold the results)."""
        path = self.path / "manifest.json"
        if not path.is_file():
            return {}
        try:
            manifest = json.loads(path.read_text())
            if not isinstance(manifest, dict) or not isinstance(manifest.get("runs", []), list):
                raise ValueError("not a manifest")
            return manifest
        except (OSError, ValueError) as exc:
            aside = path.with_name(f"manifest.json.corrupt-{datetime.now(UTC):%Y%m%dT%H%M%S}")
            os.replace(path, aside)
            self.warnings.append(f"warning: {path} could not be read ({exc}); set aside as {aside.name}, rebuilt")
            return {}

    # ------------------------------------------------------------------ tables
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
        frames = {
            name: [_labelled(pd.read_parquet(self.cell_dir(c) / f"{name}.parquet"), c) for c in cells]
            for name in CellTables._fields
        }
        return CellTables(
            *(
                concat_runs(parts) if name == "runs" else pd.concat(parts, ignore_index=True)
                for name, parts in frames.items()
            )
        )

    def save_tables(self, tables: CellTables) -> None:
        for name, table in tables._asdict().items():
            write_parquet_atomic(self.path / f"{name}.parquet", table)


def _labelled(table: pd.DataFrame, cell: Cell) -> pd.DataFrame:
    """A stored cell's table with the labels of the config that reads it (another config may have
    computed it under other labels and another experiment name)."""
    from bench.runner import identity_columns

    ident = identity_columns(cell)
    for column in ("experiment", "cell", "dataset", "optimizer"):
        if column in table.columns:
            table[column] = ident[column]
    return table


def gc(root: Path | str, dry_run: bool = False) -> tuple[list[Path], int]:
    """Remove the cells of ``root/.cells`` that no config folder's manifest lists (and cells set
    aside as corrupt); returns the removed (or, with ``dry_run``, removable) folders and their
    bytes.  A cell whose lock a running process holds is kept."""
    root = Path(root)
    store = root / CELLS
    if not store.is_dir():
        return [], 0
    listed: set[str] = set()
    for manifest in root.glob("*/*/manifest.json"):
        try:
            listed.update(json.loads(manifest.read_text()).get("cells", []))
        except (OSError, ValueError) as exc:
            raise DamagedResults(
                f"{manifest} cannot be read ({exc}); gc removes nothing while it cannot tell which cells "
                "that config uses: repair or delete that config folder first"
            ) from None
    removable, size = [], 0
    for content in sorted(p for p in store.iterdir() if p.is_dir() and p.name != "locks"):
        for version in sorted(content.iterdir()):
            name = f"{content.name}/{version.name}"
            if name in listed or version.name.startswith("."):
                continue
            if _locked(store / "locks" / f"{content.name}-{version.name}.lock"):
                continue
            removable.append(version)
            size += sum(f.stat().st_size for f in version.rglob("*") if f.is_file())
    if not dry_run:
        for folder in removable:
            shutil.rmtree(folder)
            if not any(folder.parent.iterdir()):
                folder.parent.rmdir()
    return removable, size


def _locked(path: Path) -> bool:
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def read_table(folder: Path, name: str) -> pd.DataFrame:
    """``folder/<name>.parquet``, or ``DamagedResults`` naming the file and the way to rebuild it."""
    path = Path(folder) / f"{name}.parquet"
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        what = "is missing" if not path.exists() else f"cannot be read ({type(exc).__name__}: {exc})"
        raise DamagedResults(
            f"{path} {what}; rebuild the tables from the finished cells with: "
            f"python -m bench run {Path(folder) / 'config.toml'} --out {Path(folder).parent.parent}"
        ) from None


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
