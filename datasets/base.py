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
import inspect
import pkgutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
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


Resolver = Callable[..., DatasetSource]
_resolvers: dict[str, tuple[Resolver, str]] = {}
_loaded = {"builtins": False}
_NOT_DATASET_MODULES = {"base", "cache", "catalog", "filesource", "files", "generic", "protocols", "validation"}
FILE_SUFFIXES = (".npz", ".mat", ".h5", ".hdf5", ".h5py")  # --datasets path/to/own-features.npz


def register_dataset(name: str, summary: str) -> Callable[[Resolver], Resolver]:
    """Register a resolver ``f(data_dir: Path | None) -> DatasetSource`` under ``name``.

    A resolver may also accept the keyword arguments ``cache_dir`` (the cache folder for
    prepared data), ``options`` (``{"image": "FILE"}`` from ``NAME:image=FILE``) and
    ``spec`` (the name exactly as given, which its identity's ``name`` must be: the
    harness finds a cell's source by it); it gets them only when its signature names them.
    """

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


def parse_options(name: str, text: str) -> dict[str, str]:
    """``image=FILE`` (the part after ``NAME:``) as a dict."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise DatasetError(f"dataset {name!r}: options must look like NAME:KEY=VALUE, e.g. mirflickr25k:image=FILE")
    return {key.strip(): value.strip()}


def _accepts(fn: Callable[..., Any], keyword: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return keyword in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def resolve(name: str, data_dir: str | Path | None = None, *,
            cache_dir: str | Path | None | bool = None) -> DatasetSource:
    """Find and fingerprint a dataset's files (or fix its generator) without loading it.

    ``name`` is a registered dataset (``mirflickr25k``), a registered dataset with an
    option (``mirflickr25k:image=my-features.mat``), or the path of the user's own
    ``.npz`` / ``.mat`` / ``.h5`` file.  ``data_dir`` defaults to ``$CMHBENCH_DATA``;
    ``cache_dir`` (prepared data, file fingerprints; its ``datasets/`` subfolder is used)
    to :func:`cmhbench.config.default_cache_dir`, and ``cache_dir=False`` keeps
    everything in memory.  The source's ``identity()["name"]`` is ``name`` exactly as
    given.  A bad or missing file raises a one-line :class:`DatasetError` here, before
    anything runs.
    """
    _load_builtins()
    if data_dir is None:
        from cmhbench.config import default_data_dir

        data_dir = default_data_dir()
    data_path = Path(data_dir).expanduser() if data_dir is not None else None
    base, sep, rest = name.partition(":")
    if name in _resolvers or (sep and base in _resolvers):
        resolver, _ = _resolvers[name if name in _resolvers else base]
        kwargs: dict[str, Any] = {}
        if sep and name not in _resolvers:
            if not _accepts(resolver, "options"):
                raise DatasetError(f"dataset {base!r} takes no options (got {name!r})")
            kwargs["options"] = parse_options(base, rest)
        if _accepts(resolver, "spec"):
            kwargs["spec"] = name
        if _accepts(resolver, "cache_dir"):
            kwargs["cache_dir"] = cache_dir
        return resolver(data_path, **kwargs)
    if name.lower().endswith(FILE_SUFFIXES):
        from cmhbench.datasets.generic import resolve_file

        return resolve_file(name, data_path, cache_dir=cache_dir)
    names = sorted(_resolvers)
    close = difflib.get_close_matches(base, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise DatasetError(f"unknown dataset {name!r}{hint} (known: {', '.join(names)}; or the path of your own "
                       f"{' / '.join(FILE_SUFFIXES)} file)")
