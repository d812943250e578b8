"""``cmhbench prune``: only stale cells that a newer version's finished cell replaces are
listed for deletion, and deleted on --yes; everything else stays."""

import pandas as pd

from cmhbench import store
from cmhbench.cli import main
from cmhbench.harness.pruning import stale_groups


def _cell(out, key, method, versions, dataset="d", seed=0, bits=16, status="ok", split="test"):
    record = {
        "key": key, "status": status, "finished_at": "2026-01-01T00:00:00",
        "cell": {"method": method, "base": method, "dataset": {"name": dataset}, "protocol": "p",
                 "database_coding": "modality", "bits": bits, "seed": seed, "preset": "paper", "params": {},
                 "versions": versions, "split": split},
        "metrics": {"i2t": {"map@all": 0.5}, "t2i": {"map@all": 0.6}} if status == "ok" else {},
    }
    store.write_cell(out, key, record, None)


def _folder(tmp_path):
    out = tmp_path / "o"
    store.prepare(out)
    for seed in (0, 1):
        _cell(out, f"jdsh-v2-{seed}", "jdsh", {"jdsh": 2}, seed=seed)
        _cell(out, f"kdcmh-old-teacher-{seed}", "kdcmh", {"jdsh": 2, "kdcmh": 3}, seed=seed)
        _cell(out, f"kdcmh-{seed}", "kdcmh", {"jdsh": 3, "kdcmh": 3}, seed=seed)
    _cell(out, "jdsh-v3-0", "jdsh", {"jdsh": 3}, seed=0)  # the newer jdsh has run seed 0 only so far
    _cell(out, "jdsh-v2-trial", "jdsh", {"jdsh": 2}, split="validation")  # a tuning trial: never judged
    _cell(out, "jdsh-v2-elsewhere", "jdsh", {"jdsh": 2}, dataset="e")  # the only version stored for "e"
    _cell(out, "dgcpn-v1", "dgcpn", {})
    _cell(out, "dgcpn-v2-failed", "dgcpn", {"dgcpn": 2}, status="failed")  # a failed newer cell replaces nothing
    return out


def test_stale_cells_are_deleted_only_where_a_finished_newer_cell_replaces_them(tmp_path):
    total, groups = stale_groups(_folder(tmp_path))
    assert total == 10  # test-split cells
    assert [(g.row, g.keys, g.kept) for g in groups] == [
        ("dgcpn (v1)", (), ("dgcpn-v1",)),
        ("jdsh (v2)", ("jdsh-v2-0",), ("jdsh-v2-1",)),
        ("kdcmh (v3, jdsh v2)", ("kdcmh-old-teacher-0", "kdcmh-old-teacher-1"), ()),
    ]
    assert groups[1].describe() == ("jdsh (v2) in d (protocol p, features raw, database modality): 1 cell replaced "
                                    "by a newer version (bits 16; seeds 0), and 1 kept: no finished cell of the "
                                    "newer version at the same bits and seed")


def test_prune_lists_without_yes_and_deletes_only_replaced_cells_with_it(tmp_path, capsys):
    out = _folder(tmp_path)
    before = sorted(p.name for p in store.cells_dir(out).iterdir())
    assert main(["prune", str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.out.splitlines()[0].startswith("stale: dgcpn (v1) in d (protocol p")
    assert "3 of 10 cells are stale and replaced; nothing deleted (run again with --yes" in printed.err
    assert sorted(p.name for p in store.cells_dir(out).iterdir()) == before

    assert main(["prune", str(out), "--yes"]) == 0
    assert "deleted 3 stale cells; results.csv and leaderboard.md rewritten" in capsys.readouterr().err
    left = sorted(p.name for p in store.cells_dir(out).iterdir())
    assert left == sorted(set(before) - {"jdsh-v2-0", "kdcmh-old-teacher-0", "kdcmh-old-teacher-1"})
    assert set(pd.read_csv(out / "results.csv")["key"]) == set(left)

    assert main(["prune", str(out), "--yes"]) == 0
    assert "no stale cell is replaced by a newer version yet; nothing to delete" in capsys.readouterr().err


def test_folders_are_judged_together_and_each_loses_its_own_copy(tmp_path, capsys):
    old, new = tmp_path / "old", tmp_path / "new"
    for out in (old, new):
        store.prepare(out)
    _cell(old, "jdsh-v2-0", "jdsh", {"jdsh": 2})
    _cell(new, "jdsh-v3-0", "jdsh", {"jdsh": 3})
    assert main(["prune", str(old)]) == 0  # alone, the old folder holds one version: nothing is stale
    assert "no stale cells among 1" in capsys.readouterr().err
    assert main(["prune", str(old), str(new), "--yes"]) == 0
    assert "deleted 1 stale cells" in capsys.readouterr().err
    assert not (store.cells_dir(old) / "jdsh-v2-0").exists() and (store.cells_dir(new) / "jdsh-v3-0").exists()


def test_prune_of_a_folder_that_is_not_one_is_one_line(tmp_path, capsys):
    assert main(["prune", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cmhbench: error:") and "not a cmhbench results folder" in err and "\n" not in err
