"""Scaling out: a Dask cluster, concurrent runs on one folder, a worker killed mid-cell."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from cmhbench import store
from cmhbench.datasets.synthetic import SyntheticConfig, SyntheticSource
from cmhbench.harness.executor import WORKER_DIED, longest_first, run_cells
from cmhbench.harness.grid import GridSpec, build_cells
from cmhbench.harness.runner import RunContext, cell_device, time_limit, CellTimeout

SMALL = SyntheticSource(SyntheticConfig(n_items=400, n_query=50, n_train=200))


def _metrics(out, cells):
    return {c.key: store.read_record(out, c.key)["metrics"] for c in cells}


@pytest.mark.slow
def test_a_dask_cluster_stores_the_same_metrics_as_a_serial_run(tmp_path):
    distributed = pytest.importorskip("distributed")
    sources = {"synthetic": SMALL}
    cells = build_cells(GridSpec(methods=["cca-itq", "random"], bits=[16, 32], preset="quick"), sources)
    serial = run_cells(cells, sources, RunContext(out=tmp_path / "serial"), progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        clustered = run_cells(cells, sources, RunContext(out=tmp_path / "dask"), backend="dask",
                              scheduler=cluster.scheduler_address, progress=False)
    assert serial.counts["ok"] == clustered.counts["ok"] == 4
    assert _metrics(tmp_path / "serial", cells) == _metrics(tmp_path / "dask", cells)


@pytest.mark.slow
def test_two_runs_on_one_folder_compute_every_cell_exactly_once(plugin_env, tmp_path):
    out, log = tmp_path / "o", tmp_path / "fits.log"
    env = {**plugin_env, "CMHBENCH_DUMMY_LOG": str(log)}
    args = [sys.executable, "-m", "cmhbench", "run", "--methods", "dummy-sleep", "--bits", "1,2,3,4,5,6,7,8",
            "--param", "dummy-sleep.sleep=0.3", "--out", str(out), "--no-progress"]
    runs = [subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    errors = [p.communicate(timeout=300)[1] for p in runs]
    assert [p.returncode for p in runs] == [0, 0], errors
    fits = Counter(line.split()[0] for line in log.read_text().splitlines())
    assert fits == {str(b): 1 for b in range(1, 9)}
    assert sorted(r["cell"]["bits"] for r in store.iter_records(out)) == list(range(1, 9))
    assert not list(store.claims_dir(out).iterdir())


@pytest.mark.slow
def test_a_worker_killed_mid_cell_loses_nothing(plugin_env, tmp_path):
    out = tmp_path / "o"
    args = [sys.executable, "-m", "cmhbench", "run", "--methods", "dummy-sleep", "--bits", "1,2,3,4,5,6",
            "--param", "dummy-sleep.sleep=1.5", "--jobs", "2", "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(args, env=plugin_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    victim, deadline = None, time.time() + 120
    while victim is None and time.time() < deadline:
        claims = list(store.claims_dir(out).glob("*")) if store.claims_dir(out).is_dir() else []
        for claim in claims:
            owner = store._claim_owner(claim)
            if owner.get("pid") and owner["pid"] != proc.pid:
                victim = (claim.name, owner["pid"])
                break
        time.sleep(0.05)
    assert victim, "no worker claimed a cell"
    os.kill(victim[1], signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode in (0, 1), err
    records = {r["key"]: r for r in store.iter_records(out)}
    assert sorted(r["cell"]["bits"] for r in records.values()) == [1, 2, 3, 4, 5, 6]
    killed = records[victim[0]]
    assert killed["status"] == "ok" or killed["error"].startswith(WORKER_DIED)
    others = [r for k, r in records.items() if k != victim[0]]
    assert all(r["status"] == "ok" for r in others), "only the killed worker's cell may be charged"


def test_cell_time_limit_raises_in_the_main_thread():
    with pytest.raises(CellTimeout, match="longer than --timeout"):
        with time_limit(0.05):
            time.sleep(1)
    with time_limit(None):
        time.sleep(0.01)


def test_cell_time_limit_lets_a_running_import_finish(tmp_path, monkeypatch):
    # Torch's first optimizer imports sympy lazily; an alarm raised inside that import once
    # left a half-built sympy behind and every later deep cell in the run failed.
    (tmp_path / "slow_package").mkdir()
    (tmp_path / "slow_package" / "__init__.py").write_text("import time\ntime.sleep(0.4)\nCOMPLETE = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "slow_package", raising=False)
    with pytest.raises(CellTimeout):
        with time_limit(0.05):
            import slow_package  # noqa: F401
            time.sleep(5)
    assert sys.modules["slow_package"].COMPLETE


def test_timeout_is_stored_as_a_failure(tmp_path):
    sources = {"synthetic": SMALL}
    cells = build_cells(GridSpec(methods=["djsrh"], bits=[16], params={"djsrh": {"epochs": 500}}), sources)
    summary = run_cells(cells, sources, RunContext(out=tmp_path, timeout=0.5, device="cpu"), progress=False)
    assert summary.counts == {"failed": 1}
    assert "longer than --timeout" in store.read_record(tmp_path, cells[0].key)["error"]


def test_gpu_requests_without_a_gpu_fall_back_to_the_cpu():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert cell_device("auto", deep=True) == ("cpu", None)
    device, warning = cell_device("cuda", deep=True)
    assert device == "cpu" and "torch sees no GPU" in warning
    assert cell_device("cuda:1", deep=False) == ("cpu", None)  # shallow methods run on the CPU


def test_parallel_runs_start_the_longest_cells_first():
    cells = build_cells(GridSpec(methods=["cca-itq", "djsrh"], bits=[16, 64, 32]), {"synthetic": SMALL})
    order = [(c.base, c.bits) for c in longest_first(cells)]
    assert order == [("djsrh", 64), ("djsrh", 32), ("djsrh", 16), ("cca-itq", 64), ("cca-itq", 32), ("cca-itq", 16)]
