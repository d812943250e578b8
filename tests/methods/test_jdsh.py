import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmhbench.datasets.synthetic import SyntheticConfig, generate
from cmhbench.methods import create
from cmhbench.methods.jdsh import dsdw, estimate_dsdw, joint_modal_similarity

CONSTANTS = dict(loc=-0.49, scale_left=0.019, scale_right=0.088, s_min=-0.52, s_max=0.68,
                 a=2.0, b=4.0, l1=0.1, l2=0.2, mu=1.4)


def test_joint_modal_fusion_on_a_small_case():
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    s_i = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    c = float(2 / np.sqrt(2) - 1)
    s_t = torch.tensor([[1.0, c], [c, 1.0]])
    high = F.normalize(s_i, dim=1) @ F.normalize(s_t, dim=1).T
    expected = 0.5 * s_i + 0.1 * s_t + 0.4 * (high + high.T) / 2
    assert torch.allclose(joint_modal_similarity(image, text, 0.5, 0.1, 0.4), expected, atol=1e-6)


def test_each_dsdw_branch():
    left = -0.49 - 2 * 0.019   # -0.528
    right = -0.49 + 4 * 0.088  # -0.138
    S = torch.tensor([-0.6, -0.3, 0.5])  # below left, between, above right
    out = dsdw(S, **CONSTANTS)
    assert S[0] < left and left < S[1] < right and S[2] > right
    assert out[0].item() == pytest.approx(1.4 * (1 + 0.1 * np.exp(-(-0.6 + 0.52))) * -0.6, rel=1e-6)
    assert out[1].item() == pytest.approx(1.4 * -0.3, rel=1e-6)
    assert out[2].item() == pytest.approx(1.4 * (1 + 0.2 * np.exp(0.5 - 0.68)) * 0.5, rel=1e-6)


def _split_normal(rng, loc, left, right, n):
    """Two-piece normal: each side of the mode a half-normal of its own scale, mass ∝ scale."""
    side = rng.random(n) < left / (left + right)
    z = np.abs(rng.standard_normal(n))
    return np.where(side, loc - left * z, loc + right * z)


@pytest.mark.parametrize("loc, left, right", [(-0.49, 0.019, 0.088), (-0.62, 0.0128, 0.086), (0.1, 0.05, 0.05)])
def test_estimator_recovers_a_known_distribution(loc, left, right):
    values = _split_normal(np.random.default_rng(0), loc, left, right, 200_000)
    est = estimate_dsdw(values)
    assert est["loc"] == pytest.approx(loc, abs=0.15 * min(left, right) + 0.004)
    assert est["scale_left"] == pytest.approx(left, rel=0.12)
    assert est["scale_right"] == pytest.approx(right, rel=0.12)
    assert est["s_min"] == pytest.approx(np.quantile(values, 0.001))
    assert est["s_max"] == pytest.approx(np.quantile(values, 0.999))


def test_loss_matches_the_formula():
    model = create("jdsh", params={"hidden": 8}, dataset="mirflickr25k", device="cpu")
    model.dsdw_ = {k: CONSTANTS[k] for k in ("loc", "scale_left", "scale_right", "s_min", "s_max")}
    torch.manual_seed(0)
    model.image_net_ = torch.nn.Linear(3, 4)
    model.text_net_ = torch.nn.Linear(2, 4)
    x, y = torch.rand(6, 3), torch.rand(6, 2)
    loss, _ = model._batch_loss(0, torch.arange(6), x, y)
    bi = F.normalize(torch.tanh(model.image_net_(x)), dim=1)
    bt = F.normalize(torch.tanh(model.text_net_(y)), dim=1)
    S = dsdw(joint_modal_similarity(x, y, 0.5, 0.1, 0.4), **CONSTANTS)
    mse = lambda p: ((p - S) ** 2).mean()  # noqa: E731
    expected = (0.1 * mse(bi @ bi.T) + mse(bi @ bt.T) + mse(bt @ bi.T) - (bi * bt).sum(1).mean()
                + 0.1 * mse(bt @ bt.T))
    assert torch.allclose(loss, expected, atol=1e-6)


def test_constants_are_estimated_where_not_given_and_reported():
    ds = generate(SyntheticConfig(n_items=500, n_query=50, n_train=300))
    train = ds.paired(np.arange(300))
    model = create("jdsh", params={"epochs": 1, "hidden": 16, "loc": -0.3}, device="cpu").fit(train, 16)
    report = model.fit_report()
    assert report["dsdw"]["loc"] == -0.3
    assert report["dsdw_source"] == {"loc": "given", "scale_left": "estimated", "scale_right": "estimated",
                                     "s_min": "estimated", "s_max": "estimated"}
    assert report["dsdw"]["s_min"] < report["dsdw"]["s_max"]


def test_constants_are_estimated_on_mirflickr_too_unless_the_authors_are_asked_for():
    ds = generate(SyntheticConfig(n_items=500, n_query=50, n_train=300))
    train = ds.paired(np.arange(300))
    params = {"epochs": 1, "hidden": 16}
    default = create("jdsh", dataset="mirflickr25k", params=params, device="cpu").fit(train, 16)
    assert set(default.fit_report()["dsdw_source"].values()) == {"estimated"}
    authors = create("jdsh", dataset="mirflickr25k", params={**params, "dsdw_constants": "authors-mirflickr25k"},
                     device="cpu").fit(train, 16)
    assert authors.fit_report()["dsdw"] == {"loc": -0.49, "scale_left": 0.019, "scale_right": 0.088,
                                            "s_min": -0.52, "s_max": 0.68}
    assert set(authors.fit_report()["dsdw_source"].values()) == {"authors-mirflickr25k"}
    with pytest.raises(ValueError, match="dsdw_constants"):
        create("jdsh", params={**params, "dsdw_constants": "flickr"}, device="cpu")


def _linear_shapes(net):
    return [(m.in_features, m.out_features) for m in net.modules() if isinstance(m, torch.nn.Linear)]


def test_image_network_is_djsrhs_two_layer_stand_in_by_default_and_linear_on_request():
    # the authors fine-tune AlexNet below fc7 (no_grad commented out), so the stand-in stays
    ds = generate(SyntheticConfig(n_items=300, n_query=50, n_train=200))
    train = ds.paired(np.arange(200))
    params = {"epochs": 1, "hidden": 16}
    model = create("jdsh", params=params, device="cpu").fit(train, 16)
    djsrh = create("djsrh", params=params, device="cpu").fit(train, 16)
    two_layers = [(train.image_dim, 16), (16, 16)]
    assert _linear_shapes(model.image_net_) == _linear_shapes(djsrh.image_net_) == two_layers
    assert any(isinstance(m, torch.nn.ReLU) for m in model.image_net_.modules())
    assert model.fit_report()["image_network"] == "mlp"
    assert _linear_shapes(model.text_net_) == [(train.text_dim, 16), (16, 16)]
    linear = create("jdsh", params={**params, "image_network": "linear"}, device="cpu").fit(train, 16)
    assert isinstance(linear.image_net_, torch.nn.Linear)
    assert _linear_shapes(linear.image_net_) == [(train.image_dim, 16)]
    assert linear.fit_report()["image_network"] == "linear"
