"""The dataset registry: name -> factory with typed keyword parameters."""

from __future__ import annotations

from collections.abc import Callable

from bench.registry import Registry
from datasets.base import Dataset

DatasetFactory = Callable[..., Dataset]
DATASETS: Registry[DatasetFactory] = Registry("dataset")
register = DATASETS.register
