"""Datasets: the classic problems as defined in the literature, the scikit-learn sets' splits."""

from __future__ import annotations

import numpy as np
import pytest
from bench.datasets.base import Dataset, Success

from bench import datasets


def test_xor_patterns():
    data = datasets.load("xor")
    np.testing.assert_array_equal(data.X_train, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(data.Y_train[:, 0], [0, 1, 1, 0])
    assert data.X_test is None and data.success.kind == "40-20-40" and data.hidden == (2,)
    assert (data.output_activation, data.loss) == ("sigmoid", "mse")


@pytest.mark.parametrize("n_bits", [2, 3, 5])
def test_parity_has_every_pattern_and_odd_targets(n_bits):
    data = datasets.load("parity", n_bits=n_bits)
    assert data.X_train.shape == (2**n_bits, n_bits)
    assert len({tuple(row) for row in data.X_train}) == 2**n_bits
    np.testing.assert_array_equal(data.Y_train[:, 0], data.X_train.sum(axis=1) % 2)


def test_encoder_is_one_hot_auto_association():
    data = datasets.load("encoder", n=10, m=5)
    np.testing.assert_array_equal(data.X_train, np.eye(10))
    np.testing.assert_array_equal(data.Y_train, np.eye(10))
    assert data.hidden == (5,)


def test_two_spirals_match_lang_and_witbrock():
    data = datasets.load("two_spirals")
    assert data.X_train.shape == (194, 2)
    # Point i = 0: angle 0, radius 6.5 -> (0, 6.5), class 1; its mirror (0, -6.5), class 0.
    np.testing.assert_allclose(data.X_train[0], [0.0, 6.5], atol=1e-15)
    np.testing.assert_allclose(data.X_train[1], [0.0, -6.5], atol=1e-15)
    # Point i = 96: angle 6 pi, radius 6.5 * 8 / 104 = 0.5.
    np.testing.assert_allclose(data.X_train[192], [0.0, 0.5], atol=1e-12)
    np.testing.assert_array_equal(data.Y_train[:4, 0], [1, 0, 1, 0])
    assert data.Y_train.sum() == 97


@pytest.mark.parametrize("name", ["moons", "circles", "iris", "wine", "breast_cancer", "digits"])
def test_sklearn_sets_are_standardized_on_train_and_stratified(name):
    data = datasets.load(name)
    np.testing.assert_allclose(data.X_train.mean(axis=0), 0, atol=1e-12)
    std = data.X_train.std(axis=0)
    np.testing.assert_allclose(std[std > 0], 1, atol=1e-12)
    assert data.X_test is not None and data.task == "classification"
    assert data.success.kind == "accuracy" and data.success.split == "test"
    train_share = data.Y_train.mean(axis=0)
    test_share = data.Y_test.mean(axis=0)
    np.testing.assert_allclose(train_share, test_share, atol=0.05)  # stratified
    one_hot = data.Y_train.shape[1] > 1
    assert (data.output_activation, data.loss) == (("softmax", "cross_entropy") if one_hot else ("sigmoid", "bce"))


def test_split_is_seeded_and_a_property_of_the_dataset():
    a, b = datasets.load("moons"), datasets.load("moons", split_seed=0)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    c = datasets.load("moons", split_seed=1)
    assert not np.array_equal(a.X_train, c.X_train)
    assert not a.X_train.flags.writeable  # cached arrays are read-only


def test_diabetes_is_a_standardized_regression():
    data = datasets.load("diabetes")
    assert data.task == "regression" and (data.output_activation, data.loss) == ("identity", "mse")
    np.testing.assert_allclose(data.Y_train.mean(), 0, atol=1e-12)
    np.testing.assert_allclose(data.Y_train.std(), 1, atol=1e-12)
    assert data.success == Success("loss", "test", 0.28)


def test_40_20_40_rule():
    Y = np.array([[0.0], [1.0]])
    out = np.array([[[0.4], [0.6]], [[0.41], [0.9]], [[0.0], [0.59]], [[np.nan], [1.0]]])
    np.testing.assert_array_equal(datasets.within_40_20_40(out, Y), [True, False, False, False])


def test_accuracy_for_each_output_kind():
    one_hot = np.eye(3)[[0, 1, 2, 1]]
    out = np.array([[[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1]]])
    np.testing.assert_allclose(datasets.accuracy(out, one_hot, "classification"), [0.75])
    binary = np.array([[1.0], [0.0]])
    np.testing.assert_allclose(datasets.accuracy(np.array([[[0.7], [0.6]]]), binary, "classification"), [0.5])
    multi = np.array([[1.0, 0.0], [1.0, 1.0]])  # not one-hot: every output must be right
    np.testing.assert_allclose(datasets.accuracy(np.array([[[0.9, 0.1], [0.9, 0.4]]]), multi, "classification"), [0.5])
    assert np.isnan(datasets.accuracy(out, one_hot, "regression")[0])


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("parity", {"n_bits": 1}, r"n_bits must be in \[2, 16\], got 1"),
        ("parity", {"nbits": 3}, "unknown parameter 'nbits' for dataset 'parity' \\(did you mean 'n_bits'\\?\\)"),
        ("parity", {"n_bits": 3.5}, "parameter 'n_bits' of dataset 'parity' must be int, got 3.5"),
        ("moons", {"test_size": 0.9}, r"test_size must be in \[0.05, 0.5\]"),
    ],
)
def test_bad_parameters_are_named(name, params, message):
    with pytest.raises(ValueError, match=message):
        datasets.load(name, **params)


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(KeyError, match="did you mean 'two_spirals'"):
        datasets.load("two_spiral")


def test_success_on_a_missing_test_split_is_refused():
    data = datasets.load("xor")
    with pytest.raises(ValueError, match="has no test split"):
        Dataset(**{**data.__dict__, "success": Success("accuracy", "test", 0.9)})
