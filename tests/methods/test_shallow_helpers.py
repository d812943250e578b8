import numpy as np
import pytest

from cmhbench.methods import PairedFeatures
from cmhbench.methods._shallow import (
    data_rng,
    kmeans,
    nearest,
    ridge_operator,
    ridge_solve,
    subsample_rows,
    unit_rows,
)


def test_subsample_rows_keeps_everything_below_the_limit_and_sorts():
    rng = np.random.default_rng(0)
    assert np.array_equal(subsample_rows(5, 10, rng), np.arange(5))
    rows = subsample_rows(100, 30, rng)
    assert rows.size == 30 and np.all(np.diff(rows) > 0)
    with pytest.raises(ValueError):
        subsample_rows(10, 1, rng)


def test_data_rng_depends_on_the_data_only():
    a = PairedFeatures(np.ones((3, 2)), np.zeros((3, 1)))
    b = PairedFeatures(np.ones((3, 2)), np.zeros((3, 1)))
    c = PairedFeatures(2 * np.ones((3, 2)), np.zeros((3, 1)))
    assert data_rng(a).random() == data_rng(b).random() != data_rng(c).random()


def test_ridge_solve_zeroes_the_gradient_and_matches_the_operator():
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((20, 4)), rng.standard_normal((20, 3))
    W = ridge_solve(A, B, 0.3)
    assert np.allclose(A.T @ (A @ W - B) + 0.3 * W, 0, atol=1e-12)
    assert np.allclose(ridge_operator(A, 0.3) @ B, W)


def test_nearest_breaks_ties_by_the_lower_index():
    A = np.array([[0.0]])
    B = np.array([[1.0], [-1.0], [1.0], [3.0]])
    assert nearest(A, B, 3).tolist() == [[0, 1, 2]]
    X = np.array([[0.0], [1.0], [2.0]])
    assert nearest(X, X, 1, exclude_self=True).tolist() == [[1], [0], [1]]


def test_kmeans_finds_separated_centres():
    rng = np.random.default_rng(2)
    Z = np.vstack([rng.normal(-5, 0.1, (50, 2)), rng.normal(5, 0.1, (50, 2))])
    centres = kmeans(Z, 2, rng)
    assert np.allclose(np.sort(centres[:, 0]), [-5, 5], atol=0.1)


def test_unit_rows_leaves_zero_rows_alone():
    out = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert np.allclose(out, [[0.6, 0.8], [0.0, 0.0]])
