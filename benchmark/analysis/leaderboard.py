"""Leaderboards built only from stored records (never by re-running a method).

Per dataset, protocol, features, database coding and direction: rows are configurations
of methods, columns bit lengths, entries the mean ± standard deviation over the seeds
that finished.  Rules, each chosen so that a finished result is never hidden and never
flattered:

- **One row per configuration.**  When a table holds a method under more than one set of
  resolved hyper-parameters (two presets, a ``--param``, folders merged from several
  runs), each gets its own row, labelled by what differs (:func:`config_labels`); so does each
  method version stored side by side (``jdsh (v2)``, ``jdsh (v3)``), the older flagged stale
  under the table (:func:`stale_note`).
- **Partial seeds are shown, with n.**  An entry whose seeds did not all finish (failed,
  or absent from a merged folder) shows the mean over the seeds it has and ``(n=k)``.
  ``—`` means no seed of that entry finished.
- **Bold and ranks compare like with like.**  Each seed is a different split, so the best
  of a column is chosen on the means over the seeds *every* entry of the column shares
  (:attr:`Table.shared`); an entry with none of them is not ranked.  A column with a
  single ranked entry has no bold.
- **Collapse is flagged, never bold.**  An entry some of whose cells coded the database
  with fewer than :data:`COLLAPSE_BELOW` distinct codes is marked and left out of the
  ranking for bold: its score is close to the chance level whatever the column.
- **Chance level.**  Every table states the score a random ranking would get in
  expectation, from the stored labels (:mod:`cmhbench.analysis.chance`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from tabulate import tabulate

from cmhbench.analysis.chance import chance_level
from cmhbench.conventions import (
    COLLAPSE_BELOW,
    COLLAPSE_MARK,
    DIRECTIONS,
    RECONSTRUCTED,
    RECONSTRUCTED_MARK,
    TIED_MARK,
    VALIDATION_LEGEND,
    VALIDATION_MARK,
)
from cmhbench.errors import UserError
from cmhbench.evaluation import check_metric
from cmhbench.published.compare import DIFFERS, TOLERANCE, VERIFIED, WITHHELD, Beside, matching
from cmhbench.schema import DEFAULT_FEATURES, DEFAULT_SPLIT
from cmhbench.store import config_digest, load_results, long_results, write_text_atomic

MISSING = "—"
NOT_APPLICABLE = "n/a"
GROUP = ["dataset", "protocol", "features", "database_coding"]
LEGEND = (f"Mean ± std over the seeds that finished; (n=k) = only k of the table's seeds finished (a seed "
          f"failed or is absent from a merged folder); **bold** = best of its column, compared over the seeds "
          f"that every entry of the column shares (none when a column has one entry); {MISSING} = no seed "
          f"finished; {NOT_APPLICABLE} = not applicable (no pair encoder); {COLLAPSE_MARK} = collapsed: fewer "
          f"than {COLLAPSE_BELOW} distinct database codes in a cell (never bold); {RECONSTRUCTED_MARK} = fidelity "
          f"'{RECONSTRUCTED}'; "
          f"{VALIDATION_LEGEND}; "
          "[...] = configuration (preset, and the parameters that differ between them) when a method has several; "
          "(vN) = the method's version when the results hold several.")
STATISTICS_LEGEND = (LEGEND.replace("Mean ± std over the seeds that finished",
                                    "Mean over the seeds that finished [95% interval; the line above each table "
                                    "says which variance it covers]")
                     + f" {TIED_MARK} = not significantly different from the column's best (the test that line "
                       "names, Holm-corrected over the column, α = 0.05).")


class LeaderboardError(UserError, ValueError):
    """A leaderboard that cannot be built from the stored results."""


@dataclass
class Table:
    """One leaderboard: rows (configurations) × bit lengths."""

    title: str
    dataset: str
    protocol: str
    database_coding: str
    metric: str
    direction: str
    means: pd.DataFrame  # mean over the finished seeds of each entry (NaN: none finished)
    stds: pd.DataFrame
    not_applicable: pd.DataFrame  # bool, rows × bits
    seeds: list[int]  # every seed of the table
    features: str = DEFAULT_FEATURES
    counts: pd.DataFrame = field(default_factory=pd.DataFrame)  # finished seeds per entry
    collapsed: pd.DataFrame = field(default_factory=pd.DataFrame)  # bool
    comparable: pd.DataFrame = field(default_factory=pd.DataFrame)  # mean over the column's shared seeds
    shared: dict[int, list[int]] = field(default_factory=dict)  # bits -> seeds every entry of the column has
    methods: dict[str, str] = field(default_factory=dict)  # row -> method (or variant) name
    reconstructed: set[str] = field(default_factory=set)  # rows whose method's fidelity is 'reconstructed'
    validated: set[str] = field(default_factory=set)  # rows with values chosen on a validation split
    cells: pd.DataFrame = field(default_factory=pd.DataFrame)  # the table's ok cells, with a 'row' column
    chance: float | None = None
    presets: list[str] = field(default_factory=list)
    stale: str | None = None  # the line naming rows of a superseded method version (:func:`stale_note`)

    def text(self, row: str, bits: int) -> str:
        """'0.6123 ± 0.0100', '0.6123 (n=1)', '—' or 'n/a', plus the collapse mark (no emphasis)."""
        if self.not_applicable.loc[row, bits]:
            return NOT_APPLICABLE
        mean = self.means.loc[row, bits]
        if np.isnan(mean):
            return MISSING
        std = self.stds.loc[row, bits]
        text = f"{mean:.4f}" if np.isnan(std) else f"{mean:.4f} ± {std:.4f}"
        return text + self.marks(row, bits)

    def marks(self, row: str, bits: int) -> str:
        """' (n=1)' for a partial entry and ' ⚠' for a collapsed one ('' otherwise)."""
        n = int(self.counts.loc[row, bits]) if not self.counts.empty else len(self.seeds)
        partial = f" (n={n})" if 0 < n < len(self.seeds) else ""
        collapsed = f" {COLLAPSE_MARK}" if not self.collapsed.empty and self.collapsed.loc[row, bits] else ""
        return partial + collapsed

    def key(self, row: str, bits: int) -> tuple:
        """The entry's key in :func:`cmhbench.analysis.stats.leaderboard_statistics`."""
        return (self.dataset, self.protocol, self.features, self.database_coding, self.direction, row, bits)

    def ranked(self, bits: int) -> pd.Series:
        """The column's entries that take part in bold and ranks: over shared seeds, not collapsed."""
        column = (self.comparable if not self.comparable.empty else self.means)[bits]
        if not self.collapsed.empty:
            column = column[~self.collapsed[bits].astype(bool)]
        return column.dropna()

    def rank(self, row: str, bits: int) -> int | None:
        """1 for the best of its column, 2 for the second, ...; None if not ranked."""
        column = self.ranked(bits)
        if row not in column.index:
            return None
        return int((column > column[row] + 1e-12).sum()) + 1

    def bold(self, row: str, bits: int) -> bool:
        """Best of a column that has something to be best against."""
        return len(self.ranked(bits)) > 1 and self.rank(row, bits) == 1

    def label(self, row: str) -> str:
        """The row's name, with a dagger when its method's fidelity is ``reconstructed`` and a
        double dagger when some of its values were chosen on a validation split."""
        label = f"{row} {RECONSTRUCTED_MARK}" if row in self.reconstructed else row
        return f"{label} {VALIDATION_MARK}" if row in self.validated else label

    def seeds_note(self) -> str:
        """'seed: 0' or 'seeds: 0, 1, 2', plus the chance level."""
        seeds = f"seed: {self.seeds[0]}" if len(self.seeds) == 1 else f"seeds: {', '.join(map(str, self.seeds))}"
        if self.chance is not None:
            seeds += (f" · chance level (expected {self.metric} of a random ranking, from the labels): "
                      f"{self.chance:.4f}")
        return seeds


