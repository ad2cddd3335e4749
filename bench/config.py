"""Experiment configs: TOML in, validated frozen dataclasses out, expanded into cells.

A config names an experiment, a seed, the number of runs, a budget in cost units, datasets, the
model, and optimizers.  A list value in an optimizer's settings makes a grid: every combination
is its own optimizer entry.  Every problem is reported as ``ConfigError`` with the file, the
field's path and the fix, before any work is done.

    [experiment]
    name = "quick"          # results go to results/<name>/
    seed = 0
    runs = 20               # independent runs per dataset x optimizer
    budget = 3000           # cost units per run (forward pass = 1, loss and gradient = 3)

    [stopping]              # optional
    stagnation = false      # stop a run early once it is stuck
    patience = 0.25         # "stuck": over the last 0.25 x budget cost units, its best loss
    min_delta = 1e-3        #   fell by at most this fraction (0.1 %)

    [record]                # optional
    checkpoints = 50        # curve points per run, spaced in cost
    spacing = "log"         # or "linear"

    [model]                 # optional; defaults below, hidden defaults to each dataset's own
    hidden = [2]
    activation = "sigmoid"
    init = "uniform"
    init_scale = 0.5        # uniform: U(-0.5, 0.5); glorot and he: the gain (default 1)
    reduction = "sum"

    [[datasets]]
    name = "moons"
    params = { noise = 0.2 }                       # the dataset's own parameters
    model = { hidden = [8], activation = "tanh" }  # overrides [model] for this dataset
    budget = 6000                                  # overrides [experiment] budget
    success = { kind = "accuracy", split = "test", target = 0.9 }

    [[optimizers]]
    name = "gd"
    learning_rate = [0.5, 2.0]                     # a grid: two optimizer entries
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import datasets, mlp, optimizers
from bench.datasets.base import SPLITS, SUCCESS_KINDS, Success
from bench.errors import ConfigError, ConfigErrors
from bench.optimizers.base import SettingError, settings_dict
from bench.registry import UnknownNameError, did_you_mean

PRESET_DIR = Path(__file__).parent / "configs"
MAX_INIT_SCALE = 1e100
MAX_NAME_BYTES = 200  # file systems allow 255; the store adds suffixes such as ".corrupt-<time>"


# ---------------------------------------------------------------------------- the dataclasses


@dataclass(frozen=True)
class Stopping:
    """When a run counts as stuck, and whether it then stops early.

    stagnation : stop a run as soon as it is stuck (default: run on to the budget).
    patience : the window, as a fraction of the budget in (0, 1).
    min_delta : stuck means the best loss fell by at most this fraction over the window
        (``optimizers.stagnation``; ``bench.runner.status_meanings`` says it in words).
    """

    stagnation: bool = False
    patience: float = 0.25
    min_delta: float = 1e-3


@dataclass(frozen=True)
class Record:
    """What the runner records besides the runs table.

    checkpoints, spacing : curve points per run, spaced in cost ("log" or "linear").
    plateau_window, plateau_min_delta : a plateau episode is a stretch during which the run is
        not solved and its best loss falls by at most ``plateau_min_delta`` over
        ``plateau_window`` x budget cost units (the rule of "stuck", on a shorter window).
    trajectories : the parameter vector is kept at every curve point of the first this-many runs
        of each cell (for the loss-landscape slices).
    target_high, target_low, targets_per_decade : the target ladder of ``hits.parquet``: the
        losses target_high ... target_low, log-spaced with this many per decade (COCO's gaps
        1e2 ... 1e-8 to the optimum; every loss here is at least 0, the optimum where the net can
        fit the data exactly).  The runner records the exact cost at which each run's best loss
        first reaches each target.
    """

    checkpoints: int = 50
    spacing: str = "log"
    plateau_window: float = 0.05
    plateau_min_delta: float = 1e-3
    trajectories: int = 1
    target_high: float = 1e2
    target_low: float = 1e-8
    targets_per_decade: int = 5

    def targets(self) -> list[float]:
        """The target losses, highest first (51 by default), log-spaced from target_high to target_low."""
        count = max(2, round(math.log10(self.target_high / self.target_low) * self.targets_per_decade) + 1)
        ratio = self.target_low / self.target_high
        return [self.target_high * ratio ** (i / (count - 1)) for i in range(count - 1)] + [self.target_low]


@dataclass(frozen=True)
class Analysis:
    """Tolerances of the end-point analysis (``bench.analysis``); they do not change training, so
    they are not part of the config's hash: change them and rerun ``python -m bench analyze``.

    grad_tol : the gradient is small when the norm of the per-pattern loss's gradient is at most
        this (the loss divided by the number of training patterns when the reduction is "sum").
    eig_tol : an eigenvalue of that loss's Hessian is near zero when |lambda| <= eig_tol x the
        largest |lambda|, negative when lambda < -eig_tol x the largest |lambda|.
    saturation_slope : a hidden unit is saturated on a pattern when its slope is below this share
        of the activation's largest slope (dead, for a relu).
    saturated_share, large_weight : "saturated" end point: at least this share of the hidden
        (unit, pattern) pairs saturated, and a parameter of magnitude at least ``large_weight``.
    escape_directions, escape_radius, escape_steps, escape_drop : the escape test of a candidate
        minimum: perturb it in this many random directions, each of norm escape_radius x
        sqrt(P) (an RMS move of escape_radius per parameter), run plain gradient descent with
        step 1 / (largest Hessian eigenvalue) for escape_steps steps; it is a minimum if no loss
        along the way is below (1 - escape_drop) x its own.  0 directions: no escape test.
    hessian_limit : full Hessian spectra up to this many parameters; beyond, only the extreme
        eigenvalues (Lanczos on Hessian-vector products).
    attractor_tol : two end points are the same attractor when their outputs on every training
        input differ by at most this.
    interpolation_points : points on each straight line (initial -> end, between attractors).
    slice_run, slice_optimizer, slice_points, slice_radius : the 2-D loss slice of one run per
        dataset (run index, optimizer label, "" for the first), on a slice_points^2 grid over
        [-slice_radius, slice_radius]^2 in filter-normalised directions.
    """

    grad_tol: float = 1e-4
    eig_tol: float = 1e-4
    saturation_slope: float = 1e-3
    saturated_share: float = 0.5
    large_weight: float = 10.0
    escape_directions: int = 4
    escape_radius: float = 0.1
    escape_steps: int = 500
    escape_drop: float = 0.01
    hessian_limit: int = 2500
    attractor_tol: float = 0.05
    interpolation_points: int = 33
    slice_run: int = 0
    slice_optimizer: str = ""
    slice_points: int = 25
    slice_radius: float = 1.0


# name -> (low, high, low_open, high_open); None for no bound
_RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "plateau_window": (0, 1, True, True),
    "plateau_min_delta": (0, 1, False, True),
    "trajectories": (0, None, False, False),
    "grad_tol": (0, None, True, False),
    "eig_tol": (0, 1, True, True),
    "saturation_slope": (0, 1, True, True),
    "saturated_share": (0, 1, True, False),
    "large_weight": (0, None, True, False),
    "escape_directions": (0, None, False, False),
    "escape_radius": (0, None, True, False),
    "escape_steps": (1, None, False, False),
    "escape_drop": (0, 1, True, True),
    "hessian_limit": (1, None, False, False),
    "attractor_tol": (0, None, True, False),
    "interpolation_points": (3, None, False, False),
    "slice_run": (0, None, False, False),
    "slice_points": (3, None, False, False),
    "slice_radius": (0, None, True, False),
}


@dataclass(frozen=True)
class ModelSpec:
    """The network; ``hidden`` None means the dataset's classic sizes, output/loss None its defaults."""

    hidden: tuple[int, ...] | None = None
    activation: str = "sigmoid"
    init: str = "uniform"
    init_scale: float | None = None  # None: 0.5 for uniform, gain 1 for glorot and he
    reduction: str = "sum"
    output: str | None = None
    loss: str | None = None
    dtype: str = "float64"  # the arithmetic of forward and backward passes (bench.mlp.DTYPES)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    label: str
    params: dict[str, Any]
    model: ModelSpec  # resolved: hidden, output and loss are set
    budget: int
    success: Success
    backend: str = "auto"  # [engine] backend, as asked; network().backend is what it resolves to

    def load(self) -> datasets.Dataset:
        data = datasets.load(self.name, **self.params)
        return dataclasses.replace(data, success=self.success)

    def layer_sizes(self) -> list[int]:
        data = datasets.load(self.name, **self.params)
        return [data.n_inputs, *self.model.hidden, data.n_outputs]

    def network(self) -> mlp.MLP:
        m = self.model
        return mlp.MLP(self.layer_sizes(), m.activation, m.output, m.loss, m.reduction, self.backend, m.dtype)


