import joblib
import numpy as np
import pytest
import torch

from cmhbench.datasets.synthetic import SyntheticConfig, generate
from cmhbench.methods import create, get, resolve_params
from cmhbench.methods.jdsh import JDSH
from cmhbench.methods.kdcmh import (
    TEACHER_FIELDS,
    dcmh_step_loss,
    distilled_similarity,
    fuse,
    knn_count,
    knn_thresholds,
)

TINY = {"epochs": 2, "hidden": 16, "teacher_epochs": 2, "teacher_hidden": 16, "teacher_bits": 16}


@pytest.fixture(scope="module")
def train():
    ds = generate(SyntheticConfig(n_items=300, n_query=50, n_train=200, image_dim=24, text_dim=10, latent_dim=6,
                                  nuisance_dim=4, n_labels=6, data_seed=3))
    return ds.paired(np.arange(200))


# --- the student's objective -------------------------------------------------------------

def test_dcmh_step_loss_matches_the_direct_formula_and_its_gradient():
    gen = torch.Generator().manual_seed(0)
    n, c, gamma, eta = 6, 4, 0.7, 0.3
    F_buf = torch.randn(n, c, generator=gen, dtype=torch.float64)
    G = torch.randn(n, c, generator=gen, dtype=torch.float64)
    B = torch.where(torch.randn(n, c, generator=gen) >= 0, 1.0, -1.0).double()
    S_full = torch.rand(n, n, generator=gen, dtype=torch.float64)
    rows = torch.tensor([1, 4])
    out = torch.randn(2, c, generator=gen, dtype=torch.float64, requires_grad=True)
    rest = F_buf.sum(0) - F_buf[rows].sum(0)
    loss, terms = dcmh_step_loss(out, G, S_full[rows], B[rows], rest, gamma, eta)

    # direct: the whole F with the batch rows replaced, DCMH's J restricted to the batch's rows
    F_full = F_buf.clone()
    F_full[rows] = out.detach()
    likelihood = 0.0
    for a, i in enumerate(rows.tolist()):
        for j in range(n):
            theta = 0.5 * float(F_full[i] @ G[j])
            likelihood -= float(S_full[i, j]) * theta - np.log(1.0 + np.exp(theta))
    quantization = float(((B[rows] - F_full[rows]) ** 2).sum())
    balance = float((F_full.sum(0) ** 2).sum())
    expected = (likelihood + gamma * quantization + eta * balance) / (n * len(rows))
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    assert terms["balance"].item() == pytest.approx(balance / (n * len(rows)), rel=1e-10)

    # DCMH's gradient: dJ/dF_i = ½ Σ_j (σ(Θ_ij) − S_ij) G_j + 2γ(F_i − B_i) + 2η F1
    loss.backward()
    theta = 0.5 * F_full[rows] @ G.T
    grad = 0.5 * (torch.sigmoid(theta) - S_full[rows]) @ G + 2 * gamma * (F_full[rows] - B[rows]) \
        + 2 * eta * F_full.sum(0)
    assert torch.allclose(out.grad, grad / (n * len(rows)), atol=1e-12)


# --- distilled targets ---------------------------------------------------------------------

# unit fused codes: s01 = 0.8, s02 = 0, s03 = −1, s12 = 0.6, s13 = −0.8, s23 = 0
Z = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
ALL = torch.arange(4)


def test_fuse_normalises_each_modality_then_the_sum():
    u = torch.tensor([[3.0, 0.0]])
    v = torch.tensor([[0.0, 0.5]])
    assert torch.allclose(fuse(u, v), torch.tensor([[2 ** -0.5, 2 ** -0.5]]))


def test_soft_target_on_a_hand_checkable_case():
    S = distilled_similarity(Z, ALL, "soft")
    expected = torch.tensor([[1.0, 0.9, 0.5, 0.0],
                             [0.9, 1.0, 0.8, 0.1],
                             [0.5, 0.8, 1.0, 0.5],
                             [0.0, 0.1, 0.5, 1.0]])
    assert torch.allclose(S, expected, atol=1e-6)
    assert torch.allclose(distilled_similarity(Z, torch.tensor([2, 0]), "soft"), expected[[2, 0]], atol=1e-6)


def test_knn_target_on_a_hand_checkable_case():
    # k = 1: nearest other item of 0 is 1 (0.8), of 1 is 0 (0.8), of 2 is 1 (0.6), of 3 is 2 (0.0)
    tau = knn_thresholds(Z, 1)
    assert torch.allclose(tau, torch.tensor([0.8, 0.8, 0.6, 0.0]), atol=1e-6)
    S = distilled_similarity(Z, ALL, "knn", tau)
    expected = torch.tensor([[1.0, 1.0, 0.0, 0.0],
                             [1.0, 1.0, 1.0, 0.0],   # 1–2: 2's nearest is 1
                             [0.0, 1.0, 1.0, 1.0],   # 2–3: 3's nearest is 2
                             [0.0, 0.0, 1.0, 1.0]])
    assert torch.equal(S, expected)
    assert torch.equal(S, S.T)
    assert torch.equal(distilled_similarity(Z, torch.tensor([3, 1]), "knn", tau), expected[[3, 1]])


