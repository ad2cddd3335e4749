"""Memory: keep freed memory in the process, and estimate what a cell needs before running it.

Keep freed memory in the process: large numpy temporaries then cost no page faults.

The engine allocates arrays of several MiB every step (activations, deltas, gradients).  glibc
serves blocks above its mmap threshold with fresh mmap calls and returns them on free, so every
step pays for zeroing new pages in the kernel: on digits 64-32-10 that was a quarter of the
run time (measured: 3.8 s -> 2.9 s for 32 runs x 150 epochs, system time 1.05 s -> 0.17 s).
Raising the mmap and trim thresholds makes freed blocks reusable, as numpy's own small-block
cache does for small arrays.  The commands call this once per process; a library import does
not, so embedding ``bench`` leaves the host's allocator alone.  No effect off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_THRESHOLD = 1 << 30  # 1 GiB: well above any single array of the engine


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep and reuse large freed blocks; False where it cannot."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _THRESHOLD))


# ---------------------------------------------------------------------------- what fits


def available_bytes() -> int:
    """Memory the machine can give a new process now: MemAvailable from /proc/meminfo where there
    is one (Linux), else the physical memory."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def human(n_bytes: float) -> str:
    """``n_bytes`` as "7.28 TiB", "149 GiB", "512 MiB"."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n_bytes < 1024 or unit == "PiB":
            return f"{n_bytes:.3g} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


def cell_bytes(
    n_rows: int, n_params: int, n_patterns: int, widths: list[int], population: int = 1, checkpoints: int = 50
) -> int:
    """A generous estimate of the memory one batch of ``n_rows`` runs takes (bytes, float64).

    Per parameter row, about ten (R, P) arrays live at once (parameters, gradient, the rule's
    state, the initial and the final point, the new parameters of a step); a genetic algorithm
    keeps ``population`` rows per run, three times (population, offspring, elites).  The
    activations of the forward and backward passes (about six (N, width) arrays per layer and
    row) are evaluated in groups of rows that fit in a few MiB, but at least one row at a time.
    """
    rows = n_rows * max(1, population)
    state = (10 if population <= 1 else 3) * rows * n_params
    per_row_activations = 6 * n_patterns * sum(widths)
    group = max(1, min(rows, (1 << 19) // max(1, n_patterns * max(widths))))
    curves = n_rows * checkpoints * 8
    return 8 * (state + group * per_row_activations + curves)
