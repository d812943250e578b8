import numpy as np
import pytest
import torch

from cmhbench.methods import create
from cmhbench.methods.cirh import (CIRH, FusionNet, FusionOutput, collaborated_similarity, epoch_batches,
                                   fusion_loss, hash_loss, hash_network, neighbour_mix)
from cmhbench.methods.registry import ParameterError
from cmhbench.testing import check_method

TINY = {"epochs": 2, "hidden": 16, "fusion_width": 8, "batch_size": 32}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def train(tiny_train):
    return tiny_train


# --- independent NumPy versions of the paper's equations, on a fixed tiny batch ------------------
RNG = np.random.default_rng(0)
X = np.abs(RNG.normal(size=(6, 5)))   # non-negative, like the authors' fc7 features
Y = (RNG.random((6, 4)) > 0.4) * 1.0 + 0.01 * RNG.random((6, 4))  # bag-of-words-like tags


def _t(a):
    return torch.tensor(a, dtype=torch.float64)


def _cos(a, b=None):
    b = a if b is None else b
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    return an @ bn.T


def _np_similarity(x, y, a1, a2, k):
    s1 = a1 * _cos(x) + (1 - a1) * _cos(y)
    for row in s1:
        row[np.argsort(row)[:k]] = 0.0
    t = 2.0 / (1.0 + np.exp(-s1)) - 1.0 + np.eye(len(s1))
    return a2 * s1 + (1 - a2) * (t + t.T) / 2


@pytest.mark.parametrize("a1,a2,k", [(0.6, 0.6, 2), (0.1, 0.3, 0), (0.5, 0.5, 4)])
def test_collaborated_similarity_matches_numpy(a1, a2, k):
    S = collaborated_similarity(_t(X), _t(Y), a1=a1, a2=a2, k=k).numpy()
    assert np.allclose(S, _np_similarity(X, Y, a1, a2, k), atol=1e-12)
    # each item is its own most similar item, so rank 0 of a row is the row itself
    assert (S.argmax(axis=1) == np.arange(len(S))).all()


def test_neighbour_mix_matches_numpy():
    S = _np_similarity(X, Y, 0.6, 0.6, 2)
    order = np.argsort(-S, axis=1)  # decreasing: the item itself, then its neighbours
    expected = 0.7 * X + 0.2 * X[order[:, 2]] + 0.1 * X[order[:, 3]]
    assert np.allclose(neighbour_mix(_t(X), _t(S)).numpy(), expected, atol=1e-12)
    # a batch of 2 rows has no rank 2 or 3: the last rank stands in
    small = S[:2, :2]
    last = np.argsort(-small, axis=1)[:, -1]
    assert np.allclose(neighbour_mix(_t(X[:2]), _t(small)).numpy(), 0.7 * X[:2] + 0.3 * X[:2][last], atol=1e-12)


def _mse(a, b):
    return ((a - b) ** 2).mean()


def test_fusion_loss_matches_numpy():
    S = _np_similarity(X, Y, 0.6, 0.6, 2)
    hx, hy, hj = RNG.normal(size=(3, 6, 4))
    h = np.tanh(hj)
    rx, ry = RNG.normal(size=(6, 5)), RNG.normal(size=(6, 4))
    expected = (10 * (_mse(rx, X) + _mse(ry, Y))
                + 1 * (_mse(S, _cos(hx)) + _mse(S, _cos(hy)) + _mse(S, _cos(h)))
                + _mse(h, np.sign(h)))
    out = FusionOutput(_t(hx), _t(hy), _t(h), _t(rx), _t(ry))
    loss, terms = fusion_loss(out, _t(X), _t(Y), _t(S), lambda1=10.0, lambda2=1.0)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert terms["quantization"].item() == pytest.approx(_mse(h, np.sign(h)), rel=1e-12)


def test_hash_loss_matches_numpy():
    S = _np_similarity(X, Y, 0.6, 0.6, 2)
    f, g = np.tanh(RNG.normal(size=(2, 6, 4)))
    b = np.sign(RNG.normal(size=(6, 4)))
    expected = (_mse(f, b) + _mse(g, b) + _mse(f, g)
                + 0.01 * (_mse(_cos(f, g), S) + _mse(_cos(f), S) + _mse(_cos(g), S)))
    loss, terms = hash_loss(_t(f), _t(g), _t(b), _t(S), beta=0.01)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert terms["code_fit"].item() == pytest.approx(_mse(f, b) + _mse(g, b) + _mse(f, g), rel=1e-12)


