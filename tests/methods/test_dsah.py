import numpy as np
import pytest
import torch

from cmhbench.methods import ParameterError, create, dsah, resolve_params
from cmhbench.methods.base import Hasher
from cmhbench.methods.deep import WEIGHT_COPIES
from cmhbench.methods.dsah import decoder_input, dsah_loss
from cmhbench.testing import check_method

TINY = {"epochs": 3, "hidden": 32, "batch_size": 16}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def train(tiny_train):
    return tiny_train


# a fixed tiny batch: m = 4 pairs, c = 3 bits, 5-d images, 3-d texts (texts non-negative, like tags)
RNG = np.random.default_rng(7)
X = RNG.standard_normal((4, 5))
Y = np.abs(RNG.standard_normal((4, 3)))
H_I = np.tanh(RNG.standard_normal((4, 3)))  # relaxed codes tanh(a·h)
H_T = np.tanh(RNG.standard_normal((4, 3)))
R_I = RNG.standard_normal((4, 5))  # the text codes' reconstruction of the image features
R_T = RNG.standard_normal((4, 3))  # the image codes' reconstruction of the text features


def _rownorm(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _mse(a, b):
    return float(np.mean((a - b) ** 2))


def _paper_terms(k, alpha):
    """The DSAH objective's terms written out from the equations (module docstring item 4)."""
    s_i = 2.0 * _rownorm(X) @ _rownorm(X).T - 1.0
    s_t = 2.0 * _rownorm(Y) @ _rownorm(Y).T - 1.0
    S = k * (alpha * s_i + (1.0 - alpha) * s_t)
    b_i, b_t = _rownorm(H_I), _rownorm(H_T)
    cross = b_i @ b_t.T
    return {
        "intra_text": _mse(b_t @ b_t.T, S),
        "cross": _mse(cross, S),
        "intra_image": _mse(b_i @ b_i.T, S),
        "paired": float(np.mean((np.einsum("ij,ij->i", b_i, b_t) - k) ** 2)),
        "recon_image": _mse(R_I, _rownorm(X)),
        "recon_text": _mse(R_T, _rownorm(Y)),
        "symmetry": _mse(cross, cross.T),
        "own_image": _mse(b_i @ b_i.T, k * s_i),
        "own_text": _mse(b_t @ b_t.T, k * s_t),
    }


@pytest.mark.parametrize("k, alpha, eta", [(1.5, 0.9, 0.1), (1.0, 0.3, 0.5)])
def test_loss_matches_numpy(k, alpha, eta):
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    loss, terms = dsah_loss(t(H_I), t(H_T), t(R_I), t(R_T), t(X), t(Y), k=k, alpha=alpha, eta=eta)
    expected = _paper_terms(k, alpha)
    assert {name: v.item() for name, v in terms.items()} == pytest.approx(expected, rel=1e-12)
    total = (expected["intra_text"] + expected["cross"] + expected["intra_image"] + expected["paired"]
             + expected["recon_image"] + expected["recon_text"] + 2.0 * expected["symmetry"]
             + eta * (expected["own_image"] + expected["own_text"]))
    assert loss.item() == pytest.approx(total, rel=1e-12)


def test_the_paired_term_pulls_even_identical_codes():
    """Unit-norm rows agree at most 1 < k, so identical image and text codes still cost (1 − k)²."""
    codes = torch.tensor(H_I)
    _, terms = dsah_loss(codes, codes, torch.tensor(R_I), torch.tensor(R_T), torch.tensor(X), torch.tensor(Y),
                         k=1.5, alpha=0.9, eta=0.1)
    assert terms["paired"].item() == pytest.approx(0.25, rel=1e-12)
    assert terms["symmetry"].item() == 0.0


@pytest.mark.parametrize("gradient, passes", [("none", False), ("straight-through", True)])
def test_decoder_input_is_the_sign_with_or_without_a_gradient(gradient, passes):
    codes = torch.tensor([[0.3, -0.7], [-0.1, 0.9]], requires_grad=True)
    out = decoder_input(codes, gradient)
    assert torch.equal(out.detach(), torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
    (out * torch.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    expected = torch.tensor([[1.0, 2.0], [3.0, 4.0]]) if passes else torch.zeros(2, 2)
    assert torch.equal(codes.grad, expected)


@pytest.mark.parametrize("gradient, same", [("none", True), ("straight-through", False)])
def test_reconstruction_changes_the_codes_only_with_a_straight_through_gradient(train, monkeypatch, gradient, same):
    """The authors' sgn blocks the reconstruction's gradient: dropping those terms leaves every
    code as it was; with the straight-through option they shape the hash networks."""
    def codes():
        model = create("dsah", params={**TINY, "decode_gradient": gradient}, device="cpu").fit(train, 16)
        return model.encode_image(train.image), model.encode_text(train.text)

    with_reconstruction = codes()
    monkeypatch.setitem(dsah.LOSS_WEIGHTS, "recon_image", 0.0)
    monkeypatch.setitem(dsah.LOSS_WEIGHTS, "recon_text", 0.0)
    without = codes()
    assert all(np.array_equal(a, b) for a, b in zip(with_reconstruction, without)) == same


def test_quick_fit_history_report_and_codes(train):
    model = create("dsah", preset="quick", device="cpu").fit(train, 32)
    history = model.loss_history_
    assert set(dsah.LOSS_WEIGHTS) | {"loss", "own_image", "own_text"} == set(history)
    assert history["loss"].shape == (10,) and history["loss"][-1] < history["loss"][0]
    assert model.fit_report()["decode_gradient"] == "none"
    image = model.encode_image(train.image)
    assert np.array_equal(image, np.where(model._encode_image(train.image) >= 0, 1, -1))
    assert len({row.tobytes() for row in image}) > 16


def test_optimisers_are_the_authors_nesterov_sgd_over_network_and_decoder(train):
    model = create("dsah", params={**TINY, "epochs": 1}, device="cpu").fit(train, 8)
    opts = model._optimizers()
    assert [o.defaults["nesterov"] for o in opts] == [True, True]
    assert [(o.defaults["lr"], o.defaults["momentum"], o.defaults["weight_decay"]) for o in opts] == \
        [(0.005, 0.7, 5e-4)] * 2
    image_params = {id(p) for p in opts[0].param_groups[0]["params"]}
    assert {id(p) for p in model.image_decoder_.parameters()} <= image_params
    # momentum 0 is plain SGD (torch refuses Nesterov without momentum)
    create("dsah", params={**TINY, "epochs": 1, "momentum": 0.0}, device="cpu").fit(train, 8)


def test_gpu_memory_counts_the_decoders(train):
    model = create("dsah", params={**TINY, "epochs": 1}, device="cpu").fit(train, 8)
    weights = sum(p.numel() for m in (model.image_net_, model.text_net_, model.image_decoder_, model.text_decoder_)
                  for p in m.parameters())
    args = (train.n, train.image_dim, train.text_dim, 8)
    assert model.gpu_memory_bytes(*args) - Hasher.gpu_memory_bytes(model, *args) == 4 * WEIGHT_COPIES * weights


def test_defaults_are_the_authors():
    model = create("dsah", device="cpu")
    assert (model.k, model.alpha, model.eta, model.decode_gradient, model.epochs, model.batch_size, model.hidden,
            model.lr_image, model.lr_text, model.momentum, model.weight_decay) == \
        (1.5, 0.9, 0.1, "none", 200, 32, 4096, 0.005, 0.005, 0.7, 5e-4)


@pytest.mark.parametrize("params", [{"alpha": 1.5}, {"k": 0.0}, {"eta": -0.1}, {"decode_gradient": "ste"},
                                    {"momentum": 1.0}, {"batch_size": 1}])
def test_parameter_domains_refuse_bad_values(params):
    name = next(iter(params))
    with pytest.raises(ParameterError, match=f"dsah.{name}="):
        resolve_params("dsah", params=params)


def test_a_bad_decode_gradient_given_directly_is_refused(train):
    with pytest.raises(ValueError, match="decode_gradient"):
        dsah.DSAH(**{**TINY, "decode_gradient": "ste"}, device="cpu").fit(train, 8)


@pytest.mark.slow
def test_conformance():
    check_method("dsah")
