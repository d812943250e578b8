"""Cells end to end, in-process: stored records, failures, not-applicable cells."""

import dataclasses
from typing import Any

import numpy as np
import pytest

from cmhbench import datasets, store
from cmhbench.datasets.synthetic import SyntheticConfig, SyntheticSource
from cmhbench.harness.executor import run_cells
from cmhbench.harness.grid import GridSpec, build_cells
from cmhbench.methods.base import Hasher
from cmhbench.methods import registry
from cmhbench.methods.registry import register, unregister
from cmhbench.harness.runner import RunContext

SMALL = SyntheticSource(SyntheticConfig(n_items=400, n_query=50, n_train=200))


@pytest.fixture
def exploding():
    @register(name="test-explodes", title="t", authors="a", venue="v", year=1, kind="shallow", fidelity="paper",
              deterministic=True, memory="O(1)")
    class Explodes(Hasher):
        """Raises at 32 bits; a correct projection otherwise (for harness tests)."""

        def __init__(self, *, seed: int = 0, device: str = "auto", cache: Any = None):
            super().__init__(seed=seed, device=device, cache=cache)

        def _fit(self, train, n_bits):
            if n_bits == 32:
                raise RuntimeError("boom at 32 bits")
            self.w_ = np.ones((train.image_dim, n_bits)), np.ones((train.text_dim, n_bits))

        def _encode_image(self, image):
            return image @ self.w_[0]

        def _encode_text(self, text):
            return text @ self.w_[1]

    yield "test-explodes"
    unregister("test-explodes")


def _run(tmp_path, spec, **kw):
    sources = {"synthetic": SMALL}
    cells = build_cells(spec, sources)
    return cells, run_cells(cells, sources, RunContext(out=tmp_path), progress=False, **kw)


def test_a_cell_stores_metrics_codes_and_provenance(tmp_path):
    (cell,), summary = _run(tmp_path, GridSpec(methods=["cca-itq"], bits=[20], preset="quick"))
    assert summary.counts["ok"] == 1
    record = store.read_record(tmp_path, cell.key)
    assert record["status"] == "ok" and record["key"] == cell.key
    assert set(record["metrics"]) == {"i2t", "t2i"}
    assert 0 < record["metrics"]["i2t"]["map@all"] < 1
    assert record["split"]["sizes"] == {"query": 50, "train": 200, "database": 350}
    assert record["cell"]["params"] == cell.params and record["cell"]["preset"] == "quick"
    assert record["evaluation"]["tie_rule"] and record["environment"]["versions"]["numpy"]
    assert record["timings"]["fit_s"] >= 0 and record["memory"]["peak_rss_mb"] > 0
    assert "--methods cca-itq" in record["reproduce"]["command"]
    arrays = store.read_arrays(tmp_path, cell.key)
    assert arrays["i2t_query"].shape == (50, 3)  # 20 bits packed into 3 bytes
    assert np.array_equal(arrays["database_idx"], np.sort(arrays["database_idx"]))
    assert int(arrays["n_bits"]) == 20
    codes = record["codes"]["i2t_database"]
    assert 1 < codes["distinct"] <= 350 and 0 <= codes["constant_bits"] < 20
    assert store.load_results(tmp_path)["distinct_db_codes"].iloc[0] == min(
        record["codes"][f"{d}_database"]["distinct"] for d in ("i2t", "t2i"))


def test_code_statistics_count_distinct_codes_and_constant_bits():
    from cmhbench.harness.runner import CODE_ARRAYS, code_statistics

    collapsed = np.packbits(np.ones((6, 10), dtype=bool), axis=1)
    varied = np.packbits(np.array([[1] * 9 + [0], [0] * 9 + [0], [1] * 9 + [0]], dtype=bool), axis=1)
    arrays = {name: collapsed for name in CODE_ARRAYS} | {"t2i_database": varied}
    stats = code_statistics(arrays, 10)
    assert stats["i2t_database"] == {"distinct": 1, "constant_bits": 10}
    assert stats["t2i_database"] == {"distinct": 2, "constant_bits": 1}  # the padding bits are not counted


