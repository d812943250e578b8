"""Leaderboards built only from stored records (never by re-running a method).

Per dataset, protocol, feature preprocessing, database coding and direction: rows are methods, columns bit
lengths, entries the mean ± standard deviation over seeds.  An entry is shown only when
every seed of that table finished: a failed or missing seed makes it "—", never a mean
over a partial set.  The best mean per column is marked; methods whose fidelity is
``reconstructed`` carry a dagger.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from tabulate import tabulate

from cmhbench.conventions import (
    DIRECTIONS,
    INTERVAL_RULE,
    RECONSTRUCTED,
    RECONSTRUCTED_MARK,
    SIGNIFICANCE_RULE,
    TIED_MARK,
    TUNED_MARK,
)
from cmhbench.evaluation import check_metric
from cmhbench.store import load_results, long_results, write_text_atomic

MISSING = "—"
NOT_APPLICABLE = "n/a"
GROUP = ["dataset", "protocol", "features", "database_coding"]

LEGEND = (f"Mean ± std over seeds; **bold** = best per column; {MISSING} = a seed failed or is missing; "
          f"{NOT_APPLICABLE} = not applicable (no pair encoder); {RECONSTRUCTED_MARK} = fidelity '{RECONSTRUCTED}'; "
          f"{TUNED_MARK} = hyper-parameters tuned on a validation split (cmhbench tune), not the paper's defaults.")
STATISTICS_LEGEND = (LEGEND.replace("Mean ± std over seeds", f"Mean over seeds [95% interval: {INTERVAL_RULE}]")
                     + f" {TIED_MARK} = not significantly different from the column's best ({SIGNIFICANCE_RULE}).")


class LeaderboardError(ValueError):
    """A leaderboard that cannot be built from the stored results."""


@dataclass
class Table:
    """One leaderboard: methods × bit lengths, mean and std over seeds (NaN where missing)."""

    title: str
    dataset: str
    protocol: str
    database_coding: str
    metric: str
    direction: str
    means: pd.DataFrame
    stds: pd.DataFrame
    not_applicable: pd.DataFrame  # bool, methods × bits
    seeds: list[int]
    features: str = "raw"

    def text(self, method: str, bits: int) -> str:
        """'0.6123 ± 0.0100', '—' or 'n/a' (no emphasis)."""
        if self.not_applicable.loc[method, bits]:
            return NOT_APPLICABLE
        mean = self.means.loc[method, bits]
        if np.isnan(mean):
            return MISSING
        std = self.stds.loc[method, bits]
        return f"{mean:.4f}" if np.isnan(std) else f"{mean:.4f} ± {std:.4f}"

    def key(self, method: str, bits: int) -> tuple:
        """The entry's key in :func:`cmhbench.stats.leaderboard_statistics`."""
        return (self.dataset, self.protocol, self.features, self.database_coding, self.direction, method, bits)

    def rank(self, method: str, bits: int) -> int | None:
        """1 for the best mean of its column, 2 for the second best, ...; None if missing."""
        column = self.means[bits].dropna()
        if method not in column.index:
            return None
        return int((column > column[method] + 1e-12).sum()) + 1


def stored_metrics(frame: pd.DataFrame) -> list[str]:
    """Metric names present in the stored records."""
    return sorted({c.split("/", 1)[1] for c in frame.columns if c.split("/", 1)[0] in DIRECTIONS and "/" in c})


def build_tables(frame: pd.DataFrame, metric: str = "map@all") -> list[Table]:
    """One table per dataset × protocol × database coding × direction."""
    check_metric(metric)
    frame = test_cells(frame)
    if frame.empty:
        raise LeaderboardError("no stored test cells to build a leaderboard from")
    columns = {d: f"{d}/{metric}" for d in DIRECTIONS}
    if (frame["status"] == "ok").any() and not any(c in frame.columns for c in columns.values()):
        raise LeaderboardError(f"metric {metric!r} is not in the stored records "
                               f"(stored: {', '.join(stored_metrics(frame))})")
    if "features" not in frame.columns:
        frame = frame.assign(features="raw")
    tables = []
    for (dataset, protocol, features, coding), cells in frame.groupby(GROUP, sort=True):
        seeds = sorted(cells["seed"].unique().tolist())
        bits = sorted(cells["bits"].unique().tolist())
        methods = sorted(cells["method"].unique().tolist())
        for direction, label in DIRECTIONS.items():
            column = columns[direction]
            means = pd.DataFrame(np.nan, index=methods, columns=bits)
            stds = means.copy()
            not_applicable = pd.DataFrame(False, index=methods, columns=bits)
            for (method, b), runs in cells.groupby(["method", "bits"]):
                if (runs["status"] == "not-applicable").all():
                    not_applicable.loc[method, b] = True
                    continue
                done = runs[runs["status"] == "ok"]
                values = done[column] if column in done else pd.Series(dtype=float)
                if sorted(done["seed"].tolist()) != seeds or values.isna().any():
                    continue
                means.loc[method, b] = values.mean()
                stds.loc[method, b] = values.std(ddof=1) if len(values) > 1 else np.nan
            title = f"{dataset} · protocol {protocol} · features {features} · database {coding} · {label} · {metric}"
            tables.append(Table(title, dataset, protocol, coding, metric, direction, means, stds,
                                not_applicable, seeds, features))
    return tables


