"""Bad input is refused before any cell runs: one line naming the option, field or file, exit code 2."""

from __future__ import annotations

import logging

import pytest

from cmhbench import store
from cmhbench.cli import main

RUN = ["run", "--methods", "random", "--bits", "8", "--no-progress"]


@pytest.mark.parametrize("content, words", [
    ('jobs = "two"\n', ["jobs", "'two'"]),
    ('threads = "x"\n', ["threads", "'x'"]),
    ('timeout = "soon"\n', ["timeout", "'soon'"]),
    ('methods = [1, 2]\n', ["methods", "1"]),
    ('seeds = [1e20]\n', ["seeds"]),
    ('out = ""\n', ["out"]),
    (b'methods = ["r\xff"]\n', ["not UTF-8"]),
])
def test_bad_grid_file_values(tmp_path, monkeypatch, content, words, refused):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "grid.toml"
    config.write_bytes(content if isinstance(content, bytes) else content.encode())
    refused(["run", "--config", str(config), "--bits", "8", "--no-progress"], *words)
    assert [p.name for p in tmp_path.iterdir()] == ["grid.toml"]  # nothing written, not even results/


@pytest.mark.parametrize("option, words", [
    (["--seeds", "1e20"], ["seeds"]),
    (["--seeds", str(2**40)], ["seeds"]),
    (["--timeout", "nan"], ["timeout"]),
    (["--timeout", "0"], ["timeout", "leave it out for no limit"]),
    (["--threads", "-3"], ["threads"]),
    (["--device", "tpu"], ["device", "tpu"]),
    (["--bits", "0"], ["bits"]),
    (["--param", "cca-itq.n_iter=-5", "--methods", "cca-itq"], ["cca-itq.n_iter"]),
    (["--param", "cvh.reg=nan", "--methods", "cvh"], ["cvh.reg"]),
])
def test_bad_command_line_values(tmp_path, option, words, refused):
    refused(RUN + ["--out", str(tmp_path / "o")] + option, *words)
    assert not store.cells_dir(tmp_path / "o").exists()


def test_an_empty_out_is_refused_not_the_current_folder(tmp_path, monkeypatch, refused):
    monkeypatch.chdir(tmp_path)
    refused(RUN + ["--out", ""], "out")
    assert list(tmp_path.iterdir()) == []


def test_jobs_above_cells_or_cores_is_capped_with_a_note(tmp_path, capsys, caplog):
    with caplog.at_level(logging.WARNING):
        assert main(RUN + ["--out", str(tmp_path / "o"), "--jobs", "1000"]) == 0
    assert "--jobs 1000 capped to 1" in capsys.readouterr().err + caplog.text


def test_cache_clear_on_a_file(tmp_path, refused):
    target = tmp_path / "not-a-folder"
    target.write_text("x")
    refused(["cache", "clear", "--cache-dir", str(target)], str(target))
    assert target.read_text() == "x"


def test_an_absurd_integer_is_refused_by_its_domains_upper_bound(tmp_path, refused):
    refused(["run", "--methods", "cca-itq", "--bits", "8", "--param", "cca-itq.n_iter=99999999999999999999",
                      "--out", str(tmp_path / "o"), "--no-progress"], "cca-itq.n_iter", "[1, 100000]")
    assert not (tmp_path / "o").exists()


def test_every_builtin_integer_domain_is_bounded():
    import math

    from cmhbench.methods import registry
    from cmhbench.methods.domains import Int

    for name in registry.available():
        for param, domain in registry.get(name).param_domains.items():
            if isinstance(domain, Int):
                assert math.isfinite(domain.high), f"{name}.{param}"


@pytest.mark.parametrize("method", ["cca-itq", "cmfh", "lssh", "fsh"])
def test_iterative_shallow_fits_report_progress(method):
    """A long shallow fit shows how far it is, as a deep one shows its epochs."""
    import numpy as np

    from cmhbench.methods import PairedFeatures, registry

    rng = np.random.default_rng(0)
    train = PairedFeatures(rng.standard_normal((60, 8)), rng.standard_normal((60, 6)))
    reports = []
    model = registry.get(method)(**registry.resolve_params(method, preset="quick"))
    model.fit(train, 8, progress=reports.append)
    assert reports and reports[-1].done == len(reports) and all(r.total == model.n_iter for r in reports)


@pytest.mark.parametrize("content, words", [
    ('bits = "16"\n', ["bits must be a TOML array", "bits = [16, 32]", "'16'"]),
    ('methods = "random"\n', ["methods must be a TOML array", "'random'"]),
    ('seeds = 0\n', ["seeds must be a TOML array"]),
    ('jobs = "2"\n', ["jobs must be a TOML integer", "'2'"]),
    ('timeout = "60"\n', ["timeout must be a TOML number"]),
])
def test_grid_file_values_of_the_wrong_toml_type(tmp_path, monkeypatch, content, words, refused):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "grid.toml").write_text(content)
    refused(["run", "--config", "grid.toml", "--no-progress"], "grid.toml", *words)
    assert [p.name for p in tmp_path.iterdir()] == ["grid.toml"]


def test_a_parameter_given_twice_with_two_values_is_refused(tmp_path, refused):
    refused(["run", "--methods", "cca-itq", "--bits", "8", "--param", "cca-itq.n_iter=5", "--param",
                      "cca-itq.n_iter=7", "--out", str(tmp_path / "o"), "--no-progress"],
             "--param cca-itq.n_iter is given twice (5 and 7)")
    assert not (tmp_path / "o").exists()
