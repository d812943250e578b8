"""Dataset and split types, and the dataset registry.

A :class:`DatasetSource` is a dataset that has been *resolved* — its files found and
fingerprinted, or its generator's parameters fixed — but not loaded.  Its ``identity``
goes into every cell key, so the harness can key, skip and resume cells without
loading anything, and a missing or broken file fails before any cell runs.
``load`` then gives the arrays (:class:`Dataset`) and ``split`` a protocol's
query / train / database indices for a seed.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import pkgutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cmhbench.methods.base import PairedFeatures


class DatasetError(Exception):
    """A dataset that cannot be resolved or loaded; the message names file, path and field."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Paired features and multi-hot labels of every item of a dataset."""

    name: str
    image: np.ndarray  # (n, d_x) float32
    text: np.ndarray  # (n, d_y) float32
    labels: np.ndarray  # (n, c) uint8 multi-hot

    def __post_init__(self) -> None:
        n = self.image.shape[0]
        if self.text.shape[0] != n or self.labels.shape[0] != n:
            raise DatasetError(
                f"{self.name}: image has {n} rows, text {self.text.shape[0]}, labels {self.labels.shape[0]}"
            )

    @property
    def n(self) -> int:
        return self.image.shape[0]

    def paired(self, rows: np.ndarray) -> PairedFeatures:
        """The unlabelled training view of some rows: what ``fit`` receives."""
        return PairedFeatures(self.image[rows], self.text[rows])


@dataclass(frozen=True, eq=False)
class Split:
    """Row indices of the query, training and database sets (each ascending)."""

    protocol: str
    query: np.ndarray
    train: np.ndarray
    database: np.ndarray

    def __post_init__(self) -> None:
        for part in ("query", "train", "database"):
            rows = np.unique(np.asarray(getattr(self, part), dtype=np.int64))
            object.__setattr__(self, part, rows)

    def digest(self) -> str:
        """A hash of the three index sets: recorded with every result."""
        h = hashlib.blake2b(digest_size=12)
        for part in (self.query, self.train, self.database):
            h.update(len(part).to_bytes(8, "little"))
            h.update(part.tobytes())
        return h.hexdigest()

    def sizes(self) -> dict[str, int]:
        return {"query": len(self.query), "train": len(self.train), "database": len(self.database)}


def random_split(n: int, n_query: int, n_train: int, seed: int, protocol: str) -> Split:
    """Queries drawn at random; database = the rest; training pairs drawn from the database."""
    if not (0 < n_query < n and 0 < n_train <= n - n_query):
        raise DatasetError(f"{protocol}: {n} items cannot give {n_query} queries and {n_train} training pairs")
    order = np.random.default_rng(seed).permutation(n)
    query, rest = order[:n_query], order[n_query:]
    return Split(protocol, query=query, train=rest[:n_train], database=rest)


class DatasetSource(ABC):
    """A resolved dataset: cheap to create, identity known, arrays loaded on demand."""

    name: str
    default_protocol: str
    protocols: tuple[str, ...]

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """JSON-able identity for cell keys: name plus a content fingerprint or generator parameters."""

    @abstractmethod
    def load(self) -> Dataset:
        """Read (or generate) the arrays."""

    @abstractmethod
    def split(self, dataset: Dataset, protocol: str, seed: int) -> Split:
        """The query / train / database split of ``protocol`` for ``seed``."""

    def check_protocol(self, protocol: str | None) -> str:
        protocol = protocol or self.default_protocol
        if protocol not in self.protocols:
            raise DatasetError(
                f"dataset {self.name!r} has no protocol {protocol!r} (protocols: {', '.join(self.protocols)})"
            )
        return protocol


Resolver = Callable[..., DatasetSource]
_resolvers: dict[str, tuple[Resolver, str]] = {}
_loaded = {"builtins": False}
_NOT_DATASET_MODULES = {"base"}


def register_dataset(name: str, summary: str) -> Callable[[Resolver], Resolver]:
    """Register a resolver ``f(data_dir: Path | None) -> DatasetSource`` under ``name``."""

    def decorate(fn: Resolver) -> Resolver:
        _resolvers[name] = (fn, summary)
        return fn

    return decorate


def _load_builtins() -> None:
    if _loaded["builtins"]:
        return
    _loaded["builtins"] = True
    import cmhbench.datasets as package

    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_") and module.name not in _NOT_DATASET_MODULES:
            importlib.import_module(f"cmhbench.datasets.{module.name}")


def available() -> dict[str, str]:
    """Registered dataset names with a one-line summary each."""
    _load_builtins()
    return {name: summary for name, (_, summary) in sorted(_resolvers.items())}


def resolve(name: str, data_dir: str | Path | None = None) -> DatasetSource:
    """Find and fingerprint a dataset's files (or fix its generator) without loading it."""
    _load_builtins()
    if name not in _resolvers:
        names = sorted(_resolvers)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DatasetError(f"unknown dataset {name!r}{hint} (known: {', '.join(names)})")
    resolver, _ = _resolvers[name]
    return resolver(Path(data_dir) if data_dir is not None else None)