def select_methods(frame: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The rows of the named methods (every configuration and version of each), so that one
    folder shared by several experiments can give the table of one of them."""
    stored = sorted(set(frame["method"])) if "method" in frame else []
    unknown = [name for name in names if name not in stored]
    if unknown:
        raise LeaderboardError(f"no stored results for method(s) {', '.join(unknown)}; "
                               f"the folder(s) hold: {', '.join(stored) or 'nothing'}")
    return frame[frame["method"].isin(names)].reset_index(drop=True)


def stored_metrics(frame: pd.DataFrame) -> list[str]:
    """Metric names present in the stored records."""
    return sorted({c.split("/", 1)[1] for c in frame.columns if c.split("/", 1)[0] in DIRECTIONS and "/" in c})


def _column(frame: pd.DataFrame, name: str, default: Any) -> pd.Series:
    return frame[name].fillna(default) if name in frame else pd.Series(default, index=frame.index)


def config_labels(configs: dict[str, tuple[str | None, dict[str, Any]]]) -> dict[str, str]:
    """Row tags for several configurations of one method (params JSON -> (preset, params)):
    '[quick, epochs=10, hidden=256]' — the preset, then the parameters whose values differ
    between the configurations (an 8-digit digest of the parameters when more than two do,
    or when that alone does not tell them apart)."""
    names = sorted({k for _, params in configs.values() for k in params})
    differing = [k for k in names
                 if len({json.dumps(p.get(k), sort_keys=True, default=str) for _, p in configs.values()}) > 1]
    labels = {}
    for text, (preset, params) in configs.items():
        parts = [preset or "preset unknown"]
        if len(differing) <= 2:
            parts += [f"{k}={params.get(k, '—')}" for k in differing]
        else:
            parts.append(config_digest(params))
        labels[text] = f"[{', '.join(parts)}]"
    if len(set(labels.values())) < len(labels):
        labels = {t: f"{label[:-1]}, {config_digest(configs[t][1])}]" for t, label in labels.items()}
    return labels


def keyed_versions(text: str) -> str:
    """A cell's ``method_versions`` (JSON) reduced to what tells configurations apart: the
    versions other than 1, as canonical JSON.  ``{}`` and ``{"jdsh": 1}`` (a record from before
    versions existed, and one from after) are one configuration, as their keys are."""
    versions = json.loads(text) if isinstance(text, str) and text else {}
    return json.dumps({k: int(v) for k, v in versions.items() if int(v) != 1}, sort_keys=True)


def version_tags(base: str, keyed: Sequence[str]) -> dict[str, str]:
    """Tags for several version sets of one method (keyed JSON -> 'v2', or 'v3, jdsh v2' when its
    teachers' versions differ too): the method's own version always, a teacher's where it differs."""
    parsed = {text: json.loads(text) for text in keyed}
    names = sorted({k for v in parsed.values() for k in v} - {base})
    differing = [k for k in names if len({v.get(k, 1) for v in parsed.values()}) > 1]
    return {text: ", ".join([f"v{v.get(base, 1)}", *(f"{k} v{v.get(k, 1)}" for k in differing)])
            for text, v in parsed.items()}


def older_versions(keyed: Sequence[str]) -> set[str]:
    """The version sets (keyed JSON) of one method that another set beside them supersedes:
    some version (the method's own or a teacher's) below the highest stored for that name."""
    parsed = {text: json.loads(text) for text in set(keyed)}
    names = {k for v in parsed.values() for k in v}
    newest = {k: max(v.get(k, 1) for v in parsed.values()) for k in names}
    return {text for text, v in parsed.items() if any(v.get(k, 1) < newest[k] for k in names)}


def with_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a ``row`` column: the method name, or a labelled configuration where a
    table holds the method under several sets of hyper-parameters (``djsrh [quick, epochs=5]``)
    or several method versions (``jdsh (v2)``: a cell's key holds its method's version, so a
    folder run before and after a bump holds both); and a ``stale`` column, true for the cells
    of a version that a newer one beside it supersedes."""
    frame = frame.copy()
    frame["features"] = _column(frame, "features", DEFAULT_FEATURES)
    params = _column(frame, "params", "{}")
    versions = _column(frame, "method_versions", "{}").map(keyed_versions)
    frame["row"] = frame["method"]
    frame["stale"] = False
    for (*_, method), cells in frame.groupby([*GROUP, "method"], sort=False):
        texts, keyed = params[cells.index], versions[cells.index]
        if keyed.nunique() > 1:
            base = _column(cells, "base", method).iloc[0]
            tags = version_tags(base, keyed.unique())
            frame.loc[cells.index, "row"] = [f"{method} ({tags[k]})" for k in keyed]
            frame.loc[cells.index, "stale"] = keyed.isin(older_versions(keyed.unique()))
        if texts.nunique() > 1:
            configs = {}
            for text in texts.unique():
                first = cells[texts == text].iloc[0]
                configs[text] = (first.get("preset"), json.loads(text))
            tags = config_labels(configs)
            frame.loc[cells.index, "row"] = [f"{row} {tags[t]}" for row, t in zip(frame.loc[cells.index, "row"], texts)]
    return frame


def stale_note(cells: pd.DataFrame) -> str | None:
    """One line naming the rows (of :func:`with_rows` cells) computed by an older method version
    than another row of the same method beside them, and how to drop them; None when none is."""
    stale = sorted(cells.loc[_column(cells, "stale", False).astype(bool), "row"].unique())
    if not stale:
        return None
    return (f"Stale: {', '.join(stale)} — computed by an older version of the method than another row beside "
            f"{'it' if len(stale) == 1 else 'them'}; cmhbench prune OUT --yes deletes those a newer version's cell "
            "replaces, or keep each version in its own results folder.")


def build_tables(frame: pd.DataFrame, metric: str = "map@all", chance: bool = True) -> list[Table]:
    """One table per dataset × protocol × database coding × features × direction."""
    check_metric(metric)
    frame = test_cells(frame)
    if frame.empty:
        raise LeaderboardError("no stored test cells to build a leaderboard from")
    columns = {d: f"{d}/{metric}" for d in DIRECTIONS}
    if (frame["status"] == "ok").any() and not any(c in frame.columns for c in columns.values()):
        outs = " ".join(sorted(set(frame["out"]))) if "out" in frame else "OUT"
        raise LeaderboardError(f"metric {metric!r} is not in the stored records (stored: "
                               f"{', '.join(stored_metrics(frame))}); add it from the stored codes without "
                               f"refitting: cmhbench evaluate {outs} --metrics {metric}")
    frame = with_rows(frame)
    tables = []
    for (dataset, protocol, features, coding), cells in frame.groupby(GROUP, sort=True):
        seeds = sorted(cells["seed"].unique().tolist())
        bits = sorted(cells["bits"].unique().tolist())
        rows = sorted(cells["row"].unique().tolist())
        ok = cells[cells["status"] == "ok"]
        level = chance_level(ok, metric) if chance else None
        presets = sorted(p for p in cells["preset"].dropna().unique()) if "preset" in cells else []
        methods = dict(zip(cells["row"], cells["method"]))
        reconstructed = set(cells.loc[_reconstructed(cells), "row"])
        validated = set(cells.loc[_validated(cells), "row"])
        stale = stale_note(cells)
        for direction, label in DIRECTIONS.items():
            column = columns[direction]
            means = pd.DataFrame(np.nan, index=rows, columns=bits)
            stds, comparable = means.copy(), means.copy()
            counts = pd.DataFrame(0, index=rows, columns=bits)
            not_applicable = pd.DataFrame(False, index=rows, columns=bits)
            collapsed = not_applicable.copy()
            values_of: dict[tuple[str, int], pd.Series] = {}
            for (row, b), runs in cells.groupby(["row", "bits"]):
                if (runs["status"] == "not-applicable").all():
                    not_applicable.loc[row, b] = True
                    continue
                done = runs[runs["status"] == "ok"]
                values = (done.set_index("seed")[column] if column in done else pd.Series(dtype=float)).dropna()
                if values.empty:
                    continue
                values_of[(row, b)] = values
                means.loc[row, b] = values.mean()
                stds.loc[row, b] = values.std(ddof=1) if len(values) > 1 else np.nan
                counts.loc[row, b] = len(values)
                collapsed.loc[row, b] = _collapsed(done)
            shared = {}
            for b in bits:
                present = [set(v.index) for (r, bb), v in values_of.items() if bb == b]
                shared[b] = sorted(set.intersection(*present)) if present else []
                for (r, bb), v in values_of.items():
                    if bb == b and shared[b]:
                        comparable.loc[r, b] = v.loc[shared[b]].mean()
            title = _title(dataset, protocol, coding, features, presets, label, metric)
            tables.append(Table(title, dataset, protocol, coding, metric, direction, means, stds, not_applicable,
                                seeds, features=features, counts=counts, collapsed=collapsed, comparable=comparable,
                                shared=shared, methods=methods, reconstructed=reconstructed, validated=validated,
                                cells=ok, chance=level, presets=presets, stale=stale))
    return tables


def test_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Only cells scored on a test split: tuning trials (validation split) never enter a leaderboard."""
    if frame.empty or "split" not in frame:
        return frame
    return frame[frame["split"].fillna(DEFAULT_SPLIT) == DEFAULT_SPLIT]


def _validated(frame: pd.DataFrame) -> pd.Series:
    """Which cells hold values chosen on a validation split (the store's ``validation_mark``, or a
    ``cmhbench tune`` study named): the one rule behind every double dagger."""
    return (_column(frame, "validation_mark", "") != "") | (_column(frame, "tuned", "") != "")


def is_validated(frame: pd.DataFrame, method: str | None = None) -> bool:
    """Whether ``method`` (a method, or a row: one configuration of it), or any row, holds values
    chosen on a validation split: the one rule behind the double dagger of every report."""
    return bool(_validated(_rows_of(frame, method)).any())


def _rows_of(frame: pd.DataFrame, method: str | None) -> pd.DataFrame:
    """The records of ``method`` (a method name, or a row label: one configuration of a
    method), or of every method when ``method`` is None."""
    if method is None:
        return frame
    named = frame["method"] == method
    return frame[named] if named.any() else with_rows(frame).loc[lambda f: f["row"] == method]


def _collapsed(done: pd.DataFrame) -> bool:
    if "distinct_db_codes" not in done:
        return False
    distinct = done["distinct_db_codes"].dropna()
    limit = np.minimum(COLLAPSE_BELOW, _column(done, "n_database", COLLAPSE_BELOW).loc[distinct.index])
    return bool((distinct < limit).any())


def _title(dataset: str, protocol: str, coding: str, features: str, presets: list[str], direction: str,
           metric: str) -> str:
    preset = (f"preset {presets[0]}" if len(presets) == 1
              else f"presets {', '.join(presets)}" if presets else "preset unknown")
    return (f"{dataset} · protocol {protocol} · features {features} · database {coding} · {preset} · "
            f"{direction} · {metric}")


def collapsed_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """The ok cells that coded a database with fewer than :data:`COLLAPSE_BELOW` distinct codes."""
    if frame.empty or "distinct_db_codes" not in frame:
        return frame.iloc[0:0]
    ok = frame[frame["status"] == "ok"]
    limit = np.minimum(COLLAPSE_BELOW, _column(ok, "n_database", COLLAPSE_BELOW))
    return ok[ok["distinct_db_codes"] < limit]


def collapse_warning(frame: pd.DataFrame, keys: set[str] | None = None) -> str | None:
    """One line for the run summary naming the collapsed cells (of ``keys`` if given), or None."""
    if keys is not None and not frame.empty:
        frame = frame[frame["key"].isin(keys)]
    bad = collapsed_cells(frame)
    if bad.empty:
        return None
    names = [f"{r.method}/{r.dataset}/{r.bits}b/s{r.seed} ({int(r.distinct_db_codes)} codes)"
             for r in bad.itertuples()]
    return (f"{len(bad)} cell(s) collapsed — fewer than {COLLAPSE_BELOW} distinct database codes, so the ranking "
            f"is coarse and scores drift toward the chance level; marked {COLLAPSE_MARK} and never bold: "
            f"{', '.join(names)}")


def _reconstructed(frame: pd.DataFrame) -> pd.Series:
    """Which cells' methods have fidelity ``reconstructed``: the one rule behind every dagger."""
    return _column(frame, "fidelity", "") == RECONSTRUCTED


def is_reconstructed(frame: pd.DataFrame, method: str | None = None) -> bool:
    """Whether ``method`` (a method, or a row: one configuration of it), or any method of
    ``frame``, has fidelity ``reconstructed``: the one rule behind the dagger of the
    Markdown, LaTeX and HTML leaderboards."""
    if "fidelity" not in frame:
        return False
    return bool(_reconstructed(_rows_of(frame, method)).any())


def method_label(frame: pd.DataFrame, row: str) -> str:
    """A row's name (method or configuration), with a dagger when its fidelity is ``reconstructed``
    and a double dagger when some of its values were chosen on a validation split."""
    label = f"{row} {RECONSTRUCTED_MARK}" if is_reconstructed(frame, row) else row
    return f"{label} {VALIDATION_MARK}" if is_validated(frame, row) else label


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_|<>]|(?<=\])\()")


