"""Every third-party import is declared in pyproject.toml.

A module imported only inside a function (``cmhbench tune`` imports Optuna there) passes every
test on a machine where someone installed it by hand and fails on a fresh one; so the imports
are read by parsing, at any depth, never by executing, and each one must map to a distribution
that pyproject.toml declares (core or an extra).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PACKAGE_FOLDERS = ("benchmark", "methods", "datasets")
OWN_TOP_LEVEL = {"cmhbench", "__future__"}


def normalise(name: str) -> str:
    """A distribution name in the form PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_distributions(pyproject: Path) -> set[str]:
    """Names of every distribution pyproject.toml depends on, core and extras alike."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements.extend(extra)
    return {normalise(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", r).group(1)) for r in requirements}


def imported_top_levels(source: Path) -> set[str]:
    """Top-level names of every absolute import in one file, nested ones included."""
    names = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), filename=str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def third_party_imports(folders: list[Path]) -> dict[str, list[str]]:
    """Each imported third-party top-level name → the files importing it."""
    found: dict[str, list[str]] = {}
    for folder in folders:
        for source in sorted(folder.rglob("*.py")):
            for name in imported_top_levels(source):
                if name not in sys.stdlib_module_names and name not in OWN_TOP_LEVEL:
                    found.setdefault(name, []).append(str(source.relative_to(folder.parent)))
    return found


def undeclared(imports: dict[str, list[str]], declared: set[str]) -> list[str]:
    """One message per import that no declared distribution provides.

    A name that maps to no installed distribution still passes when a declared distribution
    carries that very name: ``tomli`` is declared for Python < 3.11 only, so it is absent here.
    """
    providers = importlib.metadata.packages_distributions()
    problems = []
    for name, files in sorted(imports.items()):
        distributions = {normalise(d) for d in providers.get(name, [])}
        if distributions & declared or (not distributions and normalise(name) in declared):
            continue
        if distributions:
            why = f"provided by {', '.join(sorted(distributions))}, which pyproject.toml does not declare"
        else:
            why = "no installed distribution provides it and pyproject.toml declares none of that name"
        problems.append(f"import {name} ({', '.join(files[:3])}): {why}")
    return problems


def test_every_package_import_is_declared():
    imports = third_party_imports([REPO / folder for folder in PACKAGE_FOLDERS])
    assert {"numpy", "torch", "optuna"} <= set(imports)  # the scan reaches nested imports
    assert undeclared(imports, declared_distributions(REPO / "pyproject.toml")) == []


def written_by_the_test(name: str, files: list[str]) -> bool:
    """A module a test writes itself (to a temporary folder) names itself in a string there."""
    return all(f"'{name}'" in (text := (REPO / f).read_text(encoding="utf-8")) or f'"{name}"' in text
               for f in files)


def test_every_test_import_is_declared():
    """The tests run from a fresh install too: what they import must come with ``.[test]``."""
    tests = REPO / "tests"
    local = {p.stem for p in tests.rglob("*.py")} | {p.name for p in tests.rglob("*") if p.is_dir()}
    imports = {name: files for name, files in third_party_imports([tests]).items()
               if name not in local and not written_by_the_test(name, files)}
    assert undeclared(imports, declared_distributions(REPO / "pyproject.toml")) == []


def test_a_missing_declaration_is_named(tmp_path):
    """Deleting optuna's line from a copy of pyproject.toml makes the check name optuna."""
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    stripped = "\n".join(line for line in text.splitlines() if '"optuna' not in line)
    assert stripped != text
    (tmp_path / "pyproject.toml").write_text(stripped, encoding="utf-8")
    imports = third_party_imports([REPO / folder for folder in PACKAGE_FOLDERS])
    problems = undeclared(imports, declared_distributions(tmp_path / "pyproject.toml"))
    assert len(problems) == 1 and problems[0].startswith("import optuna (benchmark/harness/tune.py)"), problems


def test_an_import_of_nothing_installed_is_named(tmp_path):
    """An import no distribution provides (today's optuna on a fresh machine) fails, nested or not."""
    module = tmp_path / "pkg" / "late.py"
    module.parent.mkdir()
    module.write_text("def f():\n    try:\n        import no_such_dist_xyz.sub\n    except ImportError:\n        pass\n")
    problems = undeclared(third_party_imports([module.parent]), declared_distributions(REPO / "pyproject.toml"))
    assert problems == ["import no_such_dist_xyz (pkg/late.py): no installed distribution provides it and "
                        "pyproject.toml declares none of that name"]
