import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmhbench.datasets.synthetic import SyntheticConfig, generate
from cmhbench.methods import PairedFeatures, create
from cmhbench.methods.ucch import (MemoryBank, contrastive_logits, contrastive_loss, hash_network,
                                   ranking_loss, sample_negatives, smooth_ranking_loss, unit_outputs)


def _unit(rows):
    a = np.asarray(rows, dtype=np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_memory_bank_update_matches_the_momentum_formula():
    bank = MemoryBank(4, 3, torch.Generator().manual_seed(0), torch.device("cpu"))
    start = bank.values.clone().numpy().astype(np.float64)
    assert np.allclose(np.abs(start), 1 / math.sqrt(3))  # random ±1/√c
    bx = torch.tensor(_unit([[1.0, 2.0, 2.0], [0.0, -1.0, 0.0]]), dtype=torch.float32)
    by = torch.tensor(_unit([[2.0, 1.0, -2.0], [1.0, 0.0, 0.0]]), dtype=torch.float32)
    rows = torch.tensor([2, 0])
    bank.update(rows, bx, by, momentum=0.4)
    fused = _unit((bx.numpy() + by.numpy()) / 2)
    expected = start.copy()
    expected[[2, 0]] = _unit(0.4 * start[[2, 0]] + 0.6 * fused)
    assert np.allclose(bank.values.numpy(), expected, atol=1e-6)
    # untouched rows stay, keys are the signs
    assert np.array_equal(bank.values[[1, 3]].numpy(), start[[1, 3]].astype(np.float32))
    assert torch.equal(bank.keys(), torch.where(bank.values >= 0, 1.0, -1.0))
    # momentum 0 (warm-up) replaces the rows by the fused outputs
    bank.update(rows, bx, by, momentum=0.0)
    assert np.allclose(bank.values[[2, 0]].numpy(), fused, atol=1e-6)


def test_contrastive_loss_matches_the_direct_formula():
    keys = torch.tensor([[1, -1, 1, 1], [-1, -1, 1, -1], [1, 1, 1, 1], [1, -1, -1, 1], [-1, 1, -1, 1]],
                        dtype=torch.float32)
    out = torch.tensor(_unit([[0.3, -0.2, 0.9, 0.1], [-0.5, 0.4, 0.2, 0.7]]), dtype=torch.float32)
    candidates = torch.tensor([[0, 1, 3, 3], [4, 0, 2, 1]])  # column 0: the positive
    tau = 0.9
    logits = contrastive_logits(out, keys, candidates, tau)
    loss = contrastive_loss(logits)
    expected = 0.0
    for i in range(2):
        z = [float(keys[j] @ out[i]) / (math.sqrt(4) * tau) for j in candidates[i].tolist()]
        assert np.allclose(logits[i].numpy(), z, atol=1e-6)
        expected += -math.log(math.exp(z[0]) / sum(math.exp(v) for v in z))
    assert loss.item() == pytest.approx(expected / 2, rel=1e-5)


def test_negatives_never_include_the_positive_and_cover_small_sets():
    g = torch.Generator().manual_seed(0)
    rows = torch.tensor([0, 3, 5])
    small = sample_negatives(rows, 6, 4096, g)
    assert small.shape == (3, 5)
    for r, negs in zip(rows.tolist(), small.tolist()):
        assert sorted(negs) == [j for j in range(6) if j != r]
    big = sample_negatives(torch.tensor([0, 500, 999]), 1000, 64, g)
    assert big.shape == (3, 64)
    assert big.min() >= 0 and big.max() <= 999
    for r, negs in zip([0, 500, 999], big.tolist()):
        assert r not in negs


def test_hinge_ranking_loss_matches_the_formula():
    bx = torch.tensor(_unit([[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1]]), dtype=torch.float32)
    by = torch.tensor(_unit([[0.8, 0.6, 0], [1, 0, 0], [0, 1, 1]]), dtype=torch.float32)
    margin = 0.2
    s = (bx @ by.T).numpy()
    i2t = [max(0.0, margin - s[i, i] + s[i, j]) for i in range(3) for j in range(3) if j != i]
    t2i = [max(0.0, margin - s[i, i] + s[j, i]) for i in range(3) for j in range(3) if j != i]
    assert ranking_loss(bx, by, margin).item() == pytest.approx(np.mean(i2t) + np.mean(t2i), rel=1e-5)
    assert np.mean(i2t) > 0  # the case exercises active hinges


def test_smooth_ranking_loss_matches_the_authors_form():
    bx = torch.tensor(_unit([[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1]]), dtype=torch.float32)
    by = torch.tensor(_unit([[0.8, 0.6, 0], [1, 0, 0], [0, 1, 1]]), dtype=torch.float32)
    margin, shift = 0.2, 0.1
    s = (bx @ by.T).numpy().astype(np.float64)
    total = 0.0
    for mat in (s, s.T):  # image queries by rows, text queries by columns
        per_query = []
        for i in range(3):
            adj = [mat[i, j] if mat[i, j] >= mat[i, i] - margin else mat[i, j] - shift for j in range(3)]
            per_query.append(math.log(sum(math.exp(a) for a in adj)) - mat[i, i] + margin)
        total += np.mean(per_query)
    assert smooth_ranking_loss(bx, by, margin, shift).item() == pytest.approx(total, rel=1e-5)


def test_networks_are_the_authors_shapes_and_outputs_unit_length():
    net = hash_network(7, 16, 3, 5)
    assert [type(m).__name__ for m in net] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert hash_network(7, 16, 2, 5)[0].out_features == 16 and len(hash_network(7, 16, 1, 5)) == 1
    out = unit_outputs(net, torch.rand(4, 7))
    assert torch.allclose(out.norm(dim=1), torch.ones(4), atol=1e-6)


def _model(**params):
    model = create("ucch", params={"hidden": 8, **params}, device="cpu")
    torch.manual_seed(0)
    model.image_net_ = torch.nn.Linear(3, 4)
    model.text_net_ = torch.nn.Linear(2, 4)
    return model


def test_batch_loss_combines_the_terms_and_updates_the_bank():
    model = _model(beta=0.7)
    g = torch.Generator().manual_seed(0)
    bank = MemoryBank(10, 4, g, torch.device("cpu"))
    x, y, rows = torch.rand(4, 3), torch.rand(4, 2), torch.tensor([1, 4, 7, 9])
    before = bank.values.clone()
    keys = bank.keys()
    loss, terms = model._batch_loss(3, rows, x, y, bank, torch.Generator().manual_seed(5))
    assert loss.item() == pytest.approx(0.7 * terms["contrastive"].item() + 0.3 * terms["ranking"].item(), rel=1e-5)
    # n − 1 = 9 < 4096: the negatives are all other pairs, so the contrastive term is exact
    bx, by = unit_outputs(model.image_net_, x), unit_outputs(model.text_net_, y)
    expected = 0.0
    for b in (bx, by):
        logits = b @ keys.T / (0.9 * 2.0)
        expected += F.cross_entropy(logits, rows).item()
    assert terms["contrastive"].item() == pytest.approx(expected, rel=1e-5)
    assert terms["ranking"].item() == pytest.approx(smooth_ranking_loss(bx, by, 0.2, 0.1).item(), rel=1e-5)
    fused = F.normalize((bx + by) / 2, dim=1)
    assert torch.allclose(bank.values[rows], F.normalize(0.4 * before[rows] + 0.6 * fused, dim=1), atol=1e-6)
    assert torch.equal(bank.values[[0, 2, 3]], before[[0, 2, 3]])


def test_warmup_contrasts_against_the_batch_and_overwrites_the_bank():
    model = _model()
    bank = MemoryBank(10, 4, torch.Generator().manual_seed(0), torch.device("cpu"))
    x, y, rows = torch.rand(4, 3), torch.rand(4, 2), torch.tensor([1, 4, 7, 9])
    _, terms = model._batch_loss(0, rows, x, y, bank, torch.Generator().manual_seed(5))
    bx, by = unit_outputs(model.image_net_, x), unit_outputs(model.text_net_, y)
    keys = torch.where(bx + by >= 0, 1.0, -1.0)
    expected = sum(F.cross_entropy(b @ keys.T / 1.8, torch.arange(4)).item() for b in (bx, by))
    assert terms["contrastive"].item() == pytest.approx(expected, rel=1e-5)
    assert torch.allclose(bank.values[rows], F.normalize(bx + by, dim=1), atol=1e-6)


def test_small_training_sets_and_the_fit_report():
    rng = np.random.default_rng(0)
    tiny = PairedFeatures(rng.random((10, 5)).astype(np.float32), rng.random((10, 3)).astype(np.float32))
    model = create("ucch", preset="quick", device="cpu").fit(tiny, 16)
    report = model.fit_report()
    assert report["negatives"] == 9 and report["negative_rule"] == "all other pairs"
    assert model.encode_image(tiny.image).shape == (10, 16)
    sampled = create("ucch", preset="quick", params={"negatives": 3}, device="cpu").fit(tiny, 16)
    assert sampled.fit_report()["negatives"] == 3
    assert sampled.fit_report()["negative_rule"] == "sampled with replacement"


def test_training_lowers_the_loss_and_bad_parameters_are_refused():
    ds = generate(SyntheticConfig(n_items=600, n_query=50, n_train=400))
    train = ds.paired(np.arange(400))
    model = create("ucch", params={"epochs": 6, "hidden": 64, "batch_size": 64}, device="cpu").fit(train, 32)
    history = model.loss_history_
    assert history["loss"].shape == (6,)
    assert history["loss"][-1] < history["loss"][1]  # after the warm-up epoch
    with pytest.raises(ValueError, match="ranking"):
        create("ucch", params={"ranking": "max"}, device="cpu").fit(train, 16)
    hinge = create("ucch", params={"epochs": 2, "hidden": 16, "ranking": "hinge"}, device="cpu").fit(train, 16)
    assert np.isfinite(hinge.loss_history_["ranking"]).all()
    x, y = torch.rand(5, 3), torch.rand(5, 2)
    model = _model(ranking="hinge")
    bank = MemoryBank(10, 4, torch.Generator().manual_seed(0), torch.device("cpu"))
    _, terms = model._batch_loss(2, torch.arange(5), x, y, bank, torch.Generator().manual_seed(1))
    bx, by = unit_outputs(model.image_net_, x), unit_outputs(model.text_net_, y)
    assert terms["ranking"].item() == pytest.approx(ranking_loss(bx, by, 0.2).item(), rel=1e-5)
