import joblib
import numpy as np
import pytest
import torch

from cmhbench.methods import create, resolve_params
from cmhbench.methods.ugach import UGACH
from cmhbench.methods.ukd import (TEACHER_FIELDS, _cached_teacher, device_kind, knn_count, knn_radii,
                                  similarity_rows, student_loss, train_teacher)
from cmhbench.testing import check_method

TEACHER_TINY = {"teacher_epochs": 1, "teacher_g_epochs": 1, "teacher_pretrain_epochs": 1, "teacher_hidden": 16,
                "teacher_bits": 16}
TINY = {"epochs": 2, "hidden": 16, "batch_size": 32, **TEACHER_TINY}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def train(tiny_train):
    return tiny_train


# --- the student's objective against the equations, in NumPy -------------------------------------
RNG = np.random.default_rng(0)
OUT = np.tanh(RNG.standard_normal((3, 4)))            # a batch of m = 3 outputs, c = 4
OTHER = RNG.standard_normal((6, 4))                   # the other modality's buffer, n = 6
S = 0.999 * (RNG.random((3, 6)) > 0.5)                # the batch's rows of S
OUT[0, 1] = 0.0                                       # sgn(0) = 0, as np.sign


def _np_student(out, other, s, gamma, beta, form):
    theta = 0.5 * out @ other.T
    log_term = np.log1p(np.exp(theta))
    if form == "squared":   # the authors' l2_loss of (S·θ − log(1 + e^θ))
        pair = 0.5 * ((s * theta - log_term) ** 2).sum()
    else:                   # DCMH's negative log-likelihood
        pair = -(s * theta - log_term).sum()
    quant = 0.5 * ((np.sign(out) - out) ** 2).sum()
    return gamma * pair + beta * quant, pair, quant


@pytest.mark.parametrize("form", ["squared", "nll"])
def test_student_loss_matches_numpy(form):
    want, pair, quant = _np_student(OUT, OTHER, S, 0.7, 1.3, form)
    loss, terms = student_loss(torch.tensor(OUT), torch.tensor(OTHER), torch.tensor(S), gamma=0.7, beta=1.3,
                               pair_loss=form)
    assert loss.item() == pytest.approx(want, rel=1e-12)
    assert terms["pair"].item() == pytest.approx(pair, rel=1e-12)
    assert terms["quantization"].item() == pytest.approx(quant, rel=1e-12)


def test_quantisation_pulls_toward_the_batchs_own_signs():
    out = torch.tensor(OUT, requires_grad=True)
    loss, _ = student_loss(out, torch.tensor(OTHER), torch.tensor(S), gamma=0.0, beta=1.0, pair_loss="squared")
    loss.backward()
    assert np.allclose(out.grad.numpy(), OUT - np.sign(OUT))  # d/dH ½(sgn H − H)², the sign held constant


def test_softplus_stays_finite_where_the_authors_log_overflows():
    out = torch.full((1, 4), 1.0, requires_grad=True)
    other = torch.full((2, 4), 60.0)  # θ = 120: exp overflows in float32
    loss, _ = student_loss(out, other, torch.tensor([[0.999, 0.0]]), gamma=1.0, beta=1.0, pair_loss="squared")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(out.grad).all()


# --- the distilled similarity ------------------------------------------------------------------------
def _np_similarity(u, v, k, value=0.999):
    """S_ij = value if j is among the k nearest of i (itself included) by u or by v."""
    n = len(u)
    S = np.zeros((n, n))
    for feats in (u, v):
        d = ((feats[:, None, :] - feats[None, :, :]) ** 2).sum(2)
        for i in range(n):
            S[i, np.argsort(d[i], kind="stable")[:k]] = value
    return S


def test_similarity_is_the_union_of_both_modalities_knn():
    gen = np.random.default_rng(1)
    u, v = gen.random((12, 5)), gen.random((12, 5))
    want = _np_similarity(u, v, 3)
    ut, vt = torch.tensor(u), torch.tensor(v)
    radii = (knn_radii(ut, 3), knn_radii(vt, 3, block=5))
    got = similarity_rows(ut, vt, radii, torch.arange(12), 0.999).numpy()
    assert np.allclose(got, want)
    assert (np.diag(got) == 0.999).all() and not np.allclose(got, got.T)  # itself always; not symmetric
    rows = torch.tensor([7, 2])
    assert np.allclose(similarity_rows(ut, vt, radii, rows, 0.5).numpy(), want[[7, 2]] / 0.999 * 0.5)
    assert ((got > 0).sum(1) >= 3).all() and ((got > 0).sum(1) <= 6).all()


def test_k_is_the_authors_share_of_the_training_set():
    assert knn_count(18015, 10000, 10000 / 18015) == 10000
    assert knn_count(1500, 10000, 10000 / 18015) == 833
    assert knn_count(3, 10000, 0.01) == 1 and knn_count(100, 7, 0.5) == 7


# --- the teacher ---------------------------------------------------------------------------------------
def test_teacher_settings_are_the_ukd_teachers():
    model = create("ukd", device="cpu")
    params = model.teacher_params()
    assert params["bits"] == 128 and params["batch_size"] == 512 and params["lr_discriminator"] == 0.01
    assert params["lr_generator"] == 0.01 and params["pretrain_epochs"] == 200 and params["pretrain_batch_size"] == 256
    defaults = UGACH.default_params()
    others = set(TEACHER_FIELDS) - {"batch_size", "lr_discriminator", "lr_generator", "pretrain_epochs",
                                    "pretrain_batch_size"}
    assert {k: params[k] for k in others} == {k: defaults[k] for k in others}
    assert set(TEACHER_FIELDS) == set(defaults)  # every ugach parameter reaches the teacher
    quick = resolve_params("ukd", preset="quick")
    assert all(quick[f"teacher_{k}"] == v for k, v in UGACH.info.presets["quick"].items())


