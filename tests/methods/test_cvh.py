import numpy as np
import pytest

from cmhbench.methods import PairedFeatures, create
from cmhbench.methods.cca_itq import cca, ridge_covariance
from cmhbench.methods.cvh import cvh_projections


def _correlated(n=400, dx=7, dy=4, latent=2, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, latent))
    X = z @ rng.standard_normal((latent, dx)) + 0.3 * rng.standard_normal((n, dx))
    Y = z @ rng.standard_normal((latent, dy)) + 0.3 * rng.standard_normal((n, dy))
    return X - X.mean(0), Y - Y.mean(0)


def _blocks(X, Y, reg):
    dx, dy = X.shape[1], Y.shape[1]
    Cxy = X.T @ Y / (X.shape[0] - 1)
    A = np.block([[np.zeros((dx, dx)), Cxy], [Cxy.T, np.zeros((dy, dy))]])
    B = np.block([[ridge_covariance(X, reg), np.zeros((dx, dy))], [np.zeros((dy, dx)), ridge_covariance(Y, reg)]])
    return A, B


def test_every_column_solves_the_generalized_eigenproblem_in_decreasing_order():
    X, Y = _correlated()
    Wx, Wy, values = cvh_projections(X, Y, 11, 1e-4)  # all dx + dy = 11 eigenvectors
    A, B = _blocks(X, Y, 1e-4)
    W = np.vstack([Wx, Wy])
    assert np.allclose(A @ W, (B @ W) * values, atol=1e-9)
    assert np.all(np.diff(values) <= 1e-12)
    gram = W.T @ B @ W  # B-orthogonal eigenvectors
    assert np.allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-9)
    assert np.all(np.diag(gram) > 0)


def test_top_eigenvalues_are_the_canonical_correlations():
    X, Y = _correlated()
    _, _, values = cvh_projections(X, Y, 4, 1e-4)
    _, _, rho = cca(X, Y, 4, 1e-4)
    assert np.allclose(values, rho)
    assert values[0] > 0.9  # the shared latent factors are found


def test_zero_eigenspace_bits_are_constant_in_the_view_that_projects_to_zero():
    X, Y = _correlated(dx=7, dy=4)
    Wx, Wy, values = cvh_projections(X, Y, 8, 1e-4)
    # k = min(dx, dy) = 4 canonical pairs, then the 3 image-only zero eigenvectors, then
    # the most negative-but-smallest eigenvalue −ρ_4 (an anti-correlated pair).
    assert np.all(values[:4] > 0) and np.allclose(values[4:7], 0) and values[7] < 0
    assert np.all(Wy[:, 4:7] == 0)
    assert np.all(np.linalg.norm(Wx[:, 4:7], axis=0) > 0)
    assert np.allclose(values[7], -values[3])


def test_bits_beyond_all_eigenvectors_are_zero_columns():
    X, Y = _correlated(dx=3, dy=2)
    Wx, Wy, values = cvh_projections(X, Y, 9, 1e-4)
    assert Wx.shape == (3, 9) and Wy.shape == (2, 9)
    assert np.all(Wx[:, 5:] == 0) and np.all(Wy[:, 5:] == 0) and np.all(values[5:] == 0)


def test_codes_agree_across_modalities_on_the_canonical_bits_and_text_is_constant_after():
    X, Y = _correlated(n=600, dx=12, dy=3, latent=3, seed=1)
    model = create("cvh").fit(PairedFeatures(X, Y), 10)
    bi, bt = model.encode_image(X), model.encode_text(Y)
    assert (bi[:, :3] == bt[:, :3]).mean() > 0.85
    assert np.all(bt[:, 3:] == 1)  # text projection exactly 0 → +1
    assert model.train_rows_ == 600


def test_seed_is_ignored():
    X, Y = _correlated()
    a = create("cvh", seed=0).fit(PairedFeatures(X, Y), 16)
    b = create("cvh", seed=5).fit(PairedFeatures(X, Y), 16)
    assert np.array_equal(a.encode_image(X), b.encode_image(X))


@pytest.mark.parametrize("bits", [1, 3, 200])
def test_any_bit_length(bits):
    X, Y = _correlated()
    model = create("cvh").fit(PairedFeatures(X, Y), bits)
    assert model.encode_text(Y).shape == (X.shape[0], bits)
