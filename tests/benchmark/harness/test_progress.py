"""Progress inside cells: the contract's callback, the progress file, the run's bar."""

import time
from typing import Any

import numpy as np
import pytest

from cmhbench import store
from cmhbench.datasets.synthetic import SyntheticConfig, SyntheticSource
from cmhbench.harness.executor import run_cells
from cmhbench.harness.grid import GridSpec, build_cells
from cmhbench.methods.base import Hasher, PairedFeatures
from cmhbench.methods.registry import register, unregister
from cmhbench.harness.progress import running_text
from cmhbench.harness.runner import ProgressFile, RunContext

SMALL = SyntheticSource(SyntheticConfig(n_items=400, n_query=50, n_train=200))


@pytest.fixture
def epochs_method():
    @register(name="test-epochs", title="t", authors="a", venue="v", year=1, kind="shallow", fidelity="paper",
              deterministic=True, memory="O(1)")
    class Epochs(Hasher):
        """Trains for ``epochs`` epochs of ``pause`` seconds, reporting each with a falling loss."""

        def __init__(self, *, epochs: int = 3, pause: float = 0.0, seed: int = 0, device: str = "auto",
                     cache: Any = None):
            super().__init__(seed=seed, device=device, cache=cache)
            self.epochs = epochs
            self.pause = pause

        def _fit(self, train, n_bits):
            rng = np.random.default_rng(self.seed)
            self.w_ = rng.standard_normal((train.image_dim, n_bits)), rng.standard_normal((train.text_dim, n_bits))
            for epoch in range(self.epochs):
                time.sleep(self.pause)
                self.report_progress(epoch + 1, self.epochs, loss=1.0 / (epoch + 1))

        def _encode_image(self, image):
            return image @ self.w_[0]

        def _encode_text(self, text):
            return text @ self.w_[1]

    yield "test-epochs"
    unregister("test-epochs")


def _train(n=60):
    rng = np.random.default_rng(0)
    return PairedFeatures(rng.standard_normal((n, 8)), rng.standard_normal((n, 6)))


def test_the_callback_is_called_once_per_epoch_with_the_loss(epochs_method):
    from cmhbench.methods import registry

    reports = []
    registry.get(epochs_method)(epochs=4).fit(_train(), 16, progress=reports.append)
    assert [(r.done, r.total) for r in reports] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert reports[-1].values == {"loss": pytest.approx(0.25)}


def test_a_progress_file_becomes_the_bar_text(tmp_path):
    from cmhbench.methods.base import Progress

    callback = ProgressFile(tmp_path, "k1", interval=0.0)
    callback(Progress(3, 50, {"loss": 0.12345}))
    assert running_text(tmp_path, {"k1": "x"}) is None  # no claim held: a dead worker's leftover
    (store.claims_dir(tmp_path) / "k1").write_text("{}")
    assert running_text(tmp_path, {"k1": "djsrh/wiki/16b/s0"}) == "djsrh/wiki/16b/s0 epoch 3/50 loss 0.1235"
    assert running_text(tmp_path, {"other": "x"}) is None  # only this run's cells
    store.clear_progress(tmp_path, "k1")
    assert running_text(tmp_path, {"k1": "x"}) == "x running"  # claimed, not reporting yet: still named
    (store.claims_dir(tmp_path) / "k1").unlink()
    assert running_text(tmp_path, {"k1": "x"}) is None


def test_progress_writes_are_throttled_but_the_last_epoch_is_written(tmp_path):
    from cmhbench.methods.base import Progress

    callback = ProgressFile(tmp_path, "k", interval=60.0)
    store.claims_dir(tmp_path).mkdir(parents=True)
    (store.claims_dir(tmp_path) / "k").write_text("{}")
    for done in range(1, 6):
        callback(Progress(done, 10, {}))
    assert store.read_progress(tmp_path)["k"]["done"] == 1  # later reports within the interval skipped
    callback(Progress(10, 10, {}))
    assert store.read_progress(tmp_path)["k"]["done"] == 10


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_the_run_bar_shows_epoch_and_loss_of_running_cells(epochs_method, tmp_path, capfd, jobs):
    spec = GridSpec(methods=[epochs_method], bits=[16, 32], params={epochs_method: {"epochs": 4, "pause": 0.6}})
    sources = {"synthetic": SMALL}
    summary = run_cells(build_cells(spec, sources), sources, RunContext(out=tmp_path), jobs=jobs, progress=True)
    assert summary.counts["ok"] == 2
    err = capfd.readouterr().err  # cells run in worker processes: the bar reads their progress files
    for bits in (16, 32):
        assert f"test-epochs/synthetic/{bits}b/s0 epoch " in err
    assert "/4 loss 0." in err
    assert store.read_progress(tmp_path) == {}  # removed when the cell ended


@pytest.mark.slow
def test_a_deep_cell_shows_its_epochs_in_the_run_bar(tmp_path, capfd):
    from cmhbench.cli import main

    assert main(["run", "--methods", "djsrh", "--bits", "16", "--preset", "quick", "--out", str(tmp_path)]) == 0
    err = capfd.readouterr().err
    assert "djsrh/synthetic/16b/s0 epoch " in err and "/10 loss " in err


def test_a_set_up_stage_is_named_in_the_bar():
    from cmhbench.harness.progress import progress_text

    assert progress_text("uchm/synthetic/16b/s0", {"done": 2, "total": 40, "stage": "generator epoch",
                                                   "values": {"generator_loss": 0.5}}) == \
        "uchm/synthetic/16b/s0 generator epoch 2/40 generator_loss 0.5"
    assert progress_text("x", {"done": 1, "total": 3, "values": {}}) == "x epoch 1/3"  # reports of older workers
