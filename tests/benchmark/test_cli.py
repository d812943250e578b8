"""The command line: resume, bad input (one line, exit code 2), listings."""

import shutil

import pytest

import cmhbench
from cmhbench import store
from cmhbench.cli import main

GRID = ["run", "--methods", "random,cca-itq", "--bits", "16,32", "--seeds", "0,1", "--preset", "quick",
        "--no-progress"]


@pytest.mark.slow  # three runs of an eight-cell grid (multi-second)
def test_second_run_computes_nothing_and_a_deleted_cell_is_recomputed(tmp_path, capsys):
    out = str(tmp_path / "X")
    assert main(GRID + ["--out", out]) == 0
    first = capsys.readouterr()
    assert "8 cells: 0 already stored, 8 computed (ok 8" in first.err
    assert "| cca-itq" in first.out and "| random" in first.out
    assert (tmp_path / "X" / "leaderboard.md").is_file() and (tmp_path / "X" / "results.csv").is_file()

    assert main(GRID + ["--out", out]) == 0
    assert "8 cells: 8 already stored, 0 computed" in capsys.readouterr().err

    victim = sorted(store.done_keys(out))[3]
    shutil.rmtree(store.cells_dir(out) / victim)
    assert main(GRID + ["--out", out]) == 0
    assert "8 cells: 7 already stored, 1 computed" in capsys.readouterr().err
    assert victim in store.done_keys(out)

    assert main(GRID + ["--out", out, "--force"]) == 0
    assert "8 cells: 0 already stored, 8 computed" in capsys.readouterr().err


