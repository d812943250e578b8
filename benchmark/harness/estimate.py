"""How long a grid will take, from the timings stored by earlier runs in the same folder.

A cell's estimate is the median ``total_s`` of stored ``ok`` cells of the same
configuration: method, dataset, protocol and resolved parameters (the preset and every
``--param`` are in them), at the same bit length if there are some, else at any.  A
timing of another configuration is never borrowed: quick-preset timings once estimated a
paper-preset run at 27 s that took 11 minutes.  Cells with no stored timing of their
configuration are counted, not guessed.  Parallel runs divide by the number of workers, an
optimistic bound (the longest cell is a floor).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from statistics import median

from cmhbench import store
from cmhbench.harness.grid import Cell


@dataclass(frozen=True)
class Estimate:
    seconds: float  # wall-clock seconds for the cells with stored timings
    known: int  # cells with a stored timing of their method and dataset
    unknown: int  # cells without one

    def line(self) -> str | None:
        """'estimate from stored timings: about 22 min for 8 cells (2 cells have none)', or None."""
        if not self.known:
            return None
        rest = (f"; {_cells(self.unknown)} more with no stored timing of their configuration"
                if self.unknown else "")
        return f"estimate from stored timings: about {duration(self.seconds)} for {_cells(self.known)}{rest}"


def _cells(n: int) -> str:
    return "1 cell" if n == 1 else f"{n} cells"


def duration(seconds: float) -> str:
    """'40 s', '12 min', '3.5 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate(todo: list[Cell], out: os.PathLike | str, workers: int = 1) -> Estimate:
    """The expected wall time of computing ``todo`` into ``out``."""
    timings: dict[tuple, list[float]] = {}
    for record in store.iter_records(out):
        seconds = (record.get("timings") or {}).get("total_s")
        if record.get("status") != "ok" or seconds is None:
            continue
        cell = record["cell"]
        configuration = (cell["base"], cell["dataset"]["name"], cell.get("protocol"),
                         store.config_digest(cell.get("params", {})))
        for key in ((*configuration, cell["bits"]), configuration):
            timings.setdefault(key, []).append(float(seconds))
    total, known = 0.0, 0
    for cell in todo:
        configuration = (cell.base, cell.dataset_name, cell.protocol, store.config_digest(cell.params))
        for key in ((*configuration, cell.bits), configuration):
            if key in timings:
                total += median(timings[key])
                known += 1
                break
    return Estimate(total / max(1, workers), known, len(todo) - known)
