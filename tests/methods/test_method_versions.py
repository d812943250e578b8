"""A built-in method's code does not change without a decision about its ``version``.

Cell keys hash a method's parameters and its ``version``, not its code, so a change that gives
different codes for the same parameters must bump the version, or stored cells are silently
reused.  ``method_sources.json`` records, per method and version, a hash of the method module's
code: its lines without docstrings, comments, blank lines, indentation and the ``@register(...)``
call (presets, listings and the version itself are not code that makes codes).  When the hash
of today's code differs from the one recorded for today's version, this test fails and the
author decides: bump ``version`` if the same parameters can give different codes, or re-record
(a refactoring, a message): ``python tests/methods/test_method_versions.py``.

Limits: only the method's own module is hashed; a change in a shared helper (``deep.py``,
``_shallow.py``) is not caught here.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import sys
import tokenize
from pathlib import Path

import pytest

from cmhbench import methods
from cmhbench.methods.registry import is_builtin, module_name

RECORD = Path(__file__).with_name("method_sources.json")
RECORD_COMMAND = "python tests/methods/test_method_versions.py"


def _docstring_and_register_lines(tree: ast.Module) -> set[int]:
    """Line numbers of every docstring and of every ``@register(...)`` decorator."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                lines.update(range(body[0].lineno, body[0].end_lineno + 1))
        if isinstance(node, ast.ClassDef):
            for decorator in node.decorator_list:
                call = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(call, ast.Name) and call.id == "register":
                    lines.update(range(decorator.lineno, decorator.end_lineno + 1))
    return lines


def code_hash(source: str) -> str:
    """sha256 of the module's code lines, stripped of what does not make codes (module docstring)."""
    skip = _docstring_and_register_lines(ast.parse(source))
    lines = source.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:  # cut the comment off its line
            row, col = token.start
            lines[row - 1] = lines[row - 1][:col]
    kept = [line.strip() for number, line in enumerate(lines, 1) if number not in skip and line.strip()]
    return hashlib.sha256("\n".join(kept).encode()).hexdigest()


def builtin_methods() -> list[str]:
    return sorted(name for name in methods.available() if is_builtin(methods.get(name)))


def current(name: str) -> tuple[int, str]:
    """(version, code hash) of a built-in method as the tree holds it now."""
    cls = methods.get(name)
    path = Path(sys.modules[cls.__module__].__file__)
    assert path.stem == module_name(name)
    return cls.info.version, code_hash(path.read_text(encoding="utf-8"))


def test_the_hash_ignores_docs_comments_layout_and_the_register_call():
    base = 'from x import register\n\n@register(name="a", version=1)\nclass A:\n    """Doc."""\n\n    def f(self):\n        return 1  # one\n'
    same = ('"""Module doc."""\nfrom x import register\n@register(name="a", version=2,\n          presets={})\nclass A:\n'
            '    """Other doc."""\n    def f(self):\n        # a comment\n\n        return 1\n')
    other = base.replace("return 1", "return 2")
    assert code_hash(base) == code_hash(same)
    assert code_hash(base) != code_hash(other)


@pytest.mark.parametrize("name", builtin_methods())
def test_a_method_changes_its_code_only_with_a_version_decision(name):
    recorded = json.loads(RECORD.read_text(encoding="utf-8"))
    version, digest = current(name)
    known = recorded.get(name, {}).get(str(version))
    assert known is not None, (f"{name} version {version} has no recorded code hash: record it with `{RECORD_COMMAND}`")
    assert known == digest, (
        f"methods/{module_name(name)}.py changed its code since version {version} was recorded. If the same "
        f"parameters can now give different codes, bump `version` in its @register (stored cells are recomputed); "
        f"if not (a refactoring, a message), re-record with `{RECORD_COMMAND}`")


def record() -> None:
    """Write today's hash under each built-in method's current version (older versions kept)."""
    recorded = json.loads(RECORD.read_text(encoding="utf-8")) if RECORD.exists() else {}
    for name in builtin_methods():
        version, digest = current(name)
        recorded.setdefault(name, {})[str(version)] = digest
    RECORD.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"recorded {len(builtin_methods())} methods in {RECORD.name}")


if __name__ == "__main__":
    record()