def test_knn_thresholds_in_blocks_equal_the_whole_matrix():
    z = fuse(torch.randn(50, 8, generator=torch.Generator().manual_seed(1)), torch.randn(50, 8))
    whole = z @ z.T
    whole.fill_diagonal_(-float("inf"))
    assert torch.allclose(knn_thresholds(z, 5, block=7), whole.topk(5, dim=1).values[:, -1])
    assert knn_count(200, 0.05) == 10 and knn_count(10, 0.01) == 1 and knn_count(10, 1.0) == 9


def test_unknown_target_is_a_clear_error(train):
    with pytest.raises(ValueError, match="distill"):
        create("kdcmh", params={**TINY, "distill": "hard"}, device="cpu").fit(train, 8)


# --- the teacher --------------------------------------------------------------------------

@pytest.fixture
def teacher_fits(monkeypatch):
    calls = []
    original = JDSH._fit

    def counting(self, train, n_bits):
        calls.append(n_bits)
        return original(self, train, n_bits)

    monkeypatch.setattr(JDSH, "_fit", counting)
    return calls


def test_teacher_is_trained_once_per_dataset_for_several_bit_lengths(train, teacher_fits, tmp_path):
    memory = joblib.Memory(str(tmp_path / "cache"), verbose=0)
    models = [create("kdcmh", params=TINY, device="cpu", cache=memory).fit(train, bits) for bits in (8, 16, 32, 20)]
    assert teacher_fits == [16]  # one fit, at the teacher's own bit length
    assert [m.fit_report()["teacher"]["from_cache"] for m in models] == [False, True, True, True]
    # another seed is another teacher; other teacher parameters too; student-only changes are not
    create("kdcmh", params=TINY, device="cpu", cache=memory, seed=1).fit(train, 8)
    create("kdcmh", params={**TINY, "teacher_bits": 32}, device="cpu", cache=memory).fit(train, 8)
    create("kdcmh", params={**TINY, "distill": "knn", "eta": 0.5}, device="cpu", cache=memory).fit(train, 8)
    assert teacher_fits == [16, 16, 32]


def test_without_a_cache_the_teacher_is_trained_in_process_with_the_same_result(train, teacher_fits, tmp_path):
    memory = joblib.Memory(str(tmp_path / "cache"), verbose=0)
    cached = create("kdcmh", params=TINY, device="cpu", cache=memory).fit(train, 16)
    again = create("kdcmh", params=TINY, device="cpu", cache=memory).fit(train, 16)
    plain = create("kdcmh", params=TINY, device="cpu").fit(train, 16)
    assert len(teacher_fits) == 2
    for model in (again, plain):
        assert np.array_equal(model.encode_image(train.image), cached.encode_image(train.image))
        assert np.array_equal(model.encode_text(train.text), cached.encode_text(train.text))


def test_teacher_settings_follow_jdsh_per_dataset_and_preset():
    cls = get("kdcmh")
    for table in [*JDSH.info.dataset_overrides.values(), *JDSH.info.presets.values()]:
        assert set(table) <= set(TEACHER_FIELDS), "a jdsh override would not reach the teacher"
    model = create("kdcmh", dataset="mirflickr25k", device="cpu")
    assert {k: model.teacher_params()[k] for k in JDSH.info.dataset_overrides["mirflickr25k"]} == \
        JDSH.info.dataset_overrides["mirflickr25k"]
    quick = resolve_params(cls, preset="quick")
    assert quick["teacher_epochs"] == JDSH.info.presets["quick"]["epochs"]
    assert quick["teacher_hidden"] == JDSH.info.presets["quick"]["hidden"]
    assert create("kdcmh", device="cpu").teacher_params()["bits"] == 128


# --- training and codes --------------------------------------------------------------------

def test_history_report_and_pair_codes(train):
    model = create("kdcmh", params={**TINY, "epochs": 3, "distill": "knn"}, device="cpu").fit(train, 16)
    history = model.loss_history_
    assert {"loss", "loss_image", "loss_text", "likelihood", "quantization", "balance"} <= set(history)
    assert all(values.shape == (3,) for values in history.values())
    report = model.fit_report()
    assert report["epochs"] == 3 and report["distill"] == "knn" and report["k"] == knn_count(train.n, 0.05)
    assert 0.0 < report["target_mean"] < 1.0 and report["teacher"]["bits"] == 16
    assert get("kdcmh").default_params()["distill"] == "soft"
    # the pair code is sgn(f_I(x) + f_T(y)), B's out-of-sample form
    x, y = train.image[:30], train.text[:30]
    expected = np.where(model._run(model._image_net64, x) + model._run(model._text_net64, y) >= 0, 1, -1)
    assert np.array_equal(model.encode_pair(x, y), expected)
