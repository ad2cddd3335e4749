"""What the tuner may change in an optimizer, and over what range (``python -m bench tune``).

Each settings class declares, next to its fields:

* ``SEARCH_SPACE``: the settings the tuner searches by default, each a ``Real``, ``Integer`` or
  ``Choice``.  A config narrows, widens or fixes any of them, and may add any other setting
  (``[tuning.space.<optimizer>]``).
* ``PER_RUN``: the float settings the optimizer accepts as per-run arrays of shape (R,), so that
  trials which differ only in them share one engine call (the runs axis carries them).  Trials
  that differ in any other setting (a population size, a variant) run in separate calls.

A nested setting is named with a dot: ``base_settings.learning_rate`` (restarts' base optimizer).
"""

from __future__ import annotations

import dataclasses
from typing import Any


def _check_bounds(low: float, high: float, log: bool) -> None:
    if not low < high:
        raise ValueError(f"low must be < high, got low={low}, high={high}")
    if log and low <= 0:
        raise ValueError(f"a log range needs low > 0, got {low}")


@dataclasses.dataclass(frozen=True)
class Real:
    """A float in [low, high], searched uniformly, or log-uniformly when ``log``.

    ``complement``: searched as 1 - value, log-uniformly in [1 - high, 1 - low], which spreads
    trials evenly over 0.5, 0.9, 0.99 (a momentum near 1).  The tuner's parameter is then named
    ``1-<setting>``.
    """

    low: float
    high: float
    log: bool = False
    complement: bool = False

    def __post_init__(self) -> None:
        _check_bounds(self.low, self.high, self.log)
        if self.complement and not (self.high < 1 and self.log):
            raise ValueError("complement searches 1 - value on a log scale: it needs log = true and high < 1")

    def describe(self) -> str:
        scale = "1 - x log" if self.complement else "log" if self.log else "linear"
        return f"{self.low:g}..{self.high:g} ({scale})"


@dataclasses.dataclass(frozen=True)
class Integer:
    """An integer in [low, high], uniformly or log-uniformly."""

    low: int
    high: int
    log: bool = False

    def __post_init__(self) -> None:
        _check_bounds(self.low, self.high, self.log)

    def describe(self) -> str:
        return f"{self.low}..{self.high} (integer{', log' if self.log else ''})"


@dataclasses.dataclass(frozen=True)
class Choice:
    """One of a few values."""

    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.choices:
            raise ValueError("a choice needs at least one value")

    def describe(self) -> str:
        return "{" + ", ".join(map(str, self.choices)) + "}"


Dimension = Real | Integer | Choice


def parameter_name(setting: str, dim: Dimension) -> str:
    """The tuner's name for ``setting`` (``1-momentum`` for a complement range)."""
    return f"1-{setting}" if isinstance(dim, Real) and dim.complement else setting


def to_setting(dim: Dimension, value: Any) -> Any:
    """A sampled parameter as the setting's value (1 - x for a complement range)."""
    return 1.0 - value if isinstance(dim, Real) and dim.complement else value


def to_parameter(dim: Dimension, value: Any) -> Any:
    """A setting's value as the sampled parameter (the inverse of ``to_setting``)."""
    return to_setting(dim, value)


def describe(space: dict[str, Dimension]) -> str:
    return ", ".join(f"{name} {dim.describe()}" for name, dim in space.items())
