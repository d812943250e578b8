"""README's generated parts agree with the code they describe."""

from __future__ import annotations

import re
from pathlib import Path

from cmhbench.methods import catalog

README = Path(__file__).resolve().parents[1] / "README.md"
TABLE = re.compile(r"<!-- methods table:[^\n]*-->\n(.*?)<!-- end of methods table -->", re.S)


def test_readme_methods_table_is_the_registry_listing():
    found = TABLE.search(README.read_text())
    assert found, "README.md lost its methods-table markers"
    assert found.group(1) == catalog.markdown(), (
        "README's methods table disagrees with the registry: paste `cmhbench list methods --format md`")


def test_the_listing_shows_every_builtin_with_its_registered_fidelity():
    rows = catalog.markdown().splitlines()[2:]
    from cmhbench.methods import registry

    assert [r.split("`")[1] for r in rows] == catalog.ordered(builtin_only=True)
    assert sorted(catalog.ordered(builtin_only=True)) == registry.builtin_names()
    for row in rows:
        name = row.split("`")[1]
        assert f"| {registry.get(name).info.fidelity} |" in row


def test_the_command_prints_the_table_readme_holds(capsys):
    from cmhbench.cli import main

    assert main(["list", "methods", "--format", "md"]) == 0
    assert capsys.readouterr().out == catalog.markdown()
