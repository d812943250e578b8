"""The grid: what to run (a :class:`GridSpec`) and its units of work (:class:`~cmhbench.schema.Cell`).

A grid spec is methods × datasets × bits × seeds × database codings, plus parameters and
named variants; :func:`build_cells` resolves it into cells, each with a content key
(:mod:`cmhbench.schema` defines the cell, its key and the defaults).

Keys hash parameters, not code, so each method declares a version (see
:func:`cmhbench.methods.registry.versions`), keyed with its teachers' versions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from cmhbench.datasets import DatasetSource
from cmhbench.datasets.features import FEATURES
from cmhbench.errors import UserError
from cmhbench.methods import registry
from cmhbench.schema import DATABASE_CODINGS, DEFAULT_CODING, DEFAULT_FEATURES, DEFAULT_PRESET, DEFAULT_SPLIT, Cell

MAX_BITS = 4096
MAX_SEED = 2**32 - 1  # numpy's legacy seeding and torch.manual_seed both take it
VARIANT_KEYS = ("base", "tuned")  # a variant's table entries that are not hyper-parameters


class GridError(UserError, ValueError):
    """A grid that cannot be built (bad variant, bits, seeds, coding)."""


@dataclass
class GridSpec:
    """Methods × datasets × bits × seeds × database codings, plus parameters and variants."""

    methods: list[str]
    datasets: list[str] = field(default_factory=lambda: ["synthetic"])
    bits: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    seeds: list[int] = field(default_factory=lambda: [0])
    preset: str = DEFAULT_PRESET
    protocol: str | None = None
    database_coding: list[str] = field(default_factory=lambda: [DEFAULT_CODING])
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


def build_cells(spec: GridSpec, sources: Mapping[str, DatasetSource], split: str = DEFAULT_SPLIT) -> list[Cell]:
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
