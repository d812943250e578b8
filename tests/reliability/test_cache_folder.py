"""The cache folder: cmhbench deletes only what it wrote, and a bad one is refused before any cell."""

from __future__ import annotations


import pytest

from cmhbench.cli import main
from cmhbench.datasets import cache as cache_module

RUN = ["run", "--methods", "random", "--bits", "8", "--no-progress"]






def test_clear_refuses_a_folder_of_the_users_files(tmp_path, refused, tree):
    user = tmp_path / "thesis"
    (user / "sub").mkdir(parents=True)
    (user / "precious.txt").write_text("years of work")
    (user / "sub" / "thesis.tex").write_text("\\chapter{}")
    before = tree(user)
    refused(["cache", "clear", "--cache-dir", str(user)], "not a cmhbench cache folder", "precious.txt",
             "sub")
    assert tree(user) == before
    refused(["cache", "info", "--cache-dir", str(user)], "not a cmhbench cache folder")


def test_clear_of_the_current_folder_is_refused(tmp_path, monkeypatch, refused):
    (tmp_path / "notes.md").write_text("keep")
    monkeypatch.chdir(tmp_path)
    refused(["cache", "clear", "--cache-dir", "."], "notes.md")
    assert (tmp_path / "notes.md").read_text() == "keep"


def test_a_users_datasets_folder_is_not_taken_for_a_cache_part(tmp_path, refused):
    """An unmarked folder holding a ``datasets/`` of the user's data files is not adopted."""
    user = tmp_path / "work"
    (user / "datasets").mkdir(parents=True)
    (user / "datasets" / "wiki.npz").write_bytes(b"data")
    refused(["cache", "clear", "--cache-dir", str(user)], "not a cmhbench cache folder")
    assert (user / "datasets" / "wiki.npz").read_bytes() == b"data"


def test_a_run_marks_its_cache_and_clear_removes_only_its_parts(tmp_path, capsys):
    cache = tmp_path / "cache"
    assert main(RUN + ["--out", str(tmp_path / "out"), "--cache-dir", str(cache)]) == 0
    assert (cache / cache_module.MARKER).is_file()
    (cache / "datasets" / "x-0123456789abcdef0123").mkdir(parents=True)
    (cache / "joblib" / "m" / "f" / "h").mkdir(parents=True)
    (cache / "joblib" / "m" / "f" / "h" / "output.pkl").write_bytes(b"0")
    (cache / "mine.txt").write_text("a user's file put there later")
    capsys.readouterr()
    assert main(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert "left alone, not cmhbench's: mine.txt" in capsys.readouterr().out
    assert sorted(p.name for p in cache.iterdir()) == sorted([cache_module.MARKER, "mine.txt"])
    assert (cache / "mine.txt").read_text() == "a user's file put there later"


def test_a_cache_made_before_the_marker_is_adopted(tmp_path, capsys):
    """A folder holding only cmhbench's layout (as every cache made before the marker does)."""
    cache = tmp_path / "old-cache"
    prepared = cache / "datasets" / "wikipedia-0123456789abcdef0123"
    prepared.mkdir(parents=True)
    (prepared / "meta.json").write_text("{}")
    (cache / "datasets" / "fingerprints").mkdir()
    (cache / "joblib" / "mod" / "fn").mkdir(parents=True)
    (cache / "joblib" / "mod" / "fn" / "func_code.py").write_text("# first line: 1\n")
    (cache / ".gitignore").write_text("# Created by joblib automatically.\n*\n")
    assert main(["cache", "info", "--cache-dir", str(cache)]) == 0
    assert "datasets" in capsys.readouterr().out
    assert main(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert not cache.exists()


def test_a_cache_dir_that_is_a_file_is_refused_before_any_cell(tmp_path, refused):
    target = tmp_path / "afile"
    target.write_text("x")
    refused(RUN + ["--out", str(tmp_path / "out"), "--cache-dir", str(target)], str(target), "is a file")
    assert not (tmp_path / "out").exists()
    assert target.read_text() == "x"


def test_an_unwritable_cache_dir_is_refused_before_any_cell(tmp_path, monkeypatch, refused):
    """A read-only folder (simulated: the tests may run as root, who can write anywhere)."""
    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache_module.tempfile, "TemporaryFile", read_only)
    refused(RUN + ["--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "ro")],
             "cannot be written", "Permission denied")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["datasets", "joblib"])
def test_a_symlinked_part_is_never_followed(tmp_path, name):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / cache_module.MARKER).write_text("")
    (cache / name).symlink_to(elsewhere, target_is_directory=True)
    assert main(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert (elsewhere / "keep.txt").read_text() == "keep"
