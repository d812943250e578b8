"""The wheel holds one import tree, ``cmhbench/``, and never a top-level datasets or methods."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import cmhbench

REPO = Path(__file__).resolve().parents[2]


def test_version_is_importable():
    assert cmhbench.__version__.count(".") == 2


@pytest.mark.slow
def test_wheel_contains_only_the_cmhbench_tree(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in ("benchmark", "methods", "datasets"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("cmhbench-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    package_files = [n for n in names if ".dist-info/" not in n]
    assert package_files and all(n.startswith("cmhbench/") for n in package_files), package_files
    for expected in ("cmhbench/__init__.py", "cmhbench/cli.py", "cmhbench/methods/base.py",
                     "cmhbench/methods/cca_itq.py", "cmhbench/datasets/synthetic.py",
                     "cmhbench/evaluation/__init__.py"):
        assert expected in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "cmhbench = cmhbench.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
