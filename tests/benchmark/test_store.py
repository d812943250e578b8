import json

import numpy as np
import pytest

from cmhbench import store


def _record(key, status="ok", seed=0, value=0.5, finished="2026-01-01T00:00:00"):
    return {
        "key": key, "status": status, "finished_at": finished,
        "cell": {"method": "m", "base": "m", "dataset": {"name": "d"}, "protocol": "p", "database_coding": "modality",
                 "bits": 16, "seed": seed, "preset": "paper"},
        "metrics": {"i2t": {"map@all": value}, "t2i": {"map@all": value + 0.1}} if status == "ok" else {},
        "timings": {"fit_s": 1.0},
    }


def test_write_is_atomic_and_leaves_no_temporary_folder(tmp_path):
    store.prepare(tmp_path)
    arrays = {"codes": np.arange(6, dtype=np.uint8).reshape(2, 3)}
    folder = store.write_cell(tmp_path, "abc", _record("abc"), arrays)
    assert sorted(p.name for p in folder.iterdir()) == ["arrays.npz", "record.json"]
    assert [p.name for p in store.cells_dir(tmp_path).iterdir()] == ["abc"]
    assert np.array_equal(store.read_arrays(tmp_path, "abc")["codes"], arrays["codes"])
    store.write_cell(tmp_path, "abc", _record("abc", value=0.7), None)  # --force replaces the cell
    assert store.read_record(tmp_path, "abc")["metrics"]["i2t"]["map@all"] == 0.7
    assert [p.name for p in store.cells_dir(tmp_path).iterdir()] == ["abc"]


def test_hidden_and_incomplete_folders_are_not_cells(tmp_path):
    store.prepare(tmp_path)
    store.write_cell(tmp_path, "done", _record("done"), {"codes": np.zeros((1, 2), np.uint8)})
    store.write_cell(tmp_path, "bad", _record("bad", status="failed"), None)
    (store.cells_dir(tmp_path) / ".tmp-host-1-x").mkdir()
    (store.cells_dir(tmp_path) / "half").mkdir()  # no record.json: never visible as a cell
    assert store.done_keys(tmp_path) == {"done"}
    assert sorted(r["key"] for r in store.iter_records(tmp_path)) == ["bad", "done"]


def test_prepare_removes_temporary_folders_of_dead_processes_only(tmp_path):
    import os

    root = store.cells_dir(tmp_path)
    root.mkdir(parents=True)
    dead = root / f".tmp-{store._host()}-999999999-x"
    live = root / f".tmp-{store._host()}-{os.getpid()}-y"
    dead.mkdir()
    live.mkdir()
    store.prepare(tmp_path)
    assert not dead.exists() and live.exists()


def test_unwritable_folder_is_a_store_error(tmp_path):
    target = tmp_path / "file"
    target.write_text("not a folder")
    with pytest.raises(store.StoreError, match="cannot write results to"):
        store.prepare(target)


def test_load_results_merges_folders_and_prefers_finished_copies(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    store.write_cell(a, "k1", _record("k1", status="failed", finished="2026-01-02T00:00:00"), None)
    store.write_cell(b, "k1", _record("k1", value=0.6), None)
    store.write_cell(b, "k2", _record("k2", seed=1), None)
    frame = store.load_results(a, b)
    assert sorted(frame["key"]) == ["k1", "k2"]
    assert frame.set_index("key").loc["k1", "i2t/map@all"] == 0.6
    long = store.long_results(frame)
    assert len(long) == 4 and set(long["direction"]) == {"i2t", "t2i"}


def test_not_a_results_folder(tmp_path):
    with pytest.raises(store.StoreError, match="not a cmhbench results folder"):
        store.load_results(tmp_path)


def test_records_are_plain_json(tmp_path):
    record = _record("k")
    record["numpy_value"] = np.float32(0.25)
    store.write_cell(tmp_path, "k", record, None)
    text = (store.cells_dir(tmp_path) / "k" / "record.json").read_text()
    assert json.loads(text)["numpy_value"] == 0.25


def test_delete_cell_removes_it_and_an_interrupted_deletion_is_cleaned_up(tmp_path):
    store.prepare(tmp_path)
    store.write_cell(tmp_path, "gone", _record("gone"), {"codes": np.zeros((1, 2), np.uint8)})
    store.write_cell(tmp_path, "kept", _record("kept"), None)
    assert store.delete_cell(tmp_path, "gone") is True
    assert store.delete_cell(tmp_path, "gone") is False  # nothing left to delete
    assert [p.name for p in store.cells_dir(tmp_path).iterdir()] == ["kept"]
    half = store.cells_dir(tmp_path) / ".deleted-old-0123456789ab"  # a prune killed inside its rmtree
    (half / "sub").mkdir(parents=True)
    assert list(store.load_results(tmp_path)["key"]) == ["kept"]
    assert not half.exists()
    with pytest.raises(store.StoreError, match="not a valid cell key"):
        store.delete_cell(tmp_path, "../kept")
