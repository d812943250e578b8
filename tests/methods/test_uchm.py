import joblib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmhbench.datasets.synthetic import SyntheticConfig, generate
from cmhbench.methods import create
from cmhbench.methods import uchm
from cmhbench.methods.deep import scaled_cosine
from cmhbench.methods.uchm import BitSelector, calibrate, estimate_calibration, fused_similarity, selection_loss

TINY = dict(epochs=2, hidden=32, gen_epochs=3, gen_hidden=32, gen_batch_size=64, gen_width=8)


@pytest.fixture(scope="module")
def small_train():
    ds = generate(SyntheticConfig(n_items=260, n_query=40, n_train=120, n_labels=5, image_dim=20, text_dim=12,
                                  latent_dim=5, nuisance_dim=4, data_seed=3))
    return ds.paired(np.arange(120)), ds.image[120:], ds.text[120:]


# --- the generators ------------------------------------------------------------------------------

SCORER_CLASSES = [uchm.AttentionScorer, uchm.ConcatScorer, uchm.TwoTowerScorer]


@pytest.mark.parametrize("cls", SCORER_CLASSES)
def test_every_pair_is_scored_as_the_listed_pair_is(cls):
    """match (all pairs, by broadcasting) and match_pairs (listed pairs) are the same function."""
    torch.manual_seed(0)
    net = cls(image_dim=7, text_dim=5, hidden=16, tokens=3, width=8).eval()
    x, y = torch.rand(4, 7), torch.rand(6, 5)
    with torch.no_grad():
        u, v = net.project_image(x), net.project_text(y)
        G = net.match(u, v)
        a, b = torch.meshgrid(torch.arange(4), torch.arange(6), indexing="ij")
        listed = net.match_pairs(u[a.flatten()], v[b.flatten()]).view(4, 6)
    assert G.shape == (4, 6) and G.abs().max() <= 1
    assert torch.allclose(G, listed, atol=1e-6)
    assert torch.allclose(net(x, y), G, atol=1e-6)


def test_cross_attention_makes_the_image_side_depend_on_the_text():
    """MIE: the image's pooled tokens change with the text it is paired with (the two-tower
    projection cannot, by construction)."""
    torch.manual_seed(1)
    net = uchm.AttentionScorer(image_dim=4, text_dim=4, hidden=8, tokens=2, width=4).eval()
    x = torch.rand(1, 4)
    with torch.no_grad():
        u = net.project_image(x)
        mixed = [net._attend(net.image_query(u), net.text_key(v), net.text_value(v))
                 for v in (net.project_text(torch.rand(1, 4)) for _ in range(2))]
    assert not torch.allclose(mixed[0], mixed[1])


# A fixed tiny batch: pair scores G (row = image, column = text) and the calibrated prior T.
G_TINY = np.array([[0.9, 0.2, -0.1, 0.7],
                   [0.5, 0.3, 0.4, -0.6],
                   [0.0, 0.8, 0.6, 0.1],
                   [-0.3, 0.1, 0.75, 0.2]])
T_TINY = np.array([[1.0, 0.5, -1.0, 0.2],
                   [0.5, 1.0, -0.4, 1.0],
                   [-1.0, -0.4, 1.0, 0.0],
                   [0.2, 1.0, 0.0, 1.0]])


def _numpy_ranking(G, T, margin):
    """Written out loop by loop: every negative j of image i and every negative i of text j."""
    num = den = 0.0
    m = len(G)
    for i in range(m):
        for j in range(m):
            if i == j:
                continue
            w = 1.0 - max(T[i, j], 0.0)
            num += w * max(0.0, margin - G[i, i] + G[i, j])  # image i: own text i against text j
            num += w * max(0.0, margin - G[j, j] + G[i, j])  # text j: own image j against image i
            den += 2.0 * w
    return num / den


def _numpy_regression(G, T):
    target = np.where(np.eye(len(G), dtype=bool), 1.0, T)
    return float(np.mean((G - target) ** 2))


