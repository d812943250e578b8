import numpy as np
import pytest

from cmhbench.methods import PairedFeatures, ResourceError, create
from cmhbench.methods import base as base_module
from cmhbench.methods._shallow import knn_laplacian, ridge_solve
from cmhbench.methods.imh import bottom_eigenvectors, imh_matrix, regression_residual


def test_knn_laplacian_of_points_on_a_line():
    # 0, 1, 3, 7 on a line, k = 1: nearest neighbours 0→1, 1→0, 3→1, 7→3.
    L = knn_laplacian(np.array([[0.0], [1.0], [3.0], [7.0]]), 1).toarray()
    W = np.array([[0, 1, 0, 0], [1, 0, 0.5, 0], [0, 0.5, 0, 0.5], [0, 0, 0.5, 0]])
    assert np.allclose(L, np.diag(W.sum(1)) - W)


def test_regression_residual_is_the_optimal_ridge_loss():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4))
    Y = rng.standard_normal((30, 3))
    W = ridge_solve(X, Y, 0.7)
    best = np.sum((X @ W - Y) ** 2) + 0.7 * np.sum(W ** 2)
    assert np.isclose(np.trace(Y.T @ regression_residual(X, 0.7) @ Y), best)
    # and W zeroes the gradient of the ridge loss
    assert np.allclose(X.T @ (X @ W - Y) + 0.7 * W, 0, atol=1e-10)


def test_bottom_eigenvectors_skip_the_constant_vector():
    rng = np.random.default_rng(1)
    X1 = rng.standard_normal((40, 5))
    X2 = rng.standard_normal((40, 3))
    X1 -= X1.mean(0)
    X2 -= X2.mean(0)
    D = imh_matrix(X1, X2, 4, 1.0, 1.0)
    assert np.allclose(D @ np.ones(40), 2.0 * np.ones(40))  # 1 is an eigenvector (eigenvalue 2)
    Y, values = bottom_eigenvectors(D, 6)
    assert np.allclose(Y.T @ Y, np.eye(6), atol=1e-10)
    assert np.allclose(D @ Y, Y * values, atol=1e-9)
    assert np.allclose(Y.sum(0), 0, atol=1e-9)  # orthogonal to the constant vector
    w, V = np.linalg.eigh(D)
    constant = np.argmax(np.abs(V.T @ np.ones(40)))
    assert np.allclose(values, np.delete(w, constant)[:6])  # the smallest ones, 1 left out


def test_more_bits_than_eigenvectors_pads_with_constant_bits():
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((12, 3)), rng.standard_normal((12, 2))
    model = create("imh", params={"k": 3}).fit(PairedFeatures(X, Y), 20)
    codes = model.encode_image(X)
    assert codes.shape == (12, 20)
    assert np.all(codes[:, 11:] == 1)  # n − 1 = 11 informative eigenvectors


def test_two_clusters_get_separated_and_paired_codes_agree():
    rng = np.random.default_rng(3)
    side = np.repeat([-1.0, 1.0], 60)
    X = np.outer(side, rng.standard_normal(6)) + 0.3 * rng.standard_normal((120, 6))
    Y = np.outer(side, rng.standard_normal(4)) + 0.3 * rng.standard_normal((120, 4))
    model = create("imh").fit(PairedFeatures(X, Y), 8)
    bi, bt = model.encode_image(X), model.encode_text(Y)
    first = bi[:, 0]  # the first bit splits the clusters
    assert abs(np.corrcoef(first, side)[0, 1]) > 0.95
    assert (bi[:, 0] == bt[:, 0]).mean() > 0.95


def test_subsample_above_max_train_is_recorded_and_seed_free():
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((300, 5)), rng.standard_normal((300, 3))
    a = create("imh", params={"max_train": 100}, seed=0).fit(PairedFeatures(X, Y), 8)
    b = create("imh", params={"max_train": 100}, seed=9).fit(PairedFeatures(X, Y), 8)
    assert a.train_rows_ == 100
    assert np.array_equal(a.encode_text(Y), b.encode_text(Y))


def test_refuses_a_graph_that_does_not_fit_in_memory(monkeypatch):
    monkeypatch.setattr(base_module, "available_memory_bytes", lambda: 10_000)
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((100, 5)), rng.standard_normal((100, 3))
    with pytest.raises(ResourceError):
        create("imh").fit(PairedFeatures(X, Y), 8)
