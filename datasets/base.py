"""Dataset and split types: what every dataset module builds and the harness consumes.

A :class:`DatasetSource` is a dataset that has been *resolved* — its files found and
fingerprinted, or its generator's parameters fixed — but not loaded.  Its ``identity``
goes into every cell key, so the harness can key, skip and resume cells without
loading anything, and a missing or broken file fails before any cell runs.
``load`` then gives the arrays (:class:`Dataset`) and ``split`` a protocol's
query / train / database indices for a seed.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cmhbench.errors import UserError
from cmhbench.methods.base import PairedFeatures


class DatasetError(UserError):
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
    """Row indices of the query, training and database sets (each ascending).

    ``notes`` reports what the protocol did beyond its plain rule (label-less items, a
    per-label draw that fell short, a top-up); they are not part of the digest.
    """

    protocol: str
    query: np.ndarray
    train: np.ndarray
    database: np.ndarray
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for part in ("query", "train", "database"):
            object.__setattr__(self, part, sorted_unique(getattr(self, part)))

    def digest(self) -> str:
        """A hash of the three index sets: recorded with every result."""
        h = hashlib.blake2b(digest_size=12)
        for part in (self.query, self.train, self.database):
            h.update(len(part).to_bytes(8, "little"))
            h.update(part.tobytes())
        return h.hexdigest()

    def sizes(self) -> dict[str, int]:
        return {"query": len(self.query), "train": len(self.train), "database": len(self.database)}


def sorted_unique(rows: Any) -> np.ndarray:
    """Ascending distinct int64 row numbers (``np.unique`` by sorting: its hashing path is slow on 10⁵ rows)."""
    rows = np.sort(np.asarray(rows, dtype=np.int64).reshape(-1))
    if rows.size > 1:
        rows = rows[np.concatenate(([True], rows[1:] != rows[:-1]))]
    return rows


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
