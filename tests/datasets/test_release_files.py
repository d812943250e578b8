"""Release files: `cmhbench list datasets` and every cell's record say whether a data file is
the community's release file, which the registry knows by sha256 and size (package data)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from cmhbench import datasets
from cmhbench.datasets import cache
from cmhbench.datasets.real import DIFFERS, RELEASE_STATES, UNKNOWN, VERIFIED, file_state, release_of

SHARED_PUBLISHED = Path(__file__).resolve().parents[2].parent / "shared" / "published" / "README.md"
VERIFIED_TEXT, DIFFERS_TEXT = RELEASE_STATES[VERIFIED], RELEASE_STATES[DIFFERS]


def _states(data_dir: Path) -> dict[str, str]:
    """File name -> the release state `cmhbench list datasets` prints for it."""
    text = datasets.listing(data_dir)
    return {m.group(1): m.group(2) for m in re.finditer(r"present: \S*?([^/\s]+) — (.+)$", text, re.M)}


def _flip_one_byte(path: Path, at: int = 40) -> None:
    """Change one byte of the MATLAB header text: same size, still a readable file."""
    data = bytearray(path.read_bytes())
    data[at] = ord("x") if data[at] != ord("x") else ord("y")
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def test_the_shared_files_are_verified_release_files(shared_data):
    assert _states(shared_data) == {"mirflickr25k-lall.mat": VERIFIED_TEXT, "mirflickr25k-yall.mat": VERIFIED_TEXT,
                                    "wikiData.mat": VERIFIED_TEXT}


def test_a_one_byte_change_flips_a_copy_to_differs(shared_data, tmp_path):
    shutil.copytree(shared_data / "wikipedia", tmp_path / "wikipedia")
    shutil.copytree(shared_data / "mirflickr25k", tmp_path / "mirflickr25k")
    assert _states(tmp_path)["wikiData.mat"] == VERIFIED_TEXT
    _flip_one_byte(tmp_path / "wikipedia" / "wikiData.mat")
    _flip_one_byte(tmp_path / "mirflickr25k" / "mirflickr25k-yall.mat")
    assert _states(tmp_path) == {"mirflickr25k-lall.mat": VERIFIED_TEXT, "mirflickr25k-yall.mat": DIFFERS_TEXT,
                                 "wikiData.mat": DIFFERS_TEXT}


def test_a_file_without_a_reference_says_so(shared_data, tmp_path):
    (tmp_path / "nuswide").mkdir()
    shutil.copy(shared_data / "mirflickr25k" / "mirflickr25k-lall.mat", tmp_path / "nuswide" / "nus-wide-tc10-lall.mat")
    assert file_state(tmp_path / "nuswide" / "nus-wide-tc10-lall.mat", None) == UNKNOWN
    assert _states(tmp_path) == {"nus-wide-tc10-lall.mat": RELEASE_STATES[UNKNOWN]}


def test_the_mirflickr_image_file_by_its_recorded_size_and_hash(tmp_path, monkeypatch):
    release = release_of("mirflickr25k-iall-vgg.mat")
    assert (release.size, release.sha256) == (327_925_944, "95ed1d9ffdaf7fc8c8d24acc01d07367278d9936377bdc7a768a47bcd3cab540")
    assert release_of("mirflickr25k-xall-vgg.mat") == release  # the other accepted name
    wrong = tmp_path / "mirflickr25k-iall-vgg.mat"
    wrong.write_bytes(b"\0" * 1000)

    def no_hashing(path):
        raise AssertionError("a file whose size differs must not be hashed")

    monkeypatch.setattr(cache, "sha256_of", no_hashing)
    assert file_state(wrong, None) == DIFFERS


def test_a_release_file_is_hashed_once_then_known_by_size_and_mtime(shared_data, tmp_path, monkeypatch):
    calls = []
    real = cache.sha256_of
    monkeypatch.setattr(cache, "sha256_of", lambda path: calls.append(path) or real(path))
    copy = tmp_path / "wikiData.mat"
    shutil.copy(shared_data / "wikipedia" / "wikiData.mat", copy)
    assert [file_state(copy, tmp_path / "cache") for _ in range(3)] == [VERIFIED] * 3
    assert len(calls) == 1
    _flip_one_byte(copy)
    assert file_state(copy, tmp_path / "cache") == DIFFERS and len(calls) == 2


def test_the_registry_holds_the_checksums_the_shared_notes_list():
    if not SHARED_PUBLISHED.is_file():
        pytest.skip(f"{SHARED_PUBLISHED} is absent")
    listed = dict(re.findall(r"- (?:wikipedia/)?([\w.-]+\.mat)[^\n]*?(?:\n\s+[^\n-][^\n]*?)*?sha256 ([0-9a-f]{64})",
                             SHARED_PUBLISHED.read_text(encoding="utf-8")))
    assert set(listed) == {"mirflickr25k-lall.mat", "mirflickr25k-yall.mat", "mirflickr25k-iall-vgg.mat",
                           "wikiData.mat"}
    assert {name: release_of(name).sha256 for name in listed} == listed


def test_list_datasets_names_the_protocols_with_published_numbers_and_the_release_state(shared_data, capsys):
    from cmhbench.cli import main

    assert main(["list", "datasets", "--data-dir", str(shared_data)]) == 0
    text = capsys.readouterr().out
    header, _, *rows = text.splitlines()[:8]
    assert "published numbers" in header
    columns = {row.split()[0]: row.split() for row in rows if row.strip()}
    assert columns["wikipedia"][:4] == ["wikipedia", "ready", "wiki*", "wiki"]
    assert columns["synthetic"][3:5] == ["synthetic*", "—"]  # status "built in" is two words
    assert text.count(VERIFIED_TEXT) == 3
