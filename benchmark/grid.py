"""The grid: what to run (a :class:`GridSpec`) and its units of work (:class:`Cell`).

A cell is one method (or named variant) with its resolved hyper-parameters, on one
dataset identity and protocol, at one bit length, seed and database coding.  Its key
hashes exactly those fields and the record schema version, so finished work is found
again by content: the same cell asked for twice is computed once, and any change to a
hyper-parameter, a data file or the schema gives a new key.

Keys hash parameters, not code, so each method declares a version (see
:func:`cmhbench.methods.registry.versions`), keyed with its teachers' versions.  Fields
added after the first results were stored enter the key only when they differ from
what those results implied (versions all 1, ``raw`` features), so stored folders stay
valid.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from cmhbench.datasets import DatasetSource
from cmhbench.datasets.features import DEFAULT_FEATURES, FEATURES
from cmhbench.errors import UserError
from cmhbench.methods import registry

SCHEMA_VERSION = 1
MAX_BITS = 4096
MAX_SEED = 2**32 - 1  # numpy's legacy seeding and torch.manual_seed both take it
DATABASE_CODINGS = ("modality", "unified")
SPLIT_ROLES = ("test", "validation")
VARIANT_KEYS = ("base", "tuned")  # a variant's table entries that are not hyper-parameters


class GridError(UserError, ValueError):
    """A grid that cannot be built (bad variant, bits, seeds, coding)."""


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Cell:
    method: str  # the row name: a registered method or a named variant
    base: str  # the registered method that runs
    params: Mapping[str, Any]  # resolved hyper-parameters (no seed, device, cache)
    dataset: Mapping[str, Any]  # the dataset's identity (name + fingerprint or generator)
    protocol: str
    bits: int
    seed: int
    database_coding: str
    preset: str = field(default="paper", compare=False)  # recorded, not keyed: params say it all
    versions: Mapping[str, int] = field(default_factory=dict)  # the method's and its teachers' versions
    features: str = DEFAULT_FEATURES  # preprocessing of the features (cmhbench.datasets.features)
    split: str = "test"  # "validation": scored on the validation split (tuning trials)
    tuned: Mapping[str, Any] | None = field(default=None, compare=False)  # where tuned values came from

    def __post_init__(self) -> None:
        if self.split not in SPLIT_ROLES:
            raise GridError(f"split must be one of {', '.join(SPLIT_ROLES)}, got {self.split!r}")

    @property
    def dataset_name(self) -> str:
        return str(self.dataset["name"])

    def key_fields(self) -> dict[str, Any]:
        fields = asdict(self)
        fields.pop("preset")
        fields.pop("tuned")
        if fields["split"] == "test":  # test cells keep the keys they had before validation splits existed
            fields.pop("split")
        if all(v == 1 for v in self.versions.values()):
            fields.pop("versions")  # keys of the time before method versions
        if self.features == DEFAULT_FEATURES:
            fields.pop("features")  # keys of the time before feature preprocessing
        fields["schema_version"] = SCHEMA_VERSION
        return fields

    @property
    def key(self) -> str:
        return hashlib.sha256(canonical_json(self.key_fields()).encode()).hexdigest()[:20]

    @property
    def label(self) -> str:
        coding = "" if self.database_coding == "modality" else f"/{self.database_coding}"
        features = "" if self.features == DEFAULT_FEATURES else f"/{self.features}"
        role = "" if self.split == "test" else f"/{self.split}"
        return f"{self.method}/{self.dataset_name}{features}/{self.bits}b/s{self.seed}{coding}{role}"

    def command(self) -> str:
        """A ``cmhbench run`` command line that recomputes this cell's numbers ("" for a
        validation-split cell: those come from ``cmhbench tune``, whose argv the record keeps)."""
        if self.split != "test":
            return ""
        params = " ".join(f"--param {self.base}.{k}={canonical_json(v)}" for k, v in sorted(self.params.items()))
        parts = [
            f"cmhbench run --methods {self.base} --datasets {self.dataset_name} --protocol {self.protocol}",
            f"--bits {self.bits} --seeds {self.seed} --database-coding {self.database_coding}",
            f"--preset {self.preset}",
            "" if self.features == DEFAULT_FEATURES else f"--features {self.features}",
            params,
        ]
        return " ".join(p for p in parts if p)


@dataclass
class GridSpec:
    """Methods × datasets × bits × seeds × database codings, plus parameters and variants."""

    methods: list[str]
    datasets: list[str] = field(default_factory=lambda: ["synthetic"])
    bits: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    seeds: list[int] = field(default_factory=lambda: [0])
    preset: str = "paper"
    protocol: str | None = None
    database_coding: list[str] = field(default_factory=lambda: ["modality"])
    features: str = DEFAULT_FEATURES
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # row or base name -> values
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"base": ..., values}

    def validate(self) -> None:
        if not self.methods:
            raise GridError("no methods to run")
        for name, values in (("bits", self.bits), ("seeds", self.seeds)):
            if not values:
                raise GridError(f"no {name} given")
        for b in self.bits:
            if isinstance(b, bool) or not isinstance(b, int) or b < 1:
                raise GridError(f"bits must be positive integers, got {b!r}")
            if b > MAX_BITS:
                raise GridError(f"bits must be at most {MAX_BITS}, got {b}")
        for s in self.seeds:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise GridError(f"seeds must be non-negative integers, got {s!r}")
            if s > MAX_SEED:
                raise GridError(f"seeds must be at most {MAX_SEED} (numpy and torch seeds are 32-bit), got {s}")
        for coding in self.database_coding:
            if coding not in DATABASE_CODINGS:
                raise GridError(f"database coding must be one of {', '.join(DATABASE_CODINGS)}, got {coding!r}")
        if self.features not in FEATURES:
            raise GridError(f"features must be one of {', '.join(FEATURES)}, got {self.features!r}")
        for name, variant in self.variants.items():
            if "base" not in variant:
                raise GridError(f"variant {name!r} needs a 'base' method")
            if name in registry.available():
                raise GridError(f"variant {name!r} has the name of a registered method; choose another")
            if not isinstance(variant.get("tuned", {}), dict):
                raise GridError(f"variant {name!r}: 'tuned' must be a table (where its values came from)")
        known = set(self.methods) | set(self.variants) | {self.base_of(m) for m in self.methods}
        unused = sorted(set(self.params) - known)
        if unused:
            raise GridError(f"--param/params name methods that are not in the grid: {', '.join(unused)}")

    def base_of(self, method: str) -> str:
        return str(self.variants[method]["base"]) if method in self.variants else method

    def user_params(self, method: str) -> dict[str, Any]:
        """The values a row sets: the base method's --param values, then the variant's, then the row's."""
        base = self.base_of(method)
        values = dict(self.params.get(base, {}))
        if method in self.variants:
            values.update({k: v for k, v in self.variants[method].items() if k not in VARIANT_KEYS})
            values.update(self.params.get(method, {}))
        return values

    def check_methods(self) -> None:
        """Raise (with a suggestion) for unknown methods or bad parameter values."""
        for method in self.methods:
            base = self.base_of(method)
            registry.get(base)
            registry.resolve_params(base, preset=self.preset, params=self.user_params(method))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_cells(spec: GridSpec, sources: Mapping[str, DatasetSource], split: str = "test") -> list[Cell]:
    """Every cell of the grid, in a stable order (datasets, methods, bits, seeds, codings);
    ``split="validation"`` gives the tuning trials' cells, scored on the validation split."""
    spec.validate()
    spec.check_methods()
    cells = []
    for dataset in spec.datasets:
        source = sources[dataset]
        protocol = source.check_protocol(spec.protocol)
        identity = source.identity()
        for method in spec.methods:
            base = spec.base_of(method)
            params = registry.resolve_params(base, dataset=source.name, preset=spec.preset,
                                             params=spec.user_params(method))
            tuned = spec.variants.get(method, {}).get("tuned")
            versions = registry.versions(base)
            for bits in spec.bits:
                for seed in spec.seeds:
                    for coding in spec.database_coding:
                        cells.append(Cell(method, base, params, identity, protocol, bits, seed, coding, spec.preset,
                                          versions=versions, features=spec.features, split=split,
                                          tuned=tuned))
    return cells
