"""``python -m cmhbench.power`` still runs docs/statistics.md's table command after the module moved
to ``cmhbench.analysis`` (the tables themselves are checked by analysis/test_stats_calibration.py)."""

import runpy
import sys

import pytest

from cmhbench.analysis import power


def test_the_old_module_name_runs_the_moved_command_with_its_argument(monkeypatch, capsys):
    asked = []
    monkeypatch.setattr(power, "markdown", lambda n: asked.append(n) or f"tables from {n} simulations\n")
    monkeypatch.setattr(sys, "argv", ["cmhbench.power", "7"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("cmhbench.power", run_name="__main__", alter_sys=True)
    assert exc.value.code == 0
    assert asked == [7] and capsys.readouterr().out == "tables from 7 simulations\n"
