"""Every built-in method passes the conformance suite (one test per method and check)."""

import pytest

from cmhbench import methods
from cmhbench.methods.registry import is_builtin
from cmhbench.testing import method_checks

BUILTINS = [name for name in methods.available() if is_builtin(methods.get(name))]


@pytest.mark.parametrize("check", [c for name in BUILTINS for c in method_checks(name)], ids=str)
def test_conformance(check):
    check()