def markdown_text(name: str) -> str:
    """A name from a record as literal Markdown text: one line, its ``|`` unable to open a
    column and its ``*``, ``_``, ``<``, backquotes or ``](`` unable to fake emphasis, HTML, code
    or a link."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(name).split()))


def published_beside(table: Table, statistics: dict | None = None) -> tuple[list[tuple[str, int, Beside]], bool]:
    """The published values measured exactly as an entry of ``table`` was (:mod:`cmhbench.published.compare`),
    each with our mean and 95 % interval (from ``statistics`` when given), as (row, bits, beside);
    and whether some entry's values were withheld because a cell of it read a file that differs
    from the release file."""
    found, withheld = [], False
    files = _column(table.cells, "release_files", "")
    for row in table.means.index:
        for b in table.means.columns:
            mean = table.means.loc[row, b]
            published = matching(table.methods[row], table.dataset, table.protocol, table.features,
                                 table.database_coding, table.metric, int(b), table.direction)
            if np.isnan(mean) or not published:
                continue
            states = set(",".join(files[(table.cells["row"] == row) & (table.cells["bits"] == b)]).split(","))
            if DIFFERS in states:
                withheld = True
                continue
            entry = (statistics or {}).get(table.key(row, b))
            low, high = (entry.interval.low, entry.interval.high) if entry is not None else (None, None)
            found += [(row, int(b), Beside(p, float(mean), low, high, files_verified=states == {VERIFIED}))
                      for p in published]
    return found, withheld


def _published_markdown(table: Table, statistics: dict | None) -> str:
    """The published values beside the table's entries, as a Markdown table ('' when there are none)."""
    found, withheld = published_beside(table, statistics)
    lines = [WITHHELD + "."] if withheld else []
    if found:
        rows = [[markdown_text(table.label(row)), b, beside.ours_text(), beside.published_text(),
                 beside.difference_text(), beside.verdict(), markdown_text(beside.result.source)]
                for row, b, beside in found]
        headers = ["method", "bits", "ours [95% interval]", "published", "ours − published", "reproduces",
                   "source"]
        lines.append(f"Published values measured the same way (method, dataset, protocol, features, database "
                     f"coding, metric); reproduces = the published value lies in our 95% interval or "
                     f"|ours − published| ≤ {TOLERANCE:.2f}:\n\n"
                     + tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True))
    return "\n\n".join(lines)


