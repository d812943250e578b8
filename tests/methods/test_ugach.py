import math

import numpy as np
import pytest
import torch

from cmhbench.datasets.synthetic import SyntheticConfig, generate
from cmhbench.methods import ResourceError, base, create, ugach
from cmhbench.methods.ugach import (candidate_sets, cross_knn, discriminator_loss, generator_loss, is_neighbour,
                                    pathway, pick_positives, random_non_neighbours, reward)
from cmhbench.testing import check_method

TINY = {"epochs": 2, "g_epochs": 1, "pretrain_epochs": 1, "hidden": 16, "batch_size": 4}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def train(tiny_train):
    return tiny_train


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# pre-sigmoid outputs of a fixed tiny batch: 3 queries, their positives and negatives, c = 4
Q = np.array([[0.5, -1.0, 2.0, 0.0], [1.5, 0.3, -0.2, -2.0], [-0.7, 0.8, 0.1, 1.1]])
P = np.array([[0.4, -0.8, 1.5, 0.2], [-1.0, 0.0, 0.6, -1.4], [-0.5, 1.0, 0.0, 0.9]])
N = np.array([[-2.0, 1.0, -1.0, 0.5], [1.2, 0.2, -0.1, -1.8], [2.0, -2.0, 1.0, -1.0]])


def _t(a):
    return torch.sigmoid(torch.tensor(a, dtype=torch.float64))


def _np_hinge(q, p, n, margin):
    """max(0, m + ‖φq − φp‖² − ‖φq − φn‖²) per triplet, φ the sigmoid (the paper's triplet loss)."""
    q, p, n = _sigmoid(q), _sigmoid(p), _sigmoid(n)
    return np.maximum(0.0, margin + ((q - p) ** 2).sum(1) - ((q - n) ** 2).sum(1))


@pytest.mark.parametrize("margin", [0.5, 1.0])  # 0.5: one triplet satisfies the margin (zero hinge)
def test_discriminator_loss_and_reward_match_numpy(margin):
    h = _np_hinge(Q, P, N, margin)
    assert (h == 0).any() == (margin == 0.5)
    assert discriminator_loss(_t(Q), _t(P), _t(N), margin).item() == pytest.approx(h.mean(), rel=1e-12)
    assert np.allclose(reward(_t(Q), _t(P), _t(N), margin).numpy(), _sigmoid(h), rtol=1e-12)


def test_generator_loss_matches_numpy():
    q, negs, r = Q[:1], N[:2], np.array([0.9, 0.6])
    d = ((_sigmoid(q) - _sigmoid(negs)) ** 2).sum(1)
    prob = np.exp(-d) / np.exp(-d).sum() + 1e-20
    expected = -(np.log(prob) * r).mean()
    got = generator_loss(_t(q), _t(negs), torch.tensor(r))
    assert got.item() == pytest.approx(expected, rel=1e-12)
    # the gradient raises the probability of the negative with the larger reward
    qt = _t(q).requires_grad_(True)
    negs_t = _t(negs).requires_grad_(True)
    generator_loss(qt, negs_t, torch.tensor([1.0, 0.0], dtype=torch.float64)).backward()
    step = negs_t - 0.1 * negs_t.grad
    before = ((_t(q) - _t(negs)) ** 2).sum(1)
    after = ((_t(q) - step.detach()) ** 2).sum(1)
    assert after[0] < before[0]


def test_weight_decay_is_the_authors_l2_term():
    """SGD weight decay λ equals adding λ·Σ½‖W‖² over every weight and bias to the loss."""
    torch.manual_seed(0)
    nets = (pathway(5, 7, 4, 0.1).double(), pathway(3, 7, 4, 0.1).double())
    clones = [pathway(5, 7, 4, 0.1).double(), pathway(3, 7, 4, 0.1).double()]
    for a, b in zip(nets, clones):
        b.load_state_dict(a.state_dict())
    x, y = torch.rand(2, 5, dtype=torch.float64), torch.rand(4, 3, dtype=torch.float64)

    def hinge_of(pair):
        return discriminator_loss(torch.sigmoid(pair[0](x)), torch.sigmoid(pair[1](y[:2])),
                                  torch.sigmoid(pair[1](y[2:])), 1.0)

    model = create("ugach", device="cpu")
    opt = model._sgd(nets, 0.05)
    opt.zero_grad()
    hinge_of(nets).backward()
    opt.step()
    params = [p for net in clones for p in net.parameters()]
    explicit = hinge_of(clones) + 0.01 * sum(0.5 * (p ** 2).sum() for p in params)
    grads = torch.autograd.grad(explicit, params)
    for got, p, g in zip([p for net in nets for p in net.parameters()], params, grads):
        assert torch.allclose(got, p - 0.05 * g, atol=1e-12)


