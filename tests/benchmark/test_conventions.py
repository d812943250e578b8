"""Each shared name is defined once (``cmhbench.conventions``) and every default uses it.

The checks read every module's source with :mod:`ast`: a second definition, or a default
written out as a literal, fails here with the file and line, before it can drift.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from cmhbench.conventions import DEFAULT_METRICS, DIRECTIONS, RESCORE_METRICS, per_query_array

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_architecture import parsed  # noqa: E402

SHARED = ("DIRECTIONS", "DEFAULT_METRICS", "RESCORE_METRICS", "PER_QUERY_METRICS", "INTERVAL_RULE", "VARIANCES",
          "SIGNIFICANCE_RULE", "TIED_MARK", "RECONSTRUCTED_MARK")


def _sources() -> list[tuple[str, ast.Module]]:
    return [(name, tree) for name, tree in sorted(parsed().items()) if name != "cmhbench.conventions"]


def _strings(node: ast.AST) -> tuple[str, ...] | None:
    """The strings of a literal tuple, list or set of strings (or a dict's keys), else None."""
    items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
    if not isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)) or not items:
        return None
    if all(isinstance(i, ast.Constant) and isinstance(i.value, str) for i in items):
        return tuple(i.value for i in items)
    return None


def _names(node: ast.AST) -> set[str]:
    return ({n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            | {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)})


def test_shared_names_are_assigned_only_in_conventions():
    again = []
    for module, tree in _sources():
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            again += [f"{module}:{node.lineno} {t.id}" for t in targets if isinstance(t, ast.Name) and t.id in SHARED]
    assert not again, "defined outside cmhbench.conventions: " + ", ".join(again)


def test_no_module_spells_out_the_directions_or_the_default_metrics():
    spelled = []
    for module, tree in _sources():
        for node in ast.walk(tree):
            strings = _strings(node)
            if strings and ({"i2t", "t2i"} <= set(strings) or set(strings) in (set(DEFAULT_METRICS),
                                                                              set(RESCORE_METRICS))):
                spelled.append(f"{module}:{node.lineno} {strings}")
            if isinstance(node, ast.Constant) and node.value in (",".join(DEFAULT_METRICS), ",".join(RESCORE_METRICS)):
                spelled.append(f"{module}:{node.lineno} {node.value!r}")
    assert not spelled, "use cmhbench.conventions instead of: " + "; ".join(spelled)


def test_every_metrics_default_uses_the_constant():
    wrong = []
    for module, tree in _sources():
        for node in ast.walk(tree):
            defaults = []
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                positional = args.posonlyargs + args.args
                defaults += [(a.arg, d) for a, d in zip(positional[len(positional) - len(args.defaults):], args.defaults)]
                defaults += [(a.arg, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                defaults.append((node.target.id, node.value))
            elif isinstance(node, ast.Call):
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Constant) and first.value in ("--metrics", "metrics"):
                    if isinstance(node.func, ast.Attribute) and node.func.attr == "get" and len(node.args) > 1:
                        defaults.append(("metrics", node.args[1]))
                    defaults += [("metrics", k.value) for k in node.keywords if k.arg == "default"]
            for name, value in defaults:
                if name == "metrics" and not (_names(value) & {"DEFAULT_METRICS", "RESCORE_METRICS"}):
                    wrong.append(f"{module}:{value.lineno}")
    assert not wrong, "a metrics default that is not cmhbench.conventions.DEFAULT_METRICS: " + ", ".join(wrong)


def test_the_checks_see_the_places_that_take_a_default():
    """The scan above must find the defaults it guards (else it would pass vacuously)."""
    sources = dict(_sources())
    uses = [m for m, tree in sources.items() if "DEFAULT_METRICS" in _names(tree)]
    assert {"cmhbench.harness.runner", "cmhbench.harness.config", "cmhbench.evaluation.metrics",
            "cmhbench.evaluation.scoring", "cmhbench.evaluation.rescore"} <= set(uses)
    assert "RESCORE_METRICS" in _names(sources["cmhbench.cli"])


def test_a_fresh_run_and_evaluate_defaults():
    from cmhbench.harness.config import run_settings
    from cmhbench.harness.runner import RunContext

    assert tuple(run_settings({}, ["random"]).metrics) == DEFAULT_METRICS
    assert RunContext(out=Path("x")).metrics == DEFAULT_METRICS
    assert list(DIRECTIONS) == ["i2t", "t2i"]


@pytest.mark.parametrize("metric, key", [("map@all", "i2t_ap@all"), ("map@50", "i2t_ap@50"),
                                         ("tmap@all", "i2t_tap@all"), ("p@r2", "i2t_p@r2")])
def test_per_query_array_names(metric, key):
    assert per_query_array("i2t", metric) == key
