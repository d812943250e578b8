"""README's generated parts agree with the code they describe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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


def test_the_add_a_method_example_runs_and_refuses_a_bad_value():
    """README's example is code a newcomer copies: it registers, fits, and its domain holds."""
    import numpy as np
    import pytest

    from cmhbench.methods import PairedFeatures, registry
    from cmhbench.methods.registry import ParameterError

    section = README.read_text().split("## Adding a method", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    try:
        exec(compile(code, "README.md", "exec"), {})
        with pytest.raises(ParameterError, match="my-lsh.scale=-5"):
            registry.resolve_params("my-lsh", params={"scale": -5})
        model = registry.get("my-lsh")(**registry.resolve_params("my-lsh"))
        rng = np.random.default_rng(0)
        model.fit(PairedFeatures(rng.standard_normal((20, 4)), rng.standard_normal((20, 3))), 8)
        assert model.encode_image(rng.standard_normal((5, 4))).shape == (5, 8)
    finally:
        registry.unregister("my-lsh")


@pytest.mark.slow  # collects the suite in a subprocess
def test_the_fast_tier_count_readme_states_is_current():
    import subprocess
    import sys

    stated = int(re.search(r"Its ([\d,]+) tests took", README.read_text()).group(1).replace(",", ""))
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "not slow",
                                "-p", "no:cacheprovider"], capture_output=True, text=True, timeout=300,
                               cwd=README.parent)
    found = re.search(r"(\d+)/\d+ tests collected|(\d+) tests collected", collected.stdout)
    assert found, collected.stdout[-2000:]
    count = int(found.group(1) or found.group(2))
    assert abs(count - stated) <= 0.05 * count, (
        f"README says the fast tier has {stated} tests; {count} are collected: update the sentence and its timing")
