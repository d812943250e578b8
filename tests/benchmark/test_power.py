"""``python -m cmhbench.power`` still prints docs/statistics.md's tables after the module moved to
``cmhbench.analysis``."""

import runpy
import sys

import pytest


def test_the_old_module_name_prints_the_statistics_tables(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["cmhbench.power", "2"])  # two simulations per row: quick
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("cmhbench.power", run_name="__main__", alter_sys=True)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("Calibration under no true difference (2 simulations per row")
    assert "Power (share of 2 simulations with p < α" in out
