"""The contract between the harness and a hashing method.

A method sees only :class:`PairedFeatures` — image and text features of the same
training items and a content key — so labels cannot reach ``fit`` by construction.
After ``fit(train, n_bits)`` it codes each modality on its own (``encode_image``,
``encode_text``); a method that learns one code per item from both modalities may
also code image–text pairs (``encode_pair``).  Codes are int8 in {-1, +1}, shape
``(n, n_bits)``, and every row is coded independently of the rest of its batch.

:class:`Hasher` follows scikit-learn's estimator conventions: the constructor only
stores hyper-parameters (keyword arguments with documented defaults), ``fit``
learns and returns ``self``, learned state ends in ``_``.  The public methods
validate input and convert outputs once, here, so a method implements only the
underscore hooks ``_fit``, ``_encode_image``, ``_encode_text`` and optionally
``_encode_pair``.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal, Mapping, get_args

import numpy as np
import psutil

from cmhbench.methods.domains import Domain

#: Constructor arguments every method takes that the harness sets per cell; they are
#: not hyper-parameters (not keyed, not part of presets).
HARNESS_PARAMS = ("seed", "device", "cache")


class NotFittedError(RuntimeError):
    """A method was asked to encode before ``fit``."""


class InputError(ValueError):
    """Features that a method cannot accept (shape, width, NaN/Inf)."""


class ResourceError(RuntimeError):
    """A method refuses work that would not fit in this machine's memory."""


def as_features(array: Any, name: str, expected_dim: int | None = None) -> np.ndarray:
    """Return ``array`` as a C-contiguous float32 matrix, or raise :class:`InputError`.

    ``name`` names the modality in the message, so the user learns which input is bad.
    """
    try:
        out = np.ascontiguousarray(array, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} features cannot be read as float32: {exc}") from None
    if out.ndim != 2:
        raise InputError(f"{name} features must be a 2-D (items x features) array, got shape {out.shape}")
    if out.shape[0] == 0 or out.shape[1] == 0:
        raise InputError(f"{name} features are empty (shape {out.shape})")
    if expected_dim is not None and out.shape[1] != expected_dim:
        raise InputError(
            f"{name} features have {out.shape[1]} columns but the method was fitted on {expected_dim}"
        )
    finite = np.isfinite(out)
    if not finite.all():
        bad = int(out.size - np.count_nonzero(finite))
        rows = int(np.count_nonzero(~finite.all(axis=1)))
        raise InputError(f"{name} features contain {bad} NaN/Inf values in {rows} rows")
    return out


