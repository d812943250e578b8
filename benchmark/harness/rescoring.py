"""Re-score a results folder in place (``cmhbench evaluate OUT``): new metrics, no refitting.

Every finished, intact cell is scored again from its stored codes; its record gains the
new metrics (the old ones stay) and a ``rescored`` entry, its arrays the evaluation
arrays, and the folder's ``results.csv`` is rewritten.  Corrupt cells are skipped and
named, never scored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from cmhbench import store
from cmhbench.analysis import leaderboard
from cmhbench.evaluation.rescore import evaluate_cell
from cmhbench.harness.runner import code_statistics, utc_now

log = logging.getLogger(__name__)


class NotAResultsFolder(store.StoreError):
    """A folder to re-score that holds no cells."""


@dataclass
class Rescored:
    """What re-scoring one folder did."""

    out: Path
    cells: int
    skipped: dict[str, str] = field(default_factory=dict)  # key -> why (corrupt)


def rescore_folder(out: str | Path, metrics: Sequence[str]) -> Rescored:
    """Score every finished cell of ``out`` with ``metrics`` and store the result."""
    out = Path(out)
    done = [r for r in store.iter_records(out) if r["status"] == "ok"]
    corrupt = {r["key"]: problem for r in done if (problem := store.verify_cell(out, r["key"]))}
    for key, problem in corrupt.items():
        log.warning("skipped corrupt cell %s: %s", key, problem)
    done = [r for r in done if r["key"] not in corrupt]
    if not done and not store.cells_dir(out).is_dir():
        raise NotAResultsFolder(f"{out} is not a cmhbench results folder (no cells/ inside)")
    _check_writable(out)
    for record in done:  # the key is the record's folder name (validated on read), never trusted data
        arrays = store.read_arrays(out, record["key"])
        scores, curves = evaluate_cell(arrays, metrics)
        record["codes"] = code_statistics(arrays, int(arrays["n_bits"]))
        for direction, values in scores.items():
            record["metrics"].setdefault(direction, {}).update(values)
        arrays.update(curves)
        record.setdefault("rescored", []).append({"metrics": list(metrics), "at": utc_now()})
        store.write_cell(out, record["key"], record, arrays)
    store.write_text_atomic(out / "results.csv", leaderboard.to_csv(store.load_results(out)))
    return Rescored(out, len(done), corrupt)


def _check_writable(out: Path) -> None:
    """Re-scoring writes into every cell: refuse a folder it cannot write before touching any,
    naming the folder (an OSError from deep inside names a temporary file instead)."""
    for folder in (out, store.cells_dir(out)):
        problem = store.unwritable(folder)
        if problem:
            raise store.StoreError(f"{folder} cannot be written ({problem}); re-scoring stores the new scores in "
                                   "the folder, so it needs write access (copy the folder to re-score a read-only "
                                   "one)")


#: Stored and re-derived scores agree to this: both come from the same codes by the same
#: exact computation, so only a changed metric definition or an edit moves them.
RESCORE_TOLERANCE = 1e-9


def rescore_differences(out: str | Path) -> dict[str, list[str]]:
    """Each finished, intact cell's stored scores re-derived from its stored codes (nothing is
    written): ``{key: ["i2t map@all: stored 0.99, codes give 0.4123", ...]}`` for the cells
    where they differ (``cmhbench check --rescore``)."""
    out = Path(out)
    differences: dict[str, list[str]] = {}
    for record in store.iter_records(out):
        if record["status"] != "ok" or store.verify_cell(out, record["key"]) is not None:
            continue
        stored = record.get("metrics") or {}
        names = sorted({m for values in stored.values() for m in values})
        if not names:
            continue
        scores, _ = evaluate_cell(store.read_arrays(out, record["key"]), names)
        found = [f"{direction} {metric}: stored {value:.6g}, codes give {scores[direction][metric]:.6g}"
                 for direction, values in sorted(stored.items()) for metric, value in sorted(values.items())
                 if abs(float(value) - scores[direction][metric]) > RESCORE_TOLERANCE]
        if found:
            differences[record["key"]] = found
    return differences