def test_variant_from_a_config_file_runs_as_its_own_row(tmp_path, capsys):
    config = tmp_path / "grid.toml"
    config.write_text(
        'methods = ["cca-itq", "cca-scaled"]\nbits = [16]\npreset = "quick"\n'
        '[variants.cca-scaled]\nbase = "cca-itq"\ncorr_power = 4.0\n'
    )
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| cca-scaled" in out and "| cca-itq " in out
    frame = store.load_results(tmp_path / "o")
    assert sorted(frame["method"]) == ["cca-itq", "cca-scaled"]
    assert set(frame["base"]) == {"cca-itq"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--methods", "cca_itq"], "unknown method 'cca_itq'; did you mean 'cca-itq'?"),
        (["run", "--datasets", "synthetik"], "unknown dataset 'synthetik'; did you mean 'synthetic'?"),
        (["run", "--bits", "16,abc"], "bits must be comma-separated integers"),
        (["run", "--bits", "0"], "bits must be positive integers"),
        (["run", "--param", "cca-itq.n_iter"], "must look like METHOD.NAME=VALUE"),
        (["run", "--methods", "cca-itq", "--param", "cca-itq.n_itr=3"], "did you mean 'n_iter'"),
        (["run", "--methods", "cca-itq", "--param", "cca-itq.n_iter=fast"], "cca-itq.n_iter expects int"),
        (["run", "--methods", "cca-itq-x"], "unknown method 'cca-itq-x'"),
        (["run", "--database-coding", "both"], "database coding must be one of modality, unified"),
        (["run", "--jobs", "0"], "jobs must be a positive number"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, args, message):
    assert main(args + ["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("cmhbench: error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_config_with_unknown_keys_and_unwritable_output(tmp_path, capsys):
    config = tmp_path / "grid.toml"
    config.write_text('methods = ["random"]\nbitz = [16]\n')
    assert main(["run", "--config", str(config)]) == 2
    assert "unknown keys bitz" in capsys.readouterr().err
    assert main(["run", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    assert main(["run", "--methods", "random", "--out", str(blocker / "sub")]) == 2
    assert "cannot write results to" in capsys.readouterr().err


def test_leaderboard_command(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["run", "--methods", "random", "--bits", "16", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["leaderboard", str(out), "--metric", "map@50"]) == 0
    assert "map@50" in capsys.readouterr().out
    assert main(["leaderboard", str(out), "--format", "csv", "-o", str(tmp_path / "r.csv")]) == 0
    assert (tmp_path / "r.csv").read_text().startswith("key,")
    assert main(["leaderboard", str(tmp_path / "missing")]) == 2
    assert "not a cmhbench results folder" in capsys.readouterr().err
    assert main(["leaderboard", str(out), "--metric", "map@5000"]) == 2
    assert "not in the stored records" in capsys.readouterr().err


def test_list_and_version(capsys):
    assert main(["list", "methods"]) == 0
    out = capsys.readouterr().out
    assert "cca-itq" in out and "random" in out and "fidelity" in out
    assert main(["list", "datasets"]) == 0
    assert "synthetic" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert cmhbench.__version__ in capsys.readouterr().out


@pytest.mark.parametrize("command", ["run", "leaderboard", "list", "cache", "evaluate", "report"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: cmhbench " + command in capsys.readouterr().out


def test_cache_info_and_clear(tmp_path, capsys):
    cache = tmp_path / "cache"
    (cache / "joblib" / "x").mkdir(parents=True)
    (cache / "joblib" / "x" / "output.pkl").write_bytes(b"0" * 2048)
    assert main(["cache", "info", "--cache-dir", str(cache)]) == 0
    assert "joblib" in capsys.readouterr().out
    assert main(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert not cache.exists()
    assert main(["cache", "info", "--cache-dir", str(cache)]) == 0
    assert "nothing cached yet" in capsys.readouterr().out


def test_summary_line_reports_wall_time_and_rate(tmp_path, capsys):
    assert main(["run", "--methods", "random", "--bits", "8", "--out", str(tmp_path), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "1 cells: 0 already stored, 1 computed (ok 1, failed 0, not applicable 0); wall" in err
    assert "cells/hour" in err


def test_evaluate_rescoring_a_stored_run_and_external_codes(tmp_path, capsys):
    import numpy as np

    out = tmp_path / "o"
    assert main(["run", "--methods", "cca-itq", "--bits", "16", "--out", str(out), "--no-progress"]) == 0
    (before,) = list(store.iter_records(out))
    assert main(["evaluate", str(out), "--metrics", "map@all,tmap@all,p@r2"]) == 0
    (after,) = list(store.iter_records(out))
    assert after["metrics"]["i2t"]["map@all"] == before["metrics"]["i2t"]["map@all"]
    assert 0 < after["metrics"]["t2i"]["tmap@all"] < 1 and "p@r2" in after["metrics"]["i2t"]
    assert "i2t_ap@all" in store.read_arrays(out, after["key"])
    capsys.readouterr()
    assert main(["leaderboard", str(out), "--metric", "tmap@all"]) == 0
    assert "tmap@all" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--metrics", "tmap@50,map@50-found"]) == 0
    (tie_aware,) = list(store.iter_records(out))
    assert 0 < tie_aware["metrics"]["i2t"]["tmap@50"] < 1
    assert tie_aware["metrics"]["i2t"]["map@50-found"] >= tie_aware["metrics"]["i2t"]["map@50"]
    capsys.readouterr()
    assert main(["leaderboard", str(out), "--metric", "tmap@50"]) == 0
    assert "tmap@50" in capsys.readouterr().out

    rng = np.random.default_rng(0)
    codes = tmp_path / "codes.npz"
    np.savez(codes, i2t_query=rng.choice([-1, 1], (20, 16)), i2t_database=rng.choice([-1, 1], (50, 16)),
             query_labels=rng.integers(0, 2, (20, 4)), database_labels=rng.integers(0, 2, (50, 4)))
    assert main(["evaluate", "--codes", str(codes), "--metrics", "map@all"]) == 0
    assert capsys.readouterr().out.startswith("i2t map@all=")
    np.savez(tmp_path / "bad.npz", i2t_query=np.ones((3, 4)))
    assert main(["evaluate", "--codes", str(tmp_path / "bad.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cmhbench: error:") and "bad.npz" in err and err.count("\n") == 1


def test_unknown_features_exit_2_with_one_line(tmp_path, capsys):
    assert main(["run", "--methods", "cca-itq", "--features", "standard", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err == "cmhbench: error: features must be one of raw, zscore, l2, got 'standard'\n"


def test_raw_and_zscore_runs_into_one_folder_store_separate_cells_and_tables(tmp_path, capsys):
    import pandas as pd

    out = str(tmp_path / "o")
    grid = ["run", "--methods", "cca-itq", "--bits", "16", "--preset", "quick", "--no-progress", "--out", out]
    assert main(grid) == 0
    assert main(grid + ["--features", "zscore"]) == 0
    assert "1 cells: 0 already stored, 1 computed" in capsys.readouterr().err  # the zscore cell is new
    assert main(grid + ["--features", "raw"]) == 0
    assert "1 cells: 1 already stored, 0 computed" in capsys.readouterr().err
    frame = store.load_results(out)
    assert sorted(frame["features"]) == ["raw", "zscore"]
    assert frame.groupby("features")["i2t/map@all"].first().nunique() == 2  # different inputs, different scores
    results = pd.read_csv(tmp_path / "o" / "results.csv")
    assert set(results["features"]) == {"raw", "zscore"}
    board = (tmp_path / "o" / "leaderboard.md").read_text()
    assert "features raw" in board and "features zscore" in board
    zscore = frame[frame["features"] == "zscore"].iloc[0]
    assert "--features zscore" in store.read_record(out, zscore["key"])["reproduce"]["command"]


def test_features_from_a_config_file(tmp_path, capsys):
    config = tmp_path / "grid.toml"
    config.write_text('methods = ["cca-itq"]\nbits = [16]\npreset = "quick"\nfeatures = "l2"\n')
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert list(store.load_results(tmp_path / "o")["features"]) == ["l2"]


@pytest.mark.slow
def test_a_shallow_run_imports_only_its_method_and_no_torch(tmp_path):
    # Only the requested methods are imported: the parent process of a cca-itq run never loads torch.
    import subprocess
    import sys

    code = ("import sys; from cmhbench.cli import main; "
            f"rc = main(['run', '--methods', 'cca-itq', '--bits', '16', '--out', {str(tmp_path / 'o')!r}, "
            "'--no-progress']); "
            "print(rc, 'torch' in sys.modules, sorted(m for m in sys.modules if m.startswith('cmhbench.methods.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rc, torch_loaded, modules = done.stdout.strip().splitlines()[-1].split(" ", 2)
    assert (rc, torch_loaded) == ("0", "False")
    assert "cmhbench.methods.cca_itq" in modules and "cmhbench.methods.ucch" not in modules
