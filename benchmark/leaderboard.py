"""Leaderboards built only from stored records (never by re-running a method).

Per dataset, protocol, database coding and direction: rows are methods, columns bit
lengths, entries the mean ± standard deviation over seeds.  An entry is shown only when
every seed of that table finished: a failed or missing seed makes it "—", never a mean
over a partial set.  The best mean per column is marked; methods whose fidelity is
``reconstructed`` carry a dagger.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from tabulate import tabulate

from cmhbench.evaluation import check_metric
from cmhbench.store import long_results

DIRECTIONS = {"i2t": "I→T", "t2i": "T→I"}
MISSING = "—"
NOT_APPLICABLE = "n/a"
GROUP = ["dataset", "protocol", "database_coding"]


class LeaderboardError(ValueError):
    """A leaderboard that cannot be built from the stored results."""


@dataclass
class Table:
    title: str
    metric: str
    direction: str
    means: pd.DataFrame  # methods × bits, NaN where missing
    stds: pd.DataFrame
    cells: pd.DataFrame  # methods × bits, display strings
    seeds: list[int]


def build_tables(frame: pd.DataFrame, metric: str = "map@all") -> list[Table]:
    """One table per dataset × protocol × database coding × direction."""
    check_metric(metric)
    if frame.empty:
        raise LeaderboardError("no stored cells to build a leaderboard from")
    columns = {d: f"{d}/{metric}" for d in DIRECTIONS}
    ok = frame[frame["status"] == "ok"]
    if not ok.empty and not any(c in frame.columns for c in columns.values()):
        stored = sorted({c.split("/", 1)[1] for c in frame.columns if c.startswith(("i2t/", "t2i/"))})
        raise LeaderboardError(f"metric {metric!r} is not in the stored records (stored: {', '.join(stored)})")
    tables = []
    for group, cells in frame.groupby(GROUP, sort=True):
        seeds = sorted(cells["seed"].unique().tolist())
        bits = sorted(cells["bits"].unique().tolist())
        methods = sorted(cells["method"].unique().tolist())
        for direction, label in DIRECTIONS.items():
            column = columns[direction]
            means = pd.DataFrame(np.nan, index=methods, columns=bits)
            stds = means.copy()
            shown = pd.DataFrame(MISSING, index=methods, columns=bits)
            for (method, b), runs in cells.groupby(["method", "bits"]):
                if (runs["status"] == "not-applicable").all():
                    shown.loc[method, b] = NOT_APPLICABLE
                    continue
                done = runs[runs["status"] == "ok"]
                values = done[column] if column in done else pd.Series(dtype=float)
                if sorted(done["seed"].tolist()) != seeds or values.isna().any():
                    continue
                means.loc[method, b] = values.mean()
                stds.loc[method, b] = values.std(ddof=1) if len(values) > 1 else np.nan
            _fill(shown, means, stds)
            dataset, protocol, coding = group
            title = f"{dataset} · protocol {protocol} · database {coding} · {label} · {metric}"
            tables.append(Table(title, metric, direction, means, stds, shown, seeds))
    return tables


def _fill(shown: pd.DataFrame, means: pd.DataFrame, stds: pd.DataFrame) -> None:
    best = means.max(axis=0)
    for method in means.index:
        for b in means.columns:
            mean = means.loc[method, b]
            if np.isnan(mean):
                continue
            text = f"{mean:.4f}"
            if not np.isnan(stds.loc[method, b]):
                text += f" ± {stds.loc[method, b]:.4f}"
            if np.isclose(mean, best[b], rtol=0, atol=1e-12):
                text = f"**{text}**"
            shown.loc[method, b] = text


def _row_labels(frame: pd.DataFrame, methods: list[str]) -> list[str]:
    fidelity = frame.drop_duplicates("method").set_index("method")["fidelity"]
    return [f"{m} †" if fidelity.get(m) == "reconstructed" else m for m in methods]


def to_markdown(frame: pd.DataFrame, metric: str = "map@all") -> str:
    """All tables as Markdown, with a legend."""
    parts = []
    for table in build_tables(frame, metric):
        body = table.cells.copy()
        body.index = _row_labels(frame, list(body.index))
        headers = ["method"] + [f"{b} bits" for b in body.columns]
        seeds = ", ".join(map(str, table.seeds))
        parts.append(f"### {table.title}\n\nseeds: {seeds}\n\n"
                     + tabulate(body.reset_index().values.tolist(), headers=headers, tablefmt="pipe",
                                disable_numparse=True))
    legend = (f"Mean ± std over seeds; **bold** = best per column; {MISSING} = a seed failed or is missing; "
              f"{NOT_APPLICABLE} = not applicable (no pair encoder); † = fidelity 'reconstructed'.")
    return "\n\n".join(parts) + "\n\n" + legend + "\n"


def to_csv(frame: pd.DataFrame) -> str:
    """The tidy long table: one row per cell × direction × metric."""
    return long_results(frame).to_csv(index=False)
