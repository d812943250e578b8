"""The record's layout on disk (what every stored folder's readers rely on) and the defaults it fills."""

from __future__ import annotations

import dataclasses
import json

import pytest

from cmhbench import store
from cmhbench.datasets.features import FEATURES
from cmhbench.harness.grid import GridSpec
from cmhbench.schema import DEFAULT_FEATURES, SCHEMA_VERSION, Cell, Record, check_key_rules

CELL = Cell("cca-itq", "cca-itq", {"n_iter": 50}, {"name": "synthetic", "x": 1}, "synthetic", 16, 0)


def _record(cell: Cell = CELL) -> Record:
    return Record.start(cell, evaluation={}, environment={}, reproduce={}, started_at="2026-01-01T00:00:00+00:00")


def test_a_new_record_holds_the_fields_records_always_had_and_leaves_unset_ones_out():
    data = _record().to_json()
    assert set(data) == {"schema_version", "key", "cell", "status", "error", "metrics", "evaluation", "environment",
                         "reproduce", "started_at"}
    assert (data["status"], data["error"], data["schema_version"]) == ("failed", None, SCHEMA_VERSION)
    assert data["cell"] == {"method": "cca-itq", "base": "cca-itq", "params": {"n_iter": 50},
                            "dataset": {"name": "synthetic", "x": 1}, "protocol": "synthetic", "bits": 16, "seed": 0,
                            "database_coding": "modality", "preset": "paper", "versions": {}, "features": "raw",
                            "split": "test"}


def test_tuned_cells_say_where_their_values_came_from():
    tuned = dataclasses.replace(CELL, tuned={"study": "s"})
    assert _record(tuned).to_json()["tuned"] == {"study": "s"}
    assert tuned.key == CELL.key  # where values came from is not part of the result


def test_defaults_are_the_schema_ones_everywhere():
    assert FEATURES[0] == DEFAULT_FEATURES == GridSpec(methods=["x"]).features == CELL.features


def test_a_record_from_before_features_split_and_versions_existed_reads_with_the_defaults(tmp_path):
    old = _record().to_json()
    for name in ("features", "split", "versions", "preset"):
        del old["cell"][name]
    old["status"] = "ok"
    folder = store.cells_dir(tmp_path) / CELL.key
    folder.mkdir(parents=True)
    (folder / "record.json").write_text(json.dumps(old))
    row = store.load_results(tmp_path).iloc[0]
    assert (row["features"], row["split"], row["method_versions"]) == ("raw", "test", '{"cca-itq": 1}')


def test_a_cell_field_without_a_key_rule_is_refused():
    @dataclasses.dataclass(frozen=True)
    class Wider(Cell):
        extra: int = 0

    with pytest.raises(TypeError, match="CELL_KEY must say how each Cell field enters the key; check: extra"):
        check_key_rules(Wider)
