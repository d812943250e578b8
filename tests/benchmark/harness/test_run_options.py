"""Run options are declared once (``cmhbench.harness.config``): ``run`` and ``tune`` parse the same ones,
a grid file accepts them, and they reach the settings and the cells' context."""

from __future__ import annotations

import argparse
from pathlib import Path

from cmhbench.cli import TUNE_DIFFERENCES, _parser
from cmhbench.harness.config import RUN_KEYS, flag_of, run_options, run_settings
from cmhbench.harness.grid import GridSpec
from cmhbench.harness.runner import RunContext
from cmhbench.harness.tune import DEFAULTS as TUNE_DEFAULTS


def _options(command: str) -> dict[str, argparse.Action]:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {flag: action for action in sub.choices[command]._actions for flag in action.option_strings}


def test_run_and_tune_take_every_run_option_with_the_same_help_unless_declared_different():
    run, tune = _options("run"), _options("tune")
    flags = [flag_of(key) for key, option in run_options().items() if option.flag]
    assert "--database-coding" in flags and "--cells-per-gpu" in flags
    for key, option in run_options().items():
        if not option.flag:
            continue
        flag = flag_of(key)
        assert run[flag].help == option.help  # run states the declaration as it is
        if key in TUNE_DIFFERENCES:
            assert tune[flag].help == TUNE_DIFFERENCES[key].get("help", option.help)
        else:
            assert tune[flag].help == run[flag].help, flag
    assert f"default: {TUNE_DEFAULTS['bits'][0]}" in tune["--bits"].help


def test_a_grid_file_accepts_every_file_option_and_they_reach_the_cells_context(tmp_path):
    grid_keys = set(GridSpec.__dataclass_fields__)
    settings_keys = {k for k, o in run_options().items() if o.file} - grid_keys
    assert RUN_KEYS == grid_keys | settings_keys  # every grid field and every setting
    assert settings_keys == {"out", "data_dir", "cache_dir", "device", "jobs", "cells_per_gpu", "threads", "backend",
                             "scheduler", "timeout", "metrics"}  # the grid-file keys that existed stay accepted
    config = tmp_path / "grid.toml"
    config.write_text('methods = ["random"]\ntimeout = 5\ncells_per_gpu = 2\ndevice = "cpu"\njobs = 1\n'
                      'metrics = ["map@all"]\nout = "elsewhere"\ndatabase_coding = ["unified"]\n')
    settings = run_settings({"config": str(config), "threads": "1"}, ["random"])
    assert (settings.timeout, settings.cells_per_gpu, settings.device, settings.out) == (5.0, 2, "cpu",
                                                                                      Path("elsewhere"))
    assert settings.grid.database_coding == ["unified"]
    ctx = RunContext.from_settings(settings, argv=("cmhbench", "run"), force=True)
    assert (ctx.timeout, ctx.cells_per_gpu, ctx.device, ctx.out, ctx.metrics, ctx.threads) == (
        5.0, 2, "cpu", Path("elsewhere"), ("map@all",), 1)
    assert ctx.force and ctx.argv == ("cmhbench", "run") and ctx.config["timeout"] == 5


def test_tune_bits_default_yields_to_a_grid_file_and_run_keeps_the_grid_default(tmp_path):
    config = tmp_path / "grid.toml"
    config.write_text('methods = ["random"]\nbits = [16, 64]\n')
    assert run_settings({"methods": "random"}, [], TUNE_DEFAULTS).grid.bits == [32]
    assert run_settings({"config": str(config)}, [], TUNE_DEFAULTS).grid.bits == [16, 64]
    assert run_settings({"methods": "random", "bits": "8"}, [], TUNE_DEFAULTS).grid.bits == [8]
    assert run_settings({"methods": "random"}, []).grid.bits == GridSpec(methods=["random"]).bits