def content_key(*arrays: np.ndarray) -> str:
    """A short hash of arrays' shapes, dtypes and bytes (identifies training data)."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def check_bits(n_bits: Any) -> int:
    """Bit lengths are positive integers (any, not only multiples of 8)."""
    if isinstance(n_bits, (bool, np.bool_)) or not isinstance(n_bits, (int, np.integer)) or n_bits < 1:
        raise ValueError(f"n_bits must be a positive integer, got {n_bits!r}")
    return int(n_bits)


class OutputError(RuntimeError):
    """A method returned values that cannot be binarised into trustworthy codes."""


def to_codes(values: Any, n_bits: int, what: str = "codes", zero_one: bool = False) -> np.ndarray:
    """Binarise real values to int8 {-1, +1} by sign (zero goes to +1), after checking them.

    Refused with :class:`OutputError`, because each would be scored as a silent wrong
    result: a wrong shape; values that are not real numbers (strings, objects, complex);
    NaN or infinite values (their sign means nothing); boolean or integer output that is all
    0/1, which sign maps to all +1, unless the method declares ``zero_one_codes`` — then
    1 maps to +1 and 0 to -1, and anything else is refused.
    """
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[1] != n_bits:
        raise OutputError(f"{what}: method produced shape {values.shape}, expected (n, {n_bits})")
    if values.dtype.kind not in "biuf":
        raise OutputError(f"{what}: method produced {values.dtype} values; codes must be real numbers "
                          "(binarised by sign) or {-1, +1}")
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
        raise OutputError(f"{what}: method produced {bad} NaN or infinite values")
    if zero_one:
        if not np.isin(values, (0, 1)).all():
            raise OutputError(f"{what}: the method declares {{0, 1}} codes but produced other values")
        return np.where(values > 0, 1, -1).astype(np.int8)
    if values.dtype.kind == "b" or (values.dtype.kind in "iu" and np.isin(values, (0, 1)).all()
                                    and (values == 0).any()):
        raise OutputError(f"{what}: method produced {{0, 1}} codes, which sign maps to all +1; return real "
                          "values or {-1, +1}, or declare zero_one_codes = True on the class")
    return np.where(values >= 0, 1, -1).astype(np.int8)


@dataclass(frozen=True, eq=False)
class PairedFeatures:
    """A training set of paired items: image features X (n x d_x), text features Y (n x d_y).

    It deliberately has no labels field.  ``key`` hashes the content so a method can
    cache work that does not depend on the bit length (a teacher, a graph) per dataset.
    """

    image: np.ndarray
    text: np.ndarray
    key: str = ""

    def __post_init__(self) -> None:
        image = as_features(self.image, "image")
        text = as_features(self.text, "text")
        if image.shape[0] != text.shape[0]:
            raise InputError(f"image has {image.shape[0]} rows but text has {text.shape[0]}; pairs must align")
        if image.shape[0] < 2:
            raise InputError("a training set needs at least 2 pairs")
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "text", text)
        if not self.key:
            object.__setattr__(self, "key", content_key(image, text))

    @property
    def n(self) -> int:
        return self.image.shape[0]

    @property
    def image_dim(self) -> int:
        return self.image.shape[1]

    @property
    def text_dim(self) -> int:
        return self.text.shape[1]

    def __repr__(self) -> str:
        return f"PairedFeatures(n={self.n}, image_dim={self.image_dim}, text_dim={self.text_dim}, key={self.key[:8]}…)"


Kind = Literal["reference", "shallow", "deep"]
Fidelity = Literal["paper", "reconstructed"]
Provenance = Literal["paper", "authors' code", "ours", "validation"]
PROVENANCES: tuple[str, ...] = get_args(Provenance)
"""Where a registered value came from: the paper, the authors' public code, our own choice made
without any score (e.g. another method's published value), or a validation split's score.  Only
``validation`` marks a leaderboard row (‡): such a value was chosen on data, if never on test queries."""


PriorBuilder = Callable[["Hasher", PairedFeatures], Any]
"""``prior(model, train)``: the n × n similarity (numpy or torch) that ``model``, with its
parameters, would train under on ``train``'s pairs; a part that must be trained for it (a
teacher, a generator) is trained on ``train`` (through ``model.cache`` when there is one)."""


@dataclass(frozen=True)
class MethodInfo:
    """What a leaderboard and ``cmhbench list`` say about a method.

    ``presets`` maps a preset name to parameter values; ``paper`` is the constructor's
    defaults unless a method overrides it, ``quick`` is small and fast for tests and the
    default tour.  ``dataset_overrides`` maps a dataset name to per-dataset values, and
    ``override_sources`` says where they came from (:data:`PROVENANCES`): per dataset, one
    provenance for the whole entry or a mapping from parameter to provenance; an entry or value
    it does not name is ``paper``, so a method whose values are not its paper's must say so.
    ``default_sources`` names the constructor defaults whose provenance a leaderboard must show
    (a default chosen on a validation split).  ``pair_encoder`` is derived from the class.

    ``version`` counts changes of the method's behaviour (bumped whenever the same
    parameters would give different codes); ``uses`` names the methods whose code it runs
    (a teacher), whose versions are part of its cells' keys too.

    ``prior_params`` names the parameters that weight or size the similarity the method
    builds from features (its *prior*: fusion weights, a neighbourhood size), and ``prior``
    builds that similarity over a training set (:data:`PriorBuilder`), so ``cmhbench priors``
    can choose them for every method by one procedure.  Each is searched over its domain's
    search range, or over ``prior_ranges[name]`` where its own domain declares none (a
    teacher's weights, searched as the teacher's own).
    """

    name: str
    title: str
    authors: str
    venue: str
    year: int
    kind: Kind
    fidelity: Fidelity
    deterministic: bool
    memory: str
    pair_encoder: bool = False
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    dataset_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    override_sources: Mapping[str, Provenance | Mapping[str, Provenance]] = field(default_factory=dict)
    default_sources: Mapping[str, Provenance] = field(default_factory=dict)
    url: str = ""
    version: int = 1
    uses: tuple[str, ...] = ()
    prior_params: tuple[str, ...] = ()
    prior_ranges: Mapping[str, Domain] = field(default_factory=dict)
    prior: PriorBuilder | None = None

    @property
    def citation(self) -> str:
        return f"{self.authors}, \"{self.title}\", {self.venue} {self.year}"

    def override_source(self, dataset: str, param: str) -> str:
        """The provenance of ``dataset``'s override value of ``param`` (``paper`` unless declared)."""
        entry = self.override_sources.get(dataset, "paper")
        return entry if isinstance(entry, str) else entry.get(param, "paper")


def resolve_device(device: str) -> str:
    """The one device rule: ``auto`` is the first GPU when torch sees one, else the CPU."""
    if device not in ("auto", "cpu") and not (device == "cuda" or device.startswith("cuda:")):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:K, got {device!r}")
    if device == "cpu":
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but torch sees no GPU")
    return device


def available_memory_bytes() -> int | None:
    """Memory the OS reports as available now (psutil, portable), or None if unknown."""
    try:
        return int(psutil.virtual_memory().available)
    except (psutil.Error, OSError):
        return None


