"""``run --out``: a folder of the user's own files is never written over, nor a system folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmhbench import store
from cmhbench.cli import main

RUN = ["run", "--methods", "random", "--bits", "8", "--no-progress"]






def test_a_folder_with_the_users_own_tables_is_refused(tmp_path, refused, tree):
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "results.csv").write_text("my,own\n1,2\n")
    (user / "leaderboard.md").write_text("# my notes\n")
    before = tree(user)
    refused(RUN + ["--out", str(user)], "userdir", "not cmhbench results", "leaderboard.md",
             "--into-existing")
    assert tree(user) == before


def test_into_existing_writes_there_on_purpose(tmp_path, capsys):
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "notes.txt").write_text("keep")
    assert main(RUN + ["--out", str(user), "--into-existing"]) == 0
    assert (user / "notes.txt").read_text() == "keep" and (user / store.MARKER).is_file()
    assert main(RUN + ["--out", str(user)]) == 0  # marked now: resumes without the option
    assert "1 already stored, 0 computed" in capsys.readouterr().err


@pytest.mark.parametrize("place", ["/", "/etc", "/etc/cmh", "/usr/local/results", "/proc/x", "HOME"])
def test_system_folders_and_home_are_refused(tmp_path, monkeypatch, place, refused):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    out = str(tmp_path / "home") if place == "HOME" else place
    existed = Path(out).exists()
    refused(RUN + ["--out", out], "refused")
    if not existed:
        assert not Path(out).exists()
    assert not (Path(out) / "cells").exists()


def test_a_grid_files_out_in_a_system_folder_is_refused(tmp_path, monkeypatch, refused):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "grid.toml").write_text('methods = ["random"]\nbits = [8]\nout = "/etc/cmh"\n')
    refused(["run", "--config", "grid.toml", "--no-progress"], "/etc/cmh", "system folder /etc")
    assert not Path("/etc/cmh").exists()


def test_a_folder_made_before_the_marker_is_adopted_and_resumes(tmp_path, capsys):
    out = tmp_path / "old"
    assert main(RUN + ["--out", str(out)]) == 0
    (out / store.MARKER).unlink()  # as every folder made before this change
    (out / "report").mkdir()
    capsys.readouterr()
    assert main(RUN + ["--out", str(out)]) == 0
    assert "1 already stored, 0 computed" in capsys.readouterr().err
    assert (out / store.MARKER).is_file()


def test_an_unmarked_folder_with_a_foreign_cell_is_not_adopted(tmp_path, capsys, refused):
    out = tmp_path / "old"
    assert main(RUN + ["--out", str(out)]) == 0
    (out / store.MARKER).unlink()
    (out / "cells" / "mine").mkdir()
    (out / "cells" / "mine" / "record.json").write_text("{}")
    capsys.readouterr()
    refused(RUN + ["--out", str(out)], "not cmhbench results (cells/mine)")
