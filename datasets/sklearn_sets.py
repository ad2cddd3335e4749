"""Data sets that scikit-learn ships or generates, standardized and split for benchmarking.

Features are standardized with the mean and deviation of the training split only; the split is
stratified (classification) and seeded by ``split_seed``, so it is a property of the dataset,
the same for every run and optimizer.  Success is a test-accuracy target (classification) or a
test-loss target (regression) that a config can change.
"""

from __future__ import annotations

import numpy as np
from bench.datasets.base import Dataset, Success
from bench.datasets.registry import register
from sklearn import datasets as skd
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def _check_split(test_size: float) -> None:
    if not 0.05 <= test_size <= 0.5:
        raise ValueError(f"test_size must be in [0.05, 0.5], got {test_size}")


def _classification(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    test_size: float,
    split_seed: int,
    target: float,
    hidden: tuple[int, ...],
    description: str,
) -> Dataset:
    _check_split(test_size)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, random_state=split_seed, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    classes = np.unique(y)
    if len(classes) == 2:

        def encode(labels: np.ndarray) -> np.ndarray:
            return (labels == classes[1]).astype(np.float64)[:, None]

        output, loss = "sigmoid", "bce"
    else:

        def encode(labels: np.ndarray) -> np.ndarray:
            return (labels[:, None] == classes[None, :]).astype(np.float64)

        output, loss = "softmax", "cross_entropy"
    return Dataset(
        name=name,
        X_train=scaler.transform(X_tr),
        Y_train=encode(y_tr),
        X_test=scaler.transform(X_te),
        Y_test=encode(y_te),
        task="classification",
        output_activation=output,
        loss=loss,
        success=Success("accuracy", "test", target),
        hidden=hidden,
        description=description,
    )


@register("moons")
def moons(
    n_samples: int = 200, noise: float = 0.2, seed: int = 0, test_size: float = 0.25, split_seed: int = 0
) -> Dataset:
    """Two interleaving half circles (``sklearn.datasets.make_moons``), 2 classes."""
    if n_samples < 8 or noise < 0:
        raise ValueError(f"need n_samples >= 8 and noise >= 0, got {n_samples} and {noise}")
    X, y = skd.make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return _classification(
        "moons", X, y, test_size, split_seed, 0.95, (8,), f"two moons, {n_samples} points, noise {noise}"
    )


@register("circles")
def circles(
    n_samples: int = 200,
    noise: float = 0.1,
    factor: float = 0.5,
    seed: int = 0,
    test_size: float = 0.25,
    split_seed: int = 0,
) -> Dataset:
    """A circle inside another (``sklearn.datasets.make_circles``), 2 classes."""
    if n_samples < 8 or noise < 0 or not 0 < factor < 1:
        raise ValueError(f"need n_samples >= 8, noise >= 0, factor in (0, 1); got {n_samples}, {noise}, {factor}")
    X, y = skd.make_circles(n_samples=n_samples, noise=noise, factor=factor, random_state=seed)
    return _classification(
        "circles", X, y, test_size, split_seed, 0.97, (8,), f"two circles, {n_samples} points, noise {noise}"
    )


@register("iris")
def iris(test_size: float = 0.25, split_seed: int = 0) -> Dataset:
    """Fisher's iris: 150 flowers, 4 features, 3 classes."""
    X, y = skd.load_iris(return_X_y=True)
    return _classification("iris", X, y, test_size, split_seed, 0.97, (8,), "iris, 150 x 4, 3 classes")


@register("wine")
def wine(test_size: float = 0.25, split_seed: int = 0) -> Dataset:
    """UCI wine recognition: 178 wines, 13 features, 3 classes."""
    X, y = skd.load_wine(return_X_y=True)
    return _classification("wine", X, y, test_size, split_seed, 0.97, (8,), "wine, 178 x 13, 3 classes")


@register("breast_cancer")
def breast_cancer(test_size: float = 0.25, split_seed: int = 0) -> Dataset:
    """Wisconsin diagnostic breast cancer: 569 cases, 30 features, 2 classes."""
    X, y = skd.load_breast_cancer(return_X_y=True)
    return _classification(
        "breast_cancer", X, y, test_size, split_seed, 0.96, (8,), "breast cancer, 569 x 30, 2 classes"
    )


@register("digits")
def digits(test_size: float = 0.2, split_seed: int = 0) -> Dataset:
    """8x8 handwritten digits: 1,797 images, 64 features, 10 classes."""
    X, y = skd.load_digits(return_X_y=True)
    return _classification("digits", X, y, test_size, split_seed, 0.97, (32,), "digits, 1797 x 64, 10 classes")


@register("diabetes")
def diabetes(test_size: float = 0.25, split_seed: int = 0, target: float = 0.28) -> Dataset:
    """Diabetes progression (regression): 442 patients, 10 features, one target.

    Features and target are standardized on the training split, so the mean loss per pattern
    (half squared error) of predicting the mean is about 0.5; ``target`` is the test-loss goal.
    """
    _check_split(test_size)
    if not target > 0:
        raise ValueError(f"target must be > 0, got {target}")
    X, y = skd.load_diabetes(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, random_state=split_seed)
    xs, ys = StandardScaler().fit(X_tr), StandardScaler().fit(y_tr[:, None])
    return Dataset(
        name="diabetes",
        X_train=xs.transform(X_tr),
        Y_train=ys.transform(y_tr[:, None]),
        X_test=xs.transform(X_te),
        Y_test=ys.transform(y_te[:, None]),
        task="regression",
        output_activation="identity",
        loss="mse",
        success=Success("loss", "test", target),
        hidden=(16,),
        description="diabetes, 442 x 10, regression",
    )
