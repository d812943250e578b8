import os
import sys
import weakref

import numpy as np
import pytest
import torch

from cmhbench.datasets.synthetic import SyntheticConfig, generate
from cmhbench.methods import create, registry
from cmhbench.methods.deep import StepMean, batch_order, cosine_matrix, relaxation, scaled_cosine, signs


def test_scaled_cosine_on_a_hand_checkable_case():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    c = float(1 / np.sqrt(2))
    expected = 2 * torch.tensor([[1, 0, c], [0, 1, c], [c, c, 1]], dtype=torch.float32) - 1
    assert torch.allclose(scaled_cosine(x), expected, atol=1e-6)
    assert torch.allclose(cosine_matrix(x, x[:1]), torch.tensor([[1.0], [0.0], [c]]), atol=1e-6)


def test_relaxation_schedule_and_batches():
    assert relaxation(0) == 1.0 and relaxation(3) == 2.0
    batches = batch_order(10, 4, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [4, 4]  # incomplete last batch dropped
    assert len(set(torch.cat(batches).tolist())) == 8
    assert [len(b) for b in batch_order(3, 4, torch.Generator().manual_seed(0))] == [3]


def _small_train():
    ds = generate(SyntheticConfig(n_items=600, n_query=50, n_train=400))
    return ds.paired(np.arange(400))


def test_step_mean_is_the_float64_sum_in_step_order_of_the_values_read_one_by_one():
    rng = np.random.default_rng(0)
    values = [torch.tensor(v, dtype=torch.float32) for v in rng.normal(size=50) * 10.0 ** rng.integers(-6, 7, 50)]
    values[10:20] = [float(v) for v in values[10:20]]  # a term may be a plain number in some steps
    mean = StepMean()
    for value in values:
        mean.add(value)
    expected = 0
    for value in values:  # what reading each value when it was made gives
        expected += float(value)
    assert mean.value() == expected / len(values)
    assert StepMean().value() == 0.0


def test_step_mean_keeps_no_step_tensor_alive():
    """A 0-d tensor kept from every step pins the CPU heap between the steps' large temporaries
    (kdcmh's fit memory grew as n² that way): the running mean must hold none of them."""
    mean, refs = StepMean(), []
    for value in (1.5, 2.5, 4.0):
        step = torch.tensor(value, dtype=torch.float32)
        refs.append(weakref.ref(step))
        mean.add(step)
        del step
    assert all(ref() is None for ref in refs)
    assert mean.value() == 8.0 / 3


def test_loss_history_is_kept_and_the_loss_falls():
    train = _small_train()
    for name in ("djsrh", "jdsh"):
        model = create(name, params={"epochs": 8, "hidden": 128}, device="cpu").fit(train, 32)
        history = model.loss_history_["loss"]
        assert history.shape == (8,)
        assert history[-1] < history[0], (name, history)
        assert model.fit_report()["epochs"] == 8 and model.fit_report()["device"] == "cpu"


def test_signs_map_zero_to_plus_one_and_keep_the_dtype():
    assert torch.equal(signs(torch.tensor([0.0, -0.0, -1e-9, 2.0])), torch.tensor([1.0, 1.0, -1.0, 1.0]))
    assert signs(torch.zeros(2, dtype=torch.float64)).dtype == torch.float64


def test_fitting_leaves_the_global_torch_rng_alone():
    train = _small_train()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    create("djsrh", params={"epochs": 1, "hidden": 16}, device="cpu").fit(train, 8)
    assert torch.equal(torch.rand(3), expected)


#: Every deep method, found in the registry: one registered later is tested without editing this file.
DEEP = sorted(name for name in registry.available() if registry.get(name).info.kind == "deep")


def small(name: str) -> dict:
    """A small fit of a deep method: its quick preset, its set-up phases at their minimum (the
    method's own ``setup_minimum`` hook) and 3 epochs of its own (what progress counts)."""
    cls = registry.get(name)
    return {**cls.info.presets.get("quick", {}), **cls.setup_minimum(), "epochs": 3}


@pytest.mark.parametrize("name", DEEP)
def test_a_deep_method_reports_progress_once_per_epoch(name):
    ds = generate(SyntheticConfig(n_items=300, n_query=50, n_train=200))
    train = ds.paired(np.arange(200))
    reports = []
    model = create(name, params=small(name), device="cpu")
    model.fit(train, 8, progress=reports.append)
    # a set-up phase (kdcmh's teacher, uchm's generator) reports first, under its own stage and
    # prefixed names; then the method's own epochs
    own = [r for r in reports if r.stage == "epoch"]
    setup = reports[:len(reports) - len(own)]
    assert all(r.stage != "epoch" and r.values and "loss" not in r.values for r in setup)
    assert [(r.done, r.total) for r in own] == [(1, 3), (2, 3), (3, 3)] and reports[-3:] == own
    # the loss shown is the epoch's mean loss, the one kept in the history
    assert [r.values["loss"] for r in own] == pytest.approx(list(model.loss_history_["loss"]), rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("name", DEEP)
def test_training_reads_the_device_per_epoch_not_per_batch(name, monkeypatch):
    """A GPU step must not wait for the host: the number of reads of values (``item``,
    ``tolist``, ``float``) by cmhbench's code during a fit does not grow with the number of
    batches.  (torch's own optimisers read their step counters, which live on the CPU.)"""
    reads = []
    for n_train in (192, 384):  # twice the batches per epoch, same epochs
        ds = generate(SyntheticConfig(n_items=n_train + 50, n_query=50, n_train=n_train))
        count = {"reads": 0}
        with monkeypatch.context() as patch:
            for attr in ("item", "tolist", "__float__"):
                real = getattr(torch.Tensor, attr)

                def counting(self, *args, _real=real, **kwargs):
                    caller = sys._getframe(1).f_code.co_filename
                    count["reads"] += f"{os.sep}torch{os.sep}" not in caller
                    return _real(self, *args, **kwargs)

                patch.setattr(torch.Tensor, attr, counting)
            create(name, params=small(name), device="cpu").fit(
                ds.paired(np.arange(n_train)), 8)
        reads.append(count["reads"])
    assert reads[0] == reads[1], reads