def _np_bn(z, eps=1e-5):
    """Batch normalisation in training mode at initialisation (scale 1, shift 0, biased variance)."""
    return (z - z.mean(0)) / np.sqrt(z.var(0) + eps)


def _np_linear(params, name, z):
    return z @ params[f"{name}.weight"].T + params[f"{name}.bias"]


def test_fusion_network_matches_numpy():
    """Equation 3 written out with the cross-modal graph as the 2m × 2m matrix [S, I; I, S]."""
    torch.manual_seed(0)
    net = FusionNet(5, 4, 7, 3).double().train()
    p = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    S = _np_similarity(X, Y, 0.6, 0.6, 2)
    relu = lambda z: np.maximum(z, 0.0)  # noqa: E731

    def normalize(z):
        return z / np.linalg.norm(z, axis=1, keepdims=True)

    vx = normalize(relu(_np_bn(_np_linear(p, "image_encoder.0", X))))
    vy = normalize(relu(_np_bn(_np_linear(p, "text_encoder.0", Y))))
    gx = relu(_np_bn(S @ _np_linear(p, "image_graph", vx)))
    gy = relu(_np_bn(S @ _np_linear(p, "text_graph", vy)))
    eye = np.eye(6)
    A = np.block([[S, eye], [eye, S]])
    u = _np_bn(A @ _np_linear(p, "joint_graph", np.vstack([vx, vy])))
    vj = relu(u[:6] + u[6:])
    hj = _np_bn(_np_linear(p, "joint_head", vj))
    hx = _np_bn(_np_linear(p, "image_head", np.hstack([gx, vj])))
    hy = _np_bn(_np_linear(p, "text_head", np.hstack([vj, gy])))
    h = np.tanh(_np_bn(_np_linear(p, "fuse", np.hstack([hx, hj, hy]))))
    rx = _np_bn(_np_linear(p, "image_decoder.3", relu(_np_bn(_np_linear(p, "image_decoder.0", h + np.tanh(hx))))))
    ry = _np_bn(_np_linear(p, "text_decoder.3", relu(_np_bn(_np_linear(p, "text_decoder.0", h + np.tanh(hy))))))
    out = net(_t(X), _t(Y), _t(S))
    for got, want in ((out.image_hash, hx), (out.text_hash, hy), (out.joint, h), (out.image_recon, rx),
                      (out.text_recon, ry)):
        assert np.allclose(got.detach().numpy(), want, atol=1e-9)


def test_hash_networks_read_normalised_features_and_start_from_unit_weights():
    torch.manual_seed(0)
    net = hash_network(5, 4096, 16, 0.3).double().eval()
    assert net[4].weight.std().item() == pytest.approx(1.0, abs=0.02)
    with torch.no_grad():
        assert torch.allclose(net(_t(X)), net(_t(3.5 * X)), atol=1e-12)  # a row's scale does not change its code


def test_epoch_batches_cover_every_row_and_drop_only_a_single_last_row():
    gen = torch.Generator().manual_seed(0)
    batches = epoch_batches(10, 4, gen, torch.device("cpu"))
    assert [len(b) for b in batches] == [4, 4, 2]  # the last smaller batch is kept, as the authors' loader does
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    assert [len(b) for b in epoch_batches(9, 4, gen, torch.device("cpu"))] == [4, 4]
    model = CIRH(batch_size=4)
    assert (model.epoch_steps(10), model.epoch_steps(9), model.epoch_steps(3)) == (6, 4, 2)


def test_each_epoch_is_a_fusion_pass_then_a_hash_pass_over_the_same_batches(train, monkeypatch):
    calls = []
    for name in ("_fusion_step", "_hash_step"):
        real = getattr(CIRH, name)

        def recording(self, rows, run, _real=real, _name=name):
            calls.append((_name, rows.tolist()))
            return _real(self, rows, run)

        monkeypatch.setattr(CIRH, name, recording)
    model = create("cirh", params={**TINY, "epochs": 1}, device="cpu").fit(train, 8)
    fusion = [rows for name, rows in calls if name == "_fusion_step"]
    hashing = [rows for name, rows in calls if name == "_hash_step"]
    assert [name for name, _ in calls] == ["_fusion_step"] * len(fusion) + ["_hash_step"] * len(hashing)
    assert fusion == hashing and len(calls) == model.epoch_steps(train.n)
    assert sorted(sum(fusion, [])) == list(range(train.n))


