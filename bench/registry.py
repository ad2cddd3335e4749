"""A typed name -> entry registry that refuses duplicates and suggests names for typos.

Datasets and optimizers each keep one registry; ``python -m bench list`` and config validation
read it, so there is one source of truth for what exists.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """A " (did you mean 'x'?)" hint for a misspelt name, or "" if nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class UnknownNameError(KeyError):
    """A name that is not in a registry; the message lists the choices."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plain.
        return str(self.args[0])


class Registry(Generic[T]):
    """Name -> entry, filled by the ``register`` decorator at import time."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._builtin: frozenset[str] = frozenset()

    def seal(self) -> None:
        """Mark what is registered now as built in; later entries are ``added()`` ones."""
        self._builtin = frozenset(self._entries)

    def added(self) -> dict[str, T]:
        """The entries registered after ``seal()``: plug-ins and the API's ``register_*``."""
        return {name: entry for name, entry in self._entries.items() if name not in self._builtin}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, self.names())}; "
                f"choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)


def added_entries() -> dict[str, dict[str, Any]]:
    """The datasets and optimizers registered beyond the built-in ones, ready to ship to worker
    processes (``install``): they are pickled by value, so a worker needs neither the plug-in
    module on its path nor the notebook that defined them."""
    from bench.datasets import DATASETS
    from bench.optimizers import OPTIMIZERS

    extra = {"dataset": DATASETS.added(), "optimizer": OPTIMIZERS.added()}
    for entries in extra.values():
        for entry in entries.values():
            for obj in (entry, getattr(entry, "factory", None), getattr(entry, "settings", None)):
                module = sys.modules.get(getattr(obj, "__module__", "") or "")
                if (
                    module is not None
                    and module.__name__ not in ("__main__", "builtins")
                    and not (module.__name__ == "bench" or module.__name__.startswith("bench."))
                ):
                    _pickle_by_value(module)
    return extra if any(extra.values()) else {}


def install(extra: dict[str, dict[str, Any]]) -> None:
    """Register in this process what ``added_entries`` shipped (names already known are kept)."""
    if not extra:
        return
    from bench.datasets import DATASETS
    from bench.optimizers import OPTIMIZERS

    for registry, entries in ((DATASETS, extra["dataset"]), (OPTIMIZERS, extra["optimizer"])):
        for name, entry in entries.items():
            if name not in registry:
                registry.register(name)(entry)


def _pickle_by_value(module: Any) -> None:
    # loky and Dask pickle with cloudpickle (joblib before 1.6 with its own copy of it).
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    try:
        from joblib.externals import cloudpickle as vendored
    except ImportError:
        return
    vendored.register_pickle_by_value(module)
