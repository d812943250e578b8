"""A dataset read from files: located, fingerprinted, validated and prepared once.

:class:`FileSource` is what every file-backed dataset resolves to (the named benchmarks
and the user's own file).  Resolution

1. fingerprints every source file (sha256, memoised in the cache folder);
2. if the prepared cache holds this content, reads its metadata and stops — cheap;
3. otherwise reads every array once, validates it (keys, row counts, NaN/Inf, labels,
   index arrays) and writes the prepared arrays (float32 features, uint8 multi-hot
   labels) to the cache, so that any bad file fails *before* a cell runs, with a
   one-line :class:`DatasetError`.

``load`` then memory-maps the prepared arrays (seconds even for 190k rows), and
``split`` computes — or reads back from the cache — a protocol's index sets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cmhbench.datasets import protocols as P
from cmhbench.datasets.base import Dataset, DatasetError, DatasetSource, Split
from cmhbench.datasets.cache import Prepared, PreparedWriter, cache_root, content_id, file_fingerprint
from cmhbench.datasets.files import ArrayFile, one_line, where
from cmhbench.methods.base import available_memory_bytes

MAX_CLASSES = 100_000  # class ids are one-hot coded: a stray huge id would ask for terabytes

LOADER_VERSION = 1  # bump when preparation changes: identities, keys and cache folders change with it
MODALITIES = ("image", "text", "labels")
INDEX_KEYS = ("query_idx", "train_idx", "database_idx")

_memory: dict[str, tuple[dict[str, Any], dict[str, np.ndarray], dict[str, np.ndarray]]] = {}


@dataclass(frozen=True)
class Part:
    """One array of one file; a modality is one or more parts stacked row-wise."""

    path: Path
    key: str


@dataclass
class Layout:
    """Where a dataset's arrays are and how to read its labels."""

    image: tuple[Part, ...]
    text: tuple[Part, ...]
    labels: tuple[Part, ...]
    class_base: int | None = None  # class-id labels: the first class id (Wikipedia: 1); None = 0
    given: dict[str, Part] = field(default_factory=dict)  # a user file's own split

    def parts(self) -> list[tuple[str, Part]]:
        out = [(m, p) for m in MODALITIES for p in getattr(self, m)]
        return out + sorted(self.given.items())


def _first_repeat(rows: np.ndarray) -> int:
    ordered = np.sort(rows)
    return int(ordered[np.flatnonzero(ordered[1:] == ordered[:-1])[0]])


