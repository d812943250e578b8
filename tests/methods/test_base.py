import numpy as np
import pytest

from cmhbench.methods.base import (
    Hasher,
    InputError,
    PairedFeatures,
    ResourceError,
    as_features,
    check_bits,
    check_memory,
    to_codes,
)


def test_paired_features_has_no_labels_and_a_stable_content_key():
    rng = np.random.default_rng(0)
    X, Y = rng.random((10, 4)), rng.random((10, 3))
    a, b = PairedFeatures(X, Y), PairedFeatures(X.copy(), Y.copy())
    assert not hasattr(a, "labels")
    assert a.image.dtype == np.float32 and a.text.dtype == np.float32
    assert a.key == b.key
    Y2 = Y.copy()
    Y2[0, 0] += 1
    assert PairedFeatures(X, Y2).key != a.key
    assert (a.n, a.image_dim, a.text_dim) == (10, 4, 3)


@pytest.mark.parametrize(
    "image, text, message",
    [
        (np.ones((5, 2)), np.ones((4, 2)), "image has 5 rows but text has 4"),
        (np.ones(5), np.ones((5, 2)), "2-D"),
        (np.full((5, 2), np.nan), np.ones((5, 2)), "10 NaN/Inf values in 5 rows"),
        (np.ones((1, 2)), np.ones((1, 2)), "at least 2 pairs"),
        ([["a", "b"]], np.ones((1, 2)), "cannot be read as float32"),
    ],
)
def test_paired_features_rejects_bad_input(image, text, message):
    with pytest.raises(InputError, match=message):
        PairedFeatures(image, text)


def test_as_features_names_modality_and_width():
    with pytest.raises(InputError, match="text features have 3 columns but the method was fitted on 4"):
        as_features(np.ones((2, 3)), "text", expected_dim=4)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "16", None])
def test_check_bits_rejects_non_positive_integers(bad):
    with pytest.raises(ValueError, match="positive integer"):
        check_bits(bad)


def test_to_codes_maps_zero_to_plus_one_and_checks_shape():
    codes = to_codes(np.array([[0.0, -2.0, 3.0]]), 3)
    assert codes.dtype == np.int8 and codes.tolist() == [[1, -1, 1]]
    with pytest.raises(RuntimeError, match=r"expected \(n, 4\)"):
        to_codes(np.zeros((2, 3)), 4)


def test_check_memory_refuses_absurd_requests():
    with pytest.raises(ResourceError, match="GiB"):
        check_memory(2**60, "a test buffer")
    check_memory(1024, "a tiny buffer")


class Toy(Hasher):
    def __init__(self, *, alpha: float = 1.0, seed: int = 0, device: str = "auto", cache=None):
        super().__init__(seed=seed, device=device, cache=cache)
        self.alpha = alpha


def test_parameters_come_from_the_constructor():
    assert Toy.default_params() == {"alpha": 1.0}
    toy = Toy(alpha=2.0, seed=3)
    assert toy.get_params() == {"alpha": 2.0, "seed": 3, "device": "auto", "cache": None}
    assert toy.hyper_params() == {"alpha": 2.0}
    assert not Toy.has_pair_encoder()


def test_fit_refuses_anything_but_paired_features():
    with pytest.raises(TypeError, match="PairedFeatures"):
        Toy().fit((np.ones((3, 2)), np.ones((3, 2)), np.ones((3, 1))), 8)


def test_progress_reports_reach_the_callback_given_to_fit_and_are_not_kept():
    from cmhbench.methods.base import Hasher, PairedFeatures, Progress

    class Epochs(Hasher):
        def _fit(self, train, n_bits):
            for epoch in range(3):
                self.report_progress(epoch + 1, 3, loss=1.0 / (epoch + 1))

        def _encode_image(self, image):
            return np.ones((len(image), self.n_bits_))

        _encode_text = _encode_image

    rng = np.random.default_rng(0)
    train = PairedFeatures(rng.normal(size=(10, 4)), rng.normal(size=(10, 3)))
    seen: list[Progress] = []
    model = Epochs().fit(train, 8, progress=seen.append)
    assert [(p.done, p.total) for p in seen] == [(1, 3), (2, 3), (3, 3)]
    assert seen[-1].values["loss"] == pytest.approx(1 / 3)
    model.fit(train, 8)  # no callback: reports go nowhere, and the old one is not reused
    assert len(seen) == 3


def test_defaults_declared_in_the_domains_make_the_constructor():
    """One place per hyper-parameter: the domain's default is the constructor's default, the
    signature (and hence default_params, the registry and tune) sees it, and unknown or
    positional arguments are refused as by a hand-written keyword-only constructor."""
    import inspect

    from cmhbench.methods.base import Hasher
    from cmhbench.methods.domains import EPOCHS, Choice, Real

    class Declared(Hasher):
        param_domains = {"alpha": Real(0.0, default=2.0), "epochs": EPOCHS.with_default(5),
                         "mode": Choice(("a", "b"), default="b")}

    assert Declared.default_params() == {"alpha": 2.0, "epochs": 5, "mode": "b"}
    assert list(inspect.signature(Declared.__init__).parameters) == [
        "self", "alpha", "epochs", "mode", "seed", "device", "cache"]
    made = Declared(alpha=0.5, seed=3, device="cpu")
    assert made.get_params() == {"alpha": 0.5, "epochs": 5, "mode": "b", "seed": 3, "device": "cpu", "cache": None}
    assert type(made)(**made.get_params()).get_params() == made.get_params()  # a clone, scikit-learn style
    with pytest.raises(TypeError, match="unexpected keyword argument.*alpah"):
        Declared(alpah=1.0)
    with pytest.raises(TypeError):
        Declared(1.0)


def test_a_method_declares_its_defaults_in_one_place_only():
    from cmhbench.methods.base import Hasher
    from cmhbench.methods.domains import Int, Real

    with pytest.raises(TypeError, match="no default for beta"):
        class Partial(Hasher):
            param_domains = {"alpha": Real(0.0, default=1.0), "beta": Int(1, 10)}
    with pytest.raises(TypeError, match="both"):
        class Twice(Hasher):
            param_domains = {"alpha": Real(0.0, default=1.0)}

            def __init__(self, *, alpha: float = 1.0, seed=0, device="auto", cache=None):
                super().__init__(seed=seed, device=device, cache=cache)
                self.alpha = alpha
