"""The only top-level name the project installs is bench: it lives beside packages of its own
folders' names (Hugging Face's datasets, an optimizers package) without a clash."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a venv's layout is checked on Linux")
def test_bench_works_next_to_top_level_datasets_and_optimizers_packages(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # Stand-ins for Hugging Face's datasets and for some optimizers package, installed in the venv.
    for name in ("datasets", "optimizers"):
        (site / name).mkdir()
        (site / name / "__init__.py").write_text(f"IMPOSTOR = {name!r}\n")
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)],
        capture_output=True,
        text=True,
        env=clean,
    )
    assert install.returncode == 0, install.stderr
    probe = (
        "import datasets, optimizers, bench.datasets, bench.optimizers; "
        "assert datasets.IMPOSTOR == 'datasets' and optimizers.IMPOSTOR == 'optimizers'; "
        "print(bench.datasets.DATASETS.names()[0], bench.optimizers.OPTIMIZERS.names()[0])"
    )
    imported = subprocess.run([python, "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=clean)
    assert imported.returncode == 0, imported.stderr
    listing = subprocess.run([python, "-m", "bench", "list"], capture_output=True, text=True, cwd=tmp_path, env=clean)
    assert listing.returncode == 0 and "two_spirals" in listing.stdout, listing.stderr
    script = env_dir / "bin" / "bench"
    assert subprocess.run([script, "list"], capture_output=True, cwd=tmp_path, env=clean).returncode == 0