def test_the_hash_pass_learns_this_epochs_fusion_codes_and_the_batchs_own_similarity(train, monkeypatch):
    """The authors' hash pass reads S's block of other pairs (my_opt.py:120-121); ours reads the
    batch's own block, and regresses the codes the fusion pass gave the same pairs this epoch."""
    from cmhbench.methods import cirh

    fused, hashed = [], []
    real_fusion, real_hash, real_step = cirh.fusion_loss, cirh.hash_loss, CIRH._hash_step

    def fusion_spy(out, *args, **kwargs):
        fused.append(torch.where(out.joint >= 0, 1.0, -1.0).detach().clone())
        return real_fusion(out, *args, **kwargs)

    def hash_spy(image_out, text_out, codes, S_batch, **kwargs):
        hashed.append((codes.clone(), S_batch.clone()))
        return real_hash(image_out, text_out, codes, S_batch, **kwargs)

    rows_seen = []

    def step_spy(self, rows, run):
        rows_seen.append(rows.clone())
        return real_step(self, rows, run)

    monkeypatch.setattr(cirh, "fusion_loss", fusion_spy)
    monkeypatch.setattr(cirh, "hash_loss", hash_spy)
    monkeypatch.setattr(CIRH, "_hash_step", step_spy)
    create("cirh", params={**TINY, "epochs": 1}, device="cpu").fit(train, 8)
    S = collaborated_similarity(torch.from_numpy(train.image), torch.from_numpy(train.text), a1=0.6, a2=0.6,
                                k=round(0.6 * train.n))
    assert len(fused) == len(hashed) == len(rows_seen) > 1
    for b, (codes, S_batch), rows in zip(fused, hashed, rows_seen):
        assert torch.equal(codes, b)
        assert torch.allclose(S_batch, S[rows[:, None], rows])


def test_quick_fit_history_report_and_codes(train):
    model = create("cirh", preset="quick", device="cpu").fit(train, 16)
    history = model.loss_history_
    assert set(history) >= {"loss", "code_fit", "similarity", "loss_fusion", "reconstruction", "correlation",
                            "quantization"}
    assert history["loss"].shape == (5,) and np.isfinite(history["loss"]).all()
    assert history["loss_fusion"][-1] < history["loss_fusion"][0]
    report = model.fit_report()
    assert report["k"] == round(0.6 * train.n) and report["epochs"] == 5
    codes = model.encode_image(train.image)
    assert set(np.unique(codes)) <= {-1, 1} and len({row.tobytes() for row in codes}) > 1


def test_parameters_are_checked():
    for params in ({"a1": 1.5}, {"a2": -0.1}, {"dropout": 1.0}, {"knn_share": 0.0}, {"batch_size": 1},
                   {"lr_fusion": 0.0}, {"beta": -1.0}):
        with pytest.raises(ParameterError, match=next(iter(params))):
            create("cirh", params=params, device="cpu")


def test_defaults_are_the_authors():
    model = create("cirh", device="cpu")
    assert (model.a1, model.a2, model.knn, model.knn_share, model.lambda1, model.lambda2, model.beta, model.epochs,
            model.batch_size, model.hidden, model.fusion_width, model.dropout, model.lr_fusion, model.lr_image,
            model.lr_text) == (0.6, 0.6, 3000, 0.6, 10.0, 1.0, 0.01, 60, 512, 4096, 512, 0.3, 1e-3, 1e-4, 1e-4)
    nus = create("cirh", dataset="nuswide", device="cpu")
    assert (nus.knn, nus.a1, nus.a2, nus.lr_fusion, nus.epochs) == (3300, 0.5, 0.5, 1e-4, 120)
    coco = create("cirh", dataset="mscoco", device="cpu")
    assert (coco.a1, coco.a2, coco.lr_image, coco.lr_text, coco.epochs) == (0.1, 0.3, 5e-4, 5e-4, 100)


def test_gpu_memory_counts_the_similarity_matrix():
    model = CIRH()
    grow = model.gpu_memory_bytes(2000, 96, 48, 32) - model.gpu_memory_bytes(1000, 96, 48, 32)
    assert grow >= 4 * (2000 ** 2 - 1000 ** 2)


@pytest.mark.slow
def test_conformance():
    check_method("cirh")
