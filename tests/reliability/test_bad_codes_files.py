"""``cmhbench evaluate --codes``: a file that is not an .npz is one line, and collapsed codes are flagged."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from cmhbench.cli import main

RNG = np.random.default_rng(0)
LABELS = (RNG.random((500, 5)) > 0.7).astype(np.uint8)




def test_an_empty_file(tmp_path, refused):
    (tmp_path / "empty.npz").write_bytes(b"")
    refused(["evaluate", "--codes", str(tmp_path / "empty.npz")], "empty.npz", "empty (0 bytes)")


def test_a_single_npy_array(tmp_path, refused):
    np.save(tmp_path / "codes.npy", np.ones((3, 8), dtype=np.int8))
    refused(["evaluate", "--codes", str(tmp_path / "codes.npy")], "codes.npy", "not a readable .npz file",
            "not a zip archive")


def test_a_folder(tmp_path, refused):
    (tmp_path / "codes.npz").mkdir()
    refused(["evaluate", "--codes", str(tmp_path / "codes.npz")], "codes.npz", "folder")


def _codes_file(path, database):
    query = np.where(RNG.random((100, 16)) > 0.5, 1, -1).astype(np.int8)
    np.savez(path, i2t_query=query, i2t_database=database, query_labels=LABELS[:100], database_labels=LABELS[100:])
    return path


def test_all_zero_codes_are_flagged_as_collapsed(tmp_path, capsys, caplog):
    path = _codes_file(tmp_path / "zero.npz", -np.ones((400, 16), dtype=np.int8))
    with caplog.at_level(logging.WARNING):
        assert main(["evaluate", "--codes", str(path)]) == 0
    warned = capsys.readouterr().err + caplog.text
    assert "only 1 distinct code(s) for 400 items" in warned and "collapsed" in warned, warned


@pytest.mark.parametrize("n_codes", [16, 400])
def test_healthy_codes_are_not_flagged(tmp_path, capsys, caplog, n_codes):
    distinct = np.where(RNG.random((n_codes, 16)) > 0.5, 1, -1).astype(np.int8)
    distinct[:16] = np.where(np.eye(16, dtype=bool), 1, -1)  # at least 16 different rows
    database = distinct[np.arange(400) % n_codes]
    with caplog.at_level(logging.WARNING):
        assert main(["evaluate", "--codes", str(_codes_file(tmp_path / "ok.npz", database))]) == 0
    assert "collapsed" not in capsys.readouterr().err + caplog.text
