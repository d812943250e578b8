"""``python -m cmhbench.perf`` still runs the perf command after its move to ``cmhbench.tools``."""

import runpy
import sys

import pytest


def _run_alias(monkeypatch, *argv: str) -> int:
    monkeypatch.setattr(sys, "argv", ["cmhbench.perf", *argv])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("cmhbench.perf", run_name="__main__", alter_sys=True)
    return exc.value.code


def test_the_old_module_name_runs_the_tools_command(monkeypatch, capsys):
    assert _run_alias(monkeypatch, "--help") == 0
    out = capsys.readouterr().out
    assert all(command in out for command in ("eval", "jobs", "train", "gpu"))


def test_the_old_module_name_refuses_bad_options_like_the_tools_command(monkeypatch, capsys):
    assert _run_alias(monkeypatch, "train", "--rows", "0") == 2
    assert "--rows must be positive" in capsys.readouterr().err
