"""A run killed with SIGKILL mid-grid loses no finished cell, duplicates none, shows no half cell."""

import os
import signal
import subprocess
import sys
import time

import pytest

from cmhbench import store

pytestmark = pytest.mark.slow  # installs a plugin, kills a running command

BITS = ",".join(str(b) for b in range(1, 13))


def _wait_until_gone(group: int, timeout: float = 10.0) -> None:
    """Until no process of ``group`` is left (or ``timeout``: a zombie nobody reaps cannot write)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _visible_cells(out):
    root = store.cells_dir(out)
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []


def test_sigkill_mid_grid_then_resume(plugin_env, tmp_path):
    out = tmp_path / "o"
    args = [sys.executable, "-m", "cmhbench", "run", "--methods", "dummy-sleep", "--bits", BITS,
            "--param", "dummy-sleep.sleep=0.4", "--out", str(out), "--no-progress"]
    # its own process group, killed whole: a crash takes the run's worker processes with it (killing
    # only the parent let an orphaned worker store one more cell after the snapshot below: flaky)
    proc = subprocess.Popen(args, env=plugin_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while len(_visible_cells(out)) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _wait_until_gone(proc.pid)  # a worker can outlive the parent by the rename it was inside (flaky before)
    finished = {p.name: (p / "record.json").read_text() for p in _visible_cells(out)}
    assert 3 <= len(finished) < 12, "the kill should land mid-grid"
    for name, text in finished.items():  # every visible cell is complete
        assert (store.cells_dir(out) / name / "arrays.npz").is_file()
        assert '"status": "ok"' in text

    resumed = subprocess.run(args, env=plugin_env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    summary = [line for line in resumed.stderr.splitlines() if "already stored" in line]
    assert f"12 cells: {len(finished)} already stored, {12 - len(finished)} computed" in resumed.stderr, summary
    cells = _visible_cells(out)
    assert len(cells) == 12
    assert sorted(r["cell"]["bits"] for r in store.iter_records(out)) == list(range(1, 13))
    for name, text in finished.items():  # finished cells were not recomputed
        assert (store.cells_dir(out) / name / "record.json").read_text() == text
    assert not [p for p in store.cells_dir(out).iterdir() if p.name.startswith(".tmp-")]


def test_sigterm_stops_the_run_and_its_workers_and_says_so(plugin_env, tmp_path):
    """SIGTERM (a scheduler's stop) to the command alone: one line, exit 143, no worker left
    running, no claim left behind, and an immediate re-run resumes (it is not told that
    another run holds the cells)."""
    out = tmp_path / "o"
    args = [sys.executable, "-m", "cmhbench", "run", "--methods", "dummy-sleep", "--bits", BITS,
            "--param", "dummy-sleep.sleep=0.4", "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(args, env=plugin_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while len(_visible_cells(out)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 143, err
    assert "cmhbench: terminated (SIGTERM); every finished cell is stored" in err and "Traceback" not in err, err
    try:  # the workers were stopped with the command, not left to finish their cells
        os.killpg(proc.pid, 0)
        survivors = True
    except ProcessLookupError:
        survivors = False
    assert not survivors
    assert not [p for p in store.claims_dir(out).iterdir() if not p.name.startswith(".")]
    finished = len(_visible_cells(out))
    resumed = subprocess.run(args, env=plugin_env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"12 cells: {finished} already stored, {12 - finished} computed" in resumed.stderr, resumed.stderr
    assert "another run" not in resumed.stderr
