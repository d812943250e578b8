"""Every bad-data case reaches the user as one line on stderr and exit code 2, before any cell runs."""

import numpy as np
import pytest

from cmhbench.cli import main


def _bad_files(tmp_path, make):
    good = make.paired(n=3000)
    cases = {}
    cases["missing own file"] = (str(tmp_path / "absent.npz"), "absent.npz")
    np.savez(tmp_path / "keys.npz", image=good["image"], txt=good["text"], labels=good["labels"])
    cases["missing keys"] = (str(tmp_path / "keys.npz"), "txt")
    np.savez(tmp_path / "rows.npz", image=good["image"][:-1], text=good["text"], labels=good["labels"])
    cases["row counts"] = (str(tmp_path / "rows.npz"), "2,999")
    nan = dict(good, image=good["image"].copy())
    nan["image"][5, 1] = np.nan
    np.savez(tmp_path / "nan.npz", **nan)
    cases["nan"] = (str(tmp_path / "nan.npz"), "NaN")
    np.savez(tmp_path / "labels.npz", **dict(good, labels=good["labels"] * 3))
    cases["labels not 0/1"] = (str(tmp_path / "labels.npz"), "label")
    np.savez(tmp_path / "index.npz", **good, query_idx=np.arange(2990, 3010))
    cases["index out of range"] = (str(tmp_path / "index.npz"), "query_idx")
    np.savez(tmp_path / "whole.npz", **good)
    data = (tmp_path / "whole.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    cases["truncated"] = (str(tmp_path / "truncated.npz"), "truncated.npz")
    (tmp_path / "garbage.mat").write_bytes(b"not a mat file at all" * 10)
    cases["garbage"] = (str(tmp_path / "garbage.mat"), "garbage.mat")
    (tmp_path / "empty.h5").write_bytes(b"")
    cases["empty"] = (str(tmp_path / "empty.h5"), "empty.h5")
    np.savez(tmp_path / "vector.npz", **dict(good, image=good["image"].reshape(3000, 2, 4)))
    cases["not a matrix"] = (str(tmp_path / "vector.npz"), "image")
    np.savez(tmp_path / "small.npz", **make.paired(n=300))
    cases["protocol does not fit"] = (str(tmp_path / "small.npz"), "does not fit")
    return cases


CASES = ["missing own file", "missing keys", "row counts", "nan", "labels not 0/1", "index out of range", "truncated",
         "garbage", "empty", "not a matrix", "protocol does not fit"]


@pytest.mark.parametrize("case", CASES)
def test_bad_file_is_one_line_and_exit_code_2(tmp_path, make, capsys, case):
    dataset, expected = _bad_files(tmp_path, make)[case]
    protocol = [] if case == "protocol does not fit" else ["--protocol", "ucch"]  # ucch fits 3,000 rows
    code = main(["run", "--methods", "random", "--bits", "8", "--datasets", dataset, *protocol,
                 "--out", str(tmp_path / "o"),
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("cmhbench: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert expected in err
    assert not (tmp_path / "o" / "cells").exists() or not any((tmp_path / "o" / "cells").iterdir())


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--datasets", "wikipedai"], "did you mean 'wikipedia'"),
        (["--datasets", "wikipedia:image=x"], "wikipedia"),
        (["--datasets", "nuswide"], "nus-wide-tc10"),
    ],
)
def test_named_dataset_errors(tmp_path, capsys, args, expected):
    code = main(["run", "--methods", "random", "--bits", "8", *args, "--data-dir", str(tmp_path),
                 "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and expected in err, err


def test_a_protocol_the_dataset_does_not_have(shared_data, tmp_path, capsys):
    code = main(["run", "--methods", "random", "--bits", "8", "--datasets", "wikipedia", "--protocol", "djsrh",
                 "--data-dir", str(shared_data), "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "protocol 'djsrh'" in err, err


def test_missing_image_features_of_a_named_dataset(shared_data, tmp_path, capsys):
    code = main(["run", "--methods", "random", "--bits", "8", "--datasets", "mirflickr25k", "--data-dir",
                 str(shared_data), "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "mirflickr25k-iall-vgg.mat" in err and "mirflickr25k:image=FILE" in err, err


def test_wikipedia_runs_on_the_real_split(shared_data, tmp_path, capsys):
    from cmhbench import store

    assert main(["run", "--methods", "cca-itq", "--bits", "16", "--datasets", "wikipedia", "--data-dir",
                 str(shared_data), "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"),
                 "--no-progress"]) == 0
    (record,) = list(store.iter_records(tmp_path / "o"))
    assert record["split"]["sizes"] == {"query": 693, "train": 2173, "database": 2173}
    assert record["cell"]["protocol"] == "wiki"
    assert 0.15 < record["metrics"]["i2t"]["map@all"] < 0.5