TUNING_OBJECTIVES = ("art", "final_loss", "success_rate")
TUNING_SAMPLERS = ("tpe", "random", "qmc", "cmaes")


@dataclass(frozen=True)
class Tuning:
    """How ``python -m bench tune`` tunes each dataset x optimizer entry (``bench.tuning``).  It
    does not change what a run computes, so it is not part of the config's hash.

    trials : trials per dataset x optimizer, the same for every optimizer.
    seeds : tuning runs per trial (seeds drawn from streams no experiment's runs use).
    objective : "art" (aRT to success over the seeds), "final_loss" or "success_rate".
    sampler : Optuna's "tpe", "random", "qmc" or "cmaes", seeded from the experiment's seed.
    batch : trials asked together; their seeds run as one engine call.
    space : per optimizer label or name, per setting: a range table, a list of choices, or a
        fixed value (``optimizers.space``; resolved by ``tuning_space``).
    """

    trials: int = 40
    seeds: int = 5
    objective: str = "art"
    sampler: str = "tpe"
    batch: int = 8
    space: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    label: str
    settings: Any  # the optimizer's settings dataclass
    datasets: tuple[str, ...] | None = None  # the dataset labels it runs on (None: every dataset)

    def settings_dict(self) -> dict[str, Any]:
        return settings_dict(self.settings)

    def runs_on(self, dataset_label: str) -> bool:
        return self.datasets is None or dataset_label in self.datasets


