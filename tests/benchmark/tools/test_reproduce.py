"""docs/reproduce/: one grid file per published table, and the command that runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cmhbench import published
from cmhbench.harness.config import load_config
from cmhbench.datasets import available as datasets_available
from cmhbench.methods import registry
from cmhbench.tools.reproduce import commands, stand_in

RECIPES = sorted((Path(__file__).resolve().parents[3] / "docs" / "reproduce").glob("*.toml"))


def test_there_is_a_recipe_for_each_published_table_of_feature_protocols():
    assert [p.name for p in RECIPES] == ["djsrh-iccv-2019-table-2.toml", "ucch-tpami-2023-table-1.toml",
                                         "ucch-tpami-2023-table-2.toml"]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_a_recipe_names_registered_methods_and_datasets_with_published_values(recipe):
    config = load_config(recipe)
    assert set(config["methods"]) <= set(registry.available())
    assert set(config["datasets"]) <= set(datasets_available())
    rows = [r for r in published.load() if r.method in config["methods"] and r.dataset in config["datasets"]]
    assert {r.dataset for r in rows} == set(config["datasets"])
    assert {r.bits for r in rows} <= set(config["bits"])
    assert any(r.comparable and r.protocol == config.get("protocol", r.protocol) for r in rows)


def test_the_recipe_runs_then_shows_each_published_metric(tmp_path):
    recipe = next(p for p in RECIPES if p.stem == "djsrh-iccv-2019-table-2")
    run, *boards = commands(recipe, tmp_path, None, ["--jobs", "2"])
    assert run[:4] == ["run", "--config", str(recipe), "--out"] and run[-2:] == ["--jobs", "2"]
    assert boards == [["leaderboard", str(tmp_path), "--published", "--metric", "map@50"]]
    assert stand_in("mirflickr25k", 300) == "synthetic:shape=mirflickr25k+n_items=300"
    assert stand_in("mscoco", 300) == "synthetic:n_items=300+n_query=30+n_train=150"  # a shape it does not know


@pytest.mark.slow  # runs the command in subprocesses
def test_the_recipe_runs_end_to_end_on_stand_ins(tmp_path):
    recipe = next(p for p in RECIPES if p.stem == "ucch-tpami-2023-table-1")
    result = subprocess.run([sys.executable, "-m", "cmhbench.tools.reproduce", str(recipe), "--stand-in", "300",
                             "--out", str(tmp_path / "r"), "--methods", "cvh,ucch", "--bits", "16", "--seeds", "0",
                             "--preset", "quick", "--no-progress"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "synthetic:shape=mirflickr25k+n\\_items=300" in result.stdout  # (Markdown escapes _)
    assert "$ cmhbench leaderboard" in result.stderr and "--published --metric map@all" in result.stderr
    assert "Published values measured the same way" not in result.stdout  # a stand-in is never compared
