"""The package's shape: no import cycles among cmhbench's modules.

The graph is read from the source with :mod:`ast`, so an import inside a function counts
as much as one at the top: a cycle hidden in a function is still two modules that each
need the other.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import cmhbench
import cmhbench.datasets
import cmhbench.methods

ROOTS = {
    "cmhbench": Path(cmhbench.__file__).parent,
    "cmhbench.methods": Path(cmhbench.methods.__file__).parent,
    "cmhbench.datasets": Path(cmhbench.datasets.__file__).parent,
}


@functools.lru_cache(maxsize=1)
def package_modules() -> dict[str, Path]:
    """Every module of the installed cmhbench tree, by dotted name."""
    modules = {}
    for package, folder in ROOTS.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join((package, *parts))
            if name.startswith("cmhbench.") and package == "cmhbench" and parts[:1] in (("methods",), ("datasets",)):
                continue
            modules[name] = path
    return modules


def _target(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


@functools.lru_cache(maxsize=1)
def parsed() -> dict[str, ast.Module]:
    """Every module's syntax tree (parsed once per test session)."""
    return {name: ast.parse(path.read_text(), str(path)) for name, path in package_modules().items()}


def import_graph() -> dict[str, set[str]]:
    """module -> the cmhbench modules it imports (explicitly; parents are not implied)."""
    modules = package_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(parsed()[name]):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                targets = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                found = _target(target, modules) if target.startswith("cmhbench") else None
                if found and found != name:
                    edges.add(found)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_real_imports():
    graph = import_graph()
    assert "cmhbench.store" in graph["cmhbench.harness.runner"]
    assert "cmhbench.methods.base" in graph["cmhbench.methods.registry"]


def test_find_cycle_reports_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_cmhbench_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def _under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


# (modules the rule is about, what they may import from cmhbench: None = anything but the forbidden)
ALLOWED = [
    (("cmhbench.conventions", "cmhbench.errors", "cmhbench.logs", "cmhbench.schema", "cmhbench.methods.domains"), ()),
    (("cmhbench.methods",), ("cmhbench.methods", "cmhbench.errors")),
    (("cmhbench.datasets",), ("cmhbench.datasets", "cmhbench.methods.base", "cmhbench.errors", "cmhbench.schema")),
    (("cmhbench.evaluation",), ("cmhbench.evaluation", "cmhbench.conventions", "cmhbench.errors")),
    (("cmhbench.store",), ("cmhbench.conventions", "cmhbench.errors", "cmhbench.schema")),
]
FORBIDDEN = [
    (("cmhbench.analysis",), ("cmhbench.harness", "cmhbench.methods", "cmhbench.report")),
    (("cmhbench.report",), ("cmhbench.harness", "cmhbench.methods")),
]


#: The modules that may import ``cmhbench.tools``: the tools themselves and the ``perf`` alias.
TOOLS_USERS = ("cmhbench.tools", "cmhbench.perf")


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """'a imports b' for every edge that docs/architecture.md's import table forbids."""
    wrong = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if target == "cmhbench.cli" and module != "cmhbench.__main__":
                wrong.append(f"{module} imports {target}")
            if _under(target, "cmhbench.tools") and not _under(module, *TOOLS_USERS):
                wrong.append(f"{module} imports {target}")
            for subjects, allowed in ALLOWED:
                if _under(module, *subjects) and not _under(target, *allowed):
                    wrong.append(f"{module} imports {target}")
            for subjects, banned in FORBIDDEN:
                if _under(module, *subjects) and _under(target, *banned):
                    wrong.append(f"{module} imports {target}")
    return wrong


def test_imports_follow_the_documented_layers():
    wrong = layer_violations(import_graph())
    assert not wrong, "against docs/architecture.md: " + "; ".join(wrong)


def test_a_layer_violation_is_named():
    graph = {"cmhbench.methods.cvh": {"cmhbench.store"}, "cmhbench.analysis.stats": {"cmhbench.harness.runner"},
             "cmhbench.store": {"cmhbench.conventions"}, "cmhbench.harness.runner": {"cmhbench.tools.perf_train"},
             "cmhbench.tools.perf_gpu": {"cmhbench.tools.perf_train", "cmhbench.harness.runner"}}
    assert layer_violations(graph) == ["cmhbench.analysis.stats imports cmhbench.harness.runner",
                                       "cmhbench.harness.runner imports cmhbench.tools.perf_train",
                                       "cmhbench.methods.cvh imports cmhbench.store"]


