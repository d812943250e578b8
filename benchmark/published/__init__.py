"""Published results as data: figures from papers, one CSV per source, one row per value.

Each row says what was measured (method, dataset, metric, bits, direction, database
coding, features) and under which protocol — as the source states it, and the cmhbench
protocol it corresponds to, or none.  A row whose protocol we cannot be sure of (a
baseline re-run by another paper's authors, whose settings that paper only summarises) is
marked ``protocol_uncertain``: it may be shown, marked, but never counts as a reproduction
target.  The files are package data, so an installed cmhbench carries them.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources

from cmhbench.datasets.features import FEATURES

COLUMNS = ("method", "dataset", "source_protocol", "protocol", "protocol_uncertain", "features", "metric",
           "database_coding", "bits", "direction", "value", "paper", "table", "note")
FLAGS = {"yes": True, "no": False}


class PublishedDataError(ValueError):
    """A published-results file that does not hold what the loader expects (a packaging bug)."""


@dataclass(frozen=True)
class PublishedResult:
    """One published value and the setting it was measured in."""

    method: str  # cmhbench's name of the method (lower case)
    dataset: str  # cmhbench's dataset name
    source_protocol: str  # the split as the source describes it
    protocol: str  # the cmhbench protocol it corresponds to; '' when none does
    protocol_uncertain: bool  # the source does not pin the protocol down: never a reproduction target
    features: str  # a cmhbench ``--features`` value, or a description no cmhbench run can match
    metric: str
    database_coding: str  # 'modality' or 'unified'
    bits: int
    direction: str  # 'i2t' or 't2i'
    value: float
    paper: str  # who reported it
    table: str  # where in that source
    note: str = ""

    @property
    def comparable(self) -> bool:
        """Whether a cmhbench cell can ever stand for this row: a cmhbench protocol that is
        certain, and features that are a cmhbench preprocessing of the dataset's files."""
        return bool(self.protocol) and not self.protocol_uncertain and self.features in FEATURES

    @property
    def source(self) -> str:
        return f"{self.paper}, {self.table}"


def _parse(row: dict[str, str], where: str) -> PublishedResult:
    if tuple(row) != COLUMNS:
        raise PublishedDataError(f"{where}: columns {', '.join(row)}; expected {', '.join(COLUMNS)}")
    try:
        return PublishedResult(**{**row, "protocol_uncertain": FLAGS[row["protocol_uncertain"]],
                                  "bits": int(row["bits"]), "value": float(row["value"])})
    except (KeyError, ValueError) as exc:
        raise PublishedDataError(f"{where}: {exc}") from None


@functools.cache
def load() -> tuple[PublishedResult, ...]:
    """Every published row of every CSV of this package (read once per process)."""
    rows = []
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".csv"):
            with entry.open(encoding="utf-8", newline="") as fh:
                rows += [_parse(row, f"{entry.name} line {n}") for n, row in enumerate(csv.DictReader(fh), 2)]
    return tuple(rows)


def protocols_by_dataset() -> dict[str, list[str]]:
    """Dataset -> the cmhbench protocols with published values a cmhbench cell can match:
    protocol not uncertain, features a cmhbench preprocessing (what ``cmhbench list datasets`` names)."""
    found: dict[str, set[str]] = {}
    for row in load():
        if row.comparable:
            found.setdefault(row.dataset, set()).add(row.protocol)
    return {dataset: sorted(protocols) for dataset, protocols in sorted(found.items())}
