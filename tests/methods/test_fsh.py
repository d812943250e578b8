import numpy as np
import pytest

from cmhbench.methods import PairedFeatures, create
from cmhbench.methods.fsh import fusion_weights, kernel, khot, relaxed_codes


def test_khot_rows_average_the_chosen_columns():
    Z = khot(np.array([[0, 2], [1, 3]]), 4)
    assert np.allclose(Z, [[0.5, 0, 0.5, 0], [0, 0.5, 0, 0.5]])


def test_kernel_is_one_on_the_diagonal_and_uses_the_mean_squared_distance():
    A = np.array([[0.0], [1.0], [3.0]])
    K = kernel(A)
    mean_sq = (1 + 9 + 4) * 2 / 6
    assert np.allclose(np.diag(K), 1)
    assert np.isclose(K[0, 2], np.exp(-9 / mean_sq))


def test_fusion_similarity_is_the_double_average_of_the_paper():
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((30, 3)), rng.standard_normal((30, 2))
    model = create("fsh", params={"k": 2, "n_anchors": 6}, preset="quick").fit(PairedFeatures(X, Y), 4)
    Xc = X - model.image_mean_
    Yc = Y - model.text_mean_
    T1, _ = model._similarities(Xc, Yc)
    ax, ay = model.image_anchors_, model.text_anchors_
    Kx = kernel(ax)
    i, j = 5, 3
    nx = np.argsort(((ax - Xc[i]) ** 2).sum(1), kind="stable")[:2]  # item's anchors in image space
    ny = np.argsort(((ay - ay[j]) ** 2).sum(1), kind="stable")[:2]  # anchor j's anchors in text space
    s = Kx[np.ix_(nx, ny)].mean()
    assert np.isclose(T1[i, j], 4 * (2 * s - 1))  # c = 4 bits, T = c(2S − 1)


def test_fusion_weights_minimise_over_the_simplex():
    P = np.array([3.0, 1.0])
    eta = fusion_weights(P, 2.0)
    grid = np.linspace(0, 1, 10001)
    values = grid ** 2 * P[0] + (1 - grid) ** 2 * P[1]
    assert np.isclose(eta[0], grid[np.argmin(values)], atol=1e-4)
    assert np.isclose(eta.sum(), 1)


def test_relaxed_code_update_zeroes_its_gradient():
    rng = np.random.default_rng(1)
    n, m, c, lam, s = 20, 7, 5, 3.0, 0.6
    T = rng.standard_normal((n, m))
    Bbar = np.where(rng.standard_normal((m, c)) > 0, 1.0, -1.0)
    P1, P2 = rng.standard_normal((n, c)), rng.standard_normal((n, c))
    B = relaxed_codes(T @ Bbar, Bbar, P1 + P2, s, lam)
    # relaxed objective: s·||T/s − B B̄ᵀ||² + λ(||B − P1||² + ||B − P2||²) (T already η-weighted)
    grad = -2 * (T - s * B @ Bbar.T) @ Bbar + 2 * lam * (2 * B - P1 - P2)
    assert np.allclose(grad, 0, atol=1e-9)


def test_anchor_count_scales_with_the_data_and_is_recorded():
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((4000, 4)), rng.standard_normal((4000, 3))
    model = create("fsh", preset="quick").fit(PairedFeatures(X, Y), 8)
    assert model.n_anchors_ == 100  # max(50, 4000 // 40)
    small = create("fsh", preset="quick").fit(PairedFeatures(X[:30], Y[:30]), 8)
    assert small.n_anchors_ == 30  # capped at n


def test_objective_decreases_overall_and_pair_codes_use_both_modalities():
    rng = np.random.default_rng(3)
    side = np.repeat([-1.0, 1.0], 100)
    X = np.outer(side, rng.standard_normal(6)) + 0.5 * rng.standard_normal((200, 6))
    Y = np.outer(side, rng.standard_normal(4)) + 0.5 * rng.standard_normal((200, 4))
    model = create("fsh", params={"n_iter": 8}).fit(PairedFeatures(X, Y), 16)
    assert model.objective_[-1] <= model.objective_[0]
    pair = model.encode_pair(X, Y)
    assert not np.array_equal(pair, model.encode_pair(X, Y[::-1]))
    # the two clusters get distinct codes: mean Hamming distance across clusters is large
    across = (pair[:100, None, :] != pair[None, 100:, :]).mean()
    within = (pair[:100, None, :] != pair[None, :100, :]).mean()
    assert across > within + 0.2


def test_r_must_exceed_one():
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((40, 3)), rng.standard_normal((40, 2))
    with pytest.raises(ValueError):
        create("fsh", params={"r": 1.0}).fit(PairedFeatures(X, Y), 4)
