"""Shared fixtures: the real-data folder beside the checkout, and thread limits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Small matrix products run faster on one BLAS thread on 2-core machines (measured).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CMHBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real public files (../shared/data); tests skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Keep every test's method cache out of the user's cache folder."""
    monkeypatch.setenv("CMHBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "cmhbench-cache"))


@pytest.fixture(scope="session")
def plugin_env(tmp_path_factory) -> dict:
    """Install the dummy plugin package for real (pip, into a private folder) and return an
    environment whose Python sees it; the registry must find it through its entry points."""
    import shutil
    import subprocess
    import sys

    work = tmp_path_factory.mktemp("plugin")
    source = work / "src"
    shutil.copytree(REPO / "tests" / "fixtures" / "dummy_plugin", source)
    target = work / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(f"installing the dummy plugin failed:\n{result.stdout}\n{result.stderr}")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH")]))
    env["CMHBENCH_CACHE"] = str(work / "cache")
    return env


@pytest.fixture
def cmhbench_cli():
    """Run the ``cmhbench`` command in a subprocess (as a user would): ``cmhbench_cli(env, *args)``."""
    import subprocess
    import sys

    def run(env: dict, *args: str, timeout: float = 300):
        return subprocess.run([sys.executable, "-m", "cmhbench", *args], env=env, capture_output=True, text=True,
                              timeout=timeout)

    return run
