"""A full disk: one line naming it, exit 1, and each failed cell's error says why."""

from __future__ import annotations

import errno

from cmhbench import store
from cmhbench.cli import main


def test_a_full_disk_is_named_once_and_every_failed_cell_says_why(tmp_path, capsys, monkeypatch):
    out = tmp_path / "o"
    assert main(["run", "--methods", "random", "--bits", "8", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "fsync", full)  # every cell write now fails, in the workers too (fork)
    code = main(["run", "--methods", "random,cca-itq", "--bits", "8,16", "--preset", "quick", "--out", str(out),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err and "died" not in err, err
    failed = [line for line in err.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 3 and all("No space left on device" in line for line in failed), err
    assert err.count("is full (No space left on device)") == 1
    monkeypatch.undo()
    assert store.load_results(out)["status"].tolist() == ["ok"]  # the cell stored before survives
