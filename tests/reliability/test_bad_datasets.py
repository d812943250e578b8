"""Dataset files are checked against what they declare before any cell runs: one line, exit code 2."""

from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest

from cmhbench.cli import main
from cmhbench.datasets import cache

h5py = pytest.importorskip("h5py")
N = 300


def _npz(path, **arrays):
    rng = np.random.default_rng(0)
    base = {"image": rng.standard_normal((N, 8)).astype(np.float32),
            "text": rng.standard_normal((N, 6)).astype(np.float32),
            "labels": (rng.random((N, 4)) > 0.5).astype(np.uint8)}
    np.savez(path, **{**base, **arrays})
    return path


def _h5(path, rows, width):
    with h5py.File(path, "w") as fh:  # declared, never written: a few KB on disk
        fh.create_dataset("image", shape=(rows, width), dtype="f4", chunks=(1, min(width, 1000)))
        fh.create_dataset("text", shape=(rows, 10), dtype="f4", chunks=(1, 10))
        fh.create_dataset("labels", shape=(rows, 4), dtype="u1", chunks=(1, 4))
    return path


def _run(tmp_path, capsys, dataset):
    code = main(["run", "--methods", "random", "--bits", "8", "--datasets", str(dataset), "--out",
                 str(tmp_path / "o"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    err = capsys.readouterr().err
    return code, err


def _refused(tmp_path, capsys, dataset, *words):
    code, err = _run(tmp_path, capsys, dataset)
    assert code == 2, err
    assert err.startswith("cmhbench: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    assert not (tmp_path / "o" / "cells").exists() or not any((tmp_path / "o" / "cells").iterdir())
    leftovers = list((tmp_path / "cache" / "datasets").glob(".tmp-*")) if (tmp_path / "cache").exists() else []
    assert leftovers == []


def test_a_file_declaring_a_petabyte(tmp_path, capsys):
    _refused(tmp_path, capsys, _h5(tmp_path / "huge.h5", 10**9, 10**5), "huge.h5", "GiB", "free")


def test_a_small_file_declaring_more_than_the_cache_disk_holds(tmp_path, capsys, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(cache.shutil, "disk_usage", lambda path: usage(2**30, 2**30 - 2**20, 2**20))
    _refused(tmp_path, capsys, _h5(tmp_path / "big.h5", 10**5, 1000), "big.h5", "cache folder", "--cache-dir")


def test_a_huge_class_id(tmp_path, capsys):
    ids = np.zeros(N)
    ids[0] = 1e12
    _refused(tmp_path, capsys, _npz(tmp_path / "ids.npz", labels=ids), "class id", "classes")


def test_queries_without_any_label(tmp_path, capsys):
    labels = (np.random.default_rng(1).random((N, 4)) > 0.5).astype(np.uint8)
    labels[:50] = 0
    path = _npz(tmp_path / "q.npz", labels=labels, query_idx=np.arange(50), train_idx=np.arange(50, N),
                database_idx=np.arange(50, N))
    _refused(tmp_path, capsys, path, "q.npz", "none of its query rows has a label")


def test_a_one_row_file(tmp_path, capsys):
    path = _npz(tmp_path / "one.npz", image=np.ones((1, 8), np.float32), text=np.ones((1, 6), np.float32),
                labels=np.ones((1, 4), np.uint8))
    _refused(tmp_path, capsys, path, "one.npz", "does not fit")


def test_zero_width_features(tmp_path, capsys):
    _refused(tmp_path, capsys, _npz(tmp_path / "w.npz", image=np.ones((N, 0), np.float32)), "w.npz", "column")


def test_a_killed_preparation_is_cleaned_by_the_next_run(tmp_path, capsys):
    root = tmp_path / "cache" / "datasets"
    root.mkdir(parents=True)
    dead = root / f".tmp-{cache._host()}-999999999-abc"
    dead.mkdir()
    (dead / "image.npy").write_bytes(b"\0" * 1024)
    labels = (np.random.default_rng(2).random((N, 4)) > 0.3).astype(np.uint8)
    path = _npz(tmp_path / "ok.npz", labels=labels, query_idx=np.arange(30))
    code, err = _run(tmp_path, capsys, path)
    assert code == 0, err
    assert not dead.exists()


@pytest.mark.parametrize("split, words", [
    ({"query_idx": np.arange(0, 50), "database_idx": np.arange(40, N)}, ["10 rows", "query_idx and database_idx",
                                                                          "row 40", "overlap=allow"]),
    ({"query_idx": np.arange(0, 50), "train_idx": np.arange(45, 200), "database_idx": np.arange(50, N)},
     ["5 rows", "query_idx and train_idx"]),
    ({"query_idx": np.r_[np.arange(0, 50), 7, 7], "database_idx": np.arange(50, N)},
     ["query_idx repeats 2 row numbers", "row 7"]),
    ({"query_idx": np.arange(0, 50), "database_idx": np.r_[np.arange(50, N), 60]}, ["database_idx repeats 1"]),
])
def test_a_given_split_that_leaks_queries_or_repeats_rows_is_refused(tmp_path, capsys, split, words):
    _refused(tmp_path, capsys, _npz(tmp_path / "mine.npz", **split), "mine.npz", *words)


def test_an_overlapping_split_is_accepted_on_purpose(tmp_path, capsys):
    path = _npz(tmp_path / "mine.npz", query_idx=np.arange(0, 50), database_idx=np.arange(0, N))
    code, err = _run(tmp_path, capsys, f"{path}:overlap=allow")
    assert code == 0, err
    disjoint = _npz(tmp_path / "disjoint.npz", query_idx=np.arange(0, 50), train_idx=np.arange(50, N))
    assert _run(tmp_path, capsys, str(disjoint))[0] == 0  # train = database (the default) stays allowed


def test_an_unknown_option_of_a_users_file_is_refused(tmp_path, capsys):
    path = _npz(tmp_path / "mine.npz", query_idx=np.arange(0, 50))
    _refused(tmp_path, capsys, f"{path}:overlap=yes", "unknown option overlap=yes", "overlap=allow")


@pytest.mark.parametrize("name, expected", [("notes.npz", "not an .npz (zip) archive"),
                                            ("notes.h5", "not an HDF5 file"),
                                            ("notes.mat", "not a MATLAB file")])
def test_a_text_file_under_a_data_files_name_says_so(tmp_path, capsys, name, expected):
    (tmp_path / name).write_text("query,label\n1,2\n" * 20)
    _refused(tmp_path, capsys, tmp_path / name, name, expected, "content is text", "query,label")
