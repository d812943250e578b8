"""``cmhbench prune OUT``: delete the cells of superseded method versions.

A cell's key holds its method's version (and its teachers'), so a folder run before and
after a bump keeps both sets of cells.  Leaderboards give each version its own row and
flag the older one stale; ``compare`` refuses a name that holds two versions.  Pruning
deletes exactly the cells the leaderboard flags (:func:`cmhbench.leaderboard.with_rows`):
those of a version that a newer one *stored beside it* (same dataset, protocol, features
and database coding) supersedes.  A version that is the only one stored is never touched,
even if the installed method is newer, because nothing in the folder replaces it yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cmhbench import leaderboard, store


@dataclass(frozen=True)
class StaleGroup:
    """The stale cells of one leaderboard row in one table."""

    row: str  # the leaderboard row label, e.g. "jdsh (v2)"
    where: str  # "wikipedia (protocol wiki, features zscore, database modality)"
    keys: tuple[str, ...]
    bits: tuple[int, ...]
    seeds: tuple[int, ...]

    def describe(self) -> str:
        return (f"{self.row} in {self.where}: {len(self.keys)} cell{'s' * (len(self.keys) != 1)} "
                f"(bits {','.join(map(str, self.bits))}; seeds {','.join(map(str, self.seeds))})")


def stale_groups(out: str | Path) -> tuple[int, list[StaleGroup]]:
    """The folder's number of cells and its stale cells, grouped by row and table."""
    frame = store.load_results(out)
    if frame.empty:
        return 0, []
    rows = leaderboard.with_rows(frame)
    stale = rows[rows["stale"].astype(bool)]
    groups = []
    for (dataset, protocol, features, coding, row), cells in stale.groupby([*leaderboard.GROUP, "row"], sort=True):
        groups.append(StaleGroup(
            row=row, where=f"{dataset} (protocol {protocol}, features {features}, database {coding})",
            keys=tuple(sorted(cells["key"])), bits=tuple(sorted({int(b) for b in cells["bits"]})),
            seeds=tuple(sorted({int(s) for s in cells["seed"]}))))
    return len(frame), groups


def prune(out: str | Path, groups: list[StaleGroup]) -> int:
    """Delete the groups' cells, then rewrite the folder's results.csv and leaderboard.md from
    what is left; returns how many cells were deleted."""
    deleted = sum(store.delete_cell(out, key) for group in groups for key in group.keys)
    if deleted:
        metrics = leaderboard.stored_metrics(store.load_results(out)) or ["map@all"]
        leaderboard.write_tables(Path(out), metrics)
    return deleted