def test_stored_codes_rescore_to_the_recorded_metrics(tmp_path):
    from cmhbench.evaluation import evaluate

    (cell,), _ = _run(tmp_path, GridSpec(methods=["cca-itq"], bits=[16], preset="quick"))
    arrays = store.read_arrays(tmp_path, cell.key)
    unpack = lambda a, n: np.unpackbits(a, axis=1, count=n).astype(np.int8) * 2 - 1  # noqa: E731
    n_labels = int(arrays["n_labels"])
    ql = np.unpackbits(arrays["query_labels"], axis=1, count=n_labels)
    dl = np.unpackbits(arrays["database_labels"], axis=1, count=n_labels)
    again = evaluate(unpack(arrays["i2t_query"], 16), unpack(arrays["i2t_database"], 16), ql, dl)
    assert again == store.read_record(tmp_path, cell.key)["metrics"]["i2t"]


def test_a_failing_cell_is_stored_as_failed_and_the_grid_goes_on(tmp_path, exploding):
    cells, summary = _run(tmp_path, GridSpec(methods=[exploding], bits=[16, 32, 64]))
    assert summary.counts == {"ok": 2, "failed": 1}
    failed = [store.read_record(tmp_path, c.key) for c in cells if c.bits == 32][0]
    assert failed["status"] == "failed" and "boom at 32 bits" in failed["error"]
    assert "Traceback" in failed["traceback"]
    # the next run retries only the failed cell
    _, again = _run(tmp_path, GridSpec(methods=[exploding], bits=[16, 32, 64]))
    assert again.skipped == 2 and len(again.outcomes) == 1


def test_unified_coding_without_pair_encoder_is_not_applicable(tmp_path):
    cells, summary = _run(tmp_path, GridSpec(methods=["cca-itq", "random"], bits=[16], database_coding=["unified"]))
    assert summary.counts == {"not-applicable": 1, "ok": 1}
    na = [store.read_record(tmp_path, c.key) for c in cells if c.base == "cca-itq"][0]
    assert na["status"] == "not-applicable" and "no pair encoder" in na["error"]
    _, again = _run(tmp_path, GridSpec(methods=["cca-itq", "random"], bits=[16], database_coding=["unified"]))
    assert again.skipped == 2 and not again.outcomes


def test_unified_coding_uses_the_pair_encoder_for_both_directions(tmp_path):
    (cell,), _ = _run(tmp_path, GridSpec(methods=["random"], bits=[16], database_coding=["unified"]))
    arrays = store.read_arrays(tmp_path, cell.key)
    assert np.array_equal(arrays["i2t_database"], arrays["t2i_database"])


def test_joblib_workers_store_the_same_results_as_serial(tmp_path):
    spec = GridSpec(methods=["cca-itq", "random"], bits=[16, 32], preset="quick")
    cells, serial = _run(tmp_path / "serial", spec)
    _, parallel = _run(tmp_path / "parallel", spec, jobs=2)
    assert parallel.counts["ok"] == serial.counts["ok"] == 4
    for cell in cells:
        a = store.read_record(tmp_path / "serial", cell.key)["metrics"]
        b = store.read_record(tmp_path / "parallel", cell.key)["metrics"]
        assert a == b


def test_dataset_source_is_resolved_by_name():
    assert datasets.resolve("synthetic").identity()["name"] == "synthetic"


def test_bumping_a_method_version_makes_run_recompute_its_cells(tmp_path, exploding):
    spec = GridSpec(methods=[exploding], bits=[16])
    first, summary = _run(tmp_path, spec)
    assert summary.counts["ok"] == 1
    _, again = _run(tmp_path, spec)
    assert again.skipped == 1 and not again.outcomes  # unchanged version: stored cell reused
    cls = registry.get(exploding)
    cls.info = dataclasses.replace(cls.info, version=2)
    bumped, summary = _run(tmp_path, spec)
    assert summary.skipped == 0 and summary.counts["ok"] == 1
    assert bumped[0].key != first[0].key
    assert store.read_record(tmp_path, bumped[0].key)["cell"]["versions"] == {exploding: 2}