def check_memory(n_bytes: int, what: str, fraction: float = 0.8) -> None:
    """Refuse, with a message, work whose buffers would exceed most of the free memory."""
    free = available_memory_bytes()
    if free is not None and n_bytes > fraction * free:
        raise ResourceError(
            f"{what} needs about {n_bytes / 2**30:.1f} GiB but only {free / 2**30:.1f} GiB is available; "
            "use a smaller training set or a method that scales better"
        )


@dataclass(frozen=True)
class Progress:
    """One progress report from inside ``fit``: ``done`` of ``total`` steps of ``stage`` (the
    training's epochs, a solver's iterations, or a set-up phase such as a teacher's or a
    generator's epochs), plus named values."""

    done: int
    total: int
    values: dict[str, float]
    stage: str = "epoch"


ProgressCallback = Callable[[Progress], None]


def _declared_constructor(cls: type, defaults: dict[str, Any]) -> Callable[..., None]:
    """A keyword-only constructor taking ``defaults``' names plus the harness parameters,
    storing each on ``self``; its signature is the one a hand-written constructor would
    have, so ``inspect.signature`` (and hence ``default_params``) sees the declared defaults."""
    parent = cls.__mro__[1]

    def __init__(self: Any, *, seed: int = 0, device: str = "auto", cache: Any = None, **params: Any) -> None:
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise TypeError(f"{cls.__name__}() got unexpected keyword argument(s): {', '.join(unknown)}")
        parent.__init__(self, seed=seed, device=device, cache=cache)
        for name, default in defaults.items():
            setattr(self, name, params.get(name, default))

    keyword = inspect.Parameter.KEYWORD_ONLY
    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(name, keyword, default=value) for name, value in defaults.items()]
        + [inspect.Parameter(name, keyword, default=value)
           for name, value in (("seed", 0), ("device", "auto"), ("cache", None))]
    )
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.__doc__ = f"{cls.__name__}'s hyper-parameters (declared in its param_domains) plus seed, device, cache."
    return __init__