def test_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Only cells scored on a test split: tuning trials (validation split) never enter a leaderboard."""
    if frame.empty or "split" not in frame:
        return frame
    return frame[frame["split"].fillna("test") == "test"]


def is_tuned(frame: pd.DataFrame, method: str | None = None) -> bool:
    """Whether ``method``'s (or any row's) values came from ``cmhbench tune`` (its records name a study)."""
    if "tuned" not in frame:
        return False
    rows = frame if method is None else frame[frame["method"] == method]
    return bool(rows["tuned"].notna().any())


def is_reconstructed(frame: pd.DataFrame, method: str | None = None) -> bool:
    """Whether ``method`` (or any method of ``frame``) has fidelity ``reconstructed``: the one
    rule behind the dagger of the Markdown, LaTeX and HTML leaderboards."""
    if "fidelity" not in frame:
        return False
    rows = frame if method is None else frame[frame["method"] == method]
    return bool((rows["fidelity"] == RECONSTRUCTED).any())


def method_label(frame: pd.DataFrame, method: str) -> str:
    """The method's name, with a dagger when its fidelity is ``reconstructed`` and a double
    dagger when its hyper-parameters were tuned rather than the paper's defaults."""
    label = f"{method} {RECONSTRUCTED_MARK}" if is_reconstructed(frame, method) else method
    return f"{label} {TUNED_MARK}" if is_tuned(frame, method) else label


def to_markdown(frame: pd.DataFrame, metric: str = "map@all", statistics: dict | None = None) -> str:
    """All tables as Markdown, with a legend.  ``statistics`` (from
    :func:`cmhbench.stats.leaderboard_statistics`) replaces the seed spread by 95% intervals
    and marks the entries not significantly different from their column's best."""
    parts = []
    for table in build_tables(frame, metric):
        rows = []
        for method in table.means.index:
            cells = []
            for b in table.means.columns:
                text = table.text(method, b)
                entry = (statistics or {}).get(table.key(method, b))
                if entry is not None:
                    text = entry.interval.text() + (f" {TIED_MARK}" if entry.tied_with_best and not entry.best else "")
                cells.append(f"**{text}**" if table.rank(method, b) == 1 else text)
            rows.append([method_label(frame, method), *cells])
        headers = ["method"] + [f"{b} bits" for b in table.means.columns]
        seeds = ", ".join(map(str, table.seeds))
        parts.append(f"### {table.title}\n\nseeds: {seeds}\n\n"
                     + tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True))
    return "\n\n".join(parts) + "\n\n" + (STATISTICS_LEGEND if statistics else LEGEND) + "\n"


def write_tables(out: Path, metrics: Sequence[str]) -> str:
    """Write ``out/leaderboard.md`` (by map@all, else the first metric run) and
    ``out/results.csv`` from the folder's records; returns the Markdown."""
    frame = load_results(out)
    metric = "map@all" if "map@all" in metrics else metrics[0]
    try:
        markdown = to_markdown(frame, metric)
    except LeaderboardError as exc:  # e.g. every cell failed: say so, still write results.csv
        markdown = f"no leaderboard: {exc}\n"
    write_text_atomic(Path(out) / "leaderboard.md", markdown)
    write_text_atomic(Path(out) / "results.csv", to_csv(frame))
    return markdown


def to_csv(frame: pd.DataFrame) -> str:
    """The tidy long table: one row per cell × direction × metric."""
    return long_results(frame).to_csv(index=False)
