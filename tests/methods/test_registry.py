from typing import Any

import numpy as np
import pytest

from cmhbench import methods
from cmhbench.methods import registry
from cmhbench.methods.base import Hasher


def test_builtins_are_discovered_not_listed_by_hand():
    names = methods.available()
    assert {"random", "cca-itq"} <= set(names)
    assert names == sorted(names)
    for name in names:
        cls = methods.get(name)
        assert cls.info.name == name
        assert cls.info.pair_encoder == cls.has_pair_encoder()


def test_unknown_method_suggests_a_close_match():
    with pytest.raises(methods.UnknownMethodError, match="did you mean 'cca-itq'"):
        methods.get("cca_itq")


@pytest.fixture
def layered():
    @registry.register(
        name="test-layered", title="t", authors="a", venue="v", year=2000, kind="shallow",
        fidelity="paper", deterministic=True, memory="O(1)",
        presets={"quick": {"epochs": 2}},
        dataset_overrides={"wiki": {"epochs": 50, "lr": 0.5}},
    )
    class Layered(Hasher):
        """Layered test method with a docstring that is long enough to count."""

        def __init__(self, *, epochs: int = 100, lr: float = 0.1, beta: float = 0.9, flag: bool = False,
                     seed: int = 0, device: str = "auto", cache: Any = None):
            super().__init__(seed=seed, device=device, cache=cache)
            self.epochs, self.lr, self.beta, self.flag = epochs, lr, beta, flag

    yield Layered
    registry.unregister("test-layered")


def test_resolution_order_defaults_dataset_preset_user(layered):
    r = methods.resolve_params
    assert r("test-layered") == {"epochs": 100, "lr": 0.1, "beta": 0.9, "flag": False}
    assert r("test-layered", dataset="wiki") == {"epochs": 50, "lr": 0.5, "beta": 0.9, "flag": False}
    assert r("test-layered", dataset="wiki", preset="quick")["epochs"] == 2
    assert r("test-layered", dataset="wiki", preset="quick", params={"epochs": 7})["epochs"] == 7
    model = methods.create("test-layered", dataset="wiki", params={"beta": 1}, seed=4, device="cpu")
    assert (model.epochs, model.lr, model.beta, model.seed, model.device) == (50, 0.5, 1.0, 4, "cpu")
    assert isinstance(model.beta, float)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"betta": 1.0}, "has no parameter 'betta'; did you mean 'beta'"),
        ({"seed": 3}, "set by the harness"),
        ({"lr": "fast"}, r"test-layered.lr expects float, got 'fast'"),
        ({"epochs": 2.5}, "expects int"),
        ({"flag": 1}, "expects true/false"),
    ],
)
def test_bad_parameters_are_named(layered, params, message):
    with pytest.raises(methods.ParameterError, match=message):
        methods.resolve_params("test-layered", params=params)


def test_unknown_preset(layered):
    with pytest.raises(methods.ParameterError, match="unknown preset 'fast'"):
        methods.resolve_params("test-layered", preset="fast")


def test_register_rejects_presets_with_unknown_parameters():
    with pytest.raises(TypeError, match=r"preset 'quick' sets unknown parameters \['epochz'\]"):
        @registry.register(name="test-bad", title="t", authors="a", venue="v", year=1, kind="shallow",
                           fidelity="paper", deterministic=True, memory="O(1)", presets={"quick": {"epochz": 1}})
        class Bad(Hasher):
            pass
    assert "test-bad" not in methods.available()


def test_register_requires_a_hasher_and_harness_params():
    with pytest.raises(TypeError, match="Hasher subclass"):
        registry.register(name="x", title="t", authors="a", venue="v", year=1, kind="shallow",
                          fidelity="paper", deterministic=True, memory="O(1)")(object)

    class NoSeed(Hasher):
        def __init__(self, *, device="auto", cache=None):
            pass

    with pytest.raises(TypeError, match="constructor must accept seed"):
        registry.register(name="x", title="t", authors="a", venue="v", year=1, kind="shallow",
                          fidelity="paper", deterministic=True, memory="O(1)")(NoSeed)


def _provenances(method, dataset, **params):
    resolved = methods.resolve_params(method, dataset=dataset, params=params)
    return {k: v["provenance"] for k, v in registry.param_sources(method, dataset, resolved).items()}


def test_kdcmh_holds_no_value_chosen_on_validation_and_its_teacher_keeps_jdshs_sources():
    for dataset in ("wikipedia", "synthetic", "mirflickr25k"):
        assert "validation" not in _provenances("kdcmh", dataset).values()
    assert set(_provenances("kdcmh", "nuswide").values()) == {"authors' code"}