class Hasher:
    """Base class of every method.  Subclasses are registered with ``@register``.

    A method declares each hyper-parameter once, in ``param_domains`` with its default
    (``Real(0.0, default=1e-4)``); the base class then builds a keyword-only constructor
    taking those plus ``seed``, ``device`` and ``cache`` (a ``joblib.Memory`` or None, handed
    in by the harness) that only stores them on ``self`` under the same names.  A
    hand-written constructor of that shape (defaults in its signature) works too.
    """

    info: ClassVar[MethodInfo]
    #: True for a method whose encoders return {0, 1} codes; the harness maps 0 to -1.
    zero_one_codes: ClassVar[bool] = False
    #: Valid values of each hyper-parameter and the range worth searching (see
    #: :mod:`cmhbench.methods.domains`); declared beside the constructor's defaults.
    param_domains: ClassVar[Mapping[str, Domain]] = {}

    def __init__(self, *, seed: int = 0, device: str = "auto", cache: Any = None) -> None:
        self.seed = seed
        self.device = device
        self.cache = cache

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Build the constructor of a method whose ``param_domains`` carry the defaults, so a
        hyper-parameter is declared in one place (name, domain, default)."""
        super().__init_subclass__(**kwargs)
        domains = cls.__dict__.get("param_domains")
        if domains is None or not any(d.has_default for d in domains.values()):
            return
        missing = [name for name, d in domains.items() if not d.has_default]
        if "__init__" in cls.__dict__ or missing:
            raise TypeError(
                f"{cls.__name__}: declare every default in param_domains and no __init__, or all of them "
                f"in __init__; got " + (f"no default for {', '.join(missing)}" if missing else "both")
            )
        cls.__init__ = _declared_constructor(cls, {name: d.default for name, d in domains.items()})

    # --- parameters (scikit-learn style) ---------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        """Hyper-parameter defaults from the constructor (harness parameters excluded)."""
        sig = inspect.signature(cls.__init__)
        return {
            name: sig.parameters[name].default
            for name in cls.param_names()
            if name not in HARNESS_PARAMS
        }

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_names()}

    def hyper_params(self) -> dict[str, Any]:
        """The parameters that define the method's result (no device, cache or seed)."""
        return {k: v for k, v in self.get_params().items() if k not in HARNESS_PARAMS}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper_params().items())
        return f"{type(self).__name__}({args})"

    # --- the contract -------------------------------------------------------------------
    def fit(self, train: PairedFeatures, n_bits: int, progress: ProgressCallback | None = None) -> "Hasher":
        """Learn codes of ``n_bits`` bits from paired, unlabelled training features.

        ``progress``, when given, is called by long-running methods through
        :meth:`report_progress` (e.g. once per epoch), so the harness can show it; the
        method never prints.
        """
        if not isinstance(train, PairedFeatures):
            raise TypeError(
                f"fit expects a PairedFeatures (image and text, no labels), got {type(train).__name__}"
            )
        self.fitted_ = False
        self.n_bits_ = check_bits(n_bits)
        self.image_dim_ = train.image_dim
        self.text_dim_ = train.text_dim
        self._progress = progress
        try:
            self._fit(train, self.n_bits_)
        finally:
            self._progress = None  # a callback may hold a bar or a queue: never keep it
        self.fitted_ = True
        return self

    def report_progress(self, done: int, total: int, stage: str = "epoch", **values: float) -> None:
        """Tell the harness how far ``fit`` is (``done`` of ``total`` steps of ``stage``, e.g.
        "epoch", "iteration", "teacher epoch").

        ``values`` are short named numbers worth showing, such as the current loss.  Every
        phase that takes more than a few seconds reports, set-up included, so the bar never
        sits silent on a running cell.  A no-op when nobody listens, so methods call it
        unconditionally.
        """
        callback = getattr(self, "_progress", None)
        if callback is not None:
            callback(Progress(int(done), int(total), {k: float(v) for k, v in values.items()}, stage))

    def encode_image(self, image: Any) -> np.ndarray:
        """Codes for images alone: int8 {-1, +1}, shape (n, n_bits)."""
        self._check_fitted()
        X = as_features(image, "image", self.image_dim_)
        return to_codes(self._encode_image(X), self.n_bits_, f"{self._name()}.encode_image",
                        self.zero_one_codes)

    def encode_text(self, text: Any) -> np.ndarray:
        """Codes for texts alone: int8 {-1, +1}, shape (n, n_bits)."""
        self._check_fitted()
        Y = as_features(text, "text", self.text_dim_)
        return to_codes(self._encode_text(Y), self.n_bits_, f"{self._name()}.encode_text",
                        self.zero_one_codes)

    def encode_pair(self, image: Any, text: Any) -> np.ndarray:
        """One unified code per image–text pair, for methods that learn one (out of sample)."""
        if not self.has_pair_encoder():
            raise NotImplementedError(f"method {self._name()!r} has no pair encoder")
        self._check_fitted()
        X = as_features(image, "image", self.image_dim_)
        Y = as_features(text, "text", self.text_dim_)
        if X.shape[0] != Y.shape[0]:
            raise InputError(f"image has {X.shape[0]} rows but text has {Y.shape[0]}; pairs must align")
        return to_codes(self._encode_pair(X, Y), self.n_bits_, f"{self._name()}.encode_pair",
                        self.zero_one_codes)

    def fit_report(self) -> dict[str, Any]:
        """What the record should say about this fit (e.g. epochs, estimated constants)."""
        return {}

    @classmethod
    def has_pair_encoder(cls) -> bool:
        return cls._encode_pair is not Hasher._encode_pair

    # --- what the harness asks a method about itself ---------------------------------------
    # The harness never lists method names: it asks these (see README, "Adding a method").

    #: Epoch parameters of training that runs before the method's own ``epochs`` (a teacher's,
    #: a generator's).  The GPU check scales them with ``epochs``; ``perf train`` sets them to
    #: a minimum (:meth:`setup_minimum`).  None by default: most methods have no such stage.
    setup_epochs: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def setup_minimum(cls) -> dict[str, Any]:
        """Parameter values that shrink the work before the first epoch to a minimum, for timings
        that leave it out: each of :attr:`setup_epochs` at 1.  A method adds whatever else sizes
        that work (a teacher's width, a sample count)."""
        return {name: 1 for name in cls.setup_epochs}

    def gpu_memory_bytes(self, n_train: int, image_dim: int, text_dim: int, n_bits: int) -> int:
        """About how much GPU memory a fit on ``n_train`` pairs holds, so that a cell waits for
        room before it starts (the harness adds the CUDA context's own workspace).  Here the
        training features in float32; a method that holds more on the device adds it."""
        return 4 * n_train * (image_dim + text_dim)

    # --- hooks for subclasses -----------------------------------------------------------
    def _fit(self, train: PairedFeatures, n_bits: int) -> None:
        raise NotImplementedError

    def _encode_image(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _encode_text(self, text: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _encode_pair(self, image: np.ndarray, text: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # --- helpers --------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not getattr(self, "fitted_", False):
            raise NotFittedError(f"method {self._name()!r} must be fitted before it can encode; call fit first")

    def _name(self) -> str:
        info = getattr(type(self), "info", None)
        return info.name if info is not None else type(self).__name__

    def _rng(self, offset: int = 0) -> np.random.Generator:
        """A numpy generator derived from ``seed`` (``offset`` separates independent streams)."""
        return np.random.default_rng([int(self.seed), int(offset)])