def test_teacher_outputs_are_the_discriminators_sigmoids(train):
    params = {**create("ukd", params=TINY, device="cpu").teacher_params()}
    out = train_teacher(train, params, 0, "cpu")
    teacher = UGACH(**{k: v for k, v in params.items() if k != "bits"}, seed=0, device="cpu").fit(train, 16)
    assert np.allclose(out["image"], 1 / (1 + np.exp(-teacher._encode_image(train.image))), atol=1e-6)
    assert out["image"].shape == (train.n, 16) and ((out["text"] > 0) & (out["text"] < 1)).all()


@pytest.fixture
def teacher_fits(count_fits):
    return count_fits(UGACH)


def test_teacher_is_cached_per_parameters_seed_and_device_kind(train, teacher_fits, tmp_path):
    memory = joblib.Memory(str(tmp_path / "cache"), verbose=0)
    models = [create("ukd", params=TINY, device="cpu", cache=memory).fit(train, bits) for bits in (8, 16, 20)]
    assert teacher_fits == [16]
    assert [m.fit_report()["teacher"]["from_cache"] for m in models] == [False, True, True]
    create("ukd", params={**TINY, "gamma": 0.5}, device="cpu", cache=memory).fit(train, 8)  # student-only change
    create("ukd", params={**TINY, "teacher_lr_generator": 0.02}, device="cpu", cache=memory).fit(train, 8)
    create("ukd", params=TINY, device="cpu", cache=memory, seed=1).fit(train, 8)
    assert teacher_fits == [16, 16, 16]
    # a GPU teacher is another entry: the key holds the device kind
    cached = memory.cache(_cached_teacher, ignore=["train", "device", "progress"])
    params = create("ukd", params=TINY, device="cpu").teacher_params()
    key = (train.key, 0, params, UGACH.info.version)
    assert cached.check_call_in_cache(*key, "cpu", train, "cpu")
    assert not cached.check_call_in_cache(*key, "cuda", train, "cuda:0")
    assert device_kind("cuda:1") == "cuda" and device_kind("cpu") == "cpu"


def test_without_a_cache_the_teacher_is_trained_in_process_with_the_same_result(train, tmp_path):
    memory = joblib.Memory(str(tmp_path / "cache"), verbose=0)
    cached = create("ukd", params=TINY, device="cpu", cache=memory).fit(train, 16)
    plain = create("ukd", params=TINY, device="cpu").fit(train, 16)
    assert np.array_equal(plain.encode_image(train.image), cached.encode_image(train.image))
    assert np.array_equal(plain.encode_text(train.text), cached.encode_text(train.text))


def test_the_teachers_epochs_are_reported_before_the_students(train):
    reports = []
    create("ukd", params=TINY, device="cpu").fit(train, 8, progress=reports.append)
    teacher = [r for r in reports if r.stage == "teacher epoch"]
    student = [r for r in reports if r.stage == "epoch"]
    assert [r.done for r in teacher] == [1] and [r.done for r in student] == [1, 2]
    assert all("teacher_loss" in r.values for r in teacher) and all("loss" in r.values for r in student)
    assert reports[-len(student):] == student  # the teacher's stages (pre-training too) come first


# --- the student's training --------------------------------------------------------------------------------
def test_schedule_and_report(train, monkeypatch):
    from cmhbench.methods import ukd

    sizes = []
    loss = ukd.student_loss

    def counting(out, other, S, **kw):
        sizes.append((out.shape[0], other.shape[0], S.shape))
        return loss(out, other, S, **kw)

    monkeypatch.setattr(ukd, "student_loss", counting)
    model = create("ukd", params={**TINY, "epochs": 2, "batch_size": 50}, device="cpu").fit(train, 16)
    # 2 epochs × 2 rounds × 2 modalities × ⌊120/50⌋ steps, each 50 rows against all 120
    assert sizes == [(50, 120, (50, 120))] * 16
    report = model.fit_report()
    assert report["k"] == knn_count(120, 10000, 10000 / 18015) == 67 and report["pair_loss"] == "squared"
    assert {"loss", "loss_image", "loss_text", "pair", "quantization"} <= set(model.loss_history_)


def test_quick_fit_gives_codes_of_the_networks_signs(train):
    model = create("ukd", preset="quick", device="cpu").fit(train, 32)
    assert model.loss_history_["loss"].shape == (3,)
    image = model.encode_image(train.image)
    assert np.array_equal(image, np.where(model._encode_image(train.image) >= 0, 1, -1))
    assert model.fit_report()["teacher"]["bits"] == 128


def test_parameters_are_checked(train):
    with pytest.raises(ValueError, match="pair_loss"):
        create("ukd", params={**TINY, "pair_loss": "hinge"}, device="cpu").fit(train, 8)


@pytest.mark.slow
def test_conformance():
    check_method("ukd")


def test_each_row_of_s_holds_at_least_k_neighbours_per_modality_in_any_block_layout():
    """A radius found one row at a time still admits the K-th neighbour when S's rows are computed
    64 at a time (a matrix-product distance differs in the last bits between the two layouts)."""
    gen = torch.Generator().manual_seed(0)
    u = torch.sigmoid(3 * torch.randn(300, 128, generator=gen))  # teacher-like outputs in (0, 1)
    radii = knn_radii(u, 40, block=1)
    rows = torch.randperm(300, generator=gen)[:64]
    S = similarity_rows(u, u, (radii, radii), rows, 1.0)
    assert (S.sum(dim=1) >= 40).all()
