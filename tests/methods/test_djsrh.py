import torch
import torch.nn.functional as F

from cmhbench.methods import create
from cmhbench.methods.djsrh import joint_semantics


def test_joint_semantics_formula_on_a_small_case():
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    # S_I = [[1, -1], [-1, 1]], S_T = all ones
    beta, eta, mu = 0.25, 0.5, 2.0
    fused = torch.tensor([[1.0, 0.5], [0.5, 1.0]])  # 0.25*S_I + 0.75*S_T
    expected = mu * ((1 - eta) * fused + eta * fused @ fused / 2)
    assert torch.allclose(joint_semantics(image, text, beta, eta, mu), expected)
    assert torch.allclose(expected, torch.tensor([[1.625, 1.0], [1.0, 1.625]]))


def test_batch_loss_matches_the_paper_formula():
    model = create("djsrh", params={"hidden": 8, "lambda1": 0.3, "lambda2": 0.7}, device="cpu")
    torch.manual_seed(0)
    model.image_net_ = torch.nn.Linear(3, 4)
    model.text_net_ = torch.nn.Linear(2, 4)
    x, y = torch.rand(5, 3), torch.rand(5, 2)
    loss, terms = model._batch_loss(2, torch.arange(5), x, y)
    a = 3 ** 0.5
    bi = F.normalize(torch.tanh(a * model.image_net_(x)), dim=1)
    bt = F.normalize(torch.tanh(a * model.text_net_(y)), dim=1)
    S = joint_semantics(x, y, model.beta, model.eta, model.mu)
    mse = lambda p: ((p - S) ** 2).mean()  # noqa: E731
    expected = 0.3 * mse(bi @ bi.T) + mse(bi @ bt.T) + 0.7 * mse(bt @ bt.T)
    assert torch.allclose(loss, expected)
    assert abs(terms["cross"].item() - mse(bi @ bt.T).item()) < 1e-6


def test_dataset_overrides_apply():
    model = create("djsrh", dataset="wikipedia")
    assert (model.beta, model.lambda1, model.epochs, model.lr_image) == (0.3, 0.3, 200, 0.01)