#: The modules the package root keeps (docs/architecture.md, "The tree"): the command, the leaves
#: every layer shares, the store between harness and analysis, what a plugin author imports, and
#: the aliases of moved ``python -m`` names.  Everything else lives in a folder named by its role.
ROOT_MODULES = {"cmhbench", "cmhbench.__main__", "cmhbench.cli", "cmhbench.errors", "cmhbench.logs",
                "cmhbench.conventions", "cmhbench.schema", "cmhbench.store", "cmhbench.testing"}
ALIASES = {"cmhbench.perf": "cmhbench.tools.perf", "cmhbench.power": "cmhbench.analysis.power"}


def test_the_package_root_holds_only_its_shared_modules():
    root = {name for name, path in package_modules().items()
            if path.parent == ROOTS["cmhbench"] and path.name != "__init__.py" or name == "cmhbench"}
    extra = sorted(root - ROOT_MODULES - set(ALIASES))
    assert not extra, (f"{', '.join(extra)} at the package root: put it in the folder of its role (harness/, "
                       "analysis/, evaluation/, report/, tools/) and add it to docs/architecture.md")


def test_an_alias_only_runs_the_module_it_names():
    """An old ``python -m`` name stays a one-import shim: nothing new is written there, and
    nothing inside the package depends on the old name."""
    graph = import_graph()
    for alias, target in ALIASES.items():
        assert graph[alias] == {target}, alias
    users = sorted(module for module, targets in graph.items() if targets & set(ALIASES))
    assert not users, f"imports an alias instead of the module itself: {users}"


def test_tests_mirror_the_package_folders():
    """``test_<module>.py`` sits in the tests folder that mirrors its module's folder."""
    folders: dict[str, set[Path]] = {}
    for name, path in package_modules().items():
        if name.startswith("cmhbench.") and not _under(name, "cmhbench.methods", "cmhbench.datasets"):
            folders.setdefault(path.stem, set()).add(path.parent.relative_to(ROOTS["cmhbench"]))
    tests = Path(__file__).resolve().parent / "benchmark"
    misplaced = [str(test.relative_to(tests)) for test in sorted(tests.rglob("test_*.py"))
                 if (homes := folders.get(test.stem.removeprefix("test_")))
                 and test.parent.relative_to(tests) not in homes]
    assert not misplaced, f"tests/benchmark/: move to the folder mirroring the module's: {misplaced}"


def _top_level_names(tree: ast.Module) -> set[str]:
    """The names a module binds outside its functions and classes (what ``from m import x`` can take)."""
    names, pending = set(), list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        pending.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt))
    return names


def stale_imports(trees: dict[str, ast.Module]) -> list[str]:
    """'where: import' for every import of a cmhbench module or name that does not exist, found
    without running anything: an import inside a function that no fast test reaches counts too
    (after a module moves, a branch written against its old path fails here, not at a user's)."""
    modules = package_modules()
    exports = {}
    stale = []
    for where, tree in sorted(trees.items()):
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                stale += [f"{where}: import {a.name}" for a in node.names
                          if a.name.startswith("cmhbench") and a.name not in modules]
            elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("cmhbench"):
                if node.module not in modules:
                    stale.append(f"{where}: from {node.module} import ...")
                    continue
                if node.module not in exports:
                    exports[node.module] = _top_level_names(parsed()[node.module])
                stale += [f"{where}: from {node.module} import {a.name}" for a in node.names
                          if a.name != "*" and f"{node.module}.{a.name}" not in modules
                          and a.name not in exports[node.module]]
    return stale


def test_every_import_of_cmhbench_names_something_that_exists():
    repo = Path(__file__).resolve().parents[1]
    trees = dict(parsed())
    for path in [*sorted((repo / "tests").rglob("*.py")), *sorted((repo / "docs").rglob("*.py"))]:
        trees[str(path.relative_to(repo))] = ast.parse(path.read_text(), str(path))
    stale = stale_imports(trees)
    assert not stale, "imports of moved or missing cmhbench names: " + "; ".join(stale)


def test_a_stale_import_is_named():
    tree = ast.parse("from cmhbench.runner import RunContext\n"
                     "from cmhbench import leaderboard, store\n"
                     "from cmhbench.harness.runner import RunContext, NoSuchName\n"
                     "def later():\n    import cmhbench.stats\n")
    assert stale_imports({"t.py": tree}) == ["t.py: from cmhbench.runner import ...",
                                              "t.py: from cmhbench import leaderboard",
                                              "t.py: from cmhbench.harness.runner import NoSuchName",
                                              "t.py: import cmhbench.stats"]
