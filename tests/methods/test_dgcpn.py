import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmhbench.datasets.synthetic import SyntheticConfig, generate
from cmhbench.methods import create
from cmhbench.methods.dgcpn import (dgcpn_loss, fused_features, graph_target, neighbour_coherence,
                                    neighbour_lists, pair_term, sign_codes)


def _cos(a):
    a = np.asarray(a, dtype=np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    return a @ a.T


IMAGE = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 1.0, 1.3], [2.0, 0.1, 1.9], [0.0, 0.2, 3.0]])
TEXT = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.2], [0.3, 1.0]])


def test_fused_cosines_weight_the_modalities():
    z = fused_features(torch.tensor(IMAGE, dtype=torch.float32), torch.tensor(TEXT, dtype=torch.float32), 0.01)
    expected = 0.99 * _cos(IMAGE) + 0.01 * _cos(TEXT)
    assert np.allclose((z @ z.T).numpy(), expected, atol=1e-6)


def _dense_neighbours(C, k):
    """Brute force: each row keeps its k largest entries (clipped at 0), zeros elsewhere."""
    g = np.zeros_like(C)
    for i, row in enumerate(C):
        top = np.argsort(-row, kind="stable")[:k]
        g[i, top] = np.maximum(row[top], 0)
    return g


def test_neighbour_lists_and_coherence_against_brute_force():
    z = fused_features(torch.tensor(IMAGE, dtype=torch.float32), torch.tensor(TEXT, dtype=torch.float32), 0.01)
    C = (z @ z.T).double().numpy()
    k = 3
    idx, w = neighbour_lists(z, k)
    assert idx.shape == (5, 3) and w.shape == (5, 3)
    assert (idx[:, 0] == torch.arange(5)).all()  # an item is its own nearest neighbour
    small_blocks = neighbour_lists(z, k, block_floats=5)  # one row per block: same lists
    assert torch.equal(small_blocks[0], idx) and torch.allclose(small_blocks[1], w)
    g = _dense_neighbours(C, k)
    expected = _cos(g)
    assert np.allclose(neighbour_coherence(idx, w, 5).numpy(), expected, atol=1e-6)
    # a batch: the coherence of rows [4, 1] uses the same global neighbour lists
    rows = torch.tensor([4, 1])
    assert np.allclose(neighbour_coherence(idx[rows], w[rows], 5).numpy(), expected[np.ix_([4, 1], [4, 1])],
                       atol=1e-6)
    assert neighbour_lists(z, 99)[0].shape == (5, 5)  # K is capped at n


def test_graph_target_is_the_papers_mix():
    z = fused_features(torch.tensor(IMAGE, dtype=torch.float32), torch.tensor(TEXT, dtype=torch.float32), 0.01)
    idx, w = neighbour_lists(z, 3)
    G = neighbour_coherence(idx, w, 5)
    S = graph_target(z, G, 0.3)
    C = 0.99 * _cos(IMAGE) + 0.01 * _cos(TEXT)
    expected = 2 * (0.7 * C + 0.3 * G.double().numpy()) - 1
    assert np.allclose(S.numpy(), expected, atol=1e-6)
    assert np.allclose(np.diag(S.numpy()), 1.0, atol=1e-6)


def test_model_target_of_a_batch_matches_the_whole_set():
    model = create("dgcpn", params={"knn": 3, "hidden": 8}, device="cpu")
    x, y = torch.tensor(IMAGE, dtype=torch.float32), torch.tensor(TEXT, dtype=torch.float32)

    class Train:
        n = 5

    model._prepare(x, y, Train())
    assert model.knn_used_ == 3
    rows = torch.tensor([3, 0, 2])
    g = _dense_neighbours(0.99 * _cos(IMAGE) + 0.01 * _cos(TEXT), 3)
    C = 0.99 * _cos(IMAGE) + 0.01 * _cos(TEXT)
    full = 2 * (0.7 * C + 0.3 * _cos(g)) - 1
    assert np.allclose(model._target(rows).numpy(), full[np.ix_([3, 0, 2], [3, 0, 2])], atol=1e-6)


