import numpy as np
import pytest

from cmhbench.methods import PairedFeatures, create
from cmhbench.methods.cmfh import objective, projection_solver, update_U, update_V

LAM, MU, GAMMA = 0.5, 100.0, 0.01


@pytest.fixture
def blocks():
    rng = np.random.default_rng(0)
    c, n = 3, 25
    X1, X2 = rng.standard_normal((6, n)), rng.standard_normal((4, n))
    return dict(X1=X1, X2=X2, U1=rng.random((6, c)), U2=rng.random((4, c)), V=rng.random((c, n)),
                P1=rng.random((c, 6)), P2=rng.random((c, 4)))


def _grad(b, name):
    R1, R2 = b["X1"] - b["U1"] @ b["V"], b["X2"] - b["U2"] @ b["V"]
    E1, E2 = b["V"] - b["P1"] @ b["X1"], b["V"] - b["P2"] @ b["X2"]
    return {
        "U1": -2 * LAM * R1 @ b["V"].T + 2 * GAMMA * b["U1"],
        "U2": -2 * (1 - LAM) * R2 @ b["V"].T + 2 * GAMMA * b["U2"],
        "V": -2 * LAM * b["U1"].T @ R1 - 2 * (1 - LAM) * b["U2"].T @ R2 + 2 * MU * (E1 + E2) + 2 * GAMMA * b["V"],
        "P1": -2 * MU * E1 @ b["X1"].T + 2 * GAMMA * b["P1"],
        "P2": -2 * MU * E2 @ b["X2"].T + 2 * GAMMA * b["P2"],
    }[name]


def _J(b):
    return objective(b["X1"], b["X2"], b["U1"], b["U2"], b["V"], b["P1"], b["P2"], LAM, MU, GAMMA)


def test_each_closed_form_update_zeroes_its_gradient_and_lowers_J(blocks):
    b = blocks
    steps = {
        "U1": lambda: update_U(b["X1"], b["V"], LAM, GAMMA),
        "U2": lambda: update_U(b["X2"], b["V"], 1 - LAM, GAMMA),
        "V": lambda: update_V(b["X1"], b["X2"], b["U1"], b["U2"], b["P1"], b["P2"], LAM, MU, GAMMA),
        "P1": lambda: b["V"] @ projection_solver(b["X1"], MU, GAMMA),
        "P2": lambda: b["V"] @ projection_solver(b["X2"], MU, GAMMA),
    }
    for name, step in steps.items():
        before = _J(b)
        b[name] = step()
        scale = np.abs(_grad(b, name)).max() / max(1.0, np.abs(b[name]).max() * MU)
        assert scale < 1e-8, name
        assert _J(b) <= before + 1e-9, name


def test_fit_objective_never_increases_and_stops_when_it_settles():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((200, 3))
    X = z @ rng.standard_normal((3, 12)) + 0.1 * rng.standard_normal((200, 12))
    Y = z @ rng.standard_normal((3, 5)) + 0.1 * rng.standard_normal((200, 5))
    model = create("cmfh", seed=0).fit(PairedFeatures(X, Y), 8)
    J = model.objective_
    assert np.all(np.diff(J) <= 1e-9 * J[:-1])
    assert model.n_iter_ == J.size <= 50  # the cap
    settled = create("cmfh", seed=0, params={"tol": 1e-2}).fit(PairedFeatures(X, Y), 8)
    assert settled.n_iter_ < 50  # relative decrease below tol: stop
    last = settled.objective_[-2:]
    assert last[0] - last[1] <= 1e-2 * last[0]


def test_pair_code_is_the_latent_factor_of_the_item():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((300, 4))
    X = z @ rng.standard_normal((4, 10)) + 0.1 * rng.standard_normal((300, 10))
    Y = z @ rng.standard_normal((4, 6)) + 0.1 * rng.standard_normal((300, 6))
    model = create("cmfh", seed=0).fit(PairedFeatures(X, Y), 16)
    pair = model.encode_pair(X, Y)
    # The pair code uses both modalities: it agrees with each modality's code more than
    # those agree with each other, and changing the text changes it.
    bi, bt = model.encode_image(X), model.encode_text(Y)
    assert (pair == bi).mean() > 0.8 and (pair == bt).mean() > 0.8
    assert not np.array_equal(pair, model.encode_pair(X, Y[::-1]))


def test_seed_changes_the_start_and_lam_is_checked():
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((50, 6)), rng.standard_normal((50, 4))
    with pytest.raises(ValueError):
        create("cmfh", params={"lam": 1.0}).fit(PairedFeatures(X, Y), 8)


@pytest.mark.parametrize("bits", [1, 7, 64])
def test_more_bits_than_text_features(bits):
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((80, 6)), rng.standard_normal((80, 3))
    model = create("cmfh", preset="quick").fit(PairedFeatures(X, Y), bits)
    assert model.encode_pair(X, Y).shape == (80, bits)
