"""Third-party methods arrive through the ``cmhbench.methods`` entry point group."""

import pytest

from cmhbench import store

pytestmark = pytest.mark.slow  # installs a plugin package, runs the command in subprocesses


def test_an_installed_plugin_is_listed_and_a_broken_one_reported(plugin_env, cmhbench_cli):
    result = cmhbench_cli(plugin_env, "list", "methods")
    assert result.returncode == 0, result.stderr
    assert "dummy-sleep" in result.stdout and "plugin (cmhbench_dummy)" in result.stdout
    assert "cca-itq" in result.stdout  # built-ins still there
    assert "dummy-broken" in result.stderr and "broken on purpose" in result.stderr
    assert "Traceback" not in result.stderr


def test_running_a_method_whose_plugin_failed_to_import_names_the_import_error(plugin_env, cmhbench_cli,
                                                                                tmp_path):
    result = cmhbench_cli(plugin_env, "run", "--methods", "dummy-broken", "--bits", "8", "--out",
                          str(tmp_path / "o"), "--no-progress")
    assert result.returncode == 2, result.stderr
    assert "failed to load" in result.stderr and "broken on purpose" in result.stderr, result.stderr
    assert "did you mean" not in result.stderr and "Traceback" not in result.stderr


def test_a_plugin_runs_in_a_grid_and_failures_are_stored(plugin_env, cmhbench_cli, tmp_path):
    out = tmp_path / "o"
    result = cmhbench_cli(plugin_env, "run", "--methods", "dummy-sleep,random", "--bits", "8,16",
                          "--param", "dummy-sleep.fail_bits=16", "--out", str(out), "--no-progress")
    assert result.returncode == 1, result.stderr  # one cell failed
    assert "4 cells: 0 already stored, 4 computed (ok 3, failed 1" in result.stderr
    assert "dummy failure at 16 bits" in result.stderr
    statuses = sorted((r["cell"]["method"], r["cell"]["bits"], r["status"]) for r in store.iter_records(out))
    assert statuses == [("dummy-sleep", 8, "ok"), ("dummy-sleep", 16, "failed"), ("random", 8, "ok"),
                        ("random", 16, "ok")]
