"""What every optimizer shares: checked settings, the state tree, gradient clipping, schedules.

Optimizers follow optax's shape: ``init`` builds an immutable state (a NamedTuple of arrays whose
leading axis is the runs axis R), ``update`` returns new parameters and a new state and never
mutates its inputs.  Hyperparameters may be scalars or per-run arrays of shape (R,); they
broadcast against (R, P) as (R, 1).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import numpy as np
from bench.optimizers.space import Real

from bench.registry import did_you_mean

# ---------------------------------------------------------------------------- settings checks


class SettingError(ValueError):
    """A bad optimizer setting; ``field`` names it so a config error can point at it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def check_range(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise ``ValueError("name must be in (low, high], got v")`` unless every value fits.

    ``value`` may be a scalar or an array of per-run values.
    """
    v = np.asarray(value, dtype=np.float64)
    ok = np.isfinite(v)  # inf is never a usable setting: it runs, and every run diverges
    if low is not None:
        ok &= v > low if low_open else v >= low
    if high is not None:
        ok &= v < high if high_open else v <= high
    if not np.all(np.isfinite(v)):
        bad = value if v.ndim == 0 else v[~np.isfinite(v)][0]
        raise SettingError(name, f"{name} must be a finite number, got {bad}")
    if not np.all(ok):
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        bad = value if v.ndim == 0 else v[~ok][0]
        raise SettingError(name, f"{name} must be in {interval}, got {bad}")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SettingError(
            name,
            f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}{did_you_mean(str(value), choices)}",
        )


def _allowed_types(annotation: Any) -> tuple[type, ...]:
    """Python types a settings field accepts, from its (string) annotation."""
    hint = eval(annotation, {"np": np}) if isinstance(annotation, str) else annotation  # noqa: S307
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return tuple(type(None) if a is None else a for a in args)


def settings_from_dict(cls: type, values: dict[str, Any]) -> Any:
    """Build the settings dataclass ``cls`` from plain values (a config table).

    Unknown keys and wrong types raise ``ValueError`` naming the key; ints are accepted where a
    float is expected; the dataclass's own checks then run.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            hint = did_you_mean(key, list(fields)) or f"; valid settings: {', '.join(fields)}"
            raise SettingError(key, f"unknown setting {key!r}{hint}")
        allowed = _allowed_types(fields[key].type)
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if float in allowed and isinstance(value, np.ndarray) and value.ndim == 1:
            kwargs[key] = value.astype(np.float64)  # per-run values (R,), for direct use of a rule
            continue
        if isinstance(value, bool) and bool not in allowed or not isinstance(value, allowed):
            names = " or ".join("none" if t is type(None) else t.__name__ for t in allowed)
            raise SettingError(key, f"setting {key!r} must be {names}, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def _holds_per_run(value: Any) -> bool:
    if isinstance(value, dict):  # nested settings (restarts' base_settings)
        return any(np.ndim(v) == 1 for v in value.values())
    return np.ndim(value) == 1


def per_run_settings(settings: Any) -> tuple[str, ...]:
    """The settings of ``settings`` that hold per-run arrays (R,) now (``optimizers.space``)."""
    return tuple(f for f in getattr(settings, "PER_RUN", ()) if _holds_per_run(getattr(settings, f)))


def per_run_setting(settings: Any, name: str) -> bool:
    """Whether setting ``name`` (``base_settings.x`` for a nested one) may hold a per-run array."""
    outer, _, inner = name.partition(".")
    if outer not in getattr(settings, "PER_RUN", ()):
        return False
    return not inner or inner in getattr(settings.base_optimizer_settings(), "PER_RUN", ())


def settings_take(settings: Any, rows: np.ndarray) -> Any:
    """The settings of the runs ``rows``: every per-run array (R,) reduced to those rows."""
    fields = per_run_settings(settings)
    if not fields:
        return settings

    def take(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: take(v) for k, v in value.items()}
        return np.asarray(value)[rows] if np.ndim(value) == 1 else value

    return dataclasses.replace(settings, **{f: take(getattr(settings, f)) for f in fields})


def search_space(settings: Any) -> dict[str, Any]:
    """What the tuner searches by default for these settings (``optimizers.space``)."""
    own = getattr(settings, "search_space", None)
    return own() if callable(own) else dict(getattr(settings, "SEARCH_SPACE", {}))


def settings_dict(settings: Any) -> dict[str, Any]:
    """The settings as a flat dict of plain values (nested settings become dicts)."""
    return dataclasses.asdict(settings)


# ---------------------------------------------------------------------------- state trees


def tree_map(fn: Callable[..., np.ndarray], tree: Any, *rest: Any) -> Any:
    """Apply ``fn`` to every array leaf of a NamedTuple tree (and matching leaves of ``rest``)."""
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(tree_map(fn, *leaves) for leaves in zip(tree, *rest)))
    if tree is None:
        return None
    return fn(tree, *rest)


def tree_take(tree: Any, rows: np.ndarray) -> Any:
    """The rows ``rows`` of every leaf (leading axis = runs)."""
    return tree_map(lambda a: a[rows], tree)


def tree_put(tree: Any, rows: np.ndarray, sub: Any) -> Any:
    """A copy of ``tree`` whose rows ``rows`` are replaced by ``sub`` (inputs not mutated)."""

    def put(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a = a.copy()
        a[rows] = b
        return a

    return tree_map(put, tree, sub)


def per_run(value: Any) -> Any:
    """A hyperparameter as a scalar or an (R, 1) column that broadcasts against (R, P)."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return value[:, None]
    return value


# ---------------------------------------------------------------------------- gradient rules


class GradientRule(Protocol):
    """An update rule on (R, P) arrays: the contract every gradient method follows."""

    settings: Any

    def init(self, theta: np.ndarray) -> Any: ...

    def update(
        self, theta: np.ndarray, grad: np.ndarray, state: Any, loss: np.ndarray | None = None
    ) -> tuple[np.ndarray, Any]: ...


@dataclasses.dataclass(frozen=True)
class Clipping:
    """Optional gradient clipping, applied before any rule.

    clip_value : clamp every gradient component to [-clip_value, clip_value].  Components
        outside the range are set to the bound: the clamp's own derivative is zero there, so how
        far outside a component was is lost, and clamping changes the gradient's direction.
    clip_norm : rescale a run's whole gradient to L2 norm ``clip_norm`` when it is larger
        (direction kept; Pascanu et al. 2013).
    """

    clip_value: float | None = None
    clip_norm: float | None = None

    PER_RUN = ("clip_value", "clip_norm")  # optimizers.space: settings that may differ per run
    SEARCH_SPACE = {}

    def __post_init__(self) -> None:
        if self.clip_value is not None:
            check_range("clip_value", self.clip_value, 0, None, low_open=True)
        if self.clip_norm is not None:
            check_range("clip_norm", self.clip_norm, 0, None, low_open=True)


def clip_gradient(grad: np.ndarray, clipping: Clipping) -> np.ndarray:
    """The gradient (R, P) clipped as ``clipping`` says (a new array; the input is untouched)."""
    if clipping.clip_value is not None:
        c = per_run(clipping.clip_value)
        grad = np.clip(grad, -c, c)
    if clipping.clip_norm is not None:
        norm = np.linalg.norm(grad, axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.minimum(1.0, per_run(clipping.clip_norm) / norm)
        grad = grad * np.where(norm > 0, factor, 1.0)
    return grad


SCHEDULES = ("constant", "step", "exponential", "inverse_time")


@dataclasses.dataclass(frozen=True)
class LearningRate(Clipping):
    """A learning rate with a decay schedule; t counts the updates made so far.

    constant:     lr_t = lr
    step:         lr_t = lr * decay_rate ** floor(t / decay_steps)
    exponential:  lr_t = lr * decay_rate ** (t / decay_steps)
    inverse_time: lr_t = lr / (1 + decay_rate * t / decay_steps)   (the 1/t decay)
    """

    learning_rate: float = 0.1
    schedule: str = "constant"
    decay_rate: float = 0.5
    decay_steps: float = 1000.0

    PER_RUN = (*Clipping.PER_RUN, "learning_rate", "decay_rate", "decay_steps")
    SEARCH_SPACE = {"learning_rate": Real(1e-4, 10.0, log=True)}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("learning_rate", self.learning_rate, 0, None, low_open=True)
        check_choice("schedule", self.schedule, SCHEDULES)
        if self.schedule == "inverse_time":
            check_range("decay_rate", self.decay_rate, 0, None)
        else:
            check_range("decay_rate", self.decay_rate, 0, 1, low_open=True)
        check_range("decay_steps", self.decay_steps, 0, None, low_open=True)

    def rate(self, count: np.ndarray) -> np.ndarray | float:
        """Learning rate per run at update ``count`` (R,), as an (R, 1) column (or one scalar)."""
        if self.schedule == "constant" and not isinstance(self.learning_rate, np.ndarray):
            return self.learning_rate  # a scalar broadcasts like the (R, 1) column
        t = count.astype(np.float64)
        lr, gamma, k = (
            np.asarray(x, dtype=np.float64) for x in (self.learning_rate, self.decay_rate, self.decay_steps)
        )
        if self.schedule == "step":
            lr = lr * gamma ** np.floor(t / k)
        elif self.schedule == "exponential":
            lr = lr * gamma ** (t / k)
        elif self.schedule == "inverse_time":
            lr = lr / (1.0 + gamma * t / k)
        return np.broadcast_to(lr, t.shape)[:, None]


class CountState(NamedTuple):
    count: np.ndarray  # (R,) updates made so far


def new_count(theta: np.ndarray) -> np.ndarray:
    return np.zeros(theta.shape[0], dtype=np.int64)