@dataclass(frozen=True)
class Engine:
    """How cells are computed: ``backend`` "auto" (compiled kernels for small networks, numpy's
    BLAS for the others), "numpy" or "numba" (``bench.mlp.resolve_backend``)."""

    backend: str = "auto"


@dataclass(frozen=True)
class Config:
    name: str
    seed: int
    runs: int
    budget: int
    datasets: tuple[DatasetSpec, ...]
    optimizers: tuple[OptimizerSpec, ...]
    stopping: Stopping = field(default_factory=Stopping)
    record: Record = field(default_factory=Record)
    description: str = ""
    source: str = "<config>"
    analysis: Analysis = field(default_factory=Analysis)
    plugins: tuple[str, ...] = ()  # modules imported first: they register datasets and optimizers
    tuning: Tuning = field(default_factory=Tuning)
    tuned: dict[str, Any] = field(default_factory=dict)  # written by bench tune: what tuning cost
    engine: Engine = field(default_factory=Engine)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain values (what is hashed and written as config.toml)."""
        return {
            "experiment": {
                "name": self.name,
                "description": self.description,
                "seed": self.seed,
                "runs": self.runs,
                "budget": self.budget,
                **({"plugins": list(self.plugins)} if self.plugins else {}),
            },
            "engine": dataclasses.asdict(self.engine),
            "stopping": dataclasses.asdict(self.stopping),
            "record": dataclasses.asdict(self.record),
            "analysis": dataclasses.asdict(self.analysis),
            "tuning": dataclasses.asdict(self.tuning),
            **({"tuned": self.tuned} if self.tuned else {}),
            "datasets": [
                {
                    "name": d.name,
                    "label": d.label,
                    "params": dict(d.params),
                    "budget": d.budget,
                    "model": _drop_none(dataclasses.asdict(d.model)),
                    "success": _drop_none(dataclasses.asdict(d.success)),
                }
                for d in self.datasets
            ],
            "optimizers": [
                {
                    "name": o.name,
                    "label": o.label,
                    **({"datasets": list(o.datasets)} if o.datasets is not None else {}),
                    **_drop_none(o.settings_dict()),
                }
                for o in self.optimizers
            ],
        }

    @property
    def hash(self) -> str:
        """Hash of everything that decides the results (the description, the analysis
        tolerances and the tuning settings, which do not change training, are left out)."""
        content = self.to_dict()
        content["experiment"].pop("description")
        for key in ("analysis", "tuning", "tuned"):
            content.pop(key, None)
        return stable_hash(content)

    def cells(self) -> list[Cell]:
        """One cell per dataset x optimizer entry (on the datasets the entry names), holding all runs."""
        return [Cell(self, d, o) for d in self.datasets for o in self.optimizers if o.runs_on(d.label)]


@dataclass(frozen=True)
class Cell:
    """The unit of work and of storage: one dataset, one optimizer setting, the runs."""

    config: Config
    dataset: DatasetSpec
    optimizer: OptimizerSpec

    @property
    def runs(self) -> range:
        return range(self.config.runs)

    @property
    def backend(self) -> str:
        """What evaluates this cell's network, "numpy" or "numba" (the engine's "auto" resolved)."""
        return self.dataset.network().backend

    @property
    def key(self) -> str:
        """This cell within its config: a hash of what decides its numbers and its labels."""
        return stable_hash(self._identity(labels=True))

    @property
    def content_key(self) -> str:
        """What decides this cell's numbers and nothing else (no labels, no experiment name): the
        key under which any config that contains the same cell finds it in the store."""
        return stable_hash(self._identity(labels=False))

    def _identity(self, labels: bool) -> dict[str, Any]:
        c = self.config.to_dict()
        d = next(x for x in c["datasets"] if x["label"] == self.dataset.label)
        o = next(
            x
            for x in c["optimizers"]
            if x["label"] == self.optimizer.label and self.dataset.label in x.get("datasets", [self.dataset.label])
        )
        o = {k: v for k, v in o.items() if k != "datasets"}  # which datasets it runs on: not its numbers
        if not labels:
            d, o = ({k: v for k, v in x.items() if k != "label"} for x in (d, o))
        return {
            "seed": self.config.seed,
            "runs": self.config.runs,
            "backend": self.backend,
            "stopping": c["stopping"],
            "record": c["record"],
            "dataset": d,
            "optimizer": o,
        }


def stable_hash(content: Any) -> str:
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items() if v is not None}


# ---------------------------------------------------------------------------- loading


def presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def resolve_source(name_or_path: str) -> Path:
    """A config file path, or the path of the preset of that name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if name_or_path in presets():
        return PRESET_DIR / f"{name_or_path}.toml"
    hint = did_you_mean(name_or_path, presets())
    raise ConfigError(
        name_or_path,
        "",
        f"no such config file or preset{hint}; presets: {', '.join(presets())} (or give a path to a .toml file)",
    )


