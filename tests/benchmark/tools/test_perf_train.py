import re

import pytest

from cmhbench.tools import perf
from cmhbench.methods.base import Hasher
from cmhbench.methods.registry import register, unregister
from cmhbench.tools.perf_train import chosen_methods, deep_methods, steps_for, time_fit


@pytest.mark.slow
def test_perf_train_prints_ours_and_the_reference_for_each_method(capsys):
    assert perf.main(["train", "--methods", "djsrh,kdcmh", "--shapes", "wikipedia", "--rows", "32",
                      "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if re.match(r"^\|\s+(djsrh|kdcmh) \|", line)]
    assert [row.split("|")[1].strip() for row in rows] == ["djsrh", "kdcmh"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1:4] == ["wikipedia", "cpu", {"djsrh": "32", "kdcmh": "128"}[cells[0]]]
        assert re.fullmatch(r"\d+\.\d\dx", cells[-1])  # the reference ratio is there for every method
        assert float(cells[5]) > 0 and float(cells[9]) > 0  # ms per step, ours and the reference


def test_an_epoch_has_whole_batches_and_at_least_one():
    assert steps_for("djsrh", "wikipedia", 128) == 4  # batch 32
    assert steps_for("ucch", "wikipedia", 128) == 1  # batch 256: one batch, not none


@pytest.mark.slow
def test_the_reference_loop_trains_the_same_method():
    ours = time_fit("djsrh", "wikipedia", "cpu", steps=2, epochs=1, bits=16, reference=False)
    ref = time_fit("djsrh", "wikipedia", "cpu", steps=2, epochs=1, bits=16, reference=True)
    assert ours.steps == ref.steps == 2 and ours.step_s > 0 and ref.step_s > 0


def test_bad_options_are_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        perf.main(["train", "--rows", "0"])
    assert exc.value.code == 2 and "--rows must be positive" in capsys.readouterr().err


def test_the_deep_methods_come_from_the_registry_plugins_included():
    @register(name="test-deep-plugin", title="t", authors="a", venue="v", year=2030, kind="deep", fidelity="paper",
              deterministic=False, memory="O(n)")
    class DeepPlugin(Hasher):
        """Registered like a plugin's deep method; never trained here."""

    try:
        found = deep_methods()
        assert found[-1] == "test-deep-plugin"  # the newest paper last
        assert {"djsrh", "jdsh", "dgcpn", "ucch", "kdcmh", "uchm"} < set(found)
        assert "cca-itq" not in found and "random" not in found
        assert chosen_methods(None) == found and chosen_methods("djsrh, kdcmh") == ["djsrh", "kdcmh"]
    finally:
        unregister("test-deep-plugin")
