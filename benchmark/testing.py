"""Conformance checks every method must pass (like scikit-learn's ``check_estimator``).

Plugin authors run them under pytest, all at once::

    from cmhbench.testing import check_method
    def test_my_method():
        check_method("my-method")

or one test per check::

    @pytest.mark.parametrize("check", method_checks("my-method"), ids=str)
    def test_my_method(check):
        check()

The checks use a small synthetic set and the method's ``quick`` preset on the CPU.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np

from cmhbench.datasets.synthetic import SyntheticConfig, generate
from cmhbench.methods import Hasher, NotFittedError, registry
from cmhbench.methods.base import PairedFeatures

#: Bit lengths every method must support: the standard ones, one that is not a multiple
#: of 8, and lengths above both modalities' widths (the data below has 24-d images, 10-d text).
BIT_LENGTHS = (16, 32, 64, 128, 20)
SMALL_DATA = SyntheticConfig(n_items=240, n_query=40, n_train=160, n_labels=6, image_dim=24, text_dim=10,
                             latent_dim=6, nuisance_dim=4, data_seed=7)


@dataclass(frozen=True)
class MethodCheck:
    """One named check bound to one method; call it to run it (raises AssertionError)."""

    method: str
    name: str
    fn: Callable[[type[Hasher]], None]
    cls: type[Hasher]

    def __call__(self) -> None:
        self.fn(self.cls)

    def __str__(self) -> str:
        return f"{self.method}:{self.name}"


@functools.lru_cache(maxsize=1)
def _data() -> tuple[PairedFeatures, np.ndarray, np.ndarray]:
    ds = generate(SMALL_DATA)
    train = ds.paired(np.arange(SMALL_DATA.n_train))
    rest = np.arange(SMALL_DATA.n_train, ds.n)
    return train, ds.image[rest], ds.text[rest]


def _new(cls: type[Hasher], seed: int = 0) -> Hasher:
    return registry.create(cls, preset="quick", seed=seed, device="cpu")


def _fit(cls: type[Hasher], seed: int, bits: int) -> Hasher:
    train, _, _ = _data()
    model = _new(cls, seed)
    out = model.fit(train, bits)
    if out is not model:
        raise AssertionError(f"fit must return self, got {type(out).__name__}")
    return model


@functools.lru_cache(maxsize=32)
def _fitted(cls: type[Hasher], seed: int, bits: int) -> Hasher:
    """A shared fitted model for checks that only read it."""
    return _fit(cls, seed, bits)


def _encodings(model: Hasher, image: np.ndarray, text: np.ndarray) -> dict[str, np.ndarray]:
    codes = {"encode_image": model.encode_image(image), "encode_text": model.encode_text(text)}
    if type(model).info.pair_encoder:
        codes["encode_pair"] = model.encode_pair(image, text)
    return codes


def _raises(what: str, fn: Callable[[], object], types: tuple[type[BaseException], ...], hint: str) -> None:
    try:
        fn()
    except types:
        return
    except Exception as exc:  # a crash deep inside is not a clear error
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}; expected {hint}") from None
    raise AssertionError(f"{what} did not raise; expected {hint}")


# --- the checks -----------------------------------------------------------------------------

def check_metadata(cls: type[Hasher]) -> None:
    """Registered metadata is complete and the module documents the method."""
    info = getattr(cls, "info", None)
    if info is None:
        raise AssertionError("class has no info: decorate it with @cmhbench.methods.register(...)")
    for field in ("name", "title", "authors", "venue", "memory"):
        if not getattr(info, field):
            raise AssertionError(f"metadata field {field!r} is empty")
    doc = inspect.getmodule(cls).__doc__ or cls.__doc__ or ""
    if len(doc.strip()) < 40:
        raise AssertionError("the method's module docstring must state its paper, equations, defaults and deviations")


def check_constructor_only_stores(cls: type[Hasher]) -> None:
    """The constructor stores its arguments and learns nothing (scikit-learn convention)."""
    model = _new(cls)
    params = model.get_params()
    learned = sorted(k for k in vars(model) if k.endswith("_") and not k.startswith("_"))
    if learned:
        raise AssertionError(f"constructor sets learned attributes {learned}")
    clone = type(model)(**params)
    if clone.get_params().keys() != params.keys():
        raise AssertionError("get_params() does not round-trip through the constructor")


def check_codes_shape_and_dtype(cls: type[Hasher]) -> None:
    """±1 int8 codes of shape (n, bits) for 16/32/64/128 bits, 20 bits, and more bits than features."""
    _, image, text = _data()
    for bits in BIT_LENGTHS:
        model = _fitted(cls, 0, bits)
        for encoder, codes in _encodings(model, image, text).items():
            if not isinstance(codes, np.ndarray) or codes.dtype != np.int8:
                got = codes.dtype if isinstance(codes, np.ndarray) else type(codes).__name__
                raise AssertionError(f"{encoder} at {bits} bits returned {got}, expected int8")
            if codes.shape != (image.shape[0], bits):
                raise AssertionError(f"{encoder} at {bits} bits returned shape {codes.shape}, "
                                     f"expected {(image.shape[0], bits)}")
            values = set(np.unique(codes).tolist())
            if not values <= {-1, 1}:
                raise AssertionError(f"{encoder} at {bits} bits returned values {sorted(values)}, expected -1/+1")


def check_fixed_seed_reproducible(cls: type[Hasher]) -> None:
    """Two fits with the same seed on the CPU give identical codes."""
    _, image, text = _data()
    first = _encodings(_fit(cls, 0, 32), image, text)
    second = _encodings(_fit(cls, 0, 32), image, text)
    for encoder in first:
        if not np.array_equal(first[encoder], second[encoder]):
            raise AssertionError(f"{encoder}: two fits with seed 0 gave different codes")


def check_seed_dependence(cls: type[Hasher]) -> None:
    """Another seed gives other codes, unless the method declares itself deterministic."""
    _, image, text = _data()
    a = _encodings(_fitted(cls, 0, 32), image, text)
    b = _encodings(_fitted(cls, 1, 32), image, text)
    same = all(np.array_equal(a[e], b[e]) for e in a)
    if cls.info.deterministic and not same:
        raise AssertionError("declared deterministic, but seeds 0 and 1 gave different codes")
    if not cls.info.deterministic and same:
        raise AssertionError("seeds 0 and 1 gave identical codes: the seed is ignored "
                             "(declare deterministic=True if the method has no randomness)")


def check_batch_independent(cls: type[Hasher]) -> None:
    """Encoding a batch equals encoding its rows in smaller batches, in any order."""
    _, image, text = _data()
    model = _fitted(cls, 0, 32)
    whole = _encodings(model, image, text)
    pieces = [_encodings(model, image[i:i + 7], text[i:i + 7]) for i in range(0, image.shape[0], 7)]
    single = _encodings(model, image[:1], text[:1])
    perm = np.random.default_rng(0).permutation(image.shape[0])
    shuffled = _encodings(model, image[perm], text[perm])
    for encoder, codes in whole.items():
        if not np.array_equal(codes, np.vstack([p[encoder] for p in pieces])):
            raise AssertionError(f"{encoder}: codes depend on the batch (whole batch vs batches of 7 differ)")
        if not np.array_equal(codes[:1], single[encoder]):
            raise AssertionError(f"{encoder}: a single row is coded differently from the same row in a batch")
        if not np.array_equal(codes[perm], shuffled[encoder]):
            raise AssertionError(f"{encoder}: codes depend on the order of rows in the batch")


def check_fit_leaves_input_alone(cls: type[Hasher]) -> None:
    """fit does not modify the training arrays it is given."""
    train, _, _ = _data()
    image, text = train.image.copy(), train.text.copy()
    _fit(cls, 0, 16)
    if not (np.array_equal(image, train.image) and np.array_equal(text, train.text)):
        raise AssertionError("fit modified the training features in place")


def check_encode_before_fit(cls: type[Hasher]) -> None:
    """Encoding before fit raises NotFittedError."""
    _, image, text = _data()
    model = _new(cls)
    _raises("encode_image before fit", lambda: model.encode_image(image), (NotFittedError,), "NotFittedError")
    _raises("encode_text before fit", lambda: model.encode_text(text), (NotFittedError,), "NotFittedError")
    if cls.info.pair_encoder:
        _raises("encode_pair before fit", lambda: model.encode_pair(image, text), (NotFittedError,),
                "NotFittedError")


def check_rejects_nan_inf(cls: type[Hasher]) -> None:
    """NaN or Inf in training or query features raises ValueError."""
    train, image, text = _data()
    bad_image = train.image.copy()
    bad_image[3, 2] = np.nan
    _raises("fit with NaN image features", lambda: _new(cls).fit(PairedFeatures(bad_image, train.text), 16),
            (ValueError,), "ValueError naming the NaN/Inf")
    model = _fitted(cls, 0, 16)
    inf_image, inf_text = image.copy(), text.copy()
    inf_image[0, 0] = np.inf
    inf_text[1, 1] = -np.inf
    _raises("encode_image with Inf", lambda: model.encode_image(inf_image), (ValueError,), "ValueError")
    _raises("encode_text with Inf", lambda: model.encode_text(inf_text), (ValueError,), "ValueError")
    if cls.info.pair_encoder:
        _raises("encode_pair with Inf", lambda: model.encode_pair(inf_image, text), (ValueError,), "ValueError")


def check_rejects_wrong_width(cls: type[Hasher]) -> None:
    """Features of another width than at fit time raise ValueError."""
    _, image, text = _data()
    model = _fitted(cls, 0, 16)
    wide_image = np.hstack([image, image[:, :1]])
    wide_text = np.hstack([text, text[:, :1]])
    _raises("encode_image with an extra column", lambda: model.encode_image(wide_image), (ValueError,), "ValueError")
    _raises("encode_text with an extra column", lambda: model.encode_text(wide_text), (ValueError,), "ValueError")
    if cls.info.pair_encoder:
        _raises("encode_pair with an extra text column", lambda: model.encode_pair(image, wide_text),
                (ValueError,), "ValueError")


CHECKS: tuple[Callable[[type[Hasher]], None], ...] = (
    check_metadata,
    check_constructor_only_stores,
    check_codes_shape_and_dtype,
    check_fixed_seed_reproducible,
    check_seed_dependence,
    check_batch_independent,
    check_fit_leaves_input_alone,
    check_encode_before_fit,
    check_rejects_nan_inf,
    check_rejects_wrong_width,
)


def method_checks(method: str | type[Hasher]) -> list[MethodCheck]:
    """Every check bound to ``method`` (a registered name or a Hasher subclass)."""
    cls = registry.get(method) if isinstance(method, str) else method
    name = getattr(getattr(cls, "info", None), "name", cls.__name__)
    return [MethodCheck(name, fn.__name__.removeprefix("check_"), fn, cls) for fn in CHECKS]


def check_method(method: str | type[Hasher]) -> None:
    """Run every check; raise one AssertionError that lists each failure and its reason."""
    failures = []
    for check in method_checks(method):
        try:
            check()
        except AssertionError as exc:
            failures.append(f"  {check.name}: {exc}")
        except Exception as exc:  # a crash in a check is a failure of the method, reported alike
            failures.append(f"  {check.name}: crashed with {type(exc).__name__}: {exc}")
    if failures:
        label = method if isinstance(method, str) else getattr(getattr(method, "info", None), "name", method)
        raise AssertionError(f"method {label!r} fails {len(failures)} check(s):\n" + "\n".join(failures))
