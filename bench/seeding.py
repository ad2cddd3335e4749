"""Random streams keyed by stable names, so nothing depends on execution order or batching.

Every stream is ``SeedSequence(experiment_seed, spawn_key=(crc32(name), ..., run))``: the
initial weights of run i on a dataset and model are the same for every optimizer (common random
numbers), and an optimizer's stream depends on its stream name, the dataset and the run only.
"""

from __future__ import annotations

import zlib

import numpy as np


def key_part(part: str | int) -> int:
    """A stable 32-bit integer for a name (crc32; never Python's salted ``hash``)."""
    if isinstance(part, str):
        return zlib.crc32(part.encode("utf-8"))
    if part < 0:
        raise ValueError(f"stream key parts must be >= 0, got {part}")
    return int(part)


def generator(seed: int, *parts: str | int) -> np.random.Generator:
    """The generator of stream ``parts`` under experiment ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=tuple(key_part(p) for p in parts)))


def generators(seed: int, runs: range | list[int], *parts: str | int) -> np.ndarray:
    """One generator per run index, as an object array (R,)."""
    gens = np.empty(len(runs), dtype=object)
    for i, run in enumerate(runs):
        gens[i] = generator(seed, *parts, run)
    return gens