def test_djsrh_wikipedia_values_are_the_authors_and_uchm_validation_choices_are_marked():
    djsrh = _provenances("djsrh", "wikipedia")
    assert set(djsrh) == {"beta", "lambda1", "lambda2", "epochs", "lr_image", "lr_text"}
    assert set(djsrh.values()) == {"authors' code"}
    chosen = {name: "validation" for name in ("coherence_share", "lr_image", "lr_text", "regression_weight")}
    assert _provenances("uchm", "wikipedia") == {"beta": "ours", **chosen}
    assert _provenances("uchm", "synthetic") == chosen
    assert "coherence_share" not in _provenances("uchm", "synthetic", coherence_share=0.1)  # the user's value


def test_an_undeclared_override_reads_as_the_paper(layered):
    assert _provenances("test-layered", "wiki") == {"epochs": "paper", "lr": "paper"}


@pytest.mark.parametrize("sources, message", [
    ({"override_sources": {"wiki": "folklore"}}, "provenance 'folklore'"),
    ({"override_sources": {"nus": "paper"}}, "'nus', which has no dataset override"),
    ({"override_sources": {"wiki": {"beta": "paper"}}}, "names 'beta', which that override does not set"),
    ({"default_sources": {"gamma": "validation"}}, "unknown parameter 'gamma'"),
])
def test_register_rejects_bad_provenance(sources, message):
    with pytest.raises((TypeError, ValueError), match=message):
        @registry.register(name="test-bad", title="t", authors="a", venue="v", year=1, kind="shallow",
                           fidelity="paper", deterministic=True, memory="O(1)",
                           dataset_overrides={"wiki": {"lr": 0.5}}, **sources)
        class Bad(Hasher):
            def __init__(self, *, lr: float = 0.1, seed: int = 0, device: str = "auto", cache: Any = None):
                super().__init__(seed=seed, device=device, cache=cache)
    assert "test-bad" not in methods.available()


def test_pair_encoder_is_derived_from_the_class():
    assert methods.get("random").info.pair_encoder
    assert not methods.get("cca-itq").info.pair_encoder
    with pytest.raises(NotImplementedError, match="no pair encoder"):
        methods.create("cca-itq").encode_pair(np.ones((2, 2)), np.ones((2, 2)))


@pytest.mark.slow
def test_getting_a_shallow_method_does_not_import_torch():
    # A worker process running shallow cells must not pay for torch's import (~1.3 s each).
    import subprocess
    import sys

    code = ("import sys; from cmhbench.methods import registry; cls = registry.get('cca-itq'); "
            "assert cls.info.name == 'cca-itq'; print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_a_name_without_a_module_of_its_own_falls_back_to_the_full_scan():
    assert registry.get("cca-itq") is registry.get("cca-itq")
    with pytest.raises(methods.UnknownMethodError, match="did you mean 'cca-itq'"):
        registry.get("cca_itq")


def test_versions_name_the_method_and_every_method_it_uses():
    assert registry.versions("cca-itq") == {"cca-itq": 1}
    assert registry.versions("jdsh") == {"jdsh": 3}
    assert registry.versions("kdcmh") == {"kdcmh": 4, "jdsh": 3}


def test_builtin_names_are_read_without_importing_and_match_the_registry():
    listed = registry.builtin_names()
    registered = [m for m in registry.available() if registry.is_builtin(registry.get(m))]
    assert listed == sorted(registered)


def test_a_builtin_registered_in_a_module_of_another_name_is_refused():
    class Misplaced(Hasher):
        """A built-in in the wrong file."""

    Misplaced.__module__ = "cmhbench.methods.cvh"
    with pytest.raises(ValueError, match=r"must live in cmhbench/methods/new_method\.py"):
        registry.register(name="new-method", title="t", authors="a", venue="v", year=2000, kind="shallow",
                          fidelity="paper", deterministic=True, memory="O(1)")(Misplaced)
    assert "new-method" not in registry.available()


def test_a_module_that_registers_nothing_must_be_named_as_a_helper(monkeypatch):
    # 'domains' registers no method: scanned as if it were a method module, it is named in the error
    monkeypatch.setitem(registry._state, "builtins", False)
    monkeypatch.setattr(registry, "_method_modules", lambda: ["cvh", "domains"])
    with pytest.raises(ValueError, match=r"cmhbench/methods/domains\.py registers no method named 'domains'"):
        registry.available()
