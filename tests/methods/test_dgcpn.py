import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmhbench.datasets.synthetic import SyntheticConfig, generate
from cmhbench.methods import create
from cmhbench.methods.dgcpn import (consistency_term, default_scale, dgcpn_loss, epoch_batches, fused_features,
                                    graph_target, hash_network, neighbour_lists, neighbour_term,
                                    off_diagonal_mse, sign_codes)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cos(a):
    a = np.asarray(a, dtype=np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    return a @ a.T


# row 5 has negative entries, so some fused cosines are negative (exercises the clipping)
IMAGE = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 1.0, 1.3], [2.0, 0.1, 1.9], [0.0, 0.2, 3.0],
                  [-1.0, 0.5, -0.2]])
TEXT = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.2], [0.3, 1.0], [-0.5, 1.0]])
N = len(IMAGE)


def _tensors(image=IMAGE, text=TEXT):
    return torch.tensor(image, dtype=torch.float32), torch.tensor(text, dtype=torch.float32)


def _fused(image=IMAGE, text=TEXT, w=0.01):
    return (1 - w) * _cos(image) + w * _cos(text)


def _direct_neighbour_term(C, k, scale):
    """Straight from the definition: each row keeps the k − 1 most similar *other* items,
    weights max(C, 0) divided by their sum (L1), and G = scale · P Pᵀ."""
    n = len(C)
    P = np.zeros_like(C)
    for i in range(n):
        others = [j for j in np.argsort(-C[i], kind="stable") if j != i][:k - 1]
        row = np.zeros(n)
        row[others] = np.maximum(C[i, others], 0.0)
        if row.sum() > 0:
            P[i] = row / row.sum()
    return scale * P @ P.T, P


def test_fused_cosines_weight_the_modalities():
    z = fused_features(*_tensors(), 0.01)
    assert np.allclose((z @ z.T).numpy(), _fused(), atol=1e-6)


@pytest.mark.parametrize("k, scale", [(3, 7.5), (4, 8.0), (N, 1.0)])
def test_neighbour_term_against_the_direct_formula(k, scale):
    z = fused_features(*_tensors(), 0.01)
    C = _fused()
    assert (C < 0).any()  # the clipping is exercised
    idx, w = neighbour_lists(z, k)
    assert idx.shape == (N, k - 1) and w.shape == (N, k - 1)
    assert not (idx == torch.arange(N)[:, None]).any()  # an item is never its own neighbour
    assert torch.allclose(w.sum(dim=1), torch.ones(N))  # L1-normalised rows
    expected, P = _direct_neighbour_term(C, k, scale)
    got = neighbour_term(idx, w, N, scale)
    assert np.allclose(got.numpy(), expected, atol=1e-6)
    # a batch uses the global lists: rows [4, 1, 5] of the whole-set matrix
    rows = torch.tensor([4, 1, 5])
    assert np.allclose(neighbour_term(idx[rows], w[rows], N, scale).numpy(), expected[np.ix_([4, 1, 5], [4, 1, 5])],
                       atol=1e-6)
    # the search in one-row blocks finds the same lists
    small = neighbour_lists(z, k, block_floats=N)
    assert torch.equal(small[0], idx) and torch.allclose(small[1], w)


def test_neighbours_exclude_the_item_even_when_a_duplicate_ties_with_it():
    image = np.vstack([IMAGE, IMAGE[2]])  # item 6 duplicates item 2
    text = np.vstack([TEXT, TEXT[2]])
    idx, w = neighbour_lists(fused_features(*_tensors(image, text), 0.01), 2)
    assert idx[2, 0] == 6 and idx[6, 0] == 2
    assert torch.allclose(w[[2, 6], 0], torch.ones(2))


def test_a_row_without_positive_neighbours_gives_a_zero_vector():
    z = F.normalize(torch.tensor([[1.0, 0.0], [-1.0, 0.1], [-1.0, -0.1]]), dim=1)
    idx, w = neighbour_lists(z, 2)
    assert torch.equal(w[0], torch.zeros(1))  # item 0's only neighbour has a negative cosine
    G = neighbour_term(idx, w, 3, 4.0)
    assert torch.isfinite(G).all() and G[0].abs().sum() == 0 and G[1, 1] > 0