def load(name_or_path: str, overrides: list[str] | None = None) -> Config:
    """Read, override (``--set key=value``), validate and resolve a config."""
    path = resolve_source(name_or_path)
    source = str(path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "", f"cannot read the file: {exc}") from None
    for item in overrides or []:
        apply_override(raw, item, source)
    return from_dict(raw, source)


def apply_override(raw: dict[str, Any], item: str, source: str) -> None:
    """Apply ``key.path=value`` (value in TOML syntax; bare words are strings) to ``raw``."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(source, f"--set {item}", "expected key=value, e.g. --set experiment.runs=5")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    parts = key.strip().split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(source, f"--set {key}", f"{where}: no entry {part} (there are {len(node)})")
            node = node[int(part)]
        else:
            node = node.setdefault(part, {})
        if not isinstance(node, (dict, list)):
            raise ConfigError(source, f"--set {key}", f"{where} is a value, not a table")
    if isinstance(node, list):
        raise ConfigError(source, f"--set {key}", "give the entry's index and field, e.g. optimizers.0.learning_rate")
    node[parts[-1]] = value


class _Reader:
    """Takes typed fields out of one TOML table and complains about what is left."""

    def __init__(self, table: Any, source: str, path: str) -> None:
        if not isinstance(table, dict):
            raise ConfigError(source, path, f"must be a table, got {table!r}")
        self.table, self.source, self.path = dict(table), source, path

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.source, f"{self.path}.{key}" if self.path else key, message)

    def take(self, key: str, kind: type | tuple[type, ...], default: Any = dataclasses.MISSING) -> Any:
        if key not in self.table:
            if default is dataclasses.MISSING:
                raise self.error(key, "is required")
            return default
        value = self.table.pop(key)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.error(key, f"must be {names}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(key, f"must be a finite number, got {value}")
        return value

    def positive_int(self, key: str, default: Any = dataclasses.MISSING) -> int:
        value = self.take(key, int, default)
        if value < 1:
            raise self.error(key, f"must be >= 1, got {value}")
        return value

    def done(self, allowed: list[str]) -> None:
        for key in self.table:
            hint = did_you_mean(key, allowed) or f"; allowed keys: {', '.join(allowed)}"
            raise self.error(key, f"unknown key{hint}")


class _Errors:
    """Collects the ConfigErrors of independent parts, so one round trip reports them all."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def check(self, read: Callable[[], Any], fallback: Any = None) -> Any:
        try:
            return read()
        except ConfigErrors as exc:
            self.errors.extend(exc.errors)
        except ConfigError as exc:
            self.errors.append(exc)
        return fallback

    def raise_any(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ConfigErrors(self.errors)


def from_dict(raw: dict[str, Any], source: str = "<config>") -> Config:
    """Validate a parsed TOML document and resolve it into a ``Config``; every problem found is
    reported at once (``ConfigErrors``), as far as one part does not depend on another."""
    errors = _Errors()
    top = _Reader(raw, source, "")
    exp = _Reader(top.take("experiment", dict), source, "experiment")
    name = errors.check(lambda: _read_name(exp), "invalid")
    description = errors.check(lambda: exp.take("description", str, ""), "")
    seed = errors.check(lambda: _read_seed(exp), 0)
    runs = errors.check(lambda: exp.positive_int("runs"), 1)
    budget = errors.check(lambda: exp.positive_int("budget"), None)
    plugins = errors.check(lambda: _read_plugins(exp, source), [])
    errors.check(lambda: exp.done(["name", "description", "seed", "runs", "budget", "plugins"]))

    stopping = errors.check(lambda: _read_stopping(top.take("stopping", dict, {}), source), Stopping())
    record = errors.check(lambda: _read_record(top.take("record", dict, {}), source), Record())
    analysis = errors.check(lambda: _read_analysis(top.take("analysis", dict, {}), source), Analysis())
    engine = errors.check(lambda: _read_engine(top.take("engine", dict, {}), source), Engine())
    base_model = errors.check(lambda: _read_model(top.take("model", dict, {}), source, "model", ModelSpec()))

    raw_datasets = errors.check(lambda: _nonempty(top, "datasets", 'dataset, e.g. [[datasets]] name = "xor"'), [])
    specs = tuple(
        spec
        for i, t in enumerate(raw_datasets)
        if base_model is not None
        and (spec := errors.check(lambda t=t, i=i: _read_dataset(t, source, f"datasets[{i}]", base_model, budget or 1)))
    )
    raw_optimizers = errors.check(
        lambda: _nonempty(top, "optimizers", 'optimizer, e.g. [[optimizers]] name = "gd"'), []
    )
    opts = tuple(
        o
        for i, t in enumerate(raw_optimizers)
        for o in errors.check(lambda t=t, i=i: _read_optimizer(t, source, f"optimizers[{i}]"), [])
    )
    tuning = errors.check(lambda: _read_tuning(top.take("tuning", dict, {}), source, opts), Tuning())
    tuned = errors.check(lambda: top.take("tuned", dict, {}), {})
    errors.check(
        lambda: top.done(
            [
                "experiment",
                "engine",
                "stopping",
                "record",
                "analysis",
                "tuning",
                "tuned",
                "model",
                "datasets",
                "optimizers",
            ]  # fmt: skip
        )
    )

    dataset_labels = [d.label for d in specs]
    for i, o in enumerate(opts):
        for label in o.datasets or ():
            if label not in dataset_labels:
                errors.errors.append(
                    ConfigError(
                        source,
                        f"optimizers[{i}].datasets",
                        f"no dataset is labelled {label!r}{did_you_mean(label, dataset_labels) or ''}; "
                        f"dataset labels: {', '.join(dataset_labels)}",
                    )
                )
    for what, items in (("datasets", specs), ("optimizers", opts)):
        labels = [x.label for x in items]
        for label in sorted(set(labels), key=labels.index):
            same = [x for x in items if x.label == label]
            # Entries may share a label when each runs on its own datasets (a tuned config).
            runs_on = [set(getattr(x, "datasets", None) or dataset_labels) for x in same]
            if len(same) > 1 and sum(map(len, runs_on)) != len(set().union(*runs_on)):
                errors.errors.append(
                    ConfigError(source, what, f'two entries are labelled {label!r}; give each a distinct label = "..."')
                )
    specs = tuple(dataclasses.replace(d, backend=engine.backend) for d in specs)
    for i, d in enumerate(specs):
        errors.check(lambda d=d, i=i: _check_backend(d, source, i))
    errors.raise_any()
    return Config(
        name, seed, runs, budget, specs, opts, stopping, record, description, source, analysis, tuple(plugins),
        tuning, tuned, engine,
    )  # fmt: skip


def _read_engine(table: Any, source: str) -> Engine:
    r = _Reader(table, source, "engine")
    engine = _read_flat(r, Engine)
    _choice(r, "backend", engine.backend, mlp.BACKENDS)
    return engine


def _check_backend(d: DatasetSpec, source: str, i: int) -> None:
    """The engine's backend must be able to compute this dataset's network (numba: float64)."""
    try:
        d.network()
    except ValueError as exc:
        raise ConfigError(source, "engine.backend", f"cannot compute datasets[{i}] ({d.label}): {exc}") from None


def _read_name(exp: _Reader) -> str:
    name = exp.take("name", str)
    if (
        not name
        or any(c in name for c in '/\\:*?"<>| ')
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
        or name.startswith(".")
    ):
        raise exp.error("name", f"must be a plain folder name (letters, digits, - and _), got {name!r}")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise exp.error(
            "name", f"must be at most {MAX_NAME_BYTES} bytes (a folder name), got {len(name.encode('utf-8'))}"
        )
    return name


def _read_seed(exp: _Reader) -> int:
    seed = exp.take("seed", int, 0)
    if seed < 0:
        raise exp.error("seed", f"must be >= 0, got {seed}")
    return seed


def _read_plugins(exp: _Reader, source: str) -> list[str]:
    plugins = exp.take("plugins", list, [])
    for i, module in enumerate(plugins):
        if not isinstance(module, str) or not module.replace(".", "_").isidentifier():
            raise exp.error(f"plugins[{i}]", f'must be a module name such as "my_rprop", got {module!r}')
        import_plugin(module, source, f"experiment.plugins[{i}]")
    return plugins


def _nonempty(top: _Reader, key: str, example: str) -> list[Any]:
    items = top.take(key, list)
    if not items:
        raise top.error(key, f"list at least one {example}")
    return items


def import_plugin(module: str, source: str, where: str) -> None:
    """Import a plug-in module (it registers datasets and optimizers as it loads): as installed or
    on the path, else from the config file's folder (which then joins ``sys.path``)."""
    import importlib
    import sys

    folder = Path(source).resolve().parent if Path(source).is_file() else None
    try:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if folder is None or exc.name != module.split(".")[0] or str(folder) in sys.path:
                raise
            sys.path.insert(0, str(folder))
            importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module.split(".")[0]:
            raise ConfigError(source, where, f"plug-in {module!r} failed to import: {exc}") from None
        place = f"put {module.split('.')[0]}.py next to the config, " if folder else ""
        raise ConfigError(
            source, where, f"no plug-in module {module!r}: {place}install it, or add its folder to PYTHONPATH"
        ) from None
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(source, where, f"plug-in {module!r} failed to import: {type(exc).__name__}: {exc}") from None


def _read_stopping(table: Any, source: str) -> Stopping:
    r = _Reader(table, source, "stopping")
    default = Stopping()
    stop = Stopping(
        r.take("stagnation", bool, default.stagnation),
        r.take("patience", float, default.patience),
        r.take("min_delta", float, default.min_delta),
    )
    if not 0 < stop.patience < 1:
        # A window of the whole budget would reach back before the first evaluation: never stuck.
        raise r.error("patience", f"must be a fraction of the budget in (0, 1), got {stop.patience}")
    if not 0 <= stop.min_delta < 1:
        raise r.error("min_delta", f"must be in [0, 1), got {stop.min_delta}")
    r.done(["stagnation", "patience", "min_delta"])
    return stop


def _read_record(table: Any, source: str) -> Record:
    r = _Reader(table, source, "record")
    rec = _read_flat(r, Record)
    if rec.checkpoints < 1:
        raise r.error("checkpoints", f"must be >= 1, got {rec.checkpoints}")
    if rec.spacing not in ("log", "linear"):
        raise r.error(
            "spacing", f"must be 'log' or 'linear', got {rec.spacing!r}{did_you_mean(rec.spacing, ['log', 'linear'])}"
        )
    if not 0 < rec.target_low < rec.target_high < math.inf:
        raise r.error(
            "target_low", f"the ladder needs 0 < target_low < target_high, got {rec.target_low} and {rec.target_high}"
        )
    if rec.targets_per_decade < 1:
        raise r.error("targets_per_decade", f"must be >= 1, got {rec.targets_per_decade}")
    return rec


def _read_tuning(table: Any, source: str, opts: tuple[OptimizerSpec, ...]) -> Tuning:
    r = _Reader(table, source, "tuning")
    default = Tuning()
    space = r.take("space", dict, {})
    tuning = Tuning(
        trials=r.positive_int("trials", default.trials),
        seeds=r.positive_int("seeds", default.seeds),
        objective=r.take("objective", str, default.objective),
        sampler=r.take("sampler", str, default.sampler),
        batch=r.positive_int("batch", default.batch),
        space=space,
    )
    _choice(r, "objective", tuning.objective, TUNING_OBJECTIVES)
    _choice(r, "sampler", tuning.sampler, TUNING_SAMPLERS)
    r.done(["trials", "seeds", "objective", "sampler", "batch", "space"])
    names = sorted({o.label for o in opts} | {o.name for o in opts})
    for key, table in space.items():
        if key not in names:
            raise r.error(
                f"space.{key}", f"no optimizer is named or labelled {key!r}{did_you_mean(key, names) or ''}; "
                f"optimizers: {', '.join(names)}"
            )  # fmt: skip
        if not isinstance(table, dict):
            raise r.error(f"space.{key}", f"must be a table of settings, got {table!r}")
        for o in opts:
            if key in (o.label, o.name):
                tuning_space(tuning, o, source)  # every setting checked against the optimizer
    return tuning


def tuning_space(tuning: Tuning, opt: OptimizerSpec, source: str = "<config>") -> tuple[dict[str, Any], dict[str, Any]]:
    """What ``bench tune`` searches for ``opt``: (space, fixed).

    ``space`` maps a setting (``base_settings.x`` for a nested one) to its ``optimizers.space``
    dimension: the optimizer's default space, changed by ``[tuning.space.<name>]`` and then by
    ``[tuning.space.<label>]``.  A range table ``{ low, high, log }`` replaces a setting's range,
    a list makes it a choice, a plain value fixes it (``fixed``: removed from the space).
    """
    from bench.optimizers import space as sp
    from bench.optimizers.base import search_space

    dims = search_space(opt.settings)
    fixed: dict[str, Any] = {}
    for key in dict.fromkeys((opt.name, opt.label)):
        for setting, value in tuning.space.get(key, {}).items():
            path = f"tuning.space.{key}.{setting}"
            current = dims.get(setting)
            try:
                if isinstance(value, dict):
                    unknown = set(value) - {"low", "high", "log"}
                    if unknown or not {"low", "high"} <= set(value):
                        raise ValueError(f"a range is {{ low = ..., high = ..., log = true|false }}, got {value!r}")
                    log = value.get("log", getattr(current, "log", False))
                    integer = isinstance(current, sp.Integer) or isinstance(getattr(opt.settings, setting, None), int)
                    if integer:
                        dim = sp.Integer(int(value["low"]), int(value["high"]), bool(log))
                    else:
                        complement = isinstance(current, sp.Real) and current.complement and value["high"] < 1
                        dim = sp.Real(float(value["low"]), float(value["high"]), bool(log), complement)
                    ends = [dim.low, dim.high]
                elif isinstance(value, list):
                    dim, ends = sp.Choice(tuple(value)), list(value)
                else:
                    dim, ends = None, [value]
                for end in ends:
                    settings_with(opt, {setting: end})
            except ValueError as exc:
                raise ConfigError(source, path, str(exc)) from None
            if dim is None:
                dims.pop(setting, None)
                fixed[setting] = value
            else:
                dims[setting] = dim
                fixed.pop(setting, None)
    return dims, fixed


def settings_with(opt: OptimizerSpec, values: dict[str, Any]) -> Any:
    """``opt``'s settings with ``values`` (``base_settings.x`` sets a nested one; per-run arrays
    (R,) are allowed where ``PER_RUN`` says); ValueError naming the setting if one is bad."""
    merged = settings_dict(opt.settings)
    for key, value in values.items():
        outer, _, inner = key.partition(".")
        if inner:
            if not isinstance(merged.get(outer), dict):
                raise ValueError(f"{opt.name} has no nested settings {outer!r}")
            merged[outer] = {**merged[outer], inner: value}
        elif key not in merged:
            raise ValueError(f"{opt.name} has no setting {key!r}{did_you_mean(key, list(merged)) or ''}")
        else:
            merged[key] = value
    return optimizers.make_settings(opt.name, **merged)


def _read_analysis(table: Any, source: str) -> Analysis:
    return _read_flat(_Reader(table, source, "analysis"), Analysis)


def _read_flat(r: _Reader, cls: type) -> Any:
    """A flat settings dataclass from a table: each field typed like its default, ranges checked."""
    values = {}
    for f in dataclasses.fields(cls):
        value = r.take(f.name, type(f.default), f.default)
        if f.name in _RANGES:
            low, high, low_open, high_open = _RANGES[f.name]
            if (
                (low is not None and (value <= low if low_open else value < low))
                or (high is not None and (value >= high if high_open else value > high))
                or value != value  # NaN
            ):
                interval = f"{'(' if low_open else '['}{low}, {'inf' if high is None else high}{')' if high_open or high is None else ']'}"
                raise r.error(f.name, f"must be in {interval}, got {value}")
        values[f.name] = value
    r.done([f.name for f in dataclasses.fields(cls)])
    return cls(**values)


def _choice(r: _Reader, key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise r.error(key, f"must be one of {', '.join(choices)}, got {value!r}{did_you_mean(str(value), choices)}")


def _read_model(table: Any, source: str, path: str, base: ModelSpec) -> ModelSpec:
    r = _Reader(table, source, path)
    hidden = r.take("hidden", list, None)
    if hidden is not None:
        if not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hidden):
            raise r.error("hidden", f"must be a list of layer sizes >= 1 (or [] for none), got {hidden}")
        hidden = tuple(hidden)
    spec = ModelSpec(
        hidden=hidden if hidden is not None else base.hidden,
        activation=r.take("activation", str, base.activation),
        init=r.take("init", str, base.init),
        init_scale=r.take("init_scale", float, base.init_scale),
        reduction=r.take("reduction", str, base.reduction),
        output=r.take("output", str, base.output),
        loss=r.take("loss", str, base.loss),
        dtype=r.take("dtype", str, base.dtype),
    )
    _choice(r, "activation", spec.activation, mlp.HIDDEN_ACTIVATIONS)
    _choice(r, "init", spec.init, mlp.INIT_SCHEMES)
    _choice(r, "reduction", spec.reduction, mlp.REDUCTIONS)
    _choice(r, "dtype", spec.dtype, mlp.DTYPES)
    _choice(r, "output", spec.output, ("sigmoid", "softmax", "identity"))
    _choice(r, "loss", spec.loss, ("mse", "bce", "cross_entropy"))
    if spec.init_scale is not None and not 0 < spec.init_scale <= MAX_INIT_SCALE:
        # Beyond this the weights saturate every unit and U(-s, s) itself overflows near 1e308.
        raise r.error("init_scale", f"must be in (0, {MAX_INIT_SCALE:g}], got {spec.init_scale}")
    r.done([f.name for f in dataclasses.fields(ModelSpec)])
    return spec


def _read_dataset(table: Any, source: str, path: str, base_model: ModelSpec, budget: int) -> DatasetSpec:
    r = _Reader(table, source, path)
    name = r.take("name", str)
    if name not in datasets.DATASETS:
        raise r.error(
            "name",
            f"unknown dataset {name!r}{did_you_mean(name, datasets.DATASETS.names())}; "
            f"available: {', '.join(datasets.DATASETS.names())}",
        )
    label = r.take("label", str, name)
    params = dict(r.take("params", dict, {}))
    # The dataset's parameters may also stand in its table itself: name = "file", path = "x.csv".
    known = [*DATASET_KEYS, *datasets.parameters(name)]
    for key in [k for k in r.table if k not in DATASET_KEYS]:
        if key not in known:
            raise r.error(key, f"unknown key{did_you_mean(key, known) or '; allowed keys: ' + ', '.join(known)}")
        if key in params:
            raise r.error(key, "is given twice, here and in params; keep one")
        params[key] = r.table.pop(key)
    try:
        params = datasets.check_params(name, params)
        if name == "file":
            params = _resolve_file(params, source)
        data = datasets.load(name, **params)
    except ValueError as exc:
        raise ConfigError(source, f"{path}.params", str(exc)) from None
    model = _read_model(r.take("model", dict, {}), source, f"{path}.model", base_model)
    output, loss = model.output or data.output_activation, model.loss or data.loss
    if (output, loss) not in mlp.OUTPUT_LOSS_PAIRS:
        pairs = ", ".join(f"{o}+{lo}" for o, lo in sorted(mlp.OUTPUT_LOSS_PAIRS))
        raise ConfigError(
            source, f"{path}.model", f"output {output!r} with loss {loss!r} is not supported; use one of {pairs}"
        )
    scale = model.init_scale if model.init_scale is not None else (0.5 if model.init == "uniform" else 1.0)
    model = dataclasses.replace(
        model,
        hidden=model.hidden if model.hidden is not None else data.hidden,
        output=output,
        loss=loss,
        init_scale=scale,
    )
    run_budget = r.positive_int("budget", budget)
    success = _read_success(r.take("success", dict, None), source, f"{path}.success", data)
    r.done(list(DATASET_KEYS))
    return DatasetSpec(name, label, params, model, run_budget, success)


DATASET_KEYS = ("name", "label", "params", "model", "budget", "success")


def _resolve_file(params: dict[str, Any], source: str) -> dict[str, Any]:
    """A data file's path made absolute (a relative one is read from the config file's folder)
    and its SHA-256 recorded, so the resolved config names the exact data."""
    from bench.datasets.files import file_sha256

    path = Path(params.get("path", "")).expanduser()
    if params.get("path") and not path.is_absolute() and Path(source).is_file():
        path = Path(source).resolve().parent / path
    resolved = {**params, "path": str(path.resolve()) if params.get("path") else ""}
    if resolved["path"] and Path(resolved["path"]).is_file():
        digest = file_sha256(resolved["path"])
        if params.get("sha256") and params["sha256"] != digest:  # checked here: loaded data are cached
            raise ValueError(
                f"{resolved['path']} has changed since this config was resolved (its SHA-256 differs): the "
                "results of the old data and the new would be mixed; use the new data under another file name, "
                "or drop sha256"
            )
        resolved["sha256"] = digest
    return resolved


def _read_success(table: Any, source: str, path: str, data: datasets.Dataset) -> Success:
    if table is None:
        return data.success
    r = _Reader(table, source, path)
    kind = r.take("kind", str, data.success.kind)
    _choice(r, "kind", kind, SUCCESS_KINDS)
    default_split = (
        data.success.split if kind == data.success.kind else ("test" if data.X_test is not None else "train")
    )
    split = r.take("split", str, default_split)
    _choice(r, "split", split, SPLITS)
    target = r.take("target", float, data.success.target if kind == data.success.kind else None)
    r.done(["kind", "split", "target"])
    if kind == "40-20-40" and split != "train":
        raise r.error("split", "the 40-20-40 rule is judged on the training patterns; use split = 'train'")
    if kind != "40-20-40" and target is None:
        raise r.error("target", f"a {kind} criterion needs a target, e.g. target = 0.9")
    try:
        success = Success(kind, split, target if kind != "40-20-40" else None)
        dataclasses.replace(data, success=success)  # checks the split exists
    except ValueError as exc:
        raise ConfigError(source, path, str(exc)) from None
    return success


def _read_optimizer(table: Any, source: str, path: str) -> list[OptimizerSpec]:
    r = _Reader(table, source, path)
    name = r.take("name", str)
    try:
        optimizers.OPTIMIZERS.get(name)
    except UnknownNameError as exc:
        raise r.error("name", str(exc)) from None
    label = r.take("label", str, None)
    only = r.take("datasets", list, None)
    if only is not None and (not only or not all(isinstance(x, str) for x in only)):
        raise r.error("datasets", f"must be a non-empty list of dataset labels, got {only!r}")
    settings = r.table  # everything else is the optimizer's settings
    grid_keys = [k for k, v in settings.items() if isinstance(v, list)]
    for key in grid_keys:
        if not settings[key]:
            raise r.error(key, "an empty list makes an empty grid; give at least one value")
    points = [dict(zip(grid_keys, combo)) for combo in itertools.product(*(settings[k] for k in grid_keys))]
    specs = []
    for point in points:
        values = {**copy.deepcopy(settings), **point}
        try:
            parsed = optimizers.make_settings(name, **values)
        except SettingError as exc:
            raise ConfigError(source, f"{path}.{exc.field}", str(exc)) from None
        except ValueError as exc:
            raise ConfigError(source, path, str(exc)) from None
        # A label names the entry; a grid point adds its values; unlabelled, the given settings show.
        shown = point if grid_keys else ({} if label else values)
        arguments = ", ".join(f"{k}={_fmt(v)}" for k, v in shown.items())
        label_shown = (label or name) + (f"({arguments})" if arguments else "")
        specs.append(OptimizerSpec(name, label_shown, parsed, None if only is None else tuple(only)))
    return specs


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_fmt(v)}" for k, v in value.items()) + "}"
    return f"{value:g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------------- writing


def to_toml(content: dict[str, Any]) -> str:
    """A small TOML writer for the resolved config (tables, arrays of tables, inline values)."""
    lines: list[str] = []
    for key, value in content.items():
        if isinstance(value, dict):
            lines += [f"[{key}]", *(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()), ""]
        else:
            for item in value:
                lines += [f"[[{key}]]", *(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in item.items()), ""]
    return "\n".join(lines)


def _toml_key(key: str) -> str:
    """A bare key where TOML allows one (letters, digits, - and _), else a quoted one."""
    return key if key and all(c.isascii() and (c.isalnum() or c in "-_") for c in key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return (
            repr(value)
            if value == value and abs(value) != float("inf")
            else ("nan" if value != value else ("inf" if value > 0 else "-inf"))
        )
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")
