"""``cmhbench prune OUT``: delete the cells of superseded method versions.

A cell's key holds its method's version (and its teachers'), so a folder run before and
after a bump keeps both sets of cells.  Leaderboards give each version its own row and
flag the older one stale (:func:`cmhbench.analysis.leaderboard.with_rows`); ``compare`` refuses a
name that holds two versions.  Pruning deletes a stale cell only where it is *replaced*:
a finished cell (ok or not-applicable) of the newest version, with the same parameters,
bit length and seed, sits beside it (same dataset, protocol, features and database
coding, in any of the folders given).  So a newer version that failed, or that has only
run some bit lengths or seeds so far, never costs the older results it has not replaced.
Only test-split cells are judged, as in a leaderboard; tuning trials are left alone.

A run of an *older* installation writing into the folder at the same time may store a
pruned cell again: prune a folder no such run is using.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cmhbench import store
from cmhbench.analysis import leaderboard

#: What must match for a newer cell to replace a stale one.
_SAME_CELL = [*leaderboard.GROUP, "method", "params", "bits", "seed"]


@dataclass(frozen=True)
class StaleGroup:
    """The stale cells of one leaderboard row in one table: those replaced by a newer
    version's cell (``keys``) and those not replaced yet (``kept``)."""

    row: str  # the leaderboard row label, e.g. "jdsh (v2)"
    where: str  # "wikipedia (protocol wiki, features zscore, database modality)"
    keys: tuple[str, ...]
    kept: tuple[str, ...]
    bits: tuple[int, ...]  # of the replaced cells
    seeds: tuple[int, ...]

    def describe(self) -> str:
        text = f"{self.row} in {self.where}: "
        if self.keys:
            text += (f"{len(self.keys)} cell{'s' * (len(self.keys) != 1)} replaced by a newer version "
                     f"(bits {','.join(map(str, self.bits))}; seeds {','.join(map(str, self.seeds))})")
        if self.kept:
            text += (", and " if self.keys else "") + (
                f"{len(self.kept)} kept: no finished cell of the newer version at the same bits and seed")
        return text


def stale_groups(*outs: str | Path) -> tuple[int, list[StaleGroup]]:
    """The folders' number of test cells and their stale cells, grouped by row and table."""
    frame = leaderboard.test_cells(store.load_results(*outs))
    if frame.empty:
        return 0, []
    rows = leaderboard.with_rows(frame)
    rows["params"] = rows["params"].fillna("{}") if "params" in rows else "{}"
    stale = rows["stale"].astype(bool)
    replacements = rows[~stale & rows["status"].isin(store.DONE_STATUSES)]
    covered = set(map(tuple, replacements[_SAME_CELL].astype(str).to_numpy()))
    groups = []
    for (dataset, protocol, features, coding, row), cells in rows[stale].groupby([*leaderboard.GROUP, "row"], sort=True):
        replaced = cells[[tuple(c) in covered for c in cells[_SAME_CELL].astype(str).to_numpy()]]
        groups.append(StaleGroup(
            row=row, where=f"{dataset} (protocol {protocol}, features {features}, database {coding})",
            keys=tuple(sorted(replaced["key"])), kept=tuple(sorted(set(cells["key"]) - set(replaced["key"]))),
            bits=tuple(sorted({int(b) for b in replaced["bits"]})),
            seeds=tuple(sorted({int(s) for s in replaced["seed"]}))))
    return len(frame), groups


def prune(outs: list[str | Path], groups: list[StaleGroup]) -> int:
    """Delete the groups' replaced cells from every folder that holds them, then rewrite each
    changed folder's results.csv and leaderboard.md (also after a failed deletion); returns
    how many cell folders were deleted."""
    deleted = 0
    changed: set[Path] = set()
    try:
        for out in map(Path, outs):
            for key in (key for group in groups for key in group.keys):
                if store.delete_cell(out, key):
                    deleted += 1
                    changed.add(out)
    finally:
        for out in sorted(changed):
            metrics = leaderboard.stored_metrics(store.load_results(out)) or ["map@all"]
            leaderboard.write_tables(out, metrics)
    return deleted