def test_graph_target_of_a_batch_matches_the_whole_set():
    model = create("dgcpn", params={"knn": 3, "knn_share": 1.0, "hidden": 8}, device="cpu")
    graph = model._graph(*_tensors())
    assert model.knn_used_ == 3 and model.scale_used_ == default_scale(3) == 6.0
    C = _fused()
    G, _ = _direct_neighbour_term(C, 3, 6.0)
    full = 2 * (0.7 * C + 0.3 * G) - 1
    rows = torch.tensor([3, 0, 2])
    assert np.allclose(graph.target(rows, 0.3).numpy(), full[np.ix_([3, 0, 2], [3, 0, 2])], atol=1e-6)
    z = fused_features(*_tensors(), 0.01)
    assert np.allclose(graph_target(z, torch.tensor(G, dtype=torch.float32), 0.3).numpy(), full, atol=1e-6)
    # an explicit scale replaces the 2K rule; K is capped at n
    model = create("dgcpn", params={"knn": 99, "knn_share": 1.0, "scale": 2.5, "hidden": 8}, device="cpu")
    graph = model._graph(*_tensors())
    assert model.knn_used_ == N and model.scale_used_ == 2.5
    G, _ = _direct_neighbour_term(C, N, 2.5)
    assert np.allclose(graph.target(torch.arange(N), 0.3).numpy(), 2 * (0.7 * C + 0.3 * G) - 1, atol=1e-6)


def test_the_scale_rule_keeps_the_coherence_of_identical_neighbourhoods_near_two():
    """s = 2K: the authors' 4000 at K = 2000, and G_ii ≈ 2 for equal weights at any K."""
    assert default_scale(2000) == 4000.0
    for k in (5, 50, 500):
        idx = torch.arange(1, k)[None, :]
        w = torch.full((1, k - 1), 1.0 / (k - 1))
        assert neighbour_term(idx, w, k, default_scale(k)).item() == pytest.approx(2 * k / (k - 1))


def _direct_loss(u, v, S, target=1.5, wp=1.0, wd=1.0, wc=1.0):
    m = u.shape[0]
    P, Q, R = u @ u.T, v @ v.T, u @ v.T
    pair = sum((R[i, i] - target) ** 2 for i in range(m)) / m
    dist = sum((A[i, j] - S[i, j]) ** 2 for A in (Q, R, P) for i in range(m) for j in range(m) if i != j) / m ** 2
    cons = sum(((A - B) ** 2).mean() for A, B in ((R, P), (R, Q), (P, Q), (R, R.T)))
    return wp * pair + wd * dist + wc * cons, pair, dist, cons


def test_loss_terms_match_the_direct_formulas():
    torch.manual_seed(0)
    u = F.normalize(torch.randn(5, 6, dtype=torch.float64), dim=1)
    v = F.normalize(torch.randn(5, 6, dtype=torch.float64), dim=1)
    S = torch.rand(5, 5, dtype=torch.float64) * 2 - 1
    loss, terms = dgcpn_loss(u, v, S, pair_target=1.5, pair_weight=0.7, distance_weight=2.0, consistency_weight=3.0)
    want, pair, dist, cons = _direct_loss(u, v, S, 1.5, 0.7, 2.0, 3.0)
    assert loss.item() == pytest.approx(want.item(), rel=1e-12)
    assert terms["pair"].item() == pytest.approx(pair.item(), rel=1e-12)
    assert terms["distance"].item() == pytest.approx(dist.item(), rel=1e-12)
    assert terms["consistency"].item() == pytest.approx(cons.item(), rel=1e-12)
    assert consistency_term(u @ u.T, v @ v.T, u @ v.T).item() == pytest.approx(cons.item(), rel=1e-12)


