"""``cmhbench prune``: only the cells a leaderboard flags stale are listed, and deleted on --yes."""

import pandas as pd

from cmhbench import store
from cmhbench.cli import main
from cmhbench.pruning import stale_groups


def _cell(out, key, method, versions, dataset="d", seed=0, bits=16):
    record = {
        "key": key, "status": "ok", "finished_at": "2026-01-01T00:00:00",
        "cell": {"method": method, "base": method, "dataset": {"name": dataset}, "protocol": "p",
                 "database_coding": "modality", "bits": bits, "seed": seed, "preset": "paper", "params": {},
                 "versions": versions},
        "metrics": {"i2t": {"map@all": 0.5}, "t2i": {"map@all": 0.6}},
    }
    store.write_cell(out, key, record, None)


def _folder(tmp_path):
    out = tmp_path / "o"
    store.prepare(out)
    for seed in (0, 1):
        _cell(out, f"jdsh-v2-{seed}", "jdsh", {"jdsh": 2}, seed=seed)
        _cell(out, f"jdsh-v3-{seed}", "jdsh", {"jdsh": 3}, seed=seed)
        _cell(out, f"kdcmh-old-teacher-{seed}", "kdcmh", {"jdsh": 2, "kdcmh": 3}, seed=seed)
        _cell(out, f"kdcmh-{seed}", "kdcmh", {"jdsh": 3, "kdcmh": 3}, seed=seed)
    _cell(out, "jdsh-v2-elsewhere", "jdsh", {"jdsh": 2}, dataset="e")  # the only version stored for "e"
    _cell(out, "random", "random", {})
    return out


def test_stale_groups_are_the_older_versions_beside_a_newer_one(tmp_path):
    total, groups = stale_groups(_folder(tmp_path))
    assert total == 10
    assert [(g.row, g.keys, g.seeds) for g in groups] == [
        ("jdsh (v2)", ("jdsh-v2-0", "jdsh-v2-1"), (0, 1)),
        ("kdcmh (v3, jdsh v2)", ("kdcmh-old-teacher-0", "kdcmh-old-teacher-1"), (0, 1)),
    ]
    assert groups[0].describe() == ("jdsh (v2) in d (protocol p, features raw, database modality): "
                                    "2 cells (bits 16; seeds 0,1)")


def test_prune_lists_without_yes_and_deletes_only_stale_cells_with_it(tmp_path, capsys):
    out = _folder(tmp_path)
    before = sorted(p.name for p in store.cells_dir(out).iterdir())
    assert main(["prune", str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.out.splitlines()[0].startswith("stale: jdsh (v2) in d (protocol p")
    assert "4 of 10 cells are stale; nothing deleted (run again with --yes" in printed.err
    assert sorted(p.name for p in store.cells_dir(out).iterdir()) == before

    assert main(["prune", str(out), "--yes"]) == 0
    assert "deleted 4 stale cells of 10" in capsys.readouterr().err
    left = sorted(p.name for p in store.cells_dir(out).iterdir())
    assert left == ["jdsh-v2-elsewhere", "jdsh-v3-0", "jdsh-v3-1", "kdcmh-0", "kdcmh-1", "random"]
    assert set(pd.read_csv(out / "results.csv")["key"]) == set(left)
    assert "Stale" not in (out / "leaderboard.md").read_text()

    assert main(["prune", str(out), "--yes"]) == 0
    assert "no stale cells among 6" in capsys.readouterr().err


def test_prune_of_a_folder_that_is_not_one_is_one_line(tmp_path, capsys):
    assert main(["prune", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cmhbench: error:") and "not a cmhbench results folder" in err and "\n" not in err
