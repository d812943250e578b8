"""Several deep cells per GPU: slots, waiting for memory, and Dask's GPU shares (CPU fallback)."""

import threading
import time

import numpy as np
import pytest

from cmhbench.harness import gpu_slots, runner
from cmhbench.datasets.synthetic import SyntheticConfig, SyntheticSource
from cmhbench.harness.executor import run_cells
from cmhbench.harness.grid import GridSpec, build_cells
from cmhbench.methods import create
from cmhbench.methods.base import PairedFeatures
from cmhbench.methods.deep import WEIGHT_COPIES
from cmhbench.harness.runner import RunContext


@pytest.fixture
def locks(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_slots, "lock_folder", lambda: str(tmp_path))
    return tmp_path


class Concurrency:
    """Counts how many callers are inside at once."""

    def __init__(self):
        self.now = self.most = 0
        self.lock = threading.Lock()

    def __enter__(self):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc):
        with self.lock:
            self.now -= 1


def _hold(gpus, k, need, seen, devices, seconds=0.3):
    with gpu_slots.gpu_slot(gpus, k, need, poll_s=0.02) as device:
        with seen:
            devices.append(device)
            time.sleep(seconds)


def test_k_cells_share_a_gpu_and_the_next_one_waits_for_a_slot(locks, monkeypatch):
    monkeypatch.setattr(gpu_slots, "free_bytes", lambda gpu: None)  # no CUDA here: slots only
    for k in (1, 3):
        seen, devices = Concurrency(), []
        threads = [threading.Thread(target=_hold, args=([0], k, 1, seen, devices)) for _ in range(k + 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert seen.most == k and devices == ["cuda:0"] * (k + 2)


def test_slots_spread_over_gpus(locks, monkeypatch):
    monkeypatch.setattr(gpu_slots, "free_bytes", lambda gpu: None)
    seen, devices = Concurrency(), []
    threads = [threading.Thread(target=_hold, args=([0, 1], 2, 1, seen, devices)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen.most == 4 and sorted(devices) == ["cuda:0", "cuda:0", "cuda:1", "cuda:1"]


def test_a_cell_that_would_not_fit_waits_until_another_cell_frees_memory(locks, monkeypatch):
    state = {"free": 10}
    monkeypatch.setattr(gpu_slots, "free_bytes", lambda gpu: state["free"])
    order = []

    def first():
        with gpu_slots.gpu_slot([0], 2, 5, poll_s=0.02):
            state["free"] = 4  # this cell took most of the memory
            order.append("first started")
            time.sleep(0.4)
            order.append("first done")
            state["free"] = 10

    def second():
        time.sleep(0.1)
        with gpu_slots.gpu_slot([0], 2, 5, poll_s=0.02):
            order.append("second started")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert order == ["first started", "first done", "second started"]  # a free slot, but not the memory


def test_a_cell_alone_on_its_gpu_starts_even_when_the_estimate_exceeds_free_memory(locks, monkeypatch):
    monkeypatch.setattr(gpu_slots, "free_bytes", lambda gpu: 1)
    with gpu_slots.gpu_slot([0], 4, 10**12, poll_s=0.02) as device:  # nothing of ours to wait for
        assert device == "cuda:0"


def test_memory_estimate_grows_with_the_networks_and_the_features():
    djsrh = gpu_slots.estimate_bytes(create("djsrh", params={"hidden": 4096}), 5000, 4096, 1386, 64)
    ucch = gpu_slots.estimate_bytes(create("ucch", params={"hidden": 8192, "image_layers": 3}), 5000, 4096, 1386, 64)
    assert 0.5 * 2**30 < djsrh < 4 * 2**30 and ucch > djsrh + 8192 * 8192 * 4 * WEIGHT_COPIES
    more_rows = gpu_slots.estimate_bytes(create("djsrh", params={"hidden": 4096}), 10_000, 4096, 1386, 64)
    assert more_rows == djsrh + 4 * 5000 * (4096 + 1386)  # the training features, in float32


@pytest.mark.parametrize("method, params", [("djsrh", {}), ("jdsh", {"image_network": "linear"}),
                                            ("ucch", {"image_layers": 3, "text_layers": 1})])
def test_a_deep_methods_estimate_counts_the_networks_it_trains(method, params):
    # the default estimate builds the method's own networks without memory: here checked against a real fit
    model = create(method, preset="quick", params={**params, "hidden": 24, "epochs": 1}, device="cpu")
    train = PairedFeatures(np.random.default_rng(0).random((40, 12), dtype=np.float32),
                           np.random.default_rng(1).random((40, 7), dtype=np.float32))
    model.fit(train, 16)
    trained = sum(p.numel() for net in (model.image_net_, model.text_net_) for p in net.parameters())
    expected = 4 * 40 * (12 + 7) + 4 * WEIGHT_COPIES * trained + gpu_slots.WORKSPACE_BYTES
    assert gpu_slots.estimate_bytes(model, 40, 12, 7, 16) == expected


def test_bad_cells_per_gpu_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        with gpu_slots.gpu_slot([0], 0, 1):
            pass


@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 2, 4])
def test_dask_runs_k_deep_cells_at_once_on_a_worker_declaring_one_gpu(k, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    source = SyntheticSource(SyntheticConfig(n_items=200, n_query=40, n_train=100))
    sources = {"synthetic": source}
    cells = build_cells(GridSpec(methods=["djsrh"], bits=[8, 16, 24, 32], preset="quick",
                                 params={"djsrh": {"epochs": 1, "hidden": 16}}), sources)
    seen = Concurrency()
    real = runner.compute_cell

    def counted(cell, src, ctx):
        with seen:
            time.sleep(1.0)  # long enough for every cell allowed to run at once to be inside
            return real(cell, src, ctx)

    monkeypatch.setattr(runner, "compute_cell", counted)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=4, processes=False, resources={"GPU": 1},
                                  dashboard_address=":0") as cluster:
        summary = run_cells(cells, sources, RunContext(out=tmp_path, cells_per_gpu=k), backend="dask",
                            scheduler=cluster.scheduler_address, progress=False)
    assert summary.counts["ok"] == 4
    assert seen.most == k  # 4 threads, but the GPU=1 resource lets only K deep cells in at once
    # no GPU here: every cell fell back to the CPU, as the records say
    assert {record["device"] for record in map(lambda c: runner.store.read_record(tmp_path, c.key), cells)} == {"cpu"}