def test_the_diagonal_is_masked_out_of_the_distance_terms():
    torch.manual_seed(1)
    u = F.normalize(torch.randn(4, 8, dtype=torch.float64), dim=1)
    v = F.normalize(torch.randn(4, 8, dtype=torch.float64), dim=1)
    S = torch.rand(4, 4, dtype=torch.float64)
    R = u @ v.T
    masked = off_diagonal_mse(R, S)
    assert masked.item() == pytest.approx(sum((R[i, j] - S[i, j]).item() ** 2
                                              for i in range(4) for j in range(4) if i != j) / 16, rel=1e-12)
    assert masked.item() < F.mse_loss(R, S).item()  # the unmasked MSE also counts the diagonal
    # neither the target's nor the codes' diagonal reaches the distance term
    assert off_diagonal_mse(R + torch.diag(torch.rand(4, dtype=torch.float64)),
                            S + 5 * torch.eye(4, dtype=torch.float64)).item() == pytest.approx(masked.item(), rel=1e-12)
    # so the image–text diagonal is pulled only toward the paired target
    kwargs = dict(pair_target=1.5, pair_weight=1.0, distance_weight=1.0, consistency_weight=0.0)
    _, a = dgcpn_loss(u, v, S, **kwargs)
    _, b = dgcpn_loss(u, v, S + 3 * torch.eye(4, dtype=torch.float64), **kwargs)
    assert {k: x.item() for k, x in a.items()} == pytest.approx({k: x.item() for k, x in b.items()}, rel=1e-12)


