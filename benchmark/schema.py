"""What a stored result is: a cell (its fields, defaults and content key) and the record written for it.

One definition of each: the runner builds a :class:`Record` for a :class:`Cell`, the store
validates and flattens what :data:`CELL_TYPES` and the defaults below say, grids build cells,
leaderboards fill the defaults of old records from here.  A leaf module (it imports nothing
from cmhbench), so the store and the datasets can use it without importing the harness.

A record on disk is the JSON of :meth:`Record.to_json`: every field that is set, sorted keys.
Fields added after results were stored are read with the defaults below (a record without
``cell.features`` is a ``raw`` cell, without ``cell.split`` a ``test`` cell, without
``cell.versions`` a cell of version 1 of each method), so every stored folder stays readable.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Mapping

SCHEMA_VERSION = 1  # part of every key: changing it recomputes every stored cell
DEFAULT_FEATURES = "raw"  # the files as given (cmhbench.datasets.features lists the others)
SPLIT_ROLES = ("test", "validation")  # validation: a tuning trial's cell, never a leaderboard's
DEFAULT_SPLIT = SPLIT_ROLES[0]
DATABASE_CODINGS = ("modality", "unified")
DEFAULT_CODING = DATABASE_CODINGS[0]
DEFAULT_PRESET = "paper"

#: The cell fields every record must hold, with their JSON types (the store refuses a record without them).
CELL_TYPES: dict[str, type] = {"method": str, "base": str, "protocol": str, "database_coding": str, "bits": int,
                               "seed": int}


def canonical_json(obj: Any) -> str:
    """The one JSON spelling of ``obj`` that keys hash (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class KeyRule:
    """How one cell field enters the cell's key: always, never, or unless its value is the one
    that results stored before the field existed implied (so their keys stay valid)."""

    omitted: Callable[[Any], bool]  # True: the value stays out of the key
    why: str

    @classmethod
    def always(cls) -> KeyRule:
        return cls(lambda value: False, "defines the result")

    @classmethod
    def never(cls, why: str) -> KeyRule:
        return cls(lambda value: True, why)

    @classmethod
    def unless_equal(cls, default: Any, why: str) -> KeyRule:
        return cls(lambda value: value == default, why)


def _all_version_one(versions: Mapping[str, int]) -> bool:
    return all(v == 1 for v in versions.values())


#: Every field of :class:`Cell` and how it enters the key.  A field added to ``Cell`` needs its
#: line here (importing this module fails until it has one): a new field that entered every key
#: would make every stored cell look new, and all of them be computed again.
CELL_KEY: dict[str, KeyRule] = {
    "method": KeyRule.always(),
    "base": KeyRule.always(),
    "params": KeyRule.always(),
    "dataset": KeyRule.always(),
    "protocol": KeyRule.always(),
    "bits": KeyRule.always(),
    "seed": KeyRule.always(),
    "database_coding": KeyRule.always(),
    "preset": KeyRule.never("a name for values that params holds resolved"),
    "tuned": KeyRule.never("where tuned values came from; params holds the values"),
    "versions": KeyRule(_all_version_one, "every version 1: the keys of the time before method versions"),
    "features": KeyRule.unless_equal(DEFAULT_FEATURES, "the keys of the time before feature preprocessing"),
    "split": KeyRule.unless_equal(DEFAULT_SPLIT, "test cells keep the keys of the time before validation splits"),
}


@dataclass(frozen=True)
class Cell:
    """One unit of work: a method (or named variant) with resolved hyper-parameters, on one dataset
    identity and protocol, at one bit length, seed and database coding.  Its key hashes the fields
    that define its result (:meth:`key_fields`), so finished work is found again by content."""

    method: str  # the row name: a registered method or a named variant
    base: str  # the registered method that runs
    params: Mapping[str, Any]  # resolved hyper-parameters (no seed, device, cache)
    dataset: Mapping[str, Any]  # the dataset's identity (name + fingerprint or generator)
    protocol: str
    bits: int
    seed: int
    database_coding: str = DEFAULT_CODING
    preset: str = field(default=DEFAULT_PRESET, compare=False)  # recorded, not keyed: params say it all
    versions: Mapping[str, int] = field(default_factory=dict)  # the method's and its teachers' versions
    features: str = DEFAULT_FEATURES  # preprocessing of the features (cmhbench.datasets.features)
    split: str = DEFAULT_SPLIT  # "validation": scored on the validation split (tuning trials)
    tuned: Mapping[str, Any] | None = field(default=None, compare=False)  # where tuned values came from

    def __post_init__(self) -> None:
        if self.split not in SPLIT_ROLES:
            raise ValueError(f"split must be one of {', '.join(SPLIT_ROLES)}, got {self.split!r}")

    @property
    def dataset_name(self) -> str:
        return str(self.dataset["name"])

    def key_fields(self) -> dict[str, Any]:
        """What the key hashes: the fields :data:`CELL_KEY` keeps, and the schema version."""
        kept = {name: value for name, value in asdict(self).items() if not CELL_KEY[name].omitted(value)}
        return {**kept, "schema_version": SCHEMA_VERSION}

    @property
    def key(self) -> str:
        return hashlib.sha256(canonical_json(self.key_fields()).encode()).hexdigest()[:20]

    def record_fields(self) -> dict[str, Any]:
        """The record's ``cell`` object: the keyed fields, plus preset, versions, features and
        split written out even at their defaults (so a reader never has to guess them)."""
        keyed = {k: v for k, v in self.key_fields().items() if k != "schema_version"}
        return {**keyed, "preset": self.preset, "versions": dict(self.versions), "features": self.features,
                "split": self.split}

    @property
    def label(self) -> str:
        coding = "" if self.database_coding == DEFAULT_CODING else f"/{self.database_coding}"
        features = "" if self.features == DEFAULT_FEATURES else f"/{self.features}"
        role = "" if self.split == DEFAULT_SPLIT else f"/{self.split}"
        return f"{self.method}/{self.dataset_name}{features}/{self.bits}b/s{self.seed}{coding}{role}"

    def command(self) -> str:
        """A ``cmhbench run`` command line that recomputes this cell's numbers ("" for a
        validation-split cell: those come from ``cmhbench tune``, whose argv the record keeps)."""
        if self.split != DEFAULT_SPLIT:
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


def check_key_rules(cell_type: type = Cell) -> None:
    """Refuse a cell type whose fields and :data:`CELL_KEY` differ (run on import)."""
    unruled = {f.name for f in fields(cell_type)} ^ set(CELL_KEY)
    if unruled:
        raise TypeError(f"schema.CELL_KEY must say how each Cell field enters the key; check: "
                        f"{', '.join(sorted(unruled))}")


check_key_rules()


def _optional() -> Any:
    """A record field written only once it is set (None is left out of the JSON)."""
    return field(default=None, metadata={"optional": True})


@dataclass
class Record:
    """``record.json``: what one cell is and what became of it.

    Written by :mod:`cmhbench.harness.runner` (or for a cell whose worker died), read back by
    :mod:`cmhbench.store`, which checks the parts readers index.  ``status`` is ``failed``
    until the cell succeeds, so a record cut short by an exception says so."""

    key: str
    cell: dict[str, Any]  # Cell.record_fields()
    evaluation: dict[str, Any]  # relevance, tie rule and metric definitions the scores follow
    environment: dict[str, Any]  # versions, commit, machine (cmhbench.harness.provenance)
    reproduce: dict[str, Any]  # command, argv and the options given
    started_at: str
    metrics: dict[str, dict[str, float]]  # direction -> metric -> score ({} until scored)
    schema_version: int = SCHEMA_VERSION
    status: str = "failed"  # ok, not-applicable or failed
    error: str | None = None  # written as null when the cell succeeded
    tuned: dict[str, Any] | None = _optional()  # where a tuned variant's values came from
    # param -> {"from": "dataset override NAME" | "default" | "cmhbench tune", "provenance": "paper" |
    # "authors' code" | "ours" | "validation"}: the resolved values a method registered with a provenance
    param_sources: dict[str, dict[str, str]] | None = _optional()
    method_info: dict[str, Any] | None = _optional()  # title, citation, kind, fidelity, pair_encoder
    device: str | None = _optional()
    warnings: list[str] | None = _optional()
    split: dict[str, Any] | None = _optional()  # role, hash, sizes, notes of the rows used
    data_files: dict[str, str] | None = _optional()  # file name -> verified / differs / unknown (release file)
    fit: dict[str, Any] | None = _optional()  # the method's own fit report
    codes: dict[str, dict[str, int]] | None = _optional()  # distinct codes and constant bits per code array
    timings: dict[str, float] | None = _optional()  # fit_s, encode_s, eval_s, total_s
    memory: dict[str, float] | None = _optional()  # peak_rss_mb (and peak_gpu_mb on a GPU)
    traceback: str | None = _optional()  # a failed cell's
    finished_at: str | None = _optional()

    @classmethod
    def start(cls, cell: Cell, **given: Any) -> Record:
        """The record of ``cell`` before it runs."""
        tuned = {"tuned": dict(cell.tuned)} if cell.tuned else {}
        return cls(key=cell.key, cell=cell.record_fields(), metrics={}, **tuned, **given)

    def to_json(self) -> dict[str, Any]:
        """The JSON object stored: every field, less the optional ones still unset."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if not (f.metadata.get("optional") and getattr(self, f.name) is None)}
