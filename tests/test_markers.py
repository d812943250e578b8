"""The fast tier (``pytest -m "not slow"``) really leaves out the slow kinds of test.

A test that starts a process, installs a package, uses Dask or drives a browser must carry
``@pytest.mark.slow`` (or its module a ``pytestmark`` with it); this reads every test file
with :mod:`ast` and names the ones that do not.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SLOW_FIXTURES = {"plugin_env", "cmhbench_cli"}  # conftest: a pip install; the command in a subprocess
SLOW_NAMES = {"subprocess", "Popen", "dask", "distributed", "selenium", "webdriver"}


def _is_slow_mark(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == "slow" for n in ast.walk(node))


def _slow_reasons(fn: ast.FunctionDef) -> set[str]:
    reasons = {a.arg for a in fn.args.args if a.arg in SLOW_FIXTURES}
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and node.id in SLOW_NAMES:
            reasons.add(node.id)
        elif isinstance(node, ast.Attribute) and node.attr in SLOW_NAMES:
            reasons.add(node.attr)
        elif isinstance(node, ast.Constant) and node.value == "dask":
            reasons.add("dask")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            reasons |= {n.split(".")[0] for n in names if n.split(".")[0] in SLOW_NAMES}
    return reasons


def unmarked_slow_tests(folder: Path = TESTS) -> list[str]:
    """'file::test (why)' for each slow-looking test without the slow marker."""
    found = []
    for path in sorted(folder.rglob("test_*.py")):
        if path.resolve() == Path(__file__).resolve():
            continue
        tree = ast.parse(path.read_text(), str(path))
        module_slow = any(isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                                            for t in n.targets) and _is_slow_mark(n.value)
                          for n in tree.body)
        module_imports = set()
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                module_imports |= {n.split(".")[0] for n in names if n.split(".")[0] in SLOW_NAMES - {"subprocess"}}
        fixtures = {fn.name: _slow_reasons(fn) for fn in tree.body
                    if isinstance(fn, ast.FunctionDef) and any("fixture" in ast.dump(d) for d in fn.decorator_list)}
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef) or not fn.name.startswith("test_"):
                continue
            reasons = _slow_reasons(fn) | module_imports
            for arg in fn.args.args:
                reasons |= fixtures.get(arg.arg, set())
            if reasons and not module_slow and not any(_is_slow_mark(d) for d in fn.decorator_list):
                found.append(f"{path.relative_to(folder)}::{fn.name} ({', '.join(sorted(reasons))})")
    return found


def test_every_process_install_dask_and_browser_test_is_marked_slow():
    missing = unmarked_slow_tests()
    assert not missing, "add @pytest.mark.slow to: " + "; ".join(missing)


def test_the_scan_finds_an_unmarked_subprocess_test(tmp_path):
    (tmp_path / "test_x.py").write_text(
        "import subprocess\nimport pytest\n\n"
        "def test_a(plugin_env):\n    pass\n\n"
        "def test_b():\n    subprocess.run(['true'])\n\n"
        "@pytest.mark.slow\ndef test_c():\n    subprocess.run(['true'])\n\n"
        "def test_d():\n    assert 1\n\n"
        "@pytest.fixture\ndef browser():\n    from selenium import webdriver\n\n"
        "def test_e(browser):\n    pass\n")
    assert unmarked_slow_tests(tmp_path) == ["test_x.py::test_a (plugin_env)", "test_x.py::test_b (subprocess)",
                                             "test_x.py::test_e (selenium)"]