def test_ranking_loss_matches_an_independent_numpy_implementation():
    G, T = torch.tensor(G_TINY), torch.tensor(T_TINY)
    for margin in (0.0, 0.2, 0.5):
        assert uchm.ranking_loss(G, T, margin).item() == pytest.approx(_numpy_ranking(G_TINY, T_TINY, margin), rel=1e-9)


def test_ranking_loss_ignores_negatives_the_prior_calls_confident_neighbours():
    """A negative with T = +1 (a likely false negative) has weight 0: raising its score costs nothing."""
    G, T = torch.tensor(G_TINY), torch.tensor(T_TINY)
    raised = G.clone()
    raised[1, 3] = 1.0  # T[1, 3] = +1
    assert uchm.ranking_loss(raised, T, 0.2).item() == pytest.approx(uchm.ranking_loss(G, T, 0.2).item(), rel=1e-12)
    raised[1, 2] = 1.0  # T[1, 2] = -0.4: a true negative, now scored above the own pair
    assert uchm.ranking_loss(raised, T, 0.2).item() > uchm.ranking_loss(G, T, 0.2).item()


def test_regression_and_generator_loss_match_numpy():
    G, T = torch.tensor(G_TINY), torch.tensor(T_TINY)
    assert uchm.regression_loss(G, T).item() == pytest.approx(_numpy_regression(G_TINY, T_TINY), rel=1e-9)
    loss, terms = uchm.generator_loss(G, T, 0.2, 0.7)
    expected = _numpy_ranking(G_TINY, T_TINY, 0.2) + 0.7 * _numpy_regression(G_TINY, T_TINY)
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    assert set(terms) == {"rank", "hash"}


# --- cross-fitting -------------------------------------------------------------------------------

