"""Your own data: a table in a CSV, Parquet or NumPy ``.npz`` file.

    [[datasets]]
    name = "file"
    path = "mydata.csv"          # relative to the config file's folder
    target = "label"             # the target column(s), comma-separated; default: the last column
    task = "classification"      # or "regression"

Classification: the target is one column of class labels (numbers or text); two classes train one
sigmoid output with cross-entropy, more a softmax.  Regression: one or more numeric target
columns, a linear output and squared error.  The split is stratified for classification and seeded
by ``split_seed``; features (and regression targets) are standardized with the training split's
mean and deviation, as for the scikit-learn sets.  A ``.npz`` file holds arrays ``X`` (patterns x
features) and ``y`` (labels, or patterns x targets).

Every value is checked before any training: a missing file, a text column among the features, a
missing, NaN or infinite value are refused with the row and column named.  The resolved config
records the file's SHA-256, so the results name the exact data they were computed from, and a file
that changes afterwards is refused rather than silently mixed with the old results.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from bench.datasets.base import TASKS, Dataset, Success
from bench.datasets.registry import register

FORMATS = (".csv", ".parquet", ".npz")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@register("file")
def file(
    path: str = "",
    target: str = "",
    task: str = "classification",
    test_size: float = 0.25,
    split_seed: int = 0,
    standardize: bool = True,
    sha256: str = "",
) -> Dataset:
    """Your own table (CSV, Parquet or .npz): ``path``, the ``target`` column(s), the ``task``."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    source = Path(path)
    if not path:
        raise ValueError('give the data file: path = "mydata.csv" (.csv, .parquet or .npz)')
    if source.suffix.lower() not in FORMATS:
        raise ValueError(f"{path}: unknown format {source.suffix!r}; use a .csv, .parquet or .npz file")
    if not source.is_file():
        raise ValueError(f"no such data file: {path} (a relative path is read from the config file's folder)")
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if not 0.0 <= test_size <= 0.5:
        raise ValueError(f"test_size must be in [0, 0.5] (0: no test split), got {test_size}")
    if sha256 and sha256 != file_sha256(source):
        raise ValueError(f"{path} has changed since this config was resolved (its SHA-256 differs)")
    X, labels, columns = _read(source, target, task)
    if task == "classification":
        classes, codes = np.unique(labels, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"{path}: the target has one class only ({classes[0].item()!r}); a classifier needs two")
        counts = np.bincount(codes)
        if test_size and counts.min() < 2:
            raise ValueError(
                f"{path}: class {classes[counts.argmin()].item()!r} has one pattern, too few to split; "
                "add patterns or set test_size = 0"
            )
        Y = (codes == 1).astype(np.float64)[:, None] if len(classes) == 2 else np.eye(len(classes))[codes]
        output, loss = ("sigmoid", "bce") if len(classes) == 2 else ("softmax", "cross_entropy")
        success = Success("accuracy", "test" if test_size else "train", 0.95)
        about = f"{len(classes)} classes"
    else:
        Y, output, loss = labels, "identity", "mse"
        success = Success("loss", "test" if test_size else "train", 0.1)
        about = f"regression on {', '.join(columns)}"
    if test_size:
        stratify = codes if task == "classification" else None
        X_tr, X_te, Y_tr, Y_te = train_test_split(X, Y, test_size=test_size, random_state=split_seed, stratify=stratify)
    else:
        X_tr, X_te, Y_tr, Y_te = X, None, Y, None
    if standardize:
        xs = StandardScaler().fit(X_tr)
        X_tr, X_te = xs.transform(X_tr), None if X_te is None else xs.transform(X_te)
        if task == "regression":
            ys = StandardScaler().fit(Y_tr)
            Y_tr, Y_te = ys.transform(Y_tr), None if Y_te is None else ys.transform(Y_te)
    return Dataset(
        name="file",
        X_train=np.ascontiguousarray(X_tr, dtype=np.float64),
        Y_train=np.ascontiguousarray(Y_tr, dtype=np.float64),
        X_test=None if X_te is None else np.ascontiguousarray(X_te, dtype=np.float64),
        Y_test=None if Y_te is None else np.ascontiguousarray(Y_te, dtype=np.float64),
        task=task,
        output_activation=output,
        loss=loss,
        success=success,
        hidden=(8,),
        description=f"{source.name}, {X.shape[0]} x {X.shape[1]}, {about}",
    )


