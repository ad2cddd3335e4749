"""What a dataset is: plain float64 arrays plus what its task needs to be trained and judged."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TASKS = ("classification", "regression")
SUCCESS_KINDS = ("40-20-40", "accuracy", "loss")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Success:
    """A run's success criterion, judged on the network's outputs.

    kind
        ``"40-20-40"``: the classic rule (Fahlman 1988): every output of every training pattern
        lies in the correct 40 % of the output range [0, 1], i.e. |o - t| <= 0.4 for targets at
        the ends of the range; the middle 20 % counts as wrong.
        ``"accuracy"``: accuracy on ``split`` >= ``target``.
        ``"loss"``: mean loss per pattern on ``split`` <= ``target`` (per pattern, so one target
        means the same on a training and a test split of any size).
    """

    kind: str = "40-20-40"
    split: str = "train"
    target: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in SUCCESS_KINDS:
            raise ValueError(f"success kind must be one of {SUCCESS_KINDS}, got {self.kind!r}")
        if self.split not in SPLITS:
            raise ValueError(f"success split must be one of {SPLITS}, got {self.split!r}")
        if self.kind == "accuracy" and not (self.target is not None and 0.0 < self.target <= 1.0):
            raise ValueError(f"an accuracy target must be in (0, 1], got {self.target}")
        if self.kind == "loss" and not (self.target is not None and self.target >= 0.0):
            raise ValueError(f"a loss target must be >= 0, got {self.target}")

    def describe(self) -> str:
        if self.kind == "40-20-40":
            return "40-20-40 rule on every training pattern"
        op = ">=" if self.kind == "accuracy" else "<="
        return f"{self.split} {self.kind} {op} {self.target:g}"


def accuracy(out: np.ndarray, Y: np.ndarray, task: str) -> np.ndarray:
    """Fraction of patterns classified right, per run, shape (R,); NaN for regression.

    out : ndarray of shape (R, N, n_out); Y : ndarray of shape (N, n_out).  One output: the
    class is o > 0.5.  Several outputs with one-hot targets: the arg-max.  Several outputs
    otherwise (encoders, multi-label): a pattern is right when every output is on the right
    side of 0.5.
    """
    if task != "classification":
        return np.full(out.shape[0], np.nan)
    if Y.shape[1] > 1 and np.all(Y.sum(axis=1) == 1.0):
        right = out.argmax(axis=2) == Y.argmax(axis=1)[None, :]
    else:
        right = np.all((out > 0.5) == (Y > 0.5)[None], axis=2)
    return right.mean(axis=1)


def within_40_20_40(out: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """The 40-20-40 rule per run, shape (R,) bool; NaN outputs fail."""
    with np.errstate(invalid="ignore"):
        return np.all(np.abs(out - Y[None]) <= 0.4, axis=(1, 2))


@dataclass(frozen=True, eq=False)
class Dataset:
    """Arrays and task description of one dataset.

    X_train : ndarray of shape (N, n_in); Y_train : ndarray of shape (N, n_out); X_test, Y_test
    likewise or None.  ``hidden`` is the hidden-layer sizes this problem is classically posed
    with (a model that does not set its own uses them).
    """

    name: str
    X_train: np.ndarray
    Y_train: np.ndarray
    X_test: np.ndarray | None
    Y_test: np.ndarray | None
    task: str
    output_activation: str
    loss: str
    success: Success
    hidden: tuple[int, ...]
    description: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        for split in ("train", "test"):
            X, Y = getattr(self, f"X_{split}"), getattr(self, f"Y_{split}")
            if (X is None) != (Y is None):
                raise ValueError(f"{self.name}: X_{split} and Y_{split} must both be given or both None")
            if X is not None and (X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]):
                raise ValueError(f"{self.name}: X_{split} {X.shape} and Y_{split} {Y.shape} do not match")
        if self.success.split == "test" and self.X_test is None:
            raise ValueError(
                f"{self.name} has no test split, so its success cannot be judged on 'test'; use split = 'train'"
            )

    @property
    def n_inputs(self) -> int:
        return self.X_train.shape[1]

    @property
    def n_outputs(self) -> int:
        return self.Y_train.shape[1]

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        X, Y = getattr(self, f"X_{name}"), getattr(self, f"Y_{name}")
        if X is None:
            raise ValueError(f"{self.name} has no {name} split")
        return X, Y