class _Spy(torch.optim.SGD):
    """SGD that records, at each step, the parameters of both networks before and after it
    and the gradients it stepped with."""

    def __init__(self, name, nets, log):
        super().__init__(nets[name].parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        self.name, self.nets, self.log = name, nets, log

    def step(self, closure=None):
        before = {k: copy.deepcopy(net) for k, net in self.nets.items()}
        grads = [p.grad.clone() for p in self.nets[self.name].parameters()]
        super().step(closure)
        after = {k: copy.deepcopy(net) for k, net in self.nets.items()}
        self.log.append((self.name, before, after, grads))


def _same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def _grads(loss, net):
    return torch.autograd.grad(loss, list(net.parameters()))


def test_three_steps_per_batch_each_with_its_own_loss_and_network():
    model = create("dgcpn", params={"hidden": 8, "dropout": 0.0}, device="cpu")
    torch.manual_seed(0)
    model.image_net_ = hash_network(3, 8, 4, 0.0).double()
    model.text_net_ = hash_network(2, 8, 4, 0.0, out_std=0.3).double()
    x, y = torch.rand(5, 3, dtype=torch.float64), torch.rand(5, 2, dtype=torch.float64)
    S = torch.rand(5, 5, dtype=torch.float64) * 2 - 1
    S = (S + S.T) / 2
    log = []
    nets = {"image": model.image_net_, "text": model.text_net_}
    forwards = []
    for name, net in nets.items():
        net.register_forward_hook(lambda module, args, out, name=name: forwards.append(name))
    model._train_batch(x, y, S, _Spy("image", nets, log), _Spy("text", nets, log))
    assert [entry[0] for entry in log] == ["image", "text", "image", "text"]
    assert sorted(forwards) == ["image", "image", "text", "text"]  # (b) and (c) share one forward pass

    def relaxed(net, feats):  # tanh slope 1
        return F.normalize(torch.tanh(net(feats)), dim=1)

    def binary(net, feats):
        with torch.no_grad():
            return torch.sign(net(feats)) / 2.0  # c = 4 bits

    # (a) both networks step on the loss of both relaxed codes, from the initial networks
    _, before_a, _, grads_img_a = log[0]
    _, _, _, grads_txt_a = log[1]
    img0, txt0 = before_a["image"], before_a["text"]
    loss = _direct_loss(relaxed(img0, x), relaxed(txt0, y), S)[0]
    for got, want in zip(grads_img_a, _grads(loss, img0)):
        assert torch.allclose(got, want, atol=1e-10)
    loss = _direct_loss(relaxed(img0, x), relaxed(txt0, y), S)[0]
    for got, want in zip(grads_txt_a, _grads(loss, txt0)):
        assert torch.allclose(got, want, atol=1e-10)
    # (b) only the image network moves, against the text network's sign codes
    _, before_b, after_b, grads_b = log[2]
    assert _same(before_b["text"], after_b["text"]) and not _same(before_b["image"], after_b["image"])
    img1, txt1 = before_b["image"], before_b["text"]
    assert not _same(img1, img0) and not _same(txt1, txt0)  # (b) starts from the networks after (a)
    loss = _direct_loss(relaxed(img1, x), binary(txt1, y), S)[0]
    for got, want in zip(grads_b, _grads(loss, img1)):
        assert torch.allclose(got, want, atol=1e-10)
    # (c) only the text network moves, against the image sign codes of the forward pass of (b)
    _, before_c, after_c, grads_c = log[3]
    assert _same(before_c["image"], after_c["image"]) and not _same(before_c["text"], after_c["text"])
    assert _same(before_c["text"], txt1)
    loss = _direct_loss(binary(img1, x), relaxed(txt1, y), S)[0]
    for got, want in zip(grads_c, _grads(loss, txt1)):
        assert torch.allclose(got, want, atol=1e-10)


def test_sign_codes_are_unit_length_constants():
    h = torch.randn(4, 9, requires_grad=True)
    H = sign_codes(h)
    assert not H.requires_grad
    assert torch.allclose(H, torch.sign(h.detach()) / 3.0)


def test_networks_have_dropout_and_the_text_output_initialisation():
    torch.manual_seed(0)
    image_net = hash_network(20, 512, 64, 0.5)
    text_net = hash_network(10, 512, 64, 0.5, out_std=0.3)
    for net in (image_net, text_net):
        assert [type(layer).__name__ for layer in net] == ["Linear", "ReLU", "Dropout", "Linear"]
        assert net[2].p == 0.5
    assert text_net[-1].weight.std().item() == pytest.approx(0.3, rel=0.05)
    assert image_net[-1].weight.std().item() < 0.05  # PyTorch's default, U(±1/√512)
    x = torch.rand(3, 10)
    assert not torch.equal(text_net.train()(x), text_net(x))  # dropout is active in training
    assert torch.equal(text_net.eval()(x), text_net(x))


def test_every_item_is_in_a_batch_each_epoch():
    batches = epoch_batches(10, 4, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [4, 4, 2]  # the incomplete last batch is kept
    assert sorted(torch.cat(batches).tolist()) == list(range(10))


def test_parameters_are_checked():
    ds = generate(SyntheticConfig(n_items=120, n_query=20, n_train=50))
    train = ds.paired(np.arange(50))
    for params in ({"knn": 1}, {"knn_share": 0.0}, {"knn_share": 1.5}, {"scale": 0.0}, {"text_weight": 1.5}, {"dropout": 1.0}):
        with pytest.raises(ValueError):
            create("dgcpn", params={"epochs": 1, "hidden": 8, **params}, device="cpu").fit(train, 8)


def test_fit_reports_k_and_scale_trains_on_every_pair_and_keeps_no_graph():
    ds = generate(SyntheticConfig(n_items=600, n_query=50, n_train=400))
    train = ds.paired(np.arange(400))
    model = create("dgcpn", params={"epochs": 6, "hidden": 64, "knn": 50}, device="cpu")
    sizes = []
    step = model._train_batch

    def counting(image, text, S, *opts):
        sizes.append(len(image))
        return step(image, text, S, *opts)

    model._train_batch = counting
    model.fit(train, 32)
    report = model.fit_report()
    assert report["knn"] == 50 and report["scale"] == 100.0 and report["epochs"] == 6
    assert sizes[:13] == [32] * 12 + [16] and len(sizes) == 6 * 13  # 400 = 12·32 + 16
    assert not any(isinstance(value, torch.Tensor) and value.shape[0] == 400 for value in vars(model).values())
    history = model.loss_history_
    assert set(history) >= {"loss", "pair", "distance", "consistency", "loss_image_vs_binary", "loss_text_vs_binary"}
    assert history["loss"].shape == (6,) and history["loss"][-1] < history["loss"][0]
    codes = model.encode_image(ds.image[400:])
    assert np.array_equal(codes, model.encode_image(ds.image[400:]))  # dropout is off when encoding
    untrained = create("dgcpn", params={"epochs": 1, "hidden": 64}, device="cpu").fit(train, 32)  # one epoch barely moves them
    assert untrained.text_net_[-1].weight.std().item() == pytest.approx(0.3, rel=0.1)
    assert untrained.image_net_[-1].weight.std().item() < 0.1
    small = create("dgcpn", params={"epochs": 1, "hidden": 8}, device="cpu").fit(train, 8).fit_report()
    assert small["knn"] == 160 and small["scale"] == 320.0  # K = 0.4·n below 5,000 pairs, s = 2K
    everyone = create("dgcpn", params={"epochs": 1, "hidden": 8, "knn_share": 1.0}, device="cpu").fit(train, 8)
    assert everyone.fit_report()["knn"] == 400  # without the share, K is capped at n
    assert math.isfinite(small["final_loss"])
