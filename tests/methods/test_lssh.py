import numpy as np
import pytest

from cmhbench.methods import PairedFeatures, create
from cmhbench.methods._shallow import lasso_fista, lasso_objective, learn_basis
from cmhbench.methods.lssh import relative_penalty, sparse_codes, update_latent


def test_lasso_with_an_orthonormal_dictionary_is_soft_thresholding():
    x = np.array([[3.0, -0.5], [-1.0, 2.0], [0.2, -4.0]])  # two signals (columns)
    z = np.array([0.5, 1.0])
    S = lasso_fista(np.eye(3), x, z, 50)
    expected = np.sign(x) * np.maximum(np.abs(x) - z, 0)
    assert np.allclose(S, expected)


def test_lasso_meets_the_optimality_conditions():
    rng = np.random.default_rng(0)
    D = rng.standard_normal((8, 20))
    X = rng.standard_normal((8, 5))
    z = np.full(5, 0.8)
    S = lasso_fista(D, X, z, 3000)
    grad = D.T @ (D @ S - X)
    on = S != 0
    assert np.all(np.abs(grad) <= z + 1e-6)  # |∇| ≤ z everywhere
    assert np.allclose(grad[on], -(z[None, :] * np.sign(S))[on], atol=1e-6)  # = −z·sgn(s) on the support
    assert lasso_objective(D, X, z, S) < lasso_objective(D, X, z, np.zeros_like(S))


def test_columns_are_solved_independently():
    rng = np.random.default_rng(1)
    D = rng.standard_normal((6, 15))
    X = rng.standard_normal((6, 9))
    z = rng.random(9)
    whole = lasso_fista(D, X, z, 30)
    one = lasso_fista(D, X[:, 4:5], z[4:5], 30)
    assert np.allclose(whole[:, 4:5], one, atol=1e-12)


def test_relative_penalty_rho_one_zeroes_every_code():
    rng = np.random.default_rng(2)
    D = rng.standard_normal((5, 12))
    X = rng.standard_normal((5, 4))
    assert np.all(sparse_codes(D, X, 1.0, 30) == 0)  # z = ||Dᵀx||_∞ is the smallest zeroing weight
    assert np.allclose(relative_penalty(D, X, 0.5), 0.5 * np.abs(D.T @ X).max(0))


def test_basis_update_never_increases_the_error_and_keeps_unit_ball():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 40)) * 5
    S = rng.standard_normal((10, 40))
    B = rng.standard_normal((6, 10))
    B /= np.maximum(np.linalg.norm(B, axis=0), 1)
    err = lambda M: np.sum((X - M @ S) ** 2)  # noqa: E731
    previous = err(B)
    for _ in range(5):
        B = learn_basis(X, S, B)
        assert err(B) <= previous + 1e-9
        assert np.all(np.linalg.norm(B, axis=0) <= 1 + 1e-12)
        previous = err(B)


def test_basis_update_is_least_squares_when_the_constraint_is_inactive():
    rng = np.random.default_rng(4)
    S = rng.standard_normal((3, 50))
    target = 0.1 * rng.standard_normal((4, 3))  # small columns: constraint inactive
    X = target @ S
    B = learn_basis(X, S, np.zeros((4, 3)), sweeps=200)
    assert np.allclose(B, target, atol=1e-8)


def test_latent_update_zeroes_its_gradient():
    rng = np.random.default_rng(5)
    U, T, RS = rng.standard_normal((4, 6)), rng.standard_normal((4, 20)), rng.standard_normal((6, 20))
    lam, mu = 0.2, 0.05
    A = update_latent(U, T, RS, lam, mu)
    grad = 2 * lam * (A - RS) - 2 * mu * U.T @ (T - U @ A)
    assert np.allclose(grad, 0, atol=1e-10)


def _data(n=150, seed=6):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 3))
    X = z @ rng.standard_normal((3, 12)) + 0.1 * rng.standard_normal((n, 12))
    Y = z @ rng.standard_normal((3, 5)) + 0.1 * rng.standard_normal((n, 5))
    return X, Y


def test_pca_keeps_at_most_the_image_dimension_and_subsample_is_recorded():
    X, Y = _data()
    model = create("lssh", preset="quick", params={"max_train": 100}).fit(PairedFeatures(X, Y), 32)
    assert model.image_pca_.shape == (12, 12)
    assert model.train_rows_ == 100
    assert model.encode_pair(X, Y).shape == (150, 32)


def test_pair_code_combines_both_modalities():
    X, Y = _data()
    model = create("lssh", preset="quick").fit(PairedFeatures(X, Y), 16)
    pair = model.encode_pair(X, Y)
    assert not np.array_equal(pair, model.encode_pair(X, Y[::-1]))
    assert not np.array_equal(pair, model.encode_pair(X[::-1], Y))
    # codes of an item's two modalities and of the pair share most bits on shared-factor data
    assert (pair == model.encode_text(Y)).mean() > 0.6


@pytest.mark.parametrize("bits", [1, 5, 40])
def test_any_bit_length(bits):
    X, Y = _data(n=60)
    model = create("lssh", preset="quick").fit(PairedFeatures(X, Y), bits)
    assert model.encode_image(X).shape == (60, bits)
