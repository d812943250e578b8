"""A method cannot end the run, charge another cell, outlive --timeout or have broken codes scored.

The misbehaving methods are a real installed plugin (``tests/fixtures/dummy_plugin``):
each fails in its own way at 16 bits and is a correct projection at 8 bits.
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest

from cmhbench import store
from cmhbench.methods.base import OutputError, to_codes

MODES = {  # variant -> (mode, what the failed record's error says)
    "bad-exit": ("exit", "SystemExit: the method tried to end the process"),
    "bad-os-exit": ("os-exit", "died twice: it exited with code 0"),
    "bad-kill": ("kill", "died twice: it was killed by SIGKILL"),
    "bad-nan": ("nan", "1 NaN or infinite values"),
    "bad-inf": ("inf", "NaN or infinite values"),
    "bad-zero-one": ("zero-one", "{0, 1} codes, which sign maps to all +1"),
    "bad-bool": ("bool", "{0, 1} codes, which sign maps to all +1"),
    "bad-string": ("string", "values; codes must be real numbers"),
}


@pytest.mark.slow
def test_misbehaving_methods_fail_their_own_cells_and_the_serial_grid_finishes(plugin_env, cmhbench_cli, tmp_path):
    variants = "".join(f'[variants.{name}]\nbase = "dummy-bad"\nmode = "{mode}"\n' for name, (mode, _) in MODES.items())
    config = tmp_path / "grid.toml"
    config.write_text(f'methods = {list(MODES) + ["dummy-binary", "random"]}\nbits = [8, 16]\n'
                      f'preset = "quick"\n{variants}'.replace("'", '"'))
    out, log = tmp_path / "o", tmp_path / "fits.log"
    result = cmhbench_cli({**plugin_env, "CMHBENCH_DUMMY_LOG": str(log)}, "run", "--config", str(config),
                          "--out", str(out), "--no-progress", timeout=600)
    assert result.returncode == 1, result.stderr  # failed cells, not a crashed run
    assert "Traceback" not in result.stderr
    n = len(MODES) + 2
    assert f"{2 * n} cells: 0 already stored, {2 * n} computed (ok {n + 2}, failed {len(MODES)}" in result.stderr
    assert (out / "results.csv").is_file() and (out / "leaderboard.md").is_file()
    records = {(r["cell"]["method"], r["cell"]["bits"]): r for r in store.iter_records(out)}
    for name, (_, message) in MODES.items():
        assert records[(name, 8)]["status"] == "ok", name
        assert records[(name, 16)]["status"] == "failed", name
        assert message in records[(name, 16)]["error"], (name, records[(name, 16)]["error"])
    assert {records[("dummy-binary", b)]["status"] for b in (8, 16)} == {"ok"}
    # {0,1} codes declared as such are mapped 0 -> -1: the codes are not all +1
    assert records[("dummy-binary", 16)]["codes"]["i2t_query"]["distinct"] > 1
    # a method that kills its process is retried once in a fresh one; one that calls sys.exit is not
    fits = Counter(line.split()[0] for line in log.read_text().splitlines())
    assert fits["16"] == len(MODES) + 2  # every variant once, bad-kill and bad-os-exit twice
    assert not list(store.claims_dir(out).iterdir())


@pytest.mark.slow
def test_a_native_call_is_stopped_within_seconds_of_the_timeout(plugin_env, cmhbench_cli, tmp_path):
    out = tmp_path / "o"
    start = time.monotonic()
    result = cmhbench_cli(plugin_env, "run", "--methods", "dummy-bad,random", "--bits", "8,16", "--timeout", "10",
                          "--param", "dummy-bad.mode=native-sleep", "--out", str(out), "--no-progress")
    elapsed = time.monotonic() - start
    assert result.returncode == 1, result.stderr
    # the method sleeps for 600 s; start-up and the other cells take well under a minute even on a
    # busy machine, so the bound separates "killed after 10 + 3 s" from "waited for the sleep"
    assert elapsed < 200, f"the stuck cell held the run for {elapsed:.0f} s"
    records = {(r["cell"]["method"], r["cell"]["bits"]): r for r in store.iter_records(out)}
    assert "longer than --timeout 10 s" in records[("dummy-bad", 16)]["error"]
    assert [r["status"] for k, r in sorted(records.items()) if k != ("dummy-bad", 16)] == ["ok", "ok", "ok"]


@pytest.mark.parametrize("values, message", [
    (np.array([[0.5, np.nan]]), "NaN or infinite"),
    (np.array([[0, 1]]), "{0, 1} codes"),
    (np.array([[True, True]]), "{0, 1} codes"),
    (np.array([["a", "b"]]), "must be real numbers"),
    (np.array([[1 + 1j, 1]]), "must be real numbers"),
])
def test_outputs_that_sign_would_turn_into_wrong_codes_are_refused(values, message):
    with pytest.raises(OutputError, match=message.replace("{", r"\{").replace("}", r"\}")):
        to_codes(values, 2)


def test_declared_zero_one_codes_are_mapped_and_signed_integers_still_work():
    assert to_codes(np.array([[0, 1]]), 2, zero_one=True).tolist() == [[-1, 1]]
    with pytest.raises(OutputError, match="declares"):
        to_codes(np.array([[0, 2]]), 2, zero_one=True)
    assert to_codes(np.array([[-1, 1]], dtype=np.int8), 2).tolist() == [[-1, 1]]
    assert to_codes(np.array([[0.0, -0.5]]), 2).tolist() == [[1, -1]]  # real values: zero goes to +1


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_without_a_traceback(plugin_env, tmp_path):
    import signal
    import subprocess
    import sys

    out = tmp_path / "o"
    args = [sys.executable, "-m", "cmhbench", "run", "--methods", "dummy-sleep", "--bits", "1,2,3,4,5,6",
            "--param", "dummy-sleep.sleep=2", "--jobs", "2", "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(args, env=plugin_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (store.claims_dir(out).is_dir() and any(store.claims_dir(out).iterdir())):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "run the same command again to resume" in err
    assert not [p for p in store.claims_dir(out).iterdir() if not p.name.startswith(".")]
    assert all(r["status"] == "ok" for r in store.iter_records(out))
