"""Claims expire by heartbeat on every host, even when their pid is alive here."""

from __future__ import annotations

import json
import os
import time

import pytest

from cmhbench import store


def _plant(out, key, owner, age_s):
    path = store.claims_dir(out) / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(owner))
    old = time.time() - age_s
    os.utime(path, (old, old))
    return path


def test_a_live_pid_with_a_silent_heartbeat_is_stale(tmp_path):
    # pid reuse after a container restart: the pid is alive, but it is not the claim's owner
    path = _plant(tmp_path, "k", {"host": store._host(), "pid": os.getpid()}, store.STALE_AFTER_S + 60)
    assert store.claim_is_stale(path)
    taken = store.claim(tmp_path, "k")
    assert taken is not None
    taken.release()


def test_a_claim_with_a_fresh_heartbeat_is_respected_on_any_host(tmp_path):
    _plant(tmp_path, "here", {"host": store._host(), "pid": os.getpid()}, 1)
    _plant(tmp_path, "there", {"host": "other_machine", "pid": 1}, 1)
    assert store.claim(tmp_path, "here") is None and store.claim(tmp_path, "there") is None


def test_a_dead_pid_here_or_a_silent_claim_elsewhere_is_taken_over(tmp_path):
    _plant(tmp_path, "dead", {"host": store._host(), "pid": 999_999_999}, 1)
    _plant(tmp_path, "silent", {"host": "other_machine", "pid": 1}, store.STALE_AFTER_S + 60)
    for key in ("dead", "silent"):
        taken = store.claim(tmp_path, key)
        assert taken is not None, key
        taken.release()


def test_a_reused_pid_is_not_the_claims_owner(tmp_path):
    """The pid is alive (it is ours), but it started at another time than the claim's owner."""
    import psutil

    mine = psutil.Process().create_time()
    _plant(tmp_path, "reused", {"host": store._host(), "pid": os.getpid(), "pid_start": mine - 3600}, 1)
    _plant(tmp_path, "ours", {"host": store._host(), "pid": os.getpid(), "pid_start": mine}, 1)
    assert store.claim_is_stale(store.claims_dir(tmp_path) / "reused")
    assert not store.claim_is_stale(store.claims_dir(tmp_path) / "ours")
    taken = store.claim(tmp_path, "reused")
    assert taken is not None
    taken.release()


def test_a_claim_cut_short_by_a_full_disk_is_taken_over(tmp_path):
    """An empty claim file (its owner never written) blocks nobody once it is a few seconds old."""
    path = _plant(tmp_path, "empty", {}, store.OWNERLESS_AFTER_S + 1)
    path.write_text("")
    old = time.time() - store.OWNERLESS_AFTER_S - 1
    os.utime(path, (old, old))
    taken = store.claim(tmp_path, "empty")
    assert taken is not None
    taken.release()
    fresh = _plant(tmp_path, "being-written", {}, 0)
    fresh.write_text("")
    assert store.claim(tmp_path, "being-written") is None  # maybe a claim being written right now


def test_a_claim_whose_owner_cannot_be_written_is_removed(tmp_path, monkeypatch):
    import errno

    real_fdopen = os.fdopen

    def full_disk(fd, *args, **kwargs):
        handle = real_fdopen(fd, *args, **kwargs)
        handle.write = lambda text: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device"))
        return handle

    monkeypatch.setattr(store.os, "fdopen", full_disk)
    with pytest.raises(OSError, match="No space left"):
        store.claim(tmp_path, "k")
    monkeypatch.undo()
    assert not (store.claims_dir(tmp_path) / "k").exists()


@pytest.mark.slow  # a holder process lives for 2 s
def test_a_run_waits_for_a_cell_another_live_run_holds_then_computes_it_when_the_holder_dies(tmp_path, capsys):
    """The holder (a live process here) dies without storing the cell: the waiting run
    computes it and exits 0 with the grid complete, instead of leaving it undone."""
    import subprocess
    import sys

    import psutil

    from cmhbench.cli import main
    from cmhbench.datasets import resolve
    from cmhbench.harness.grid import GridSpec, build_cells

    (cell,) = build_cells(GridSpec(methods=["random"], bits=[8], preset="quick"), {"synthetic": resolve("synthetic")})
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2)"])
    try:
        _plant(tmp_path, cell.key, {"host": store._host(), "pid": holder.pid,
                                    "pid_start": psutil.Process(holder.pid).create_time()}, 0)
        assert store.is_claimed(tmp_path, cell.key)
        code = main(["run", "--methods", "random", "--bits", "8", "--preset", "quick", "--out", str(tmp_path),
                     "--no-progress"])
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert code == 0, err
    assert "1 cells: 0 already stored, 1 computed (ok 1" in err, err
    assert store.read_record(tmp_path, cell.key)["status"] == "ok"
