"""A user error is a type (``cmhbench.errors.UserError``), wherever it is defined; anything else is a bug.

The CLI knows no error class but the base: a plugin's own subclass, raised while the run is
resolved, gives one line and exit code 2; an exception of any other type keeps its traceback,
in the failed cell's record when a method raised it, on the terminal when the harness did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from cmhbench import store
from cmhbench.cli import BUG_HINT, main
from cmhbench.datasets import registry as dataset_registry
from cmhbench.errors import UserError
from cmhbench.methods.base import Hasher
from cmhbench.methods.domains import Domain
from cmhbench.methods.registry import register, unregister


class PluginRateError(UserError):
    """Defined by a plugin: the CLI has never heard of it."""


@dataclass(frozen=True)
class EvenRate(Domain):
    """A plugin's own parameter check, with its own error and message."""

    def _contains(self, value: Any) -> bool:
        if value % 2:
            raise PluginRateError(f"test-plugin.rate must be even for this plugin, got {value}")
        return True

    def describe(self) -> str:
        return "an even integer"

    searchable = False

    def suggest(self, trial: Any, name: str) -> Any:
        raise NotImplementedError

    def search_text(self) -> str:
        return "—"


@pytest.fixture
def plugin_method():
    @register(name="test-plugin", title="t", authors="a", venue="v", year=1, kind="shallow", fidelity="paper",
              deterministic=True, memory="O(1)")
    class Plugin(Hasher):
        """Fails in fit with a KeyError when asked to (a bug in the method, not the user's mistake)."""

        param_domains = {"rate": EvenRate()}

        def __init__(self, *, rate: int = 2, seed: int = 0, device: str = "auto", cache: Any = None):
            super().__init__(seed=seed, device=device, cache=cache)
            self.rate = rate

        def _fit(self, train, n_bits):
            lookup: dict[str, int] = {}
            self.bits_ = lookup["missing-entry"]  # a method's bug

        def _encode_image(self, image):
            return np.ones((len(image), self.bits_))

        def _encode_text(self, text):
            return np.ones((len(text), self.bits_))

    yield "test-plugin"
    unregister("test-plugin")


@pytest.fixture
def plugin_dataset():
    class PluginFileError(UserError):
        pass

    @dataset_registry.register_dataset("test-plugin-data", "a plugin's dataset whose files are never there")
    def resolve(data_dir=None, **options):
        raise PluginFileError("test-plugin-data: expected plugin.h5 in the data folder")

    yield "test-plugin-data"
    dataset_registry._resolvers.pop("test-plugin-data")


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_plugin_parameter_error_is_one_line_and_exit_2_before_any_cell(plugin_method, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["run", "--methods", plugin_method, "--param", f"{plugin_method}.rate=3", "--bits", "8",
                 "--out", str(out), "--no-progress"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line == "cmhbench: error: test-plugin.rate must be even for this plugin, got 3"
    assert not store.cells_dir(out).exists()  # refused before any cell ran


def test_a_plugin_dataset_error_is_one_line_and_exit_2(plugin_dataset, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["run", "--methods", "random", "--datasets", plugin_dataset, "--out", str(out), "--no-progress"]) == 2
    assert _one_line(capsys.readouterr().err) == ("cmhbench: error: test-plugin-data: expected plugin.h5 in the "
                                                   "data folder")
    assert not store.cells_dir(out).exists()


@pytest.mark.slow  # runs a cell in a worker process
def test_a_key_error_in_a_method_fit_keeps_its_traceback_in_the_failed_cell(plugin_method, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["run", "--methods", plugin_method, "--bits", "8", "--out", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "cmhbench: error:" not in err and "failed: test-plugin/synthetic/8b/s0: KeyError" in err
    (record,) = store.iter_records(out)
    assert record["status"] == "failed" and record["error"] == "KeyError: 'missing-entry'"
    assert "Traceback" in record["traceback"] and 'lookup["missing-entry"]' in record["traceback"]


def test_a_bug_outside_a_cell_shows_its_traceback_and_asks_for_a_report(tmp_path, capsys, monkeypatch):
    def broken(*outs):
        raise KeyError("a harness bug")

    monkeypatch.setattr(store, "load_results", broken)
    assert main(["leaderboard", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'a harness bug'" in err
    assert err.rstrip().endswith(BUG_HINT) and "cmhbench: error:" not in err


def test_every_user_error_of_the_package_shares_the_base():
    from cmhbench.cli import UsageError
    from cmhbench.harness.config import ConfigError
    from cmhbench.datasets import DatasetError
    from cmhbench.evaluation import EvaluationInputError, MetricError
    from cmhbench.harness.executor import BackendError
    from cmhbench.harness.grid import GridError
    from cmhbench.analysis.leaderboard import LeaderboardError
    from cmhbench.methods import ParameterError, UnknownMethodError
    from cmhbench.store import StoreError
    from cmhbench.harness.tune import TuneError

    for error in (UsageError, ConfigError, DatasetError, EvaluationInputError, MetricError, BackendError, GridError,
                  LeaderboardError, ParameterError, UnknownMethodError, StoreError, TuneError):
        assert issubclass(error, UserError), error
    # the builtins they replaced still catch them, for code written before the base existed
    assert issubclass(UnknownMethodError, KeyError) and issubclass(StoreError, OSError)
    assert issubclass(ParameterError, ValueError) and issubclass(ConfigError, ValueError)


def test_a_metric_without_per_query_scores_is_refused_in_one_line(tmp_path, capsys):
    assert main(["compare", str(tmp_path), "--methods", "a,b", "--metric", "map@50-found"]) == 2
    assert _one_line(capsys.readouterr().err).startswith("cmhbench: error: compare: per-query scores are stored "
                                                         "for map@all")
