import inspect

import joblib
import numpy as np
import pytest
import torch

from cmhbench.datasets.synthetic import SyntheticConfig, generate
from cmhbench.methods import create, get, resolve_params
from cmhbench.methods.jdsh import JDSH
from cmhbench.methods.deep import cosine_matrix, signs
from cmhbench.methods.jdsh import estimate_dsdw
from cmhbench.methods.kdcmh import (
    TEACHER_FIELDS,
    Similarity,
    denoise,
    feature_fusion,
    fuse,
    joint_similarity,
    knn_count,
    knn_thresholds,
    pair_weights,
    shared_neighbours,
    student_step_loss,
    target_rows,
    teacher_fusion,
)

TINY = {"epochs": 2, "hidden": 16, "teacher_epochs": 2, "teacher_hidden": 16, "teacher_bits": 16}


@pytest.fixture(scope="module")
def train():
    ds = generate(SyntheticConfig(n_items=300, n_query=50, n_train=200, image_dim=24, text_dim=10, latent_dim=6,
                                  nuisance_dim=4, n_labels=6, data_seed=3))
    return ds.paired(np.arange(200))


# --- the student's objective -------------------------------------------------------------

def _step_inputs(n=8, c=4, m=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    F_buf = torch.randn(n, c, generator=gen, dtype=torch.float64)
    G = torch.randn(n, c, generator=gen, dtype=torch.float64)
    B = torch.where(torch.randn(n, c, generator=gen) >= 0, 1.0, -1.0).double()
    P = (torch.rand(n, n, generator=gen, dtype=torch.float64) > 0.7).double()
    rows = torch.arange(m)
    out = torch.randn(m, c, generator=gen, dtype=torch.float64)
    return F_buf, G, B, P, rows, out


def _step(F_buf, G, B, P, rows, out, weighted=True, **weights):
    rest = F_buf.sum(0) - F_buf[rows].sum(0)
    kw = {"kappa": 5.0, "gamma": 0.3, "eta": 0.2, **weights}
    return student_step_loss(out, G, P[rows], B[rows], rest, weighted=weighted, **kw)


def test_step_loss_matches_the_direct_formula():
    F_buf, G, B, P, rows, out = _step_inputs()
    loss, terms = _step(F_buf, G, B, P, rows, out)
    n, m = P.shape[0], len(rows)
    theta = 5.0 * torch.nn.functional.normalize(out, dim=1) @ torch.nn.functional.normalize(G, dim=1).T
    target = P[rows]
    bce = torch.log1p(torch.exp(theta)) - target * theta
    pos = target.sum()
    w = torch.where(target > 0, 0.5 * target.numel() / pos, 0.5 * target.numel() / (target.numel() - pos))
    likelihood = (w * bce).mean()
    F_full = F_buf.clone()
    F_full[rows] = out
    balance = (F_full.mean(0) ** 2).mean()
    quantization = ((B[rows] - out) ** 2).mean()
    assert terms["likelihood"].item() == pytest.approx(likelihood.item(), rel=1e-10)
    assert terms["balance"].item() == pytest.approx(balance.item(), rel=1e-10)
    assert loss.item() == pytest.approx((likelihood + 0.3 * quantization + 0.2 * (n / m) * balance).item(), rel=1e-10)


def test_hashnet_weights_give_positives_and_negatives_half_the_weight_each():
    P = torch.zeros(4, 10)
    P[0, :2] = 1.0  # 2 positives among 40 pairs
    w = pair_weights(P)
    assert w[P > 0].sum().item() == pytest.approx(20.0) and w[P == 0].sum().item() == pytest.approx(20.0)
    assert torch.equal(pair_weights(torch.ones(2, 3)), torch.ones(2, 3))  # no negatives: unweighted


def test_per_entry_terms_do_not_depend_on_the_number_of_pairs_or_bits():
    F_buf, G, B, P, rows, out = _step_inputs()
    loss, terms = _step(F_buf, G, B, P, rows, out)
    # every bit twice: c -> 2c
    wide, wide_terms = _step(F_buf.repeat(1, 2), G.repeat(1, 2), B.repeat(1, 2), P, rows, out.repeat(1, 2))
    assert wide.item() == pytest.approx(loss.item(), rel=1e-10)
    # the training set and the batch twice: n -> 2n, m -> 2m (P's rows and columns repeated)
    n = P.shape[0]
    big_rows = torch.cat([rows, rows + n])
    big, big_terms = _step(F_buf.repeat(2, 1), G.repeat(2, 1), B.repeat(2, 1), P.repeat(2, 2), big_rows,
                           out.repeat(2, 1))
    assert big.item() == pytest.approx(loss.item(), rel=1e-10)
    for name in terms:
        assert wide_terms[name].item() == pytest.approx(terms[name].item(), rel=1e-10)
        assert big_terms[name].item() == pytest.approx(terms[name].item(), rel=1e-10)


def test_the_graded_target_is_reached_at_the_teachers_cosines():
    # teacher similarities that c-bit student outputs can realise: cosines of 6-d unit vectors
    z = torch.nn.functional.normalize(torch.randn(12, 6, generator=torch.Generator().manual_seed(2),
                                                  dtype=torch.float64), dim=1)
    P = target_rows(z, torch.arange(12), "graded", kappa=5.0)

    def likelihood(out, other):
        return student_step_loss(out, other, P, torch.ones_like(out), torch.zeros(6, dtype=out.dtype), kappa=5.0,
                                 gamma=0.0, eta=0.0, weighted=False)[0]

    # outputs whose cosines are the teacher's are the optimum: no gradient, any change costs
    at_teacher = z.clone().requires_grad_(True)
    best = likelihood(at_teacher, z)
    best.backward()
    assert at_teacher.grad.abs().max().item() < 1e-12
    gen = torch.Generator().manual_seed(6)
    for _ in range(5):
        assert likelihood(z + 0.1 * torch.randn(12, 6, generator=gen, dtype=torch.float64), z).item() > best.item()
    # and gradient descent from random outputs gets there (off the flat diagonal, s_ii = 1)
    out = torch.randn(12, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64, requires_grad=True)
    other = torch.randn(12, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([out, other], lr=0.05)
    for _ in range(300):
        loss = likelihood(out, other)
        opt.zero_grad()
        loss.backward()
        opt.step()
    error = (cosine_matrix(out.detach(), other.detach()) - z @ z.T).abs()
    off_diagonal = error[~torch.eye(12, dtype=torch.bool)]
    assert off_diagonal.mean().item() < 0.03
    assert (z @ z.T)[~torch.eye(12, dtype=torch.bool)].abs().mean().item() > 0.2  # far from all-orthogonal


# --- distilled targets ---------------------------------------------------------------------

# unit fused codes: s01 = 0.8, s02 = 0, s03 = −1, s12 = 0.6, s13 = −0.8, s23 = 0
Z = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
ALL = torch.arange(4)


def test_fuse_normalises_each_modality_then_the_sum():
    u = torch.tensor([[3.0, 0.0]])
    v = torch.tensor([[0.0, 0.5]])
    assert torch.allclose(fuse(u, v), torch.tensor([[2 ** -0.5, 2 ** -0.5]]))


def test_sign_teacher_codes_fuse_the_signs_of_the_relaxed_codes():
    u = torch.tensor([[0.9, -0.1, 0.2, 0.0], [0.3, 0.3, -0.8, 0.1]])
    v = torch.tensor([[0.5, 0.4, -0.3, -0.2], [0.1, -0.9, -0.1, 0.2]])
    assert torch.allclose(teacher_fusion(u, v, "sign"), fuse(signs(u), signs(v)))
    assert torch.allclose(teacher_fusion(u, v, "continuous"), fuse(u, v))
    z = teacher_fusion(u, v, "sign")
    # row 0: signs (+,−,+,+) and (+,+,−,−) → sum (2,0,0,0) → e1
    assert torch.allclose(z[0], torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_feature_fusion_averages_the_two_modalities_cosines():
    gen = torch.Generator().manual_seed(5)
    x, y = torch.randn(7, 5, generator=gen, dtype=torch.float64), torch.randn(7, 3, generator=gen, dtype=torch.float64)
    z = feature_fusion(x, y)
    expected = (cosine_matrix(x - x.mean(0)) + cosine_matrix(y - y.mean(0))) / 2.0
    assert torch.allclose(z @ z.T, expected)


def test_graded_target_on_a_hand_checkable_case():
    P = target_rows(Z, ALL, "graded", kappa=2.0)
    s = Z @ Z.T
    assert torch.allclose(P, torch.sigmoid(2.0 * s), atol=1e-6)
    assert torch.allclose(target_rows(Z, torch.tensor([2, 0]), "graded", kappa=2.0), P[[2, 0]], atol=1e-6)


def test_knn_target_on_a_hand_checkable_case():
    # k = 1: nearest other item of 0 is 1 (0.8), of 1 is 0 (0.8), of 2 is 1 (0.6), of 3 is 2 (0.0)
    tau = knn_thresholds(Z, 1)
    assert torch.allclose(tau, torch.tensor([0.8, 0.8, 0.6, 0.0]), atol=1e-6)
    S = target_rows(Z, ALL, "knn", kappa=5.0, thresholds=tau)
    expected = torch.tensor([[1.0, 1.0, 0.0, 0.0],
                             [1.0, 1.0, 1.0, 0.0],   # 1–2: 2's nearest is 1
                             [0.0, 1.0, 1.0, 1.0],   # 2–3: 3's nearest is 2
                             [0.0, 0.0, 1.0, 1.0]])
    assert torch.equal(S, expected)
    assert torch.equal(S, S.T)
    assert torch.equal(target_rows(Z, torch.tensor([3, 1]), "knn", kappa=5.0, thresholds=tau), expected[[3, 1]])


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
def teacher_fits(count_fits):
    return count_fits(JDSH)


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


@pytest.mark.parametrize("cached", [False, True])
def test_the_teachers_epochs_are_reported_as_progress_before_the_students(train, tmp_path, cached):
    """A teacher fit takes minutes: a run's bar shows its epochs (as teacher_loss), then the student's."""
    memory = joblib.Memory(str(tmp_path / "cache"), verbose=0) if cached else None
    reports = []
    model = create("kdcmh", params=TINY, device="cpu", cache=memory)
    model.fit(train, 8, progress=reports.append)
    teacher = [r for r in reports if "teacher_loss" in r.values]
    student = [r for r in reports if "loss" in r.values]
    assert [r.done for r in teacher] == list(range(1, TINY["teacher_epochs"] + 1))
    assert {r.total for r in teacher} == {TINY["teacher_epochs"]}
    assert [r.done for r in student] == list(range(1, TINY["epochs"] + 1))
    assert reports.index(student[0]) == len(teacher)  # the teacher's come first
    if cached:  # a teacher read from the cache reports nothing
        reports.clear()
        create("kdcmh", params=TINY, device="cpu", cache=memory).fit(train, 8, progress=reports.append)
        assert reports and all("teacher_loss" not in r.values for r in reports)


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


def test_no_dataset_override_of_the_student_only_the_teachers_from_jdsh():
    """Per-dataset student values come from ``cmhbench priors`` (a generated file), never from
    a constant in the module: an override touches the teacher alone, with jdsh's values."""
    for dataset, values in get("kdcmh").info.dataset_overrides.items():
        assert set(values) <= {f"teacher_{name}" for name in TEACHER_FIELDS}, dataset
    assert resolve_params("kdcmh", dataset="wikipedia") == resolve_params("kdcmh")


# --- training and codes --------------------------------------------------------------------

def test_history_report_and_pair_codes(train):
    model = create("kdcmh", params={**TINY, "epochs": 3, "distill": "knn"}, device="cpu").fit(train, 16)
    history = model.loss_history_
    assert {"loss", "loss_image", "loss_text", "likelihood", "quantization", "balance"} <= set(history)
    assert all(values.shape == (3,) for values in history.values())
    report = model.fit_report()
    assert report["epochs"] == 3 and report["distill"] == "knn" and report["k"] == knn_count(train.n, 0.05)
    assert 0.0 < report["target_mean"] < 1.0 and report["teacher"]["bits"] == 16
    # the pair code is sgn(f_I(x) + f_T(y)), B's out-of-sample form
    x, y = train.image[:30], train.text[:30]
    expected = np.where(model._run(model._image_net64, x) + model._run(model._text_net64, y) >= 0, 1, -1)
    assert np.array_equal(model.encode_pair(x, y), expected)


def test_the_features_own_similarity_needs_no_teacher(train, teacher_fits):
    model = create("kdcmh", params={**TINY, "source": "features"}, device="cpu").fit(train, 8)
    assert teacher_fits == [] and model.fit_report()["teacher"] is None
    assert model.fit_report()["source"] == "features"


def test_linear_image_network_is_an_affine_map(train):
    model = create("kdcmh", params={**TINY, "image_network": "linear"}, device="cpu").fit(train, 8)
    x1, x2 = train.image[:5].astype(np.float64), train.image[5:10].astype(np.float64)
    mid = model._encode_image(0.5 * (x1 + x2))
    assert np.allclose(mid, 0.5 * (model._encode_image(x1) + model._encode_image(x2)))
    mlp_model = create("kdcmh", params=TINY, device="cpu").fit(train, 8)
    assert not np.allclose(mlp_model._encode_image(0.5 * (x1 + x2)),
                           0.5 * (mlp_model._encode_image(x1) + mlp_model._encode_image(x2)))


@pytest.mark.parametrize("distill", ["knn", "graded"])
def test_codes_of_a_small_training_set_stay_distinct(train, distill):
    params = {**TINY, "epochs": 40, "batch_size": 50, "hidden": 64, "lr_image": 1e-3, "lr_text": 1e-3,
              "lr_final": 1e-4, "teacher_epochs": 10, "distill": distill}
    model = create("kdcmh", params=params, device="cpu").fit(train, 16)
    for codes in (model.encode_image(train.image), model.encode_text(train.text)):
        # not collapsed onto a few codes (version 2's failure: F, G shrank towards 0)
        assert len({row.tobytes() for row in codes}) > 0.4 * train.n


def test_the_ablation_grid_loads_and_every_variant_is_a_valid_kdcmh():
    from pathlib import Path

    from cmhbench.harness.config import load_config

    config = load_config(Path(__file__).resolve().parents[2] / "docs" / "ablations" / "kdcmh.toml")
    assert {"jdsh", "djsrh", "kdcmh"} <= set(config["methods"])
    for name, variant in config["variants"].items():
        assert name in config["methods"] and variant["base"] == "kdcmh"
        values = {k: v for k, v in variant.items() if k != "base"}
        assert resolve_params(get("kdcmh"), params=values)  # in-domain values of real parameters


# --- issue 33: the joint target, shared-neighbour denoising, iterated distillation ---------------

def _np_cos(a):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    return a @ a.T


def _np_rownorm(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _np_joint(x, y, p):
    """JDSH's joint-modal similarity and DSDW, written out in NumPy from the paper's equations."""
    s_i, s_t = 2 * _np_cos(x) - 1, 2 * _np_cos(y) - 1
    high = _np_rownorm(s_i) @ _np_rownorm(s_t).T
    S = p["alpha"] * s_i + p["beta"] * s_t + p["lam"] * (high + high.T) / 2
    left, right = p["loc"] - p["a"] * p["scale_left"], p["loc"] + p["b"] * p["scale_right"]
    out = np.where(S < left, (1 + p["l1"] * np.exp(-(S - p["s_min"]))) * S, S)
    out = np.where(S > right, (1 + p["l2"] * np.exp(S - p["s_max"])) * S, out)
    return p["mu"] * out


JOINT = {"alpha": 0.5, "beta": 0.1, "lam": 0.4, "a": 2.0, "b": 4.0, "l1": 0.1, "l2": 0.2, "mu": 1.4,
         "loc": 0.0, "scale_left": 0.05, "scale_right": 0.05, "s_min": -0.6, "s_max": 0.7}


def test_joint_similarity_is_jdshs_target_over_the_whole_training_set():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, 5)), rng.normal(size=(9, 3))
    ours = joint_similarity(torch.from_numpy(x), torch.from_numpy(y), JOINT).numpy()
    expected = _np_joint(x, y, JOINT)
    assert np.allclose(ours, expected, atol=1e-12)
    assert not np.allclose(expected, JOINT["mu"] * (0.5 * (2 * _np_cos(x) - 1) + 0.1 * (2 * _np_cos(y) - 1)
                                                     + 0.4 * (2 * _np_cos(x) - 1)))  # the weighting acts


def test_joint_similarity_estimates_the_dsdw_constants_on_its_own_off_diagonal_entries():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(12, 5)), rng.normal(size=(12, 3))
    unset = {**JOINT, **{name: None for name in ("loc", "scale_left", "scale_right", "s_min", "s_max")}}
    raw = _np_joint(x, y, {**JOINT, "l1": 0.0, "l2": 0.0, "mu": 1.0})  # S before DSDW
    constants = estimate_dsdw(raw[~np.eye(12, dtype=bool)])
    ours = joint_similarity(torch.from_numpy(x), torch.from_numpy(y), unset).numpy()
    assert np.allclose(ours, _np_joint(x, y, {**JOINT, **constants}), atol=1e-12)


def _np_knn_lists(s, k):
    ranked = s.copy()
    np.fill_diagonal(ranked, -np.inf)
    return [set(np.argsort(-row)[:k]) for row in ranked]


def test_shared_neighbour_denoising_matches_a_numpy_implementation():
    rng = np.random.default_rng(2)
    z = _np_rownorm(rng.normal(size=(15, 4)))
    s = z @ z.T
    k, weight = 4, 0.3
    lists = _np_knn_lists(s, k)
    c = np.array([[len(lists[i] & lists[j]) / k for j in range(15)] for i in range(15)])
    expected = (1 - weight) * s + weight * (2 * c - 1)
    np.fill_diagonal(expected, expected.max())
    sim = denoise(Similarity(factor=torch.from_numpy(z)), k, weight)
    assert np.allclose(sim.dense.numpy(), expected, atol=1e-12)
    assert np.allclose(shared_neighbours(Similarity(factor=torch.from_numpy(z)), k, block=4).numpy(), c)


def test_denoising_drops_a_neighbour_that_shares_no_neighbours():
    # two tight arcs of unit vectors (0°–10° and 80°–90°) and a bridge: a3 (35°) and b3 (55°) are
    # each other's nearest, but their other neighbours lie on their own arcs
    angles = np.radians([0, 5, 10, 35, 55, 80, 85, 90])
    z = torch.from_numpy(np.stack([np.cos(angles), np.sin(angles)], axis=1))
    a3, b3 = 3, 4
    plain = Similarity(factor=z)
    before = target_rows(plain, ALL8, "knn", kappa=5.0, thresholds=knn_thresholds(plain, 1))
    assert before[a3, b3] == 1.0 and before[a3, :3].sum() == 0 and before[b3, 5:].sum() == 0
    clean = denoise(plain, 3, 0.5)
    after = target_rows(clean, ALL8, "knn", kappa=5.0, thresholds=knn_thresholds(clean, 1))
    assert after[a3, b3] == 0.0 and after[a3, :3].sum() >= 1 and after[b3, 5:].sum() >= 1  # each joins its arc
    assert torch.equal(after, after.T)


ALL8 = torch.arange(8)


def test_knn_target_of_a_dense_similarity_matches_numpy():
    rng = np.random.default_rng(3)
    S = rng.normal(size=(10, 10))
    S = (S + S.T) / 2
    sim = Similarity.of_matrix(torch.from_numpy(S))
    k = 3
    ranked = S.copy()
    np.fill_diagonal(ranked, -np.inf)
    tau = np.sort(ranked, axis=1)[:, -k]
    full = S.copy()
    np.fill_diagonal(full, S.max())
    expected = ((full >= tau[:, None]) | (full >= tau[None, :])).astype(float)
    rows = torch.tensor([7, 0, 4])
    P = target_rows(sim, rows, "knn", kappa=5.0, thresholds=knn_thresholds(sim, k, block=3))
    assert np.array_equal(P.numpy(), expected[[7, 0, 4]])
    assert (P[torch.arange(3), rows] == 1).all()  # the own pair is always a neighbour


def test_training_similarity_without_a_teacher_is_the_features_fused_or_joint_similarity(train):
    fused = create("kdcmh", params={**TINY, "source": "features"}, device="cpu").training_similarity(train)
    z = feature_fusion(torch.from_numpy(train.image), torch.from_numpy(train.text)).double().numpy()
    expected = z @ z.T
    np.fill_diagonal(expected, 1.0)
    assert np.allclose(fused, expected, atol=1e-5)
    # the teacher's DSDW constants given (their estimation is checked above, in float64)
    constants = {"loc": -0.1, "scale_left": 0.05, "scale_right": 0.1, "s_min": -0.5, "s_max": 0.9}
    joint = create("kdcmh", params={**TINY, "source": "features", "similarity": "joint",
                                    **{f"teacher_{k}": v for k, v in constants.items()}},
                   device="cpu").training_similarity(train)
    x, y = train.image.astype(np.float64), train.text.astype(np.float64)
    expected = _np_joint(x, y, {**JDSH.default_params(), **constants})
    np.fill_diagonal(expected, expected.max())
    assert np.allclose(joint, expected, atol=1e-4)


def test_iterated_distillation_trains_one_student_per_round_and_reports_each(train):
    reports = []
    model = create("kdcmh", params={**TINY, "rounds": 3}, device="cpu")
    model.fit(train, 8, progress=reports.append)
    stages = [r.stage for r in reports if r.stage != "teacher epoch"]
    E = TINY["epochs"]
    assert stages == ["epoch"] * E + ["round 2 epoch"] * E + ["round 3 epoch"] * E
    assert all(values.shape == (3 * E,) for values in model.loss_history_.values())
    assert model.fit_report()["rounds"] == 3 and model.epoch_steps(train.n) == 3 * 2 * (train.n // 128 or 1)
    one = create("kdcmh", params=TINY, device="cpu").fit(train, 8)
    assert not np.array_equal(model.encode_image(train.image), one.encode_image(train.image))


def test_a_later_round_distils_the_previous_students_outputs(train, teacher_fits):
    params = {**TINY, "source": "features", "rounds": 2}
    first = create("kdcmh", params={**params, "rounds": 1}, device="cpu").fit(train, 8)
    second = create("kdcmh", params=params, device="cpu")
    seen = []
    prepare = second._prepare

    def spy(run, tr):
        prepare(run, tr)
        seen.append(run.state["sim"].matrix().double().numpy())

    second._prepare = spy
    second.fit(train, 8)
    assert teacher_fits == [] and len(seen) == 2
    assert np.allclose(seen[1], first.next_similarity(train), atol=1e-5)  # round 1 is the 1-round model


def test_declared_defaults_build_the_constructor():
    from cmhbench.methods.kdcmh import KDCMH

    signature = inspect.signature(KDCMH).parameters  # the constructor is built from param_domains
    assert {name: signature[name].default for name in KDCMH.param_domains} == \
        {name: domain.default for name, domain in KDCMH.param_domains.items()}
    model = KDCMH(rounds=2, seed=3)
    assert (model.rounds, model.seed, model.similarity, model.coherence, model.distill) == (2, 3, "fused", 0.0, "knn")
    assert KDCMH().teacher_epochs == JDSH.default_params()["epochs"]
    with pytest.raises(TypeError, match="rond"):
        KDCMH(ronds=2)
