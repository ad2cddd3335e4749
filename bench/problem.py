"""A training problem for R runs: dataset arrays + MLP + loss, and the cost ledger.

As in COCO, optimizers never log: the problem counts every evaluation it is asked for.  One
forward pass over the training set costs 1 unit; one loss-and-gradient evaluation costs 3
(forward + backward, the backward pass costing about two forward passes).  Judging success and
computing metrics for the record are the observer's work and cost nothing.
"""

from __future__ import annotations

import numpy as np

from bench.datasets.base import Dataset, accuracy, within_40_20_40
from bench.mlp import MLP

FORWARD_COST = 1
GRADIENT_COST = 3


class Problem:
    """The shared state of one cell: data, network and per-run counters (R,)."""

    def __init__(
        self, data: Dataset, net: MLP, n_runs: int, init: str = "uniform", init_scale: float | None = None
    ) -> None:
        if (net.layer_sizes[0], net.layer_sizes[-1]) != (data.n_inputs, data.n_outputs):
            raise ValueError(
                f"{net!r} does not fit {data.name}: it has {data.n_inputs} inputs and {data.n_outputs} outputs"
            )
        self.data, self.net, self.n_runs = data, net, n_runs
        self.init_scheme, self.init_scale = init, init_scale
        self.loss_evals = np.zeros(n_runs, dtype=np.int64)
        self.grad_evals = np.zeros(n_runs, dtype=np.int64)
        self._spent = np.zeros(n_runs)  # cost units, kept in step with the two counters
        self._all: ProblemView | None = None

    @property
    def cost(self) -> np.ndarray:
        """Cost units spent per run, shape (R,) float: loss evaluations x 1 + gradient evaluations x 3.

        A read-only view of the ledger: it moves on as runs are evaluated; copy it to keep it.
        """
        view = self._spent.view()
        view.flags.writeable = False
        return view

    def view(self, rows: np.ndarray | None = None) -> ProblemView:
        """The problem as seen by the runs ``rows`` (all runs if None)."""
        if rows is None:
            if self._all is None:
                self._all = ProblemView(self, np.arange(self.n_runs))
            return self._all
        return ProblemView(self, np.asarray(rows))

    # ---------------------------------------------------------------- free observation
    def per_pattern_loss(self, loss: np.ndarray) -> np.ndarray:
        """A training loss (R,) as a mean per pattern, whatever the reduction."""
        return loss / self.data.X_train.shape[0] if self.net.reduction == "sum" else loss

    def test_point(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean loss per pattern and accuracy on the test split, (R,) each (NaN without a test split,
        accuracy NaN for regression); one forward pass that costs nothing."""
        if self.data.X_test is None:
            nan = np.full(theta.shape[0], np.nan)
            return nan, nan
        X, Y = self.data.X_test, self.data.Y_test
        loss, _, out = self.net.evaluate(theta, X, Y, need_grad=False)
        mean = loss / X.shape[0] if self.net.reduction == "sum" else loss
        return mean, accuracy(out, Y, self.data.task)

    def solved(self, theta: np.ndarray, loss: np.ndarray, train_out: np.ndarray | None) -> np.ndarray:
        """Whether each row meets the dataset's success criterion, (R,) bool; costs nothing.

        theta : (R, P); loss : (R,) training loss at theta; train_out : (R, N, n_out) training
        outputs at theta if the caller has them, else None.
        """
        success = self.data.success
        if success.kind == "loss" and success.split == "train":
            return self.per_pattern_loss(loss) <= success.target
        X, Y = self.data.split(success.split)
        if success.split == "train" and train_out is not None:
            out = train_out
        else:
            out = self.net.forward(theta, X)
        if success.kind == "40-20-40":
            return within_40_20_40(out, Y)
        if success.kind == "accuracy":
            return accuracy(out, Y, self.data.task) >= success.target
        mean_loss = self.net.loss(theta, X, Y) / (X.shape[0] if self.net.reduction == "sum" else 1)
        return mean_loss <= success.target

    def accuracy(self, theta: np.ndarray, split: str, out: np.ndarray | None = None) -> np.ndarray:
        """Accuracy per row on ``split`` (NaN for regression or a missing split); costs nothing."""
        if self.data.task != "classification" or getattr(self.data, f"X_{split}") is None:
            return np.full(theta.shape[0], np.nan)
        X, Y = self.data.split(split)
        return accuracy(self.net.forward(theta, X) if out is None else out, Y, self.data.task)


class ProblemView:
    """What an optimizer sees: evaluations of its rows, each charged to the run it belongs to."""

    def __init__(self, problem: Problem, rows: np.ndarray) -> None:
        self.problem, self.rows = problem, rows
        self.net = problem.net

    @property
    def n_runs(self) -> int:
        return len(self.rows)

    @property
    def n_params(self) -> int:
        return self.net.n_params

    @property
    def cost(self) -> np.ndarray:
        """Cost units spent so far by this view's runs, (R,)."""
        return self.problem.cost[self.rows]

    def subview(self, index: np.ndarray) -> ProblemView:
        """The view of some of this view's runs (``index`` into them)."""
        return ProblemView(self.problem, self.rows[index])

    def draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` fresh parameter rows (count, P) from the model's init distribution (free)."""
        return self.net.init(rng, count, self.problem.init_scheme, self.problem.init_scale)

    def evaluate(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Loss (R,), gradient (R, P) and training outputs (R, N, n_out); 3 units per row."""
        data = self.problem.data
        loss, grad, out = self.net.evaluate(theta, data.X_train, data.Y_train, need_grad=True)
        self.problem.grad_evals[self.rows] += 1
        self.problem._spent[self.rows] += GRADIENT_COST
        return loss, grad, out

    def loss(self, theta: np.ndarray, owners: np.ndarray | None = None) -> np.ndarray:
        """Training loss of K parameter rows (K, P), 1 unit each, charged to ``owners``.

        owners : (K,) index into this view's runs (default: row k belongs to run k).  A genetic
        algorithm passes its whole population at once, each individual charged to its run.
        """
        data = self.problem.data
        loss = self.net.loss(theta, data.X_train, data.Y_train)
        owner_rows = self.rows if owners is None else self.rows[owners]
        np.add.at(self.problem.loss_evals, owner_rows, 1)
        np.add.at(self.problem._spent, owner_rows, FORWARD_COST)
        return loss
