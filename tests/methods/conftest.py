"""What the method tests share: one torch thread for tiny tensors, and a tiny training set."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def one_torch_thread():
    """The tensors in these tests are tiny: extra threads only contend with other work on the machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_train():
    """120 training pairs of a small synthetic set (24-d images, 10-d texts, 6 labels)."""
    from cmhbench.datasets.synthetic import SyntheticConfig, generate

    ds = generate(SyntheticConfig(n_items=200, n_query=20, n_train=120, image_dim=24, text_dim=10, latent_dim=6,
                                  nuisance_dim=4, n_labels=6, data_seed=3))
    return ds.paired(np.arange(120))


@pytest.fixture
def count_fits(monkeypatch):
    """``count_fits(Cls)``: the list of bit lengths ``Cls._fit`` is called with from then on (how
    often a teacher trains, cached or not)."""
    def start(cls):
        calls = []
        original = cls._fit

        def counting(self, train, n_bits):
            calls.append(n_bits)
            return original(self, train, n_bits)

        monkeypatch.setattr(cls, "_fit", counting)
        return calls
    return start
