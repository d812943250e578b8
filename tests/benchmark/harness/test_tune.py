"""cmhbench tune: validation-only objective, tuned.toml that runs, resumable studies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from cmhbench import store
from cmhbench.cli import main
from cmhbench.datasets.synthetic import SyntheticConfig, generate


def _tuned(out: Path) -> dict:
    return tomllib.loads((out / "tuned.toml").read_text())


@pytest.mark.slow
def test_tune_writes_tuned_toml_whose_variants_run_and_name_their_study(tmp_path, capsys):
    out, results = tmp_path / "study", tmp_path / "results"
    assert main(["tune", "--methods", "cca-itq,cmfh", "--datasets", "synthetic", "--bits", "32", "--trials", "3",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "best" in err and "3/3 complete" in err  # progress shows the best so far
    config = _tuned(out)
    assert config["methods"] == ["cca-itq-tuned", "cmfh-tuned"]
    variant = config["variants"]["cmfh-tuned"]
    assert variant["base"] == "cmfh" and 0.1 <= variant["lam"] <= 0.9
    assert variant["tuned"]["trials"] == 3 and variant["tuned"]["metric"] == "map@all"
    trial_records = list(store.iter_records(out / "trials"))
    assert len(trial_records) == 6 and {r["split"]["role"] for r in trial_records} == {"validation"}
    assert variant["tuned"]["validation_splits"] == {"synthetic/s0": trial_records[0]["split"]["hash"]}
    assert not (out / "cells").exists()  # trials never sit where a test leaderboard would read them

    assert main(["run", "--config", str(out / "tuned.toml"), "--out", str(results), "--no-progress"]) == 0
    board = capsys.readouterr().out
    assert "cca-itq-tuned ‡" in board and "chosen on a validation split" in board
    records = list(store.iter_records(results))
    assert {r["tuned"]["study"] for r in records} == {config["variants"][m]["tuned"]["study"] for m in config["methods"]}
    assert all(r["split"]["role"] == "test" for r in records)
    for r in records:
        assert r["split"]["hash"] not in r["tuned"]["validation_splits"].values()
        searched = config["variants"][r["cell"]["method"]]["tuned"]["searched"]
        assert r["param_sources"] == {name: {"from": "cmhbench tune", "provenance": "validation"} for name in searched}
        assert r["cell"]["params"]["reg" if r["cell"]["base"] == "cca-itq" else "lam"] == \
            config["variants"][r["cell"]["method"]]["reg" if r["cell"]["base"] == "cca-itq" else "lam"]


def test_a_method_without_a_search_space_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["tune", "--methods", "cca-itq,random", "--trials", "2", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("cmhbench: error: method 'random' declares no search range (param_domains with search=...), "
                   "so it cannot be tuned")
    assert not (tmp_path / "x").exists()  # refused before anything ran


def _own_file(path: Path, permute_query_labels: bool) -> str:
    data = generate(SyntheticConfig())
    labels = data.labels.copy()
    labels[labels.sum(axis=1) == 0, 0] = 1  # every row labelled: the query set does not depend on labels
    query = np.arange(len(labels) - 300, len(labels))
    if permute_query_labels:
        labels[query] = labels[query][np.random.default_rng(5).permutation(query.size)]
    np.savez(path, image=data.image, text=data.text, labels=labels, query_idx=query)
    return str(path)


@pytest.mark.slow
def test_permuting_the_test_queries_labels_leaves_the_chosen_parameters_unchanged(tmp_path, capsys):
    chosen = []
    for permute in (False, True):
        out = tmp_path / f"study-{permute}"
        data = _own_file(tmp_path / f"own-{permute}.npz", permute)
        assert main(["tune", "--methods", "cca-itq", "--datasets", data, "--bits", "16", "--trials", "4",
                     "--out", str(out)]) == 0
        variant = _tuned(out)["variants"]["cca-itq-tuned"]
        chosen.append(({k: v for k, v in variant.items() if k != "tuned"}, variant["tuned"]["best_value"]))
    assert chosen[0] == chosen[1]
    capsys.readouterr()


@pytest.mark.slow
def test_a_study_killed_mid_way_continues_without_recomputing_finished_trials(tmp_path):
    out = tmp_path / "study"
    command = [sys.executable, "-m", "cmhbench", "tune", "--methods", "cmfh", "--datasets", "synthetic",
               "--bits", "16", "--trials", "6", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        while len(store.done_keys(out / "trials")) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = {r["key"]: r["finished_at"] for r in store.iter_records(out / "trials")}
    assert 2 <= len(before) < 6 and not (out / "tuned.toml").exists()

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    after = {r["key"]: r["finished_at"] for r in store.iter_records(out / "trials")}
    assert all(after[key] == stamp for key, stamp in before.items())  # finished trials were not run again
    assert len(after) == 6
    assert _tuned(out)["variants"]["cmfh-tuned"]["tuned"]["trials"] == 6
    assert "study cmfh-" in result.stderr and "complete trials" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--methods", "cca-itq", "--trials", "0"], "--trials must be at least 1, got 0"),
    (["--methods", "cca-itq", "--trials", "2", "--param", "cca-itq.n_iter=-5"],
     "cca-itq.n_iter=-5 is outside its domain: an integer in [1, 100000]"),
    (["--methods", "cca-itq", "--trials", "2", "--search", "reg,lam"],
     "--search names parameters no listed method searches: lam (searchable: corr_power, reg)"),
    (["--methods", "cca-itq,cmfh", "--trials", "2", "--search", "reg"],
     "--search leaves method 'cmfh' nothing to search (its search ranges: lam, mu, gamma)"),
])
def test_bad_tune_requests_are_refused_before_a_study_exists(tmp_path, capsys, args, message):
    assert main(["tune", *args, "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.strip() == f"cmhbench: error: {message}"
    assert not (tmp_path / "x").exists()


def test_a_trial_waits_for_a_cell_another_process_still_holds(tmp_path, monkeypatch, capsys):
    """After a kill, a worker of the killed run may still hold a trial cell's claim; the resumed
    study must wait for it, not stop with 'no record' (seen as a flaky CI failure)."""
    import threading

    import cmhbench.harness.tune as tune

    real = tune.run_cells
    held: list[Path] = []

    def run_cells_with_a_held_claim(cells, sources, ctx, **kwargs):
        if not held:  # first call: another live process (this one) holds every cell of the trial
            root = store.claims_dir(ctx.out)
            root.mkdir(parents=True, exist_ok=True)
            for cell in cells:
                path = root / cell.key
                path.write_text(json.dumps({"host": store._host(), "pid": os.getpid(), "started": time.time()}))
                held.append(path)
            threading.Timer(1.5, lambda: [p.unlink(missing_ok=True) for p in held]).start()
        return real(cells, sources, ctx, **kwargs)

    monkeypatch.setattr(tune, "run_cells", run_cells_with_a_held_claim)
    out = tmp_path / "study"
    assert main(["tune", "--methods", "cca-itq", "--datasets", "synthetic", "--bits", "16", "--trials", "1",
                 "--out", str(out)]) == 0
    assert held and len(list(store.iter_records(out / "trials"))) == 1


def test_search_restricts_the_study_and_the_others_keep_their_values(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["tune", "--methods", "cmfh", "--trials", "2", "--search", "lam", "--param", "cmfh.mu=50",
                 "--out", str(out)]) == 0
    variant = _tuned(out)["variants"]["cmfh-tuned"]
    assert variant["tuned"]["searched"] == ["lam"] and variant["mu"] == 50
    params = [r["cell"]["params"] for r in store.iter_records(out / "trials")]
    assert len({p["lam"] for p in params}) == 2  # searched
    assert {p["mu"] for p in params} == {50} and len({p["gamma"] for p in params}) == 1  # fixed, not drawn
    # another search space is another study: the same folder does not resume the first one
    assert main(["tune", "--methods", "cmfh", "--trials", "1", "--search", "gamma", "--out", str(out)]) == 0
    assert _tuned(out)["variants"]["cmfh-tuned"]["tuned"]["searched"] == ["gamma"]


def test_a_fresh_study_tries_the_defaults_first(tmp_path, capsys):
    from cmhbench.methods.registry import resolve_params

    out = tmp_path / "study"
    assert main(["tune", "--methods", "cmfh", "--trials", "3", "--out", str(out)]) == 0
    defaults = resolve_params("cmfh", dataset="synthetic", preset="paper")
    records = sorted(store.iter_records(out / "trials"), key=lambda r: r["started_at"])
    first = records[0]["cell"]["params"]
    assert all(first[name] == defaults[name] for name in ("lam", "mu", "gamma"))
    tuned = _tuned(out)["variants"]["cmfh-tuned"]["tuned"]
    assert tuned["default_value"] <= tuned["best_value"]  # the chosen values are never worse on validation
    assert "defaults" in capsys.readouterr().out


def test_defaults_outside_the_search_range_are_not_tried(tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["tune", "--methods", "cmfh", "--trials", "1", "--param", "cmfh.mu=5000", "--search", "mu",
                 "--out", str(out)]) == 0
    assert "does not try them" in capsys.readouterr().err
    assert "default_value" not in _tuned(out)["variants"]["cmfh-tuned"]["tuned"]
