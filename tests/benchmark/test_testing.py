"""The conformance suite catches broken methods and says what is wrong."""

from typing import Any

import numpy as np
import pytest

from cmhbench.methods.base import Hasher, PairedFeatures
from cmhbench.methods.registry import register, unregister
from cmhbench.testing import check_method, method_checks


class _Linear(Hasher):
    """A correct toy: a seeded random projection of each modality (for subclassing below)."""

    def __init__(self, *, seed: int = 0, device: str = "auto", cache: Any = None):
        super().__init__(seed=seed, device=device, cache=cache)

    def _fit(self, train: PairedFeatures, n_bits: int) -> None:
        rng = self._rng()
        self.wx_ = rng.standard_normal((train.image_dim, n_bits))
        self.wy_ = rng.standard_normal((train.text_dim, n_bits))

    def _encode_image(self, image):
        return image @ self.wx_

    def _encode_text(self, text):
        return text @ self.wy_


def _registered(name: str, cls: type, deterministic: bool = False) -> type:
    cls.__doc__ = "A toy method for testing the conformance suite; it is not a real method at all."
    return register(name=name, title="toy", authors="tests", venue="none", year=2026, kind="shallow",
                    fidelity="paper", deterministic=deterministic, memory="O(1)")(cls)


@pytest.fixture
def toy_methods():
    class Good(_Linear):
        pass

    class WrongDtype(_Linear):
        def encode_image(self, image):  # bypasses the base class's conversion
            return np.sign(np.asarray(image, dtype=np.float32) @ self.wx_)

    class SeedIgnored(_Linear):
        def _rng(self, offset: int = 0):
            return np.random.default_rng(1234)

    class BatchDependent(_Linear):
        def _encode_text(self, text):
            return (text - text.mean(axis=0)) @ self.wy_

    names = {"toy-good": Good, "toy-dtype": WrongDtype, "toy-seed": SeedIgnored, "toy-batch": BatchDependent}
    for name, cls in names.items():
        _registered(name, cls)
    yield names
    for name in names:
        unregister(name)


def test_a_correct_method_passes(toy_methods):
    check_method("toy-good")


@pytest.mark.parametrize(
    "name, message",
    [
        ("toy-dtype", "codes_shape_and_dtype: encode_image at 16 bits returned float64, expected int8"),
        ("toy-seed", "seed_dependence: seeds 0 and 1 gave identical codes: the seed is ignored"),
        ("toy-batch", "batch_independent: encode_text: codes depend on the batch"),
    ],
)
def test_broken_methods_fail_with_a_message_that_says_why(toy_methods, name, message):
    with pytest.raises(AssertionError) as info:
        check_method(name)
    assert message in str(info.value)
    assert f"method {name!r} fails" in str(info.value)


def test_a_method_that_falsely_claims_determinism_fails():
    class Claims(_Linear):
        pass

    _registered("toy-claims", Claims, deterministic=True)
    try:
        with pytest.raises(AssertionError, match="declared deterministic, but seeds 0 and 1 gave different codes"):
            check_method("toy-claims")
    finally:
        unregister("toy-claims")


def test_checks_can_be_parametrized_one_by_one(toy_methods):
    checks = method_checks("toy-batch")
    assert "toy-batch:batch_independent" in [str(c) for c in checks]
    failing = [str(c) for c in checks if _fails(c)]
    assert failing == ["toy-batch:batch_independent"]


def _fails(check) -> bool:
    try:
        check()
    except AssertionError:
        return True
    return False