@pytest.mark.parametrize("n, folds", [(10, 2), (11, 3), (7, 7)])
def test_folds_partition_the_rows_and_no_generator_trains_on_its_fold(n, folds):
    fold = uchm.fold_assignment(n, folds, seed=4)
    assert sorted(np.bincount(fold, minlength=folds)) in ([n // folds] * folds,
                                                          sorted([n // folds] * (folds - n % folds)
                                                                 + [n // folds + 1] * (n % folds)))
    for k in range(folds):
        rows = uchm.fold_training_rows(fold, k)
        assert not set(rows) & set(np.flatnonzero(fold == k))  # disjoint from the fold it scores
        assert set(rows) | set(np.flatnonzero(fold == k)) == set(range(n))
    assert np.array_equal(uchm.fold_training_rows(np.zeros(n, dtype=np.int64), 0), np.arange(n))  # folds = 1


class _Witness(torch.nn.Module):
    """A stand-in scorer that answers every pair with its own index k."""

    def __init__(self, k):
        super().__init__()
        self.k = k

    def match(self, u, v):
        return torch.full((u.shape[0], v.shape[0]), float(self.k))


def test_cross_fitted_scores_never_come_from_a_generator_trained_on_the_pair():
    n, folds = 12, 3
    fold = uchm.fold_assignment(n, folds, seed=0)
    generator = uchm.CrossFitted.__new__(uchm.CrossFitted)
    generator.fold = torch.as_tensor(fold)
    generator.scorers = [_Witness(k) for k in range(folds)]
    generator.tokens = [(torch.zeros(n, 1, 1), torch.zeros(n, 1, 1))] * folds
    rows, cols = torch.tensor([0, 3, 5, 7, 11]), torch.tensor([1, 2, 3, 8])
    directed = generator.directed(rows, cols)
    for a_pos, a in enumerate(rows.tolist()):
        for b_pos, b in enumerate(cols.tolist()):
            k = int(directed[a_pos, b_pos])
            trained_on = set(uchm.fold_training_rows(fold, k).tolist())
            assert a not in trained_on  # so the pair (a, b) was never in one of its batches
    S = generator.similarity(rows)
    expected = 0.5 * (fold[rows.numpy()][:, None] + fold[rows.numpy()][None, :])
    assert np.allclose(S.numpy(), expected)


def test_a_cross_fitted_fit_trains_one_generator_per_fold_on_the_other_folds(small_train):
    train, _, _ = small_train
    config = dict(generator="two-tower", beta=0.5, confident=0.1, folds=3, gen_hidden=16, gen_tokens=2, gen_width=4,
                  gen_epochs=2, gen_batch_size=30, gen_lr=0.01, margin=0.2, regression_weight=1.0)
    calibration = estimate_calibration(train.image, train.text, 0.5, 0.1, 2000, np.random.default_rng(0))
    seen = []
    real = uchm.train_scorer

    def recording(image, text, **kwargs):
        seen.append(image.copy())
        return real(image, text, **kwargs)

    try:
        uchm.train_scorer = recording
        fit = uchm.train_generator(train.image, train.text, config=config, seed=0, calibration=calibration)
    finally:
        uchm.train_scorer = real
    assert len(fit["states"]) == 3 and fit["loss"]["loss"].shape == (3, 2)
    for k, image in enumerate(seen):
        held_out = train.image[fit["fold"] == k]
        assert len(image) + len(held_out) == train.n
        assert not (image[:, None, :] == held_out[None, :, :]).all(axis=2).any()  # no held-out row was seen


# --- the coherence control -----------------------------------------------------------------------

def test_coherence_is_the_shared_share_of_nearest_neighbours():
    rng = np.random.default_rng(5)
    image, text = rng.random((9, 4)).astype(np.float32), rng.random((9, 3)).astype(np.float32)
    k = 3
    S = fused_similarity(torch.tensor(image), torch.tensor(text), 0.4).numpy()
    nbrs = [set(np.argsort(-S[i], kind="stable")[:k]) for i in range(9)]
    expected = np.array([[len(nbrs[i] & nbrs[j]) / k for j in range(9)] for i in range(9)])
    coherence = uchm.coherence_for(torch.tensor(image), torch.tensor(text), 0.4, share=k / 9)
    assert coherence.k == k
    assert np.allclose(coherence.similarity(torch.arange(9)).numpy(), expected)
    i, j = torch.tensor([0, 4, 8]), torch.tensor([2, 4, 1])
    assert np.allclose(coherence.pairs(i, j).numpy(), expected[[0, 4, 8], [2, 4, 1]])


def test_the_coherence_control_is_a_generator_choice_and_a_registered_row():
    from pathlib import Path

    from cmhbench.harness.config import load_config

    assert "coherence" in uchm.GENERATORS
    config = load_config(Path(__file__).resolve().parents[2] / "docs" / "ablations" / "uchm.toml")
    assert config["variants"]["uchm-coherence"]["generator"] == "coherence"
    assert "uchm-coherence" in config["methods"]


def test_the_acceptance_grid_compares_paper_rows_with_both_controls():
    """docs/ablations/acceptance-33.toml: the paper rows of kdcmh, its teacher and djsrh, and
    uchm with its two controls, each control a valid uchm that differs only in its generator."""
    from pathlib import Path

    from cmhbench.harness.config import load_config
    from cmhbench.methods.registry import get, resolve_params

    config = load_config(Path(__file__).resolve().parents[2] / "docs" / "ablations" / "acceptance-33.toml")
    assert config["preset"] == "paper" and len(config["seeds"]) >= 5 and "params" not in config
    assert {"kdcmh", "jdsh", "djsrh", "uchm", "uchm-no-mie", "uchm-coherence"} == set(config["methods"])
    for name, variant in config["variants"].items():
        assert variant["base"] == "uchm" and set(variant) == {"base", "generator"}
        assert resolve_params(get("uchm"), params={"generator": variant["generator"]})
    assert {v["generator"] for v in config["variants"].values()} == {"none", "coherence"}


def test_the_coherence_fit_trains_no_generator_and_reports_its_neighbours(small_train):
    train, image, _ = small_train
    model = create("uchm", params={**TINY, "generator": "coherence", "coherence_share": 0.1}, device="cpu")
    model.fit(train, 16)
    report = model.fit_report()["generator_fit"]
    assert report["neighbours"] == 12 and "source" not in report
    plain = create("uchm", params={**TINY, "generator": "none"}, device="cpu").fit(train, 16)
    assert not np.array_equal(model.encode_image(image), plain.encode_image(image))


def test_hyper_parameters_are_declared_once():
    import inspect

    assert inspect.getsourcefile(uchm.UCHM.__init__).endswith("base.py")  # built from the domains, not written
    signature = inspect.signature(uchm.UCHM)
    for name, domain in uchm.UCHM.param_domains.items():
        assert signature.parameters[name].default == domain.default


@pytest.mark.parametrize("generator", ["attention", "mlp", "two-tower"])
def test_a_trained_scorer_matches_its_own_pairs(small_train, generator):
    """After training, an item's own text outscores most other texts (chance: half of them)."""
    train, _, _ = small_train
    config = dict(generator=generator, beta=0.5, confident=0.1, folds=1, gen_hidden=32, gen_tokens=2,
                  gen_width=8, gen_epochs=30, gen_batch_size=60, gen_lr=0.01, margin=0.2, regression_weight=1.0)
    calibration = estimate_calibration(train.image, train.text, 0.5, 0.1, 2000, np.random.default_rng(0))
    state, history = uchm.train_scorer(train.image, train.text, config=config, seed=0, calibration=calibration)
    scorer = uchm.load_scorer(config, train.image.shape[1], train.text.shape[1], state, "cpu")
    with torch.no_grad():
        G = scorer(torch.tensor(train.image), torch.tensor(train.text))
    beaten = (torch.diagonal(G)[:, None] > G).float().sum().item() / (train.n * (train.n - 1))
    assert beaten > 0.75
    assert history["loss"][-1] < history["loss"][0]


def test_calibration_map_on_hand_checked_values():
    S = torch.tensor([-1.0, -0.5, -0.25, 0.0, 0.1, 0.25, 0.5])
    out = calibrate(S, q_lo=-0.5, q_mid=0.0, q_hi=0.25)
    assert torch.allclose(out, torch.tensor([-1.0, -1.0, -0.5, 0.0, 0.4, 1.0, 1.0]))


def test_calibration_quantiles_use_all_pairs_of_a_small_set():
    rng = np.random.default_rng(0)
    image, text = rng.random((30, 6)).astype(np.float32), rng.random((30, 4)).astype(np.float32)
    est = estimate_calibration(image, text, beta=0.3, confident=0.1, n_pairs=10_000, rng=rng)
    full = fused_similarity(torch.from_numpy(image), torch.from_numpy(text), 0.3).double().numpy()
    values = full[np.triu_indices(30, k=1)]
    assert est["q_lo"] == pytest.approx(np.quantile(values, 0.1), abs=1e-6)
    assert est["q_mid"] == pytest.approx(np.quantile(values, 0.5), abs=1e-6)
    assert est["q_hi"] == pytest.approx(np.quantile(values, 0.9), abs=1e-6)
    sampled = estimate_calibration(image, text, beta=0.3, confident=0.1, n_pairs=200, rng=rng)  # sampled pairs
    assert sampled["q_lo"] < sampled["q_mid"] < sampled["q_hi"]


def test_fused_similarity_formula():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    c = 2 / np.sqrt(2) - 1
    expected = 0.25 * torch.tensor([[1.0, -1.0], [-1.0, 1.0]]) + 0.75 * torch.tensor([[1.0, c], [c, 1.0]])
    assert torch.allclose(fused_similarity(x, y, 0.25), expected.float(), atol=1e-6)


# --- the hashing loss ----------------------------------------------------------------------------

@pytest.mark.parametrize("mie", [True, False])
def test_batch_loss_matches_the_documented_formula(mie):
    model = create("uchm", params={"generator": "mlp" if mie else "none", "intra_weight": 0.3, "pair_weight": 0.7,
                                   "quant_weight": 0.2, "prior_weight": 0.25}, device="cpu")
    torch.manual_seed(0)
    m, c = 6, 4
    model.image_net_ = torch.nn.Linear(3, c)
    model.text_net_ = torch.nn.Linear(2, c)
    model.calibration_ = {"q_lo": -0.4, "q_mid": 0.1, "q_hi": 0.5}
    model.similarity_, model.generator_calibration_ = None, None
    if mie:  # two cross-fitted scorers; rows 0-4 in fold 0, rows 5-9 in fold 1
        generator = uchm.CrossFitted.__new__(uchm.CrossFitted)
        generator.fold = torch.tensor([0] * 5 + [1] * 5)
        generator.scorers = [uchm.ConcatScorer(3, 2, hidden=8, tokens=2, width=4).eval() for _ in range(2)]
        generator.tokens = [(torch.randn(10, 2, 4), torch.randn(10, 2, 4)) for _ in range(2)]
        model.similarity_ = generator
    model.selector_ = BitSelector(c)
    with torch.no_grad():
        model.selector_.gate.weight.normal_()
        model.selector_.gate.bias.normal_()
    rows = torch.tensor([7, 2, 9, 0, 4, 5])
    x, y = torch.rand(m, 3), torch.rand(m, 2)
    loss, terms = model._batch_loss(3, rows, x, y)

    a = 2.0  # sqrt(epoch + 1)
    t_i, t_t = torch.tanh(a * model.image_net_(x)), torch.tanh(a * model.text_net_(y))
    b_i, b_t = F.normalize(t_i, dim=1), F.normalize(t_t, dim=1)
    T = calibrate(0.5 * scaled_cosine(x) + 0.5 * scaled_cosine(y), -0.4, 0.1, 0.5)
    if mie:
        def g(i, j):  # the scorer of i's fold, on i's image tokens and j's text tokens
            k = i // 5
            u, v = generator.tokens[k]
            return generator.scorers[k].match_pairs(u[i:i + 1], v[j:j + 1])[0]

        with torch.no_grad():
            G = torch.stack([torch.stack([g(i, j) for j in rows.tolist()]) for i in rows.tolist()])
        S = 0.75 * 0.5 * (G + G.T) + 0.25 * T  # S^G is on the codes' scale: no calibration
    else:
        S = T
    g = torch.sigmoid(torch.cat([t_i, t_t], dim=1) @ model.selector_.gate.weight.T + model.selector_.gate.bias)
    u = g * t_i + (1 - g) * t_t
    B = torch.where(u >= 0, 1.0, -1.0)
    mse = lambda p: ((p - S) ** 2).mean()  # noqa: E731
    un = F.normalize(u, dim=1)
    expected = (mse(b_i @ b_t.T) + 0.3 * (mse(b_i @ b_i.T) + mse(b_t @ b_t.T))
                + 0.7 * ((torch.diagonal(b_i @ b_t.T) - 1.5) ** 2).mean()
                + 0.2 * (((t_i - B) ** 2).mean() + ((t_t - B) ** 2).mean())
                + mse(un @ un.T))
    assert torch.allclose(loss, expected, atol=1e-6)
    assert terms["select"].item() == pytest.approx(mse(un @ un.T).item(), abs=1e-6)


def test_without_bit_selection_the_quantization_target_is_the_sign_of_the_sum():
    model = create("uchm", params={"generator": "none", "bit_selection": False, "intra_weight": 0.0, "pair_weight": 0.0,
                                   "quant_weight": 1.0}, device="cpu")
    torch.manual_seed(0)
    model.image_net_, model.text_net_ = torch.nn.Linear(3, 4), torch.nn.Linear(2, 4)
    model.calibration_ = {"q_lo": -0.4, "q_mid": 0.1, "q_hi": 0.5}
    model.similarity_, model.selector_ = None, None
    x, y = torch.rand(5, 3), torch.rand(5, 2)
    _, terms = model._batch_loss(0, torch.arange(5), x, y)
    h_i, h_t = model.image_net_(x), model.text_net_(y)
    B = torch.where(h_i + h_t >= 0, 1.0, -1.0)
    expected = ((torch.tanh(h_i) - B) ** 2).mean() + ((torch.tanh(h_t) - B) ** 2).mean()
    assert terms["quant"].item() == pytest.approx(expected.item(), abs=1e-6)
    assert "select" not in terms


# --- bit selection -------------------------------------------------------------------------------

def _constructed_case(m=64):
    """Two balanced clusters z = ±1, S = z zᵀ.  Bits 0-1: the image is right but weak, the text is
    confident noise; bits 2-3: the other way round.  sgn(h_I + h_T) follows the noise everywhere."""
    rng = np.random.default_rng(0)
    z = np.repeat([1.0, -1.0], m // 2)
    noise = rng.choice([-1.0, 1.0], size=(m, 4))
    h_img = np.column_stack([0.4 * z, 0.4 * z, 2.0 * noise[:, 2], 2.0 * noise[:, 3]])
    h_txt = np.column_stack([2.0 * noise[:, 0], 2.0 * noise[:, 1], 0.4 * z, 0.4 * z])
    return z, h_img, h_txt, torch.tensor(np.outer(z, z), dtype=torch.float32)


def _train_selector(h_img, h_txt, S, steps=300):
    torch.manual_seed(0)
    selector = BitSelector(h_img.shape[1])
    opt = torch.optim.Adam(selector.parameters(), lr=0.05)
    t_i = torch.tanh(torch.tensor(h_img, dtype=torch.float32))
    t_t = torch.tanh(torch.tensor(h_txt, dtype=torch.float32))
    first = None
    for _ in range(steps):
        loss = selection_loss(selector(t_i, t_t), S)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    return selector, first, loss.item()


def test_bit_selection_differs_from_the_sign_of_the_sum_where_it_should():
    z, h_img, h_txt, S = _constructed_case()
    selector, first, last = _train_selector(h_img, h_txt, S)
    assert last < 0.5 * first
    summed = np.sign(h_img + h_txt)
    assert (summed == z[:, None]).mean() < 0.7  # the simple combination follows the confident noise
    # through the model's own pair-encoding path, in float64 as at encoding time
    model = create("uchm", device="cpu")
    model._selector64 = selector.to(torch.float64).eval()
    model.encode_alpha_ = 1.0
    unified = np.where(model.unify(h_img, h_txt) >= 0, 1, -1)
    assert (unified == z[:, None]).mean() > 0.95  # the gate picks the modality that preserves S, per bit
    assert (unified != summed).mean() > 0.3
    with torch.no_grad():
        g = selector.weights(torch.tanh(torch.tensor(h_img)), torch.tanh(torch.tensor(h_txt))).mean(0)
    assert (g[:2] > 0.5).all() and (g[2:] < 0.5).all()


def test_untrained_gate_weighs_both_modalities_equally():
    selector = BitSelector(3)
    t_i, t_t = torch.tensor([[0.2, -0.9, 0.5]]), torch.tensor([[-0.6, 0.1, 0.5]])
    assert torch.allclose(selector(t_i, t_t), (t_i + t_t) / 2)


def test_pair_codes_without_bit_selection_are_the_sign_of_the_summed_outputs(small_train):
    train, image, text = small_train
    model = create("uchm", params={**TINY, "bit_selection": False}, device="cpu").fit(train, 16)
    h = model._run(model._image_net64, image) + model._run(model._text_net64, text)
    assert np.array_equal(model.encode_pair(image, text), np.where(h >= 0, 1, -1).astype(np.int8))


# --- caching the generator -----------------------------------------------------------------------

def test_generator_trains_once_per_dataset_and_seed_across_bit_lengths(small_train, tmp_path, monkeypatch):
    train, image, text = small_train
    calls = []
    real = uchm.train_generator

    def counting(*args, **kwargs):
        calls.append(kwargs["seed"])
        return real(*args, **kwargs)

    monkeypatch.setattr(uchm, "train_generator", counting)
    memory = joblib.Memory(str(tmp_path / "cache"), verbose=0)
    sources, codes = [], {}
    for bits in (16, 32, 20):
        model = create("uchm", params=TINY, device="cpu", cache=memory).fit(train, bits)
        sources.append(model.fit_report()["generator_fit"]["source"])
        codes[bits] = model.encode_image(image)
    assert calls == [0] and sources == ["trained", "cache", "cache"]

    # the cache is transparent: an uncached fit gives the same codes
    fresh = create("uchm", params=TINY, device="cpu").fit(train, 32)
    assert np.array_equal(fresh.encode_image(image), codes[32])
    assert calls == [0, 0]  # no cache: trained in-process

    create("uchm", params=TINY, device="cpu", cache=memory, seed=1).fit(train, 16)  # another seed
    create("uchm", params={**TINY, "gen_width": 4}, device="cpu", cache=memory).fit(train, 16)  # other generator
    create("uchm", params={**TINY, "epochs": 1}, device="cpu", cache=memory).fit(train, 16)  # hashing-only change
    create("uchm", params={**TINY, "prior_weight": 0.1}, device="cpu", cache=memory).fit(train, 16)  # use, not fit
    create("uchm", params={**TINY, "generator": "none"}, device="cpu", cache=memory).fit(train, 16)  # no generator
    assert calls == [0, 0, 1, 0]
    other = generate(SyntheticConfig(n_items=200, n_query=40, n_train=100, n_labels=5, image_dim=20, text_dim=12,
                                     latent_dim=5, nuisance_dim=4, data_seed=4)).paired(np.arange(100))
    create("uchm", params=TINY, device="cpu", cache=memory).fit(other, 16)  # another dataset
    assert len(calls) == 5


def test_ablation_switches_change_the_codes_and_the_record(small_train):
    train, image, text = small_train
    full = create("uchm", params=TINY, device="cpu").fit(train, 16)
    no_mie = create("uchm", params={**TINY, "generator": "none"}, device="cpu").fit(train, 16)
    assert "generator_fit" in full.fit_report() and "generator_fit" not in no_mie.fit_report()
    assert full.fit_report()["generator"] == "attention"
    assert not np.array_equal(full.encode_image(image), no_mie.encode_image(image))
    assert set(full.loss_history_) == {"loss", "cross", "intra", "paired", "quant", "select"}
    report = full.fit_report()
    assert report["calibration"]["q_lo"] < report["calibration"]["q_mid"] < report["calibration"]["q_hi"]


def test_bad_confident_fraction_is_a_clear_error(small_train):
    train, _, _ = small_train
    with pytest.raises(ValueError, match="confident"):
        create("uchm", params={**TINY, "confident": 0.7}, device="cpu").fit(train, 16)


@pytest.mark.parametrize("params, field", [({"generator": "cross"}, "generator"), ({"prior_weight": 1.5}, "prior_weight"),
                                           ({"margin": -0.1}, "margin"), ({"generator": "cohrence"}, "generator")])
def test_bad_generator_settings_are_clear_errors(params, field):
    with pytest.raises(ValueError, match=field):
        create("uchm", params={**TINY, **params}, device="cpu")


def test_the_ablation_grid_loads_and_every_variant_is_a_valid_uchm():
    from pathlib import Path

    from cmhbench.harness.config import load_config
    from cmhbench.methods.registry import resolve_params

    config = load_config(Path(__file__).resolve().parents[2] / "docs" / "ablations" / "uchm.toml")
    variants = config["variants"]
    assert {variants[name].get("generator") for name in variants} >= {"mlp", "two-tower", "none"}
    for name, variant in variants.items():
        assert name in config["methods"] and variant["base"] == "uchm"
        assert resolve_params("uchm", params={k: v for k, v in variant.items() if k != "base"})


@pytest.mark.slow
def test_sixteen_bit_codes_do_not_collapse_at_the_default_learning_rates():
    """The paper preset's hashing stage on a small synthetic set keeps many distinct 16-bit codes.
    At version 2's image learning rate (0.01) the image network's outputs were pushed into one
    saturated common code within the first steps (docs/uchm.md): 19-61 distinct codes here."""
    ds = generate(SyntheticConfig(n_items=900, n_query=100, n_train=400, data_seed=0))
    train = ds.paired(np.arange(100, 500))
    model = create("uchm", params={"generator": "coherence", "epochs": 3}, device="cpu").fit(train, 16)
    for codes in (model.encode_image(ds.image[500:]), model.encode_text(ds.text[500:])):
        assert len(np.unique(codes, axis=0)) >= 80  # of 400 database items
