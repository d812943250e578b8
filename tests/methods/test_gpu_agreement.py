"""The same deep cell on the CPU and on a GPU agrees to within its seed-to-seed spread.

Runs only where torch sees a GPU (skipped elsewhere, so CI on CPUs skips it).  For each
deep method (quick preset, synthetic data, 32 bits) and each of 3 seeds, map@all (image →
text and text → image) is measured on both devices; every seed's CPU–GPU difference must
be below the standard deviation of the CPU scores over the 3 seeds.  Bitwise equality is
not expected: the GPU's float32 kernels sum in another order.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cmhbench.datasets.synthetic import SyntheticConfig, generate  # noqa: E402
from cmhbench.evaluation import evaluate  # noqa: E402
from cmhbench.methods import create  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU that torch can see")]

SEEDS = (0, 1, 2)


def _map(name, device, seed, data):
    train, (qi, qt, di, dt), (ql, dl) = data
    model = create(name, preset="quick", seed=seed, device=device).fit(train, 32)
    i2t = evaluate(model.encode_image(qi), model.encode_text(dt), ql, dl)["map@all"]
    t2i = evaluate(model.encode_text(qt), model.encode_image(di), ql, dl)["map@all"]
    return np.array([i2t, t2i])


@pytest.fixture(scope="module")
def data():
    ds = generate(SyntheticConfig())
    q, db, tr = np.arange(300), np.arange(300, 3000), np.arange(300, 1800)
    return (ds.paired(tr), (ds.image[q], ds.text[q], ds.image[db], ds.text[db]), (ds.labels[q], ds.labels[db]))


@pytest.mark.parametrize("name", ["djsrh", "jdsh", "dgcpn", "ucch", "kdcmh", "uchm"])
def test_cpu_and_gpu_agree_within_the_seed_spread(name, data):
    cpu = np.array([_map(name, "cpu", seed, data) for seed in SEEDS])
    gpu = np.array([_map(name, "cuda", seed, data) for seed in SEEDS])
    spread = cpu.std(axis=0, ddof=1)
    assert (np.abs(cpu - gpu) < spread).all(), f"{name}: cpu {cpu.tolist()} gpu {gpu.tolist()} spread {spread.tolist()}"
