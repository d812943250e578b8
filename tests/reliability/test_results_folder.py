"""A results folder is untrusted input: hostile records, tampered arrays, interrupted writes."""

from __future__ import annotations

import json
import shutil

import pytest

from cmhbench import store
from cmhbench.cli import main

GRID = ["run", "--methods", "random,cca-itq", "--bits", "16", "--seeds", "0", "--preset", "quick",
        "--no-progress"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A small finished results folder, copied by each test that changes it."""
    out = tmp_path_factory.mktemp("finished") / "out"
    assert main(GRID + ["--out", str(out)]) == 0
    return out


def _copy(finished, dest):
    shutil.copytree(finished, dest)
    return dest


def _snapshot(out):
    return {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_record_key_pointing_elsewhere_cannot_touch_another_folder(finished, tmp_path, capsys):
    victim = _copy(finished, tmp_path / "victim")
    attacker = _copy(finished, tmp_path / "attacker")
    before = _snapshot(victim)
    victim_key = sorted(store.done_keys(victim))[0]
    record_path = store.cells_dir(attacker) / victim_key / "record.json"
    record = json.loads(record_path.read_text())
    record["key"] = f"../../victim/cells/{victim_key}"
    record_path.write_text(json.dumps(record))

    assert main(["evaluate", str(attacker), "--metrics", "map@all"]) == 0
    captured = capsys.readouterr()
    assert _snapshot(victim) == before
    assert "re-scored 1 cells" in captured.out  # the hostile record was skipped, the other re-scored
    assert main(["check", str(attacker)]) == 1
    assert f"corrupt: {store.cells_dir(attacker) / victim_key}: the record's key" in capsys.readouterr().out


def test_write_cell_refuses_a_key_that_is_a_path(tmp_path):
    for key in ("../x", "a/b", "..", "", ".hidden"):
        with pytest.raises(store.StoreError, match="not a valid cell key"):
            store.write_cell(tmp_path, key, {"status": "ok"}, None)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow  # end to end through the command, several runs (multi-second)
@pytest.mark.parametrize("content", ["[1, 2]", '{"key": "K", "status": "ok"}', "{not json", b"\xff\xfe"])
def test_malformed_records_are_reported_not_crashed_on(finished, tmp_path, capsys, content):
    out = _copy(finished, tmp_path / "o")
    key = sorted(store.done_keys(out))[0]
    path = store.cells_dir(out) / key / "record.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content.replace("K", key))
    for command in (["leaderboard", str(out)], ["leaderboard", str(out), "--ci"], ["report", str(out)],
                    ["evaluate", str(out)], ["rank", str(out)]):
        assert main(command) in (0, 2), command
        assert "Traceback" not in capsys.readouterr().err
    assert main(["check", str(out)]) == 1
    assert key in capsys.readouterr().out
    assert main(GRID + ["--out", str(out)]) == 0  # run computes the corrupt cell again
    assert "1 already stored, 1 computed" in capsys.readouterr().err
    assert main(["check", str(out)]) == 0


@pytest.mark.slow  # end to end through the command, several runs (multi-second)
def test_truncated_arrays_are_named_by_check_and_recomputed_by_run(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path / "o")
    key = sorted(store.done_keys(out))[0]
    arrays = store.cells_dir(out) / key / "arrays.npz"
    arrays.write_bytes(arrays.read_bytes()[: arrays.stat().st_size // 2])
    assert main(["check", str(out)]) == 1
    captured = capsys.readouterr()
    assert f"corrupt: {store.cells_dir(out) / key}: arrays.npz does not match" in captured.out
    for command in (["leaderboard", str(out), "--ci"], ["compare", str(out), "--methods", "cca-itq,random"],
                    ["report", str(out)]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "corrupt cell" in err and "Traceback" not in err
    assert main(GRID + ["--out", str(out)]) == 0
    assert "1 already stored, 1 computed" in capsys.readouterr().err
    assert main(["check", str(out)]) == 0
    assert main(["leaderboard", str(out), "--ci"]) == 0


def test_a_kill_between_the_two_renames_of_a_replacement_loses_no_cell(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path / "o")
    key = sorted(store.done_keys(out))[0]
    original = (store.cells_dir(out) / key / "record.json").read_text()
    # the state write_cell leaves when killed after moving the old cell aside
    (store.cells_dir(out) / key).rename(store.cells_dir(out) / f".old-{key}-0123456789ab")
    assert main(["leaderboard", str(out)]) == 0
    assert (store.cells_dir(out) / key / "record.json").read_text() == original
    assert main(GRID + ["--out", str(out)]) == 0
    assert "2 already stored, 0 computed" in capsys.readouterr().err


def test_derived_files_are_replaced_whole(tmp_path, monkeypatch):
    path = tmp_path / "results.csv"
    path.write_text("old,complete\n")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", full_disk)
    with pytest.raises(OSError):
        store.write_text_atomic(path, "new,rows\n" * 1000)
    assert path.read_text() == "old,complete\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_a_grid_file_asking_only_for_map_at_50_writes_its_tables(tmp_path, capsys):
    config = tmp_path / "grid.toml"
    config.write_text('methods = ["random"]\nbits = [16]\npreset = "quick"\nmetrics = ["map@50"]\n')
    out = tmp_path / "o"
    assert main(["run", "--config", str(config), "--out", str(out), "--no-progress"]) == 0
    assert "map@50" in (out / "leaderboard.md").read_text()
    assert "map@50" in (out / "results.csv").read_text()


def test_evaluate_on_a_folder_it_cannot_write_names_the_folder(tmp_path, capsys, monkeypatch):
    """A read-only results folder (simulated: the tests may run as root, who can write anywhere)."""
    out = tmp_path / "ro"
    assert main(["run", "--methods", "random", "--bits", "8", "--out", str(out), "--no-progress"]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(store.tempfile, "TemporaryFile", read_only)
    assert main(["evaluate", str(out), "--metrics", "map@all"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cmhbench: error: {out} cannot be written (Permission denied)") and ".tmp" not in err, err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_score_edited_by_hand_is_caught_by_check_and_never_bolded(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path / "edited")
    path = next(p for p in store.cells_dir(out).glob("*/record.json") if '"cca-itq"' in p.read_text())
    record = json.loads(path.read_text())
    record["metrics"]["i2t"]["map@all"] = 0.99
    path.write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["check", str(out)]) == 1
    captured = capsys.readouterr()
    assert "does not match its checksum" in captured.out and "1 corrupt" in captured.err
    assert "0.99" not in store.load_results(out).to_string()  # readers skip it, as any corrupt record


def test_check_rescore_names_a_score_the_codes_do_not_give(finished, tmp_path, capsys):
    """A record written without a checksum (as before there was one) and then edited: only
    re-deriving its scores from its codes can tell."""
    out = _copy(finished, tmp_path / "old")
    path = next(p for p in store.cells_dir(out).glob("*/record.json") if '"cca-itq"' in p.read_text())
    record = json.loads(path.read_text())
    del record[store.RECORD_CHECKSUM]
    record["metrics"]["i2t"]["map@all"] = 0.99
    path.write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["check", str(out)]) == 0
    assert "1 unverified" in capsys.readouterr().err
    assert main(["check", str(out), "--rescore"]) == 1
    captured = capsys.readouterr()
    assert "i2t map@all: stored 0.99, codes give" in captured.out and "1 cell(s) differ" in captured.err


def test_evaluate_keeps_the_record_checksum_true(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path / "rescored")
    assert main(["evaluate", str(out), "--metrics", "map@100"]) == 0
    capsys.readouterr()
    assert main(["check", str(out), "--rescore"]) == 0
    assert "0 corrupt" in capsys.readouterr().err