def to_markdown(frame: pd.DataFrame, metric: str = "map@all", statistics: dict | None = None,
                published: bool = False) -> str:
    """All tables as Markdown, with a legend.  ``statistics`` (from
    :func:`cmhbench.analysis.stats.leaderboard_statistics`) replaces the seed spread by 95% intervals
    and marks the entries not significantly different from their column's best; ``published``
    adds, under each table, the published values measured the same way (:func:`published_beside`)."""
    parts = []
    for table in build_tables(frame, metric):
        rows = []
        for row in table.means.index:
            cells = []
            for b in table.means.columns:
                text = table.text(row, b)
                entry = (statistics or {}).get(table.key(row, b))
                if entry is not None:
                    text = (entry.interval.text() + table.marks(row, b)
                            + (f" {TIED_MARK}" if entry.tied_with_best and not entry.best else ""))
                cells.append(f"**{text}**" if table.bold(row, b) else text)
            rows.append([markdown_text(table.label(row)), *cells])
        headers = ["method"] + [f"{b} bits" for b in table.means.columns]
        covers = _covers(table, statistics) if statistics else ""
        parts.append(f"### {markdown_text(table.title)}\n\n{table.seeds_note()}{covers}\n\n"
                     + tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True)
                     + (f"\n\n{markdown_text(table.stale)}" if table.stale else ""))
        beside = _published_markdown(table, statistics) if published else ""
        if beside:
            parts[-1] += "\n\n" + beside
    return "\n\n".join(parts) + "\n\n" + (STATISTICS_LEGEND if statistics else LEGEND) + "\n"


def _covers(table: Table, statistics: dict) -> str:
    """Lines naming the variance the table's intervals and tests cover (one per scheme used,
    from the statistics' schemes: :meth:`cmhbench.analysis.stats.Scheme.sentence`)."""
    sentences: list[str] = []
    for row in table.means.index:
        for b in table.means.columns:
            entry = statistics.get(table.key(row, b))
            for scheme in (entry.interval.scheme, entry.test) if entry is not None else ():
                if scheme is not None and scheme.sentence() not in sentences:
                    sentences.append(scheme.sentence())
    return "".join(f"\n\nIntervals and {TIED_MARK} cover {sentence}" for sentence in sentences)


def to_csv(frame: pd.DataFrame) -> str:
    """The tidy long table: one row per cell × direction × metric (columns: README's data dictionary)."""
    return long_results(frame).to_csv(index=False)


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
