"""Every built-in method passes the conformance suite (one test per method and check)."""

import pytest

from cmhbench import methods
from cmhbench.methods.registry import is_builtin
from cmhbench.testing import method_checks

BUILTINS = [name for name in methods.available() if is_builtin(methods.get(name))]


def _param(name: str, check):
    """A deep method's shape check fits it at five bit lengths (multi-second): slow tier."""
    slow = methods.get(name).info.kind == "deep" and str(check).endswith(":codes_shape_and_dtype")
    return pytest.param(check, marks=pytest.mark.slow) if slow else check


@pytest.mark.parametrize("check", [_param(name, c) for name in BUILTINS for c in method_checks(name)], ids=str)
def test_conformance(check):
    check()
