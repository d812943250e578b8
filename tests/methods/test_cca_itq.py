import numpy as np

from cmhbench.methods import PairedFeatures, create
from cmhbench.methods.cca_itq import cca, itq


def test_cca_finds_the_shared_direction():
    rng = np.random.default_rng(0)
    z = rng.standard_normal(4000)
    X = np.column_stack([rng.standard_normal(4000), z + 0.1 * rng.standard_normal(4000), rng.standard_normal(4000)])
    Y = np.column_stack([rng.standard_normal(4000), -2 * z + 0.1 * rng.standard_normal(4000)])
    X -= X.mean(0)
    Y -= Y.mean(0)
    Wx, Wy, rho = cca(X, Y, 1, 1e-6)
    assert rho[0] > 0.98
    assert abs(Wx[1, 0]) > 10 * max(abs(Wx[0, 0]), abs(Wx[2, 0]))
    assert abs(Wy[1, 0]) > 10 * abs(Wy[0, 0])
    assert np.corrcoef(X @ Wx[:, 0], Y @ Wy[:, 0])[0, 1] > 0.98


def test_itq_rotation_is_orthogonal_and_lowers_quantisation_error():
    rng = np.random.default_rng(1)
    V = rng.standard_normal((500, 8)) * np.linspace(3, 0.5, 8)
    R = itq(V, 50, rng)
    assert np.allclose(R @ R.T, np.eye(8), atol=1e-8)
    err = lambda M: np.linalg.norm(np.sign(M) - M)  # noqa: E731
    assert err(V @ R) < err(V)


def test_more_bits_than_canonical_directions_gives_consistent_codes():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((300, 3))
    X = z @ rng.standard_normal((3, 20)) + 0.05 * rng.standard_normal((300, 20))
    Y = z @ rng.standard_normal((3, 3)) + 0.05 * rng.standard_normal((300, 3))
    model = create("cca-itq", seed=0).fit(PairedFeatures(X, Y), 64)
    bi, bt = model.encode_image(X), model.encode_text(Y)
    assert bi.shape == (300, 64)
    # All 64 bits come from the same 3-d shared space, so image and text codes agree far
    # more often than the 50% of unrelated bits.
    assert (bi == bt).mean() > 0.75