def _read(source: Path, target: str, task: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features (N, d) float64, the targets (labels (N,) or values (N, k)), the target names."""
    name = str(source)
    if source.suffix.lower() == ".npz":
        with np.load(source, allow_pickle=False) as archive:
            missing = [key for key in ("X", "y") if key not in archive]
            if missing:
                raise ValueError(f"{name} must hold arrays 'X' and 'y'; it has {', '.join(archive.files) or 'none'}")
            X, y = archive["X"], archive["y"]
        if X.ndim != 2 or y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
            raise ValueError(f"{name}: X must be patterns x features and y match its rows; got {X.shape} and {y.shape}")
        columns = [f"x{j}" for j in range(X.shape[1])]
        _check_numeric(name, X, columns, "feature")
        targets = ["y"] if y.ndim == 1 else [f"y{j}" for j in range(y.shape[1])]
        if task == "regression" or y.dtype.kind in "fc":
            _check_numeric(name, y.reshape(len(y), -1), targets, "target")
        if task == "classification":
            if y.ndim == 2 and y.shape[1] != 1:
                raise ValueError(f"{name}: a classification target is one column of labels; y is {y.shape}")
            return X.astype(np.float64), y.reshape(-1), targets
        return X.astype(np.float64), y.reshape(len(y), -1).astype(np.float64), targets

    import pandas as pd

    try:
        frame = pd.read_csv(source) if source.suffix.lower() == ".csv" else pd.read_parquet(source)
    except Exception as exc:  # a parser's own message says what is wrong with the file
        raise ValueError(f"cannot read {name}: {exc}") from None
    if frame.shape[0] < 4 or frame.shape[1] < 2:
        raise ValueError(f"{name}: need at least 4 rows and 2 columns (features and a target), got {frame.shape}")
    targets = [t.strip() for t in target.split(",")] if target else [str(frame.columns[-1])]
    unknown = [t for t in targets if t not in frame.columns]
    if unknown:
        from bench.registry import did_you_mean

        raise ValueError(
            f"{name} has no column {unknown[0]!r}{did_you_mean(unknown[0], [str(c) for c in frame.columns])}; "
            f"columns: {', '.join(map(str, frame.columns))}"
        )
    features = [c for c in frame.columns if c not in targets]
    if not features:
        raise ValueError(f"{name}: every column is a target; leave at least one feature")
    row_offset = 2 if source.suffix.lower() == ".csv" else 0  # a CSV's line numbers: the header is line 1
    X = _numeric(name, frame[features], "feature", row_offset)
    if task == "classification":
        if len(targets) != 1:
            raise ValueError(f"{name}: a classification target is one column of labels, got {', '.join(targets)}")
        labels = frame[targets[0]]
        if labels.isna().any():
            raise ValueError(f"{name}: {_where(labels.isna().to_numpy().argmax(), targets[0], row_offset)} is missing")
        values = labels.to_numpy()
        if values.dtype.kind in "fc":
            _check_numeric(name, values[:, None].astype(np.float64), targets, "target", row_offset)
        return X, values.astype(str) if values.dtype == object else values, targets
    return X, _numeric(name, frame[targets], "target", row_offset), targets


def _numeric(name: str, frame, what: str, row_offset: int) -> np.ndarray:
    import pandas as pd

    for column in frame.columns:
        values = frame[column]
        if not pd.api.types.is_numeric_dtype(values):
            converted = pd.to_numeric(values, errors="coerce")
            bad = int((converted.isna() & values.notna()).to_numpy().argmax())
            raise ValueError(
                f"{name}: {what} column {column!r} is not numeric ({_row(bad, row_offset)} holds "
                f"{values.iloc[bad]!r}): encode it as numbers, or drop the column"
            )
    array = frame.to_numpy(dtype=np.float64)
    _check_numeric(name, array, [str(c) for c in frame.columns], what, row_offset)
    return array


def _check_numeric(name: str, array: np.ndarray, columns: list[str], what: str, row_offset: int = 0) -> None:
    if array.dtype.kind not in "iufb":
        raise ValueError(f"{name}: the {what}s must be numbers, got dtype {array.dtype}")
    finite = np.isfinite(array)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        value = array[row, col]
        kind = "missing (NaN)" if np.isnan(value) else f"{value} (infinite)"
        raise ValueError(f"{name}: {_where(row, columns[col], row_offset)} is {kind}: drop or fill it")


def _where(row: int, column: str, row_offset: int) -> str:
    return f"{_row(row, row_offset)}, column {column!r},"


def _row(row: int, row_offset: int) -> str:
    """A 0-based data row, with its line of a CSV file (the header is line 1)."""
    return f"row {row}" + (f" (line {row + row_offset} of the file)" if row_offset else "")
