"""The harness asks a method about itself: a deep method of a plugin declares its GPU memory, its
steps per epoch and its set-up training, and gpu_slots, the runner and the perf tools use what
it declares without any edit of theirs."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmhbench.harness import gpu_slots, runner
from cmhbench.datasets.synthetic import SHAPES
from cmhbench.methods.deep import DeepHasher
from cmhbench.methods.registry import register, unregister
from cmhbench.tools import perf, perf_gpu, perf_train

PASSES = 3
#: What each fit of the throw-away method was constructed with: (warm_epochs, warm_width).
SEEN: list[tuple[int, int]] = []


class Hooked(DeepHasher):
    """A deep method with a set-up stage of its own (``warm_epochs`` epochs of a ``warm_width``
    model) and three passes over the batches per epoch; it trains two small networks."""

    setup_epochs = ("warm_epochs",)

    def __init__(self, *, warm_epochs: int = 7, warm_width: int = 500, epochs: int = 3, batch_size: int = 8,
                 hidden: int = 16, lr_image: float = 0.01, lr_text: float = 0.01, momentum: float = 0.9,
                 weight_decay: float = 0.0, seed: int = 0, device: str = "auto", cache=None):
        super().__init__(seed=seed, device=device, cache=cache)
        self.warm_epochs, self.warm_width = warm_epochs, warm_width
        self.epochs, self.batch_size, self.hidden = epochs, batch_size, hidden
        self.lr_image, self.lr_text = lr_image, lr_text
        self.momentum, self.weight_decay = momentum, weight_decay

    @classmethod
    def setup_minimum(cls):
        return {**super().setup_minimum(), "warm_width": 2}

    def gpu_memory_bytes(self, n_train, image_dim, text_dim, n_bits):
        return 1000 * n_train + 10 * self.warm_width + n_bits

    def epoch_steps(self, n_train):
        return PASSES * super().epoch_steps(n_train)

    def _prepare(self, run, train):
        SEEN.append((self.warm_epochs, self.warm_width))

    def _epoch(self, epoch, run):
        for _ in range(PASSES):
            yield from super()._epoch(epoch, run)

    def _batch_loss(self, epoch, rows, image, text):
        loss = F.mse_loss(torch.tanh(self.image_net_(image)), torch.tanh(self.text_net_(text)))
        return loss, {}


@pytest.fixture
def hooked():
    register(name="test-hooked", title="t", authors="a", venue="v", year=2031, kind="deep", fidelity="paper",
             deterministic=False, memory="O(n)")(Hooked)
    SEEN.clear()
    try:
        yield "test-hooked"
    finally:
        unregister("test-hooked")


def test_a_cell_waits_for_the_memory_its_method_declares(hooked, monkeypatch):
    asked = []

    def slot(gpus, cells_per_gpu, need, poll_s=gpu_slots.POLL_S):
        asked.append((gpus, cells_per_gpu, need))

    monkeypatch.setattr(gpu_slots, "gpu_slot", slot)
    cell = SimpleNamespace(base=hooked, params={"warm_width": 40}, bits=16)
    dataset = SimpleNamespace(image=np.zeros((1, 5)), text=np.zeros((1, 6)))
    runner._slot_for("cuda:1", cell, 300, dataset, SimpleNamespace(cells_per_gpu=2))
    assert asked == [([1], 2, 1000 * 300 + 10 * 40 + 16 + gpu_slots.WORKSPACE_BYTES)]


def test_the_gpu_check_scales_the_set_up_epochs_the_method_declares(hooked):
    params = perf_gpu.scaled_params([hooked], 0.5)
    assert params == ["--param", f"{hooked}.epochs=2", "--param", f"{hooked}.warm_epochs=4"]


def test_perf_train_shrinks_the_set_up_and_counts_the_steps_as_the_method_says(hooked):
    timing = perf_train.time_fit(hooked, "wikipedia", "cpu", steps=2, epochs=1, bits=8, reference=False)
    assert SEEN == [(1, 2)]  # setup_minimum: warm_epochs 1, warm_width 2
    assert timing.steps == PASSES * 2


def test_perf_train_tabulates_a_plugins_deep_method(hooked, capsys):
    assert perf.main(["train", "--methods", hooked, "--shapes", "wikipedia", "--rows", "16", "--device", "cpu",
                      "--no-reference"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if re.match(rf"^\|\s+{hooked} \|", line))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3:5] == ["8", str(PASSES * 2)]  # batch, and the steps of an epoch of 16 pairs
    full = PASSES * (SHAPES["wikipedia"]["n_train"] // 8)  # the steps of a full epoch
    rounding = 0.05 * full / 1000 + 0.05  # ms/step and s/epoch are printed to one decimal
    assert abs(float(cells[7]) - float(cells[6]) / 1000 * full) <= rounding