def test_loss_terms_match_the_formulas():
    torch.manual_seed(0)
    b_img = F.normalize(torch.randn(4, 6), dim=1)
    b_txt = F.normalize(torch.randn(4, 6), dim=1)
    h_img = sign_codes(torch.randn(4, 6))
    h_txt = sign_codes(torch.randn(4, 6))
    assert torch.allclose(h_img.abs(), torch.full((4, 6), 1 / math.sqrt(6)))
    S = torch.rand(4, 4) * 2 - 1
    mse = lambda p: ((p - S) ** 2).mean()  # noqa: E731
    pair = lambda a, b: (((a * b).sum(1) - 1.5) ** 2).mean()  # noqa: E731
    loss, terms = dgcpn_loss(b_img, b_txt, h_img, h_txt, S, pair_target=1.5, intra_weight=0.5, pair_weight=2.0,
                             binary_weight=3.0)
    intra = mse(b_img @ b_img.T) + mse(b_txt @ b_txt.T)
    inter = mse(b_img @ b_txt.T)
    hb = mse(b_img @ h_txt.T) + mse(h_img @ b_txt.T) + pair(b_img, h_txt) + pair(h_img, b_txt)
    assert torch.allclose(loss, 0.5 * intra + inter + 2.0 * pair(b_img, b_txt) + 3.0 * hb, atol=1e-6)
    assert terms["pair"] == pytest.approx(pair_term(b_img, b_txt, 1.5).item(), rel=1e-6)
    assert terms["half_binary"] == pytest.approx(hb.item(), rel=1e-6)


def test_each_network_learns_against_the_others_sign_codes():
    """With only the half-binary terms, each network's gradient is that of its own real
    codes against the other's (constant) sign codes."""
    model = create("dgcpn", params={"hidden": 8, "intra_weight": 0.0, "pair_weight": 0.0}, device="cpu")
    torch.manual_seed(0)
    model.image_net_, model.text_net_ = torch.nn.Linear(3, 4), torch.nn.Linear(2, 4)
    S = torch.rand(5, 5) * 2 - 1
    model._target = lambda rows: S
    x, y = torch.rand(5, 3), torch.rand(5, 2)
    loss, _ = model._batch_loss(1, torch.arange(5), x, y)
    loss.backward()
    grads = [p.grad.clone() for p in model.image_net_.parameters()]
    for p in [*model.image_net_.parameters(), *model.text_net_.parameters()]:
        p.grad = None
    a = math.sqrt(2.0)
    b_img = F.normalize(torch.tanh(a * model.image_net_(x)), dim=1)
    with torch.no_grad():
        b_txt = F.normalize(torch.tanh(a * model.text_net_(y)), dim=1)
        h_txt = torch.where(model.text_net_(y) >= 0, 1.0, -1.0) / 2.0
    own = (F.mse_loss(b_img @ b_txt.T, S) + F.mse_loss(b_img @ h_txt.T, S)
           + (((b_img * h_txt).sum(1) - 1.5) ** 2).mean())
    own.backward()
    for got, want in zip(grads, model.image_net_.parameters()):
        assert torch.allclose(got, want.grad, atol=1e-6)


def test_fit_reports_k_and_drops_the_graph():
    ds = generate(SyntheticConfig(n_items=600, n_query=50, n_train=400))
    train = ds.paired(np.arange(400))
    model = create("dgcpn", params={"epochs": 6, "hidden": 64, "knn": 50}, device="cpu").fit(train, 32)
    assert model.fit_report()["knn"] == 50
    assert not any(hasattr(model, name) for name in ("_z", "_nbr_idx", "_nbr_w"))
    history = model.loss_history_["loss"]
    assert history.shape == (6,) and history[-1] < history[0]
    assert create("dgcpn", params={"epochs": 1, "hidden": 8}, device="cpu").fit(train, 8).fit_report()["knn"] == 400
