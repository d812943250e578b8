"""Parameter domains: every built-in declares them, and out-of-domain values are refused up front."""

from __future__ import annotations

import math

import pytest

from cmhbench import methods
from cmhbench.methods import registry
from cmhbench.methods.base import Hasher
from cmhbench.methods.domains import Bool, Choice, Int, Real, search_space, suggest

BUILTINS = [m for m in registry.available() if registry.is_builtin(registry.get(m))]


@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_parameter_has_a_domain_containing_its_default(name):
    cls = registry.get(name)
    defaults = cls.default_params()
    assert set(cls.param_domains) == set(defaults)
    for key, value in defaults.items():
        assert cls.param_domains[key].contains(value), (name, key, value)


def test_every_learned_builtin_can_be_tuned_and_random_cannot():
    tunable = {m for m in BUILTINS if search_space(registry.get(m).param_domains)}
    assert tunable == set(BUILTINS) - {"random"}


@pytest.mark.parametrize("method, param, value", [
    ("cca-itq", "n_iter", -5),
    ("cca-itq", "reg", math.nan),
    ("cca-itq", "reg", math.inf),
    ("cmfh", "lam", 1.0),
    ("fsh", "r", 1.0),
    ("kdcmh", "distill", "hard"),
    ("djsrh", "momentum", 1.0),
])
def test_out_of_domain_values_are_refused_naming_method_parameter_and_domain(method, param, value):
    with pytest.raises(methods.ParameterError) as info:
        registry.resolve_params(method, params={param: value})
    message = str(info.value)
    assert f"{method}.{param}" in message and "outside its domain" in message
    assert "\n" not in message


def test_in_domain_values_and_optional_none_pass():
    assert registry.resolve_params("cca-itq", params={"n_iter": 3, "reg": 0.0})["n_iter"] == 3
    assert registry.resolve_params("jdsh", params={"loc": None, "scale_left": 0.02})["scale_left"] == 0.02


def test_domains_describe_themselves():
    assert Real(0.0, 1.0, low_open=True).describe() == "a real number in (0, 1]"
    assert Int(1).describe() == "an integer in [1, 1000000]"  # never unbounded: INT_CEILING
    assert Int(high=5).describe() == "an integer ≤ 5"
    with pytest.raises(TypeError, match="finite upper bound"):
        Int(1, math.inf)
    assert Choice(("a", "b")).describe() == "one of 'a', 'b'"
    assert Real(0.0, optional=True).describe() == "a real number ≥ 0, or none"
    assert Real(optional=True).describe() == "a real number, or none"
    assert Bool().contains(True) and not Bool().contains(1)
    assert not Int(0).contains(True) and not Int(0).contains(1.0)


def test_a_search_range_must_lie_inside_its_domain():
    with pytest.raises(ValueError, match="not inside the domain"):
        Real(0.0, 1.0, search=(0.5, 2.0))
    with pytest.raises(ValueError, match="log-scale"):
        Real(0.0, search=(0.0, 1.0), log=True)
    with pytest.raises(ValueError, match="subset"):
        Choice(("a", "b"), search=("c",))


class _FixedTrial:
    """The three suggest calls of an Optuna trial, answering the low end (or first option)."""

    def suggest_float(self, name, low, high, log=False):
        return low

    def suggest_int(self, name, low, high, log=False):
        return low

    def suggest_categorical(self, name, choices):
        return choices[0]


def test_suggest_draws_only_searchable_parameters_within_their_range():
    values = suggest(registry.get("kdcmh").param_domains, _FixedTrial())
    assert values["distill"] == "knn" and values["knn_fraction"] == 0.01
    assert "epochs" not in values and "teacher_bits" not in values
    assert registry.resolve_params("kdcmh", params=values)  # every suggestion is valid


def test_registration_refuses_a_default_outside_its_declared_domain():
    class Bad(Hasher):
        param_domains = {"k": Int(1)}

        def __init__(self, *, k: int = 0, seed=0, device="auto", cache=None):
            super().__init__(seed=seed, device=device, cache=cache)
            self.k = k

    with pytest.raises(TypeError, match="default k=0 is outside its domain"):
        registry.register(name="bad-domain", title="t", authors="a", venue="v", year=2000, kind="shallow",
                          fidelity="paper", deterministic=True, memory="")(Bad)
    assert "bad-domain" not in registry.available()


def test_in_search_says_whether_a_value_is_a_point_of_the_search_range():
    from cmhbench.methods.domains import Bool, Choice, Int, Real

    assert Real(0.0, search=(0.1, 0.9)).in_search(0.5) and not Real(0.0, search=(0.1, 0.9)).in_search(0.95)
    assert not Real(0.0).in_search(0.5)  # no search range: nothing is a point of it
    assert Int(1, search=(2, 8)).in_search(8) and not Int(1, search=(2, 8)).in_search(1)
    assert Bool(search=True).in_search(False) and not Bool().in_search(False)
    assert Choice(options=("a", "b", "c"), search=("a", "b")).in_search("b")
    assert not Choice(options=("a", "b", "c"), search=("a", "b")).in_search("c")
