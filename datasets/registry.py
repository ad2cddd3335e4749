"""The dataset registry: name -> factory with typed keyword parameters."""

from __future__ import annotations

from collections.abc import Callable

from bench.datasets.base import Dataset

from bench.registry import Registry

DatasetFactory = Callable[..., Dataset]
DATASETS: Registry[DatasetFactory] = Registry("dataset")
register = DATASETS.register