class FileSource(DatasetSource):
    """A file-backed dataset (see the module docstring for what resolution does)."""

    def __init__(self, *, name: str, spec: str, layout: Layout, protocols: tuple[str, ...], default_protocol: str,
                 sizes: P.Sizes | None = None, cache_dir: str | Path | None | bool = None,
                 own_file: bool = False, allow_overlap: bool = False) -> None:
        self.name = name
        self.allow_overlap = allow_overlap  # a given split's queries may sit in its database/training rows
        self.own_file = own_file  # the user's file: its name is the dataset's, messages need not repeat it
        self.spec = spec
        self.layout = layout
        self.protocols = protocols
        self.default_protocol = default_protocol
        self.sizes = sizes or P.Sizes()
        self._checked: dict[str, str | None] = {}  # fixed protocol -> why its split cannot be scored
        self.cache_root: Path | None = cache_root(cache_dir) if cache_dir is not False else None
        digests: list[str] = []
        arrays: dict[str, list[str]] = {}
        for role, part in layout.parts():
            if not part.path.is_file():
                raise DatasetError(f"{name}: {where(part.path)} does not exist")
            try:
                digest = file_fingerprint(part.path, self.cache_root)
            except OSError as exc:
                raise DatasetError(f"{name}: {where(part.path)}: cannot be read ({one_line(exc.strerror or exc)})") \
                    from None
            if digest not in digests:
                digests.append(digest)
            arrays.setdefault(role, []).append(f"{part.key}@{digests.index(digest)}")
        # content only (keys and file hashes, not paths): moving or renaming a file keeps the identity
        self._identity = {"name": spec, "dataset": name, "loader": LOADER_VERSION,
                          "arrays": {role: "+".join(keys) for role, keys in arrays.items()}, "sha256": digests}
        self.content = content_id({k: v for k, v in self._identity.items() if k != "name"})
        self.meta = self._resolve_meta()

    # -- identity, metadata, cache ----------------------------------------------------

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    @property
    def folder(self) -> Path | None:
        if self.cache_root is None:
            return None
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(self.name).name)[:60]
        return self.cache_root / f"{safe}-{self.content}"

    def _prepared(self) -> Prepared | None:
        folder = self.folder
        if folder is None:
            return None
        prepared = Prepared(folder)
        meta = prepared.meta()
        return prepared if meta is not None and meta.get("content") == self.content else None

    def _resolve_meta(self) -> dict[str, Any]:
        prepared = self._prepared()
        if prepared is not None:
            return prepared.meta() or {}
        meta, _, _ = self._prepare()
        return meta

    @property
    def n(self) -> int:
        return int(self.meta["n"])

    @property
    def n_labelled(self) -> int:
        return int(self.meta["n"]) - int(self.meta["unlabelled"])

    # -- preparation ------------------------------------------------------------------

    def _prepare(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Read, validate and convert every array; store them in the cache when there is one."""
        if self.content in _memory:
            return _memory[self.content]
        files: dict[Path, ArrayFile] = {}

        def opened(part: Part) -> ArrayFile:
            if part.path not in files:
                files[part.path] = ArrayFile(part.path, "" if self.own_file else self.name)
            return files[part.path]

        shapes = self._check_headers(opened)
        n = sum(shapes["labels"])
        folder = self.folder
        writer = PreparedWriter(folder) if folder is not None else None
        try:
            self._check_room(opened, n, writer)
            arrays = {m: self._read_features(m, opened, writer, n) for m in ("image", "text")}
            labels = self._read_labels(opened)
            if writer is not None and writer.active:
                out = writer.array("labels", labels.shape, np.uint8)
                out[:] = labels
                labels = out
            arrays["labels"] = labels
            given = self._read_given(opened, n)
            unlabelled = int((~labels.any(axis=1)).sum())
            if unlabelled == n:
                raise DatasetError(f"{self.name}: no item has a label ({self._describe('labels')})")
            meta = {
                "content": self.content, "identity": self._identity, "n": n, "unlabelled": unlabelled,
                "part_rows": {m: shapes[m] for m in MODALITIES},
                "shapes": {m: list(a.shape) for m, a in arrays.items()},
                "label_counts": [int(c) for c in labels.sum(axis=0)],
            }
            if writer is not None and writer.active:
                writer.save_given(given)
                if writer.commit(meta, arrays):
                    prepared = Prepared(folder)
                    return meta, prepared.arrays(), prepared.given()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        _memory.clear()  # no cache folder: keep the last prepared dataset of this process in memory
        _memory[self.content] = (meta, arrays, given)
        return meta, arrays, given

    def _check_room(self, opened: Any, n: int, writer: PreparedWriter | None) -> None:
        """Refuse, before anything is allocated, a dataset whose declared shapes do not fit
        the cache folder's free space (a memory map on a full disk ends in a bus error) or,
        without a cache, the free memory."""
        widths = 0
        for modality in ("image", "text"):
            part = getattr(self.layout, modality)[0]
            shape = opened(part).shapes[part.key]
            widths += shape[1] if len(shape) == 2 else 1
        need = n * widths * np.dtype(np.float32).itemsize
        if writer is not None and writer.active:
            free, where_ = writer.free_bytes(), f"the cache folder {writer.folder.parent}"
            hint = "free space there or give another --cache-dir"
        else:
            free, where_, hint = available_memory_bytes(), "memory", "use a smaller file"
        if free is not None and need > free:
            raise DatasetError(f"{self.name}: its declared shapes ({n:,} rows, {widths:,} feature columns) need "
                               f"{need / 2**30:,.1f} GiB in {where_}, but only {free / 2**30:,.1f} GiB are free; {hint}")

    def _describe(self, modality: str) -> str:
        parts = getattr(self.layout, modality)
        keys = "+".join(p.key for p in parts)
        files = sorted({p.path for p in parts})
        return f"{keys} in " + ", ".join(where(f) for f in files)

    def _check_headers(self, opened: Any) -> dict[str, list[int]]:
        """Keys present, 2-D features, equal widths across parts, equal row counts."""
        keys: dict[Path, list[str]] = {}
        for _, part in self.layout.parts():
            keys.setdefault(part.path, []).append(part.key)
        for path, wanted in keys.items():  # one message naming every missing key of a file
            opened(Part(path, wanted[0])).require(*wanted)
        rows: dict[str, list[int]] = {}
        for modality in MODALITIES:
            rows[modality] = []
            width = None
            for part in getattr(self.layout, modality):
                af = opened(part)
                af.require(part.key)
                shape = af.shapes[part.key]
                if modality != "labels" and len(shape) > 2:
                    raise DatasetError(f"{self.name}: {where(part.path)}: {part.key} has shape {shape}; "
                                       f"{modality} features must be a rows × dimensions matrix")
                if len(shape) > 2 or (modality == "labels" and len(shape) == 2 and 0 in shape):
                    raise DatasetError(f"{self.name}: {where(part.path)}: {part.key} has shape {shape}; labels "
                                       "must be rows × labels (0/1) or one class id per row")
                cols = shape[1] if len(shape) == 2 else 1
                if modality != "labels" and cols == 0:
                    raise DatasetError(f"{self.name}: {where(part.path)}: {part.key} has shape {shape}; "
                                       f"{modality} features need at least one column")
                if width is not None and cols != width:
                    raise DatasetError(f"{self.name}: {modality} parts differ in width: {self._describe(modality)} "
                                       f"have {width} and {cols} columns")
                width = cols
                rows[modality].append(shape[0])
        totals = {m: sum(r) for m, r in rows.items()}
        if len(set(totals.values())) > 1:
            detail = ", ".join(f"{m} ({self._describe(m)}) has {totals[m]:,} rows" for m in MODALITIES)
            raise DatasetError(f"{self.name}: row counts differ: {detail}")
        if totals["labels"] == 0:
            raise DatasetError(f"{self.name}: {self._describe('labels')} has no rows")
        return rows

    def _read_features(self, modality: str, opened: Any, writer: PreparedWriter | None, n: int) -> np.ndarray:
        parts = getattr(self.layout, modality)
        first = opened(parts[0]).shapes[parts[0].key]
        width = first[1] if len(first) == 2 else 1
        out = writer.array(modality, (n, width), np.float32) if writer is not None else np.zeros((n, width), np.float32)
        row, nan, inf, bad_rows = 0, 0, 0, 0
        for part in parts:
            af = opened(part)
            for start, block in af.blocks(part.key):
                block = np.asarray(block)
                if block.ndim == 1:
                    block = block[:, None]
                if block.dtype.kind not in "biuf":
                    raise DatasetError(f"{self.name}: {where(part.path)}: {part.key} is not numeric ({block.dtype})")
                target = out[row + start: row + start + block.shape[0]]
                with np.errstate(over="ignore", invalid="ignore"):
                    target[:] = block
                finite = np.isfinite(target)
                if not finite.all():
                    nan += int(np.isnan(target).sum())
                    inf += int(np.isinf(target).sum())
                    bad_rows += int((~finite.all(axis=1)).sum())
            row += af.shapes[part.key][0]
            af.forget(part.key)
        if nan or inf:
            beyond = " (Inf counts values beyond float32's range too)" if inf else ""
            raise DatasetError(f"{self.name}: {modality} features ({self._describe(modality)}) contain {nan:,} NaN "
                               f"and {inf:,} Inf values in {bad_rows:,} rows{beyond}")
        return out

    def _read_labels(self, opened: Any) -> np.ndarray:
        blocks = []
        for part in self.layout.labels:
            array = np.asarray(opened(part).read(part.key))
            if array.dtype.kind not in "biuf":
                raise DatasetError(f"{self.name}: {where(part.path)}: labels {part.key} are not numeric")
            blocks.append(array.reshape(-1, 1) if array.ndim == 1 else array)
        raw = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
        desc = self._describe("labels")
        if raw.dtype.kind == "f":
            bad = ~np.isfinite(raw)
            if bad.any():
                raise DatasetError(f"{self.name}: labels ({desc}) contain {int(bad.sum()):,} NaN/Inf values "
                                   f"(in {int(bad.any(axis=1).sum()):,} rows)")
        if raw.shape[1] > 1:  # multi-hot
            odd = (raw != 0) & (raw != 1)
            if odd.any():
                example = raw[odd].flat[0]
                raise DatasetError(f"{self.name}: labels ({desc}) must be 0/1 multi-hot; {int(odd.sum()):,} values are "
                                   f"not (e.g. {example:g})")
            return (raw != 0).astype(np.uint8)
        ids = raw[:, 0]
        if not np.all(ids == np.round(ids)):
            raise DatasetError(f"{self.name}: labels ({desc}) hold one class id per row and must be whole numbers")
        ids = ids.astype(np.int64)
        base = self.layout.class_base if self.layout.class_base is not None else 0
        if int(ids.min()) < base:
            raise DatasetError(f"{self.name}: labels ({desc}): class ids must be ≥ {base}, found {int(ids.min())}")
        classes = int(ids.max()) - base + 1
        if classes > MAX_CLASSES:
            raise DatasetError(f"{self.name}: labels ({desc}): class id {int(ids.max()):,} would make {classes:,} "
                               f"classes (at most {MAX_CLASSES:,}); number the classes from {base}")
        onehot = np.zeros((ids.size, classes), dtype=np.uint8)
        onehot[np.arange(ids.size), ids - base] = 1
        return onehot

    def _read_given(self, opened: Any, n: int) -> dict[str, np.ndarray]:
        given = {}
        for key, part in self.layout.given.items():
            af = opened(part)
            given[key] = P.check_indices(part.key, af.read(part.key), n, f"{self.name}: {where(part.path)}")
        return given

    def _check_given_disjoint(self, given: dict[str, np.ndarray]) -> None:
        """Refuse repeated rows in an index array and queries that are also database or
        training rows (train = database stays allowed: most protocols train on the database)."""
        allow = f"; or accept it on purpose with --datasets '{self.spec}:overlap=allow'"
        for key, rows in given.items():
            distinct = np.unique(rows)
            if distinct.size != rows.size:
                raise DatasetError(f"{self.name}: {key} repeats {rows.size - distinct.size:,} row numbers "
                                   f"(e.g. row {_first_repeat(rows)}){allow}")
        query = given["query_idx"]
        for key in ("database_idx", "train_idx"):
            if key in given:
                shared = np.intersect1d(query, given[key])
                if shared.size:
                    raise DatasetError(f"{self.name}: {shared.size:,} rows are in both query_idx and {key} "
                                       f"(e.g. row {int(shared[0])}): a query would retrieve itself{allow}")

    # -- the DatasetSource contract ----------------------------------------------------

    def load(self) -> Dataset:
        prepared = self._prepared()
        if prepared is not None:
            arrays = prepared.arrays()
        else:
            _, arrays, _ = self._prepare()
        return Dataset(name=self.name, image=arrays["image"], text=arrays["text"], labels=arrays["labels"])

    def _given(self) -> dict[str, np.ndarray]:
        prepared = self._prepared()
        return prepared.given() if prepared is not None else self._prepare()[2]

    def check_protocol(self, protocol: str | None) -> str:
        protocol = super().check_protocol(protocol)
        problem = P.fit_problem(protocol, self.n, self.n_labelled, self.sizes)
        if problem is None and protocol in P.FIXED:  # fixed rows: check the split itself, once
            problem = self._fixed_split_problem(protocol)
        if problem:
            raise DatasetError(f"{self.spec}: protocol {protocol!r} does not fit: {problem}; store your own "
                               "split in the file (query_idx, optionally train_idx and database_idx) and run "
                               "with --protocol given, or pick a protocol that fits with --protocol")
        return protocol

    def _fixed_split_problem(self, protocol: str) -> str | None:
        """Why a fixed split cannot be scored (no labelled query, too few training pairs)."""
        if protocol in self._checked:
            return self._checked[protocol]
        split = self._compute_split(self.load(), protocol, 0)
        problem = None
        if split.query.size == 0:
            problem = "none of its query rows has a label, so no query can be scored"
        elif split.train.size < 2:
            problem = f"it leaves {split.train.size} training pairs (at least 2 are needed)"
        elif split.database.size == 0:
            problem = "its database is empty"
        self._checked[protocol] = problem
        return problem

    def split(self, dataset: Dataset, protocol: str, seed: int) -> Split:
        protocol = self.check_protocol(protocol)
        if dataset.n != self.n:
            raise DatasetError(f"{self.spec}: split asked for a dataset of {dataset.n:,} rows, this one has {self.n:,}")
        seed_key = seed if protocol in P.SEEDED else 0
        prepared = self._prepared()
        if prepared is not None:
            cached = prepared.load_split(protocol, P.SPLIT_VERSION, seed_key)
            if cached is not None:
                return Split(protocol, query=cached["query"], train=cached["train"], database=cached["database"],
                             notes=cached["notes"])
        split = self._compute_split(dataset, protocol, seed)
        if prepared is not None:
            prepared.save_split(protocol, P.SPLIT_VERSION, seed_key,
                                {"query": split.query, "train": split.train, "database": split.database}, split.notes)
        return split

    def _compute_split(self, dataset: Dataset, protocol: str, seed: int) -> Split:
        labels, s = dataset.labels, self.sizes
        if protocol == "djsrh":
            return P.djsrh_split(labels, seed, s.djsrh_query, s.djsrh_train)
        if protocol == "dcmh":
            return P.dcmh_split(labels, seed, s.dcmh_query, s.dcmh_train)
        if protocol == "ucch":
            return P.last_rows_split("ucch", labels, s.ucch_query)
        if protocol == "wiki":
            n_train = int(self.meta["part_rows"]["labels"][0])
            rows = np.arange(self.n)
            return P.fixed_split("wiki", labels, query=rows[n_train:], train=rows[:n_train], database=rows[:n_train])
        if protocol == "given":
            given = self._given()
            if not self.allow_overlap:
                self._check_given_disjoint(given)
            return P.fixed_split("given", labels, query=given["query_idx"], train=given.get("train_idx"),
                                 database=given.get("database_idx"))
        raise DatasetError(f"{self.spec}: protocol {protocol!r} has no rule")  # pragma: no cover
