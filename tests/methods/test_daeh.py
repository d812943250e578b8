import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform
from scipy.stats import norm

from cmhbench.methods import ParameterError, create, resolve_params
from cmhbench.methods.daeh import (alignment, attribute_loss, batch_similarity, cosine_distance_statistics,
                                   mutual_information)
from cmhbench.testing import check_method

TINY = {"epochs": 1, "hidden": 16, "teacher_hidden": 8, "batch_size": 10}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def train(tiny_train):
    return tiny_train


# --- the equations, in NumPy, written from the authors' code (daeh.py, model_loader.py) ---------------
def _unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _np_alignment(a, b, S):
    """mse(diag(âb̂ᵀ), 1.5) + mse(âb̂ᵀ off the diagonal, S off the diagonal) + mse(ââᵀ, b̂b̂ᵀ)."""
    a, b = _unit(a), _unit(b)
    ab = a @ b.T
    off = 1.0 - np.eye(len(S))
    return np.mean((np.diag(ab) - 1.5) ** 2) + np.mean((ab * off - S * off) ** 2) + np.mean((a @ a.T - b @ b.T) ** 2)


def _np_entropy(A):
    """Rényi's order-2 entropy of a normalised Gram matrix, from its eigenvalues."""
    lam = np.linalg.eigvalsh(A)
    return -np.log(np.sum(np.abs(lam) ** 2))


def _np_mutual_information(u, v, sigma=1.0):
    def gram(z):
        d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(2)
        return np.exp(-d2 / (2 * sigma ** 2)) / len(z)
    Ku, Kv = gram(u), gram(v)
    return _np_entropy(Ku) + _np_entropy(Kv) - _np_entropy(Ku * Kv * len(u))


def _np_similarity(x, y, near, far, text_near, text_far, a1):
    """distance_fusion (daeh.py:449-485) with the image thresholds given."""
    d_i = squareform(pdist(x, "cosine"))
    s_vgg = (d_i < near) * 1.0 + (d_i > far) * -1.0
    d_t = squareform(pdist(y, "euclidean"))
    s_txt = np.zeros_like(d_t)
    s_txt[d_t <= text_near] = 1
    s_txt[d_t >= text_far] = -1
    s = 1.0 * (s_vgg + s_txt == 2) - 1.0 * (((s_vgg == -1) + (s_txt == -1)) > 0)
    decided = (s == 1) | (s == -1)
    fused = 2.0 * (a1 * _unit(y) @ _unit(y).T + (1 - a1) * _unit(x) @ _unit(x).T) - 1
    fused[decided] = 0
    return fused + s


def _np_thresholds(x, top=1.0, width=0.01):
    """generate_similarity_matrix's statistics (daeh.py:498-525): the fullest bin's left edge and
    the mirrored normals' standard deviations (scipy's norm.fit)."""
    d = squareform(pdist(x, "cosine"))
    edges = np.arange(0.0, top, width)
    counts = [np.sum((d > lo) & (d < lo + width)) for lo in edges]
    mu = edges[int(np.argmax(counts))]
    flat = d.reshape(-1)
    left, right = flat[flat <= mu], flat[flat > mu]
    _, sl = norm.fit(np.concatenate([left, 2 * mu - left]))
    _, sr = norm.fit(np.concatenate([2 * mu - right, right]))
    return mu, sl, sr


RNG = np.random.default_rng(7)
M, C = 6, 5
F_OUT = np.tanh(RNG.standard_normal((M, C)))
G_OUT = np.tanh(RNG.standard_normal((M, C)))
T_OUT = np.tanh(RNG.standard_normal((M, C)))
X = RNG.random((M, 8))                              # non-negative image features
Y = (RNG.random((M, 12)) < 0.3).astype(float)       # binary tags
Y[1] = Y[0]; Y[1, 0] = 1 - Y[1, 0]                  # one pair of texts one tag apart: s^T = +1
X[1] = X[0] + 0.01                                  # and their images close: S = +1
S_BATCH = _np_similarity(X, Y, near=0.05, far=0.3, text_near=1.0, text_far=2.5, a1=0.3)


def _t(a):
    return torch.tensor(a, dtype=torch.float64)


def test_the_batch_similarity_matches_the_authors_construction():
    got = batch_similarity(_t(X), _t(Y), near=0.05, far=0.3, text_near=1.0, text_far=2.5, text_weight=0.3)
    assert np.allclose(got.numpy(), S_BATCH, atol=1e-12)
    # the fixed batch holds all three cases: agreed near, far, and fused values in between
    assert S_BATCH[0, 1] == 1.0 and (S_BATCH == -1).any() and ((S_BATCH > -1) & (S_BATCH < 1)).any()


def test_alignment_matches_numpy():
    for a, b in ((F_OUT, G_OUT), (F_OUT, T_OUT), (G_OUT, T_OUT)):
        assert alignment(_t(a), _t(b), _t(S_BATCH)).item() == pytest.approx(_np_alignment(a, b, S_BATCH), rel=1e-12)


def test_attribute_loss_matches_numpy():
    attribute, recovered = RNG.random((M, 8)), np.tanh(RNG.standard_normal((M, C)))
    want = (((recovered - T_OUT) ** 2).sum() + ((attribute - X) ** 2).sum()) / M
    assert attribute_loss(_t(T_OUT), _t(attribute), _t(recovered), _t(X)).item() == pytest.approx(want, rel=1e-12)


