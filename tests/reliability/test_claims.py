"""Claims expire by heartbeat on every host, even when their pid is alive here."""

from __future__ import annotations

import json
import os
import time

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
