"""The wheel holds one import tree, ``cmhbench/``, and never a top-level datasets or methods.

An editable install maps the three folders whole, so a subpackage missing from pyproject's
explicit ``packages`` list passes every test there and is absent from the wheel users get: the
wheel is therefore built, installed into a throwaway environment and every module imported.
"""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

import cmhbench

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
FOLDERS = {"benchmark": "cmhbench", "methods": "cmhbench.methods", "datasets": "cmhbench.datasets"}


def source_packages() -> set[str]:
    """Every package of the source tree: each folder under the three roots that has an ``__init__.py``."""
    found = set()
    for folder, package in FOLDERS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((package, *parts)))
    return found


def source_modules() -> list[str]:
    """Every importable module of the source tree (``__main__`` runs the command, so it is left out)."""
    modules = []
    for folder, package in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            modules.append(".".join((package, *parts[:-1])) if parts[-1] == "__init__" else ".".join((package, *parts)))
    return modules


def build_wheel(tmp_path: Path, pyproject_text: str | None = None) -> Path:
    """A wheel built from a copy of the source tree (optionally with another pyproject.toml)."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    if pyproject_text is not None:
        (source / "pyproject.toml").write_text(pyproject_text, encoding="utf-8")
    for folder in FOLDERS:
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("cmhbench-*.whl")
    return wheel


def import_from_wheel(tmp_path: Path, wheel: Path) -> subprocess.CompletedProcess:
    """Install the wheel alone into a throwaway environment and import every source module there.

    The environment sees this one's third-party packages (torch is not installed twice) through
    a path file, which adds the folder without running its ``.pth`` hooks: the editable install's
    import hook therefore stays off, and nothing of cmhbench can come from the source tree.
    """
    env_dir = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                                "--target", str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    (site / "zz_host_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    script = ("import importlib, pathlib, sys\n"
              "import cmhbench\n"
              "assert pathlib.Path(cmhbench.__file__).is_relative_to(sys.prefix), cmhbench.__file__\n"
              "failed = []\n"
              f"for name in {source_modules()!r}:\n"
              "    try:\n"
              "        importlib.import_module(name)\n"
              "    except Exception as error:\n"
              "        failed.append(f'{name}: {type(error).__name__}: {error}')\n"
              "print('\\n'.join(failed))\n"
              "sys.exit(1 if failed else 0)\n")
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path, env=clean_env)


def test_version_is_importable():
    assert cmhbench.__version__.count(".") == 2


def test_pyproject_lists_every_package_of_the_tree():
    declared = set(tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    assert declared == source_packages()


@pytest.mark.slow
def test_wheel_contains_only_the_cmhbench_tree(tmp_path):
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    package_files = [n for n in names if ".dist-info/" not in n]
    assert package_files and all(n.startswith("cmhbench/") for n in package_files), package_files
    for expected in ("cmhbench/__init__.py", "cmhbench/cli.py", "cmhbench/methods/base.py",
                     "cmhbench/methods/cca_itq.py", "cmhbench/datasets/synthetic.py",
                     "cmhbench/evaluation/__init__.py"):
        assert expected in names
    tables = sorted(p.name for p in (REPO / "benchmark" / "published").glob("*.csv"))
    assert tables and all(f"cmhbench/published/{name}" in names for name in tables), tables  # package data
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "cmhbench = cmhbench.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.mark.slow
def test_every_module_imports_from_the_installed_wheel(tmp_path):
    result = import_from_wheel(tmp_path, build_wheel(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_a_subpackage_left_out_of_packages_fails_the_wheel_import(tmp_path):
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    without_report = re.sub(r',\s*"cmhbench\.report"', "", text)
    assert without_report != text
    result = import_from_wheel(tmp_path, build_wheel(tmp_path, without_report))
    assert result.returncode == 1
    assert "cmhbench.report: ModuleNotFoundError" in result.stdout, result.stdout + result.stderr