def test_mutual_information_matches_the_eigenvalue_definition():
    for out in (F_OUT, G_OUT, 3 * T_OUT):
        want = _np_mutual_information(S_BATCH, out)
        assert mutual_information(_t(S_BATCH), _t(out)).item() == pytest.approx(want, rel=1e-10)
    # a variable that carries S exactly tells more about S than one that is constant
    assert mutual_information(_t(S_BATCH), _t(S_BATCH)) > mutual_information(_t(S_BATCH), torch.zeros(M, C,
                                                                                           dtype=torch.float64))


def test_cosine_distance_statistics_match_the_authors_histogram_and_normal_fits():
    x = np.random.default_rng(1).random((90, 16)) ** 3   # non-negative: every distance lies in [0, 1]
    mu, sl, sr = _np_thresholds(x)
    got = cosine_distance_statistics(_t(x), block_elements=700)   # 7-row blocks
    assert got["mu"] == pytest.approx(mu, abs=1e-12)
    assert got["sigma_left"] == pytest.approx(sl, rel=1e-9) and got["sigma_right"] == pytest.approx(sr, rel=1e-9)
    # zero-centred features reach distances past 1: the bins cover them too
    z = np.random.default_rng(2).standard_normal((80, 32))
    mu, sl, sr = _np_thresholds(z, top=2.0)
    got = cosine_distance_statistics(_t(z))
    assert pdist(z, "cosine").max() > 1.2
    assert got["mu"] == pytest.approx(mu, abs=1e-12) and got["sigma_right"] == pytest.approx(sr, rel=1e-9)


def test_the_objective_of_a_batch_is_the_authors_sum_with_the_weaker_student_enhanced(train):
    model = create("daeh", params={**TINY, "student_weight": 3.0, "teacher_weight": 0.7, "enhance_weight": 0.2,
                                   "gamma": 0.05}, device="cpu").fit(train, 8)
    model.image_net_.eval(), model.text_net_.eval()   # no dropout: the NumPy side sees the same outputs
    x, y = torch.from_numpy(train.image[:20]).double(), torch.from_numpy(train.text[:20]).double()
    for net in (model.image_net_, model.text_net_, model.teacher_net_):
        net.double()
    loss, terms = model._batch_loss(0, torch.arange(20), x, y)
    with torch.no_grad():
        f, g = model.image_net_(x).numpy(), model.text_net_(y).numpy()
        t, attribute, recovered = (o.numpy() for o in model.teacher_net_(x))
    sim = model.fit_report()["similarity"]
    S = _np_similarity(x.numpy(), y.numpy(), sim["near"], sim["far"], 1.0, 5.0, 0.3)
    text_weaker = _np_mutual_information(S, f) > _np_mutual_information(S, g)
    enhance = _np_alignment(g, t, S) if text_weaker else _np_alignment(f, t, S)
    att = (((recovered - t) ** 2).sum() + ((attribute - x.numpy()) ** 2).sum()) / 20
    want = (3.0 * _np_alignment(f, g, S) + 0.7 * (_np_alignment(f, t, S) + _np_alignment(g, t, S)) + 0.05 * att
            + 0.2 * enhance)
    assert loss.item() == pytest.approx(want, rel=1e-9)
    assert terms["text_enhanced"].item() == float(text_weaker) and terms["enhance"].item() == pytest.approx(enhance)


# --- the method ------------------------------------------------------------------------------------
def test_quick_fit_history_report_and_codes(train):
    model = create("daeh", preset="quick", device="cpu").fit(train, 16)
    history = model.loss_history_
    assert history["loss"].shape == (3,) and {"students", "teacher", "attribute", "enhance"} <= set(history)
    report = model.fit_report()
    sim = report["similarity"]
    assert sim["near"] < sim["mu"] < sim["far"] and 0.0 <= report["text_enhanced_share"] <= 1.0
    image, text = model.encode_image(train.image), model.encode_text(train.text)
    assert np.array_equal(image, np.where(model._encode_image(train.image) >= 0, 1, -1))
    assert len({row.tobytes() for row in text}) > 10  # the text codes of 120 items are not one code


def test_the_loss_falls_in_training(train):
    model = create("daeh", params={**TINY, "epochs": 8}, device="cpu").fit(train, 16)
    assert model.loss_history_["loss"][-1] < model.loss_history_["loss"][0]


def test_the_teacher_counts_in_the_gpu_memory_estimate():
    model = create("daeh", device="cpu")
    # the attribute branch is as wide as the image features: wider features, more memory than the
    # features themselves and the students' first layer account for
    small, large = (model.gpu_memory_bytes(1000, d, 100, 64) for d in (100, 200))
    students = 4 * 4 * 100 * 4096  # the image student's extra first-layer weights, four copies
    assert large - small > 4 * 1000 * 100 + students


@pytest.mark.parametrize("param, value", [("dropout", 1.0), ("text_weight", 1.5), ("batch_size", 1),
                                          ("alpha", -1.0), ("gamma", -0.1)])
def test_parameter_domains_refuse_bad_values(param, value):
    with pytest.raises(ParameterError, match=f"daeh.{param}"):
        resolve_params("daeh", params={param: value})


def test_text_thresholds_must_be_ordered(train):
    with pytest.raises(ValueError, match="text_near"):
        create("daeh", params={**TINY, "text_near": 5.0, "text_far": 2.0}, device="cpu").fit(train, 8)


def test_defaults_are_the_authors():
    defaults = resolve_params("daeh", preset="paper")
    assert defaults["epochs"] == 30 and defaults["batch_size"] == 18 and defaults["gamma"] == 1e-3
    assert (defaults["student_weight"], defaults["teacher_weight"], defaults["enhance_weight"]) == (4.0, 1.0, 0.1)


@pytest.mark.slow
def test_conformance():
    check_method("daeh")