def test_pathway_initialisation():
    torch.manual_seed(0)
    net = pathway(300, 500, 64, 0.1)
    assert [type(layer).__name__ for layer in net] == ["Linear", "Tanh", "Linear"]
    for layer in (net[0], net[2]):
        assert layer.weight.abs().max().item() <= 0.2 and torch.equal(layer.bias, torch.zeros_like(layer.bias))
        assert layer.weight.std().item() == pytest.approx(0.088, rel=0.05)  # σ of N(0, 0.1²) cut at 2σ


# --- the correlation graph and the sampling --------------------------------------------------------
def _np_cross_knn(x, y, k):
    def nearest(f):
        d = ((f[:, None, :] - f[None, :, :]) ** 2).sum(2)
        np.fill_diagonal(d, -np.inf)
        return np.argsort(d, axis=1, kind="stable")[:, :k // 2]
    return np.concatenate([nearest(x), nearest(y)], axis=1)


def test_cross_knn_matches_numpy(train):
    x, y = train.image[:40].astype(np.float64), train.text[:40].astype(np.float64)
    got = cross_knn(torch.from_numpy(x), torch.from_numpy(y), 10).numpy()
    want = _np_cross_knn(x, y, 10)
    assert got.shape == (40, 10)
    assert (got[:, 0] == np.arange(40)).all() and (got[:, 5] == np.arange(40)).all()  # itself first in both
    for a, b in zip(got, want):  # same sets (topk may order ties differently)
        assert set(a[:5]) == set(b[:5]) and set(a[5:]) == set(b[5:])
    small = ugach.nearest(torch.from_numpy(x), 5, block_floats=40)  # one-row blocks give the same lists
    assert torch.equal(small, ugach.nearest(torch.from_numpy(x), 5))


def test_positives_negatives_and_candidates():
    gen = torch.Generator().manual_seed(0)
    knn = torch.tensor([[0, 3, 5, 0, 3], [1, 2, 2, 4, 1], [2, 1, 0, 2, 6]])
    for _ in range(20):
        pos = pick_positives(knn, 2, gen)
        for row, picks in zip(knn.tolist(), pos.tolist()):
            assert picks[0] != picks[1] and set(picks) <= set(row)
        neg = random_non_neighbours(knn, 8, gen)
        assert not is_neighbour(neg[:, None], knn).any()
    seen = {tuple(sorted(pick_positives(knn, 2, gen)[0].tolist())) for _ in range(200)}
    assert seen == {(0, 3), (0, 5), (3, 5)}  # every pair of the set {0, 3, 5}, a repeat counting once
    cand = candidate_sets(50, 7, gen, block_floats=100)
    assert cand.shape == (50, 7) and all(len(set(r)) == 7 for r in cand.tolist())


def test_generated_negatives_avoid_the_graph(train):
    # 30 candidates per query (n/4): a non-neighbour is always among them
    model = create("ugach", params={**TINY, "sample_ratio": 4}, device="cpu")
    model.n_bits_ = 16
    with model._seeded_training(train) as run:
        image_net, text_net = model._networks(train.image_dim, train.text_dim, 16)
        model.image_net_, model.text_net_ = image_net, text_net
        model._prepare(run, train)
        knn = run.state["knn"]
        for image_query in (True, False):
            q, p, ng = model._generated_triplets(image_query, run)
            assert q.shape == (2 * train.n,) and sorted(q.tolist()) == sorted(list(range(train.n)) * 2)
            assert is_neighbour(p[:, None], knn[q]).all()
            assert not is_neighbour(ng[:, None], knn[q]).any()


# --- training ---------------------------------------------------------------------------------------
def test_schedule_counts_steps(train, monkeypatch):
    calls = {"d": 0, "g": 0}
    d_loss, g_loss = ugach.discriminator_loss, ugach.generator_loss

    def count_d(*args):
        calls["d"] += 1
        return d_loss(*args)

    def count_g(*args):
        calls["g"] += 1
        return g_loss(*args)

    monkeypatch.setattr(ugach, "discriminator_loss", count_d)
    monkeypatch.setattr(ugach, "generator_loss", count_g)
    params = {**TINY, "epochs": 2, "g_epochs": 2, "pretrain_epochs": 3, "batch_size": 7, "pretrain_batch_size": 20}
    create("ugach", params=params, device="cpu").fit(train, 16)
    n = train.n  # 120: pre-training 6 batches of 20 per direction; D 2·120 triplets in batches of 7 (35)
    assert calls["d"] == 3 * 2 * math.ceil(n / 20) + 2 * 2 * math.ceil(2 * n / 7)
    assert calls["g"] == 2 * 2 * 2 * n  # epochs × g_epochs × directions × queries


@pytest.mark.slow  # trains for seconds
def test_quick_fit_history_report_and_codes(train):
    model = create("ugach", params={"epochs": 3, "hidden": 64, "batch_size": 8, "pretrain_epochs": 2}, device="cpu")
    model.fit(train, 32)
    history = model.loss_history_
    assert {"loss", "loss_i2t", "loss_t2i", "g_loss", "reward"} <= set(history)
    assert all(v.shape == (3,) for v in history.values())
    assert ((history["reward"] >= 0.5) & (history["reward"] < 1.0)).all()  # σ of a non-negative hinge
    report = model.fit_report()
    assert report["margin"] == 4.0 and report["knn"] == 10 and report["candidates"] == 2  # c/8; n/50
    codes = model.encode_image(train.image)
    assert len({row.tobytes() for row in codes}) > train.n // 2
    assert np.array_equal(codes, np.where(model._encode_image(train.image) >= 0, 1, -1))  # D's outputs, σ ≥ ½
    assert create("ugach", params={**TINY, "margin": 0.5}, device="cpu").fit(train, 16).fit_report()["margin"] == 0.5


@pytest.mark.slow  # trains for seconds
def test_the_discriminator_loss_falls_in_training():
    ds = generate(SyntheticConfig(n_items=500, n_query=50, n_train=400))
    model = create("ugach", params={"epochs": 4, "hidden": 256, "batch_size": 8, "pretrain_epochs": 2, "g_epochs": 1},
                   device="cpu").fit(ds.paired(np.arange(400)), 16)
    assert model.loss_history_["loss"][-1] < model.loss_history_["loss"][0]


def test_parameters_are_checked(train):
    for params in ({"knn": 9}, {"knn": 2, "select": 2}):
        with pytest.raises(ValueError, match="knn"):
            create("ugach", params={**TINY, **params}, device="cpu").fit(train, 8)


def test_candidate_sets_that_would_not_fit_are_refused_up_front_with_their_size(train, monkeypatch):
    """The n²/sample_ratio candidate indices are the one buffer that grows as n²: a fit whose
    candidates exceed the free memory stops before any training, saying how much it needs."""
    monkeypatch.setattr(base, "available_memory_bytes", lambda: 2**20)
    reports = []
    with pytest.raises(ResourceError, match=rf"ugach's candidate sets \({train.n:,} × {train.n // 4:,} indices "
                                            r"per pass\) needs about [0-9.]+ GiB"):
        create("ugach", params={**TINY, "sample_ratio": 4}, device="cpu").fit(train, 8, progress=reports.append)
    assert reports == []  # refused before the first pre-training pass


def test_the_memory_estimate_counts_the_candidate_sets():
    """A GPU slot waits for the candidates too: beyond the networks and the features
    (4·n·(d_x + d_y) bytes) the estimate grows as n²/50, small at MIRFlickr's retrieval set,
    11 GB at NUS-WIDE's."""
    model = create("ugach", device="cpu")
    networks = model.gpu_memory_bytes(1, 4096, 1386, 64)
    beyond_features = [model.gpu_memory_bytes(n, 4096, 1386, 64) - networks - 4 * n * (4096 + 1386)
                       for n in (18_015, 184_577)]
    assert beyond_features[0] < 0.5e9 and beyond_features[1] > 10e9


def test_defaults_are_the_authors():
    model = create("ugach", device="cpu")
    assert (model.knn, model.select, model.sample_ratio, model.epochs, model.g_epochs, model.batch_size,
            model.hidden, model.weight_decay, model.lr_discriminator, model.lr_generator) == \
        (10, 2, 50, 30, 2, 1, 8192, 0.01, 0.001, 0.01)


@pytest.mark.slow
def test_conformance():
    check_method("ugach")
