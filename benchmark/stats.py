"""Is a difference real?  Intervals, paired tests and rankings from stored per-query scores.

Schemes (all seeded, all from :mod:`scipy.stats`):

- **Interval of a leaderboard entry** (:func:`entry_interval`).  The entry is the mean
  over seeds of each seed's mean per-query AP.  Its interval is a bootstrap stratified by
  seed: queries are resampled with replacement within each seed's query set, seeds are
  kept (``scipy.stats.bootstrap`` with one sample per seed, BCa by default).  It measures
  how much the number depends on which queries were drawn, given these trained models.
- **Paired comparison** of methods A and B (:func:`paired_comparison`).  Pairing is only
  within one seed's split, where both methods answered the same queries: d_s = AP_A − AP_B
  per query of seed s.  The difference is the mean over seeds of mean(d_s); its interval
  is the same stratified bootstrap on the d_s; its p-value is a two-sided paired
  permutation test (``scipy.stats.permutation_test``, ``permutation_type="samples"``: each
  query's two scores are swapped at random, i.e. a sign flip of d) with the same
  statistic, so seeds stay separate strata.  Several comparisons at once are corrected
  with Holm's step-down method (:func:`holm`).
- **Ranking across datasets** (:func:`rank_methods`).  Mean rank of each method over all
  (dataset, direction, bits) entries (rank 1 = best; ties share the average rank).  With
  three or more datasets, a Friedman test whose blocks are datasets — entries within a
  dataset are averaged first, since they are correlated — and the Nemenyi critical
  difference CD = q_α(k, ∞)/√2 · √(k(k+1)/(6N)) from ``scipy.stats.studentized_range``.
  A method missing any entry gets no aggregate, never a partial one.

Every scheme pairs or pools cells by seed, so one name (a method, or a leaderboard row) must
stand for one configuration: where it holds cells of several resolved parameter sets or
method versions, or two cells of one seed (a data file changed between runs), the statistics
stop with :class:`MixedConfigurationsError` rather than pick or pool them
(:func:`check_one_configuration`).  Leaderboard rows already tell parameter sets and method
versions apart (:func:`cmhbench.leaderboard.with_rows`), so ``leaderboard --ci``, ``rank``
and ``report`` show them side by side; ``compare`` names methods, so it refuses such a method.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from cmhbench import store
from cmhbench.conventions import DIRECTIONS, PER_QUERY_METRICS, per_query_array
from cmhbench.leaderboard import GROUP, LeaderboardError, build_tables, keyed_versions, test_cells, with_rows

CONFIDENCE = 0.95  # the reports' legends state these rules: cmhbench.conventions.INTERVAL_RULE, SIGNIFICANCE_RULE
N_RESAMPLES = 2000


def _seed_means_statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean over seeds of each seed's mean (vectorised along ``axis`` for scipy)."""
    return np.mean([np.mean(s, axis=axis) for s in samples], axis=0)


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def text(self, digits: int = 4) -> str:
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def entry_interval(per_seed: list[np.ndarray], confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                   seed: int = 0) -> Interval:
    """Mean over seeds of mean per-query scores, with a seed-stratified bootstrap interval."""
    samples = [np.asarray(s, dtype=np.float64) for s in per_seed]
    estimate = float(_seed_means_statistic(*samples))
    if all(np.ptp(s) == 0 for s in samples):  # no variation to resample
        return Interval(estimate, estimate, estimate)
    result = stats.bootstrap(samples, _seed_means_statistic, confidence_level=confidence,
                             n_resamples=n_resamples, method="percentile" if min(map(len, samples)) < 10 else "BCa",
                             vectorized=True, rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return Interval(estimate, float(low), float(high))


@dataclass(frozen=True)
class PairedResult:
    difference: Interval  # A − B
    p_value: float
    n_queries: int


def paired_comparison(a: list[np.ndarray], b: list[np.ndarray], confidence: float = CONFIDENCE,
                      n_resamples: int = N_RESAMPLES, seed: int = 0) -> PairedResult:
    """A − B on the same queries, seed by seed: bootstrap interval and permutation p-value."""
    if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b)):
        raise ValueError("paired comparison needs the same seeds and the same queries for both methods")
    a = [np.asarray(x, dtype=np.float64) for x in a]
    b = [np.asarray(y, dtype=np.float64) for y in b]
    diffs = [x - y for x, y in zip(a, b)]
    interval = entry_interval(diffs, confidence, n_resamples, seed)
    if all(np.all(d == 0) for d in diffs):
        return PairedResult(interval, 1.0, sum(map(len, diffs)))
    bounds = np.cumsum([0] + [len(d) for d in diffs])

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        d = x - y
        return np.mean([np.mean(d[..., bounds[i]:bounds[i + 1]], axis=axis) for i in range(len(diffs))], axis=0)

    test = stats.permutation_test((np.concatenate(a), np.concatenate(b)), statistic, permutation_type="samples",
                                  vectorized=True, n_resamples=n_resamples, alternative="two-sided",
                                  rng=np.random.default_rng(seed))
    return PairedResult(interval, float(test.pvalue), int(bounds[-1]))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given)."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


@dataclass(frozen=True)
class Ranking:
    mean_ranks: pd.Series  # method -> mean rank over all entries (complete methods only)
    excluded: list[str]  # methods missing an entry
    n_entries: int
    friedman_statistic: float | None = None
    friedman_p: float | None = None
    critical_difference: float | None = None
    dataset_ranks: pd.Series | None = None  # method -> mean rank over datasets (Friedman's)
    n_datasets: int = 0

    def columns(self) -> list[str]:
        return ["method", "mean rank"] + (["mean rank over datasets"] if self.dataset_ranks is not None else [])

    def rows(self) -> list[list]:
        """[method, mean rank(, mean rank over datasets)], best first."""
        return [[m, float(r)] + ([float(self.dataset_ranks[m])] if self.dataset_ranks is not None else [])
                for m, r in self.mean_ranks.items()]

    def intro(self, metric: str) -> str:
        if self.mean_ranks.empty:
            return f"No method has every one of the {self.n_entries} entries; nothing to rank."
        return (f"Mean rank by {metric} over {self.n_entries} entries (dataset × protocol × coding × direction "
                "× bits; 1 = best, ties share the average rank):")

    def notes(self) -> list[str]:
        """One line per test or exclusion, for below the table."""
        lines = []
        if self.friedman_p is not None:
            lines.append(f"Friedman test over {self.n_datasets} datasets (a dataset's entries averaged first): "
                         f"χ² = {self.friedman_statistic:.3f}, p = {self.friedman_p:.4g}. Nemenyi critical "
                         f"difference (α = 0.05): {self.critical_difference:.3f}; methods whose mean ranks "
                         "over datasets differ by less are not significantly different.")
        elif not self.mean_ranks.empty:
            lines.append(f"No Friedman test: it needs three or more datasets and three or more ranked methods "
                         f"(here {self.n_datasets} dataset(s), {len(self.mean_ranks)} method(s)).")
        if self.excluded:
            lines.append("No aggregate (in some column: not run, every seed failed, not applicable, or none of "
                         f"the seeds the column's other entries share): {', '.join(self.excluded)}.")
        return lines

    def to_markdown(self, metric: str) -> str:
        """A table of mean ranks and one line per test or exclusion."""
        from tabulate import tabulate

        lines = [self.intro(metric)]
        if not self.mean_ranks.empty:
            rows = [[row[0], *(f"{v:.2f}" for v in row[1:])] for row in self.rows()]
            lines += ["", tabulate(rows, headers=self.columns(), tablefmt="pipe", disable_numparse=True), ""]
        return "\n".join(lines + self.notes()) + "\n"


ENTRY_COLUMNS = ("dataset", "protocol", "features", "database_coding", "direction", "bits")


def rank_methods(entries: pd.DataFrame, alpha: float = 0.05) -> Ranking:
    """Rank methods over entries.

    ``entries`` has one row per leaderboard entry (:func:`ranking_entries`): the columns of
    ``ENTRY_COLUMNS`` that it has (``dataset`` at least) and one column per method holding
    that entry's score (NaN where missing).
    """
    methods = [c for c in entries.columns if c not in ENTRY_COLUMNS]
    complete = [m for m in methods if entries[m].notna().all()]
    excluded = sorted(set(methods) - set(complete))
    scores = entries[complete]
    ranks = scores.rank(axis=1, ascending=False, method="average")
    per_dataset = entries.groupby("dataset")[complete].mean()
    result = {"mean_ranks": ranks.mean().sort_values(), "excluded": excluded, "n_entries": len(entries),
              "n_datasets": len(per_dataset)}
    if len(per_dataset) >= 3 and len(complete) >= 3:
        statistic, p = stats.friedmanchisquare(*[per_dataset[m].to_numpy() for m in complete])
        k, n = len(complete), len(per_dataset)
        q = stats.studentized_range.ppf(1 - alpha, k, np.inf)
        result.update(friedman_statistic=float(statistic), friedman_p=float(p),
                      critical_difference=float(q / np.sqrt(2) * np.sqrt(k * (k + 1) / (6 * n))),
                      dataset_ranks=per_dataset.rank(axis=1, ascending=False, method="average").mean().sort_values())
    return Ranking(**result)


# --- from stored results ----------------------------------------------------------------------
class MixedConfigurationsError(LeaderboardError):
    """One name stands for several configurations where a statistic needs exactly one."""


#: Record fields of a cell that do not tell configurations apart (they differ by seed, or are not keyed).
_PER_CELL_FIELDS = ("seed", "preset", "tuned", "key")
_SHOWN_DIFFERENCES = 3


def check_one_configuration(cells: pd.DataFrame, name: str = "method") -> None:
    """Raise :class:`MixedConfigurationsError` where a ``name`` (``method``, or a leaderboard
    ``row``) holds more than one configuration at one dataset, protocol, features, coding
    and bit length: cells of different resolved parameters, or two cells (different keys)
    of one seed.  ``cells`` are stored cells (``load_results`` rows); one cell stored twice
    under its key is one cell."""
    if cells.empty:
        return
    cells = cells.drop_duplicates("key")
    params = cells["params"].fillna("{}") if "params" in cells else pd.Series("{}", index=cells.index)
    features = (cells["features"].fillna(store.DEFAULT_FEATURES) if "features" in cells
                else pd.Series(store.DEFAULT_FEATURES, index=cells.index))
    versions = (cells["method_versions"].map(keyed_versions) if "method_versions" in cells
                else pd.Series("{}", index=cells.index))
    cells = cells.assign(params=params, features=features, keyed_versions=versions)
    for (dataset, protocol, features, coding, bits, label), same in cells.groupby([*GROUP, "bits", name], sort=True):
        where = f"{dataset} (protocol {protocol}, features {features}, database {coding}) at {bits} bits"
        if same["keyed_versions"].nunique() > 1:
            clash = same.drop_duplicates("keyed_versions")
            raise MixedConfigurationsError(
                f"{label} has cells of {len(clash)} method versions in {where} ({_differences(clash)}); statistics "
                "need one per name: delete the older version's cells (`cmhbench prune OUT` lists them, `--yes` "
                "deletes them) or keep each version in its own output folder")
        if same["params"].nunique() > 1:
            clash = same.drop_duplicates("params")
        else:
            twice = same[same.duplicated("seed", keep=False)]
            if twice.empty:
                continue
            seed = twice["seed"].iloc[0]
            clash = twice[twice["seed"] == seed]
            where += f", seed {seed}"
        raise MixedConfigurationsError(
            f"{label} has {len(clash)} configurations in {where} ({_differences(clash)}); statistics need one per "
            f"name: give a configuration its own name ([variants.NAME] with base = "
            f"\"{clash['base'].iloc[0] if 'base' in clash else label}\" in a --config file) or keep the "
            "configurations in separate output folders")


def _differences(cells: pd.DataFrame) -> str:
    """'n_iter: 50 vs 5' for the fields of the cells' stored configurations that differ."""
    configs = [_flat_configuration(row) for row in cells.itertuples()]
    fields = sorted({k for c in configs for k in c})
    differing = [k for k in fields if len({json.dumps(c.get(k), sort_keys=True, default=str) for c in configs}) > 1]
    if not differing:
        return f"cell keys {' vs '.join(cells['key'])}"
    shown = [f"{k}: {' vs '.join(_short(c.get(k, '—')) for c in configs)}" for k in differing[:_SHOWN_DIFFERENCES]]
    more = len(differing) - _SHOWN_DIFFERENCES
    return "; ".join(shown) + (f" (and {more} more: {', '.join(differing[_SHOWN_DIFFERENCES:])})" if more > 0 else "")


def _flat_configuration(row: Any) -> dict[str, Any]:
    """A cell's keyed fields, one level flattened (parameters by their own names, then
    ``versions.jdsh``, ``dataset.fingerprint``, ...); from its record, else from its params."""
    try:
        cell = store.read_record(row.out, row.key)["cell"]
    except (store.StoreError, KeyError, AttributeError, TypeError):
        cell = {"params": json.loads(row.params)}
    flat = {}
    for field_name, value in cell.items():
        if field_name in _PER_CELL_FIELDS:
            continue
        if isinstance(value, dict):
            prefix = "" if field_name == "params" else f"{field_name}."
            flat.update({f"{prefix}{k}": v for k, v in value.items()})
        else:
            flat[field_name] = value
    return flat


def _short(value: Any, limit: int = 24) -> str:
    """A value as at most ``limit`` characters (fingerprints and generator tables are long)."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def per_query_key(direction: str, metric: str) -> str:
    """The arrays.npz key holding per-query scores of a metric (only some metrics have them)."""
    if metric not in PER_QUERY_METRICS:
        raise ValueError(f"per-query scores are stored for {', '.join(PER_QUERY_METRICS)}, not {metric!r}")
    return per_query_array(direction, metric)


def _stored_per_query(cells: pd.DataFrame, direction: str, metric: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """seed -> (query rows, per-query scores) of the ok cells given (one method, one bit length)."""
    out = {}
    for row in cells.itertuples():
        scores = per_query_key(direction, metric)
        arrays = store.read_arrays(row.out, row.key, ("query_idx", scores))
        out[int(row.seed)] = (arrays["query_idx"], arrays[scores])
    return out


@dataclass(frozen=True)
class EntryStatistics:
    """What the leaderboards show beside an entry's mean."""

    interval: Interval
    best: bool  # highest mean of its column
    tied_with_best: bool  # not significantly different from the column's best (Holm over the column)
    p_vs_best: float | None = None  # Holm-adjusted p of (best − this); None for the best itself


def leaderboard_statistics(frame: pd.DataFrame, metric: str = "map@all", alpha: float = 0.05,
                           n_resamples: int = N_RESAMPLES, progress: bool = True) -> dict[tuple, EntryStatistics]:
    """(dataset, protocol, features, coding, direction, row, bits) -> interval and significance mark.

    For every leaderboard column (one table, one bit length) each entry gets its
    seed-stratified interval over the seeds it has, and every ranked entry is compared with
    the column's best by the paired test of :func:`paired_comparison` over the seeds the
    column shares (the seeds that choose the best, :attr:`cmhbench.leaderboard.Table.shared`);
    the column's p-values are Holm-corrected together, and an entry whose adjusted p is at
    least ``alpha`` is marked as not significantly different from the best.  Collapsed
    entries are never the best.  Needs the per-query scores of ``metric``; shows a progress
    bar on a terminal.
    """
    from tqdm.auto import tqdm

    per_query_key("i2t", metric)  # fails early, naming the metrics that have per-query scores
    if "features" not in frame.columns:
        frame = frame.assign(features="raw")
    result = {}
    tables = build_tables(frame, metric)
    columns = [(table, bits) for table in tables for bits in table.means.columns]
    for table in tables:
        check_one_configuration(table.cells, "row")
    for table, bits in tqdm(columns, desc=f"intervals and tests ({metric})", unit="column", leave=False,
                            disable=None if progress else True):
        present = table.means[bits].dropna()
        if present.empty:
            continue
        cells = table.cells[table.cells["bits"] == bits]
        scores = {row: _stored_per_query(cells[cells["row"] == row], table.direction, metric) for row in present.index}
        ranked = table.ranked(bits)
        seeds = table.shared.get(bits, [])
        best = str(ranked.idxmax()) if len(ranked) else None
        others = [r for r in ranked.index if r != best]
        p_values = []
        for row in others:
            for seed in seeds:
                if not np.array_equal(scores[row][seed][0], scores[best][seed][0]):
                    raise ValueError(f"{table.dataset} seed {seed}: {row} and {best} were scored on "
                                     "different queries")
            p_values.append(paired_comparison([scores[best][s][1] for s in seeds],
                                              [scores[row][s][1] for s in seeds],
                                              n_resamples=n_resamples).p_value)
        adjusted = dict(zip(others, holm(p_values))) if others else {}
        for row in present.index:
            interval = entry_interval([v for _, v in (scores[row][s] for s in sorted(scores[row]))],
                                      n_resamples=n_resamples)
            p = adjusted.get(row)
            tied = row == best or (p is not None and p >= alpha)
            result[table.key(row, bits)] = EntryStatistics(interval, row == best, tied, p)
    return result


def compare_methods(frame: pd.DataFrame, a: str, b: str, metric: str = "map@all") -> pd.DataFrame:
    """Paired A − B per dataset, protocol, coding, direction and bits, Holm-corrected (test
    cells only).  A method with several configurations in one of them is an error, never a mix."""
    rows = []
    ok = with_rows(test_cells(frame[frame["status"] == "ok"]))
    for (dataset, protocol, features, coding, bits), cells in ok.groupby([*GROUP, "bits"]):
        cells_a, cells_b = cells[cells["method"] == a], cells[cells["method"] == b]
        seeds = sorted(set(cells_a["seed"]) & set(cells_b["seed"]))
        if not seeds:
            continue
        check_one_configuration(cells[cells["method"].isin([a, b])], "method")
        for direction in DIRECTIONS:
            sa = _stored_per_query(cells_a[cells_a["seed"].isin(seeds)], direction, metric)
            sb = _stored_per_query(cells_b[cells_b["seed"].isin(seeds)], direction, metric)
            for seed in seeds:
                if not np.array_equal(sa[seed][0], sb[seed][0]):
                    raise ValueError(f"{dataset} seed {seed}: {a} and {b} were scored on different queries")
            result = paired_comparison([sa[s][1] for s in seeds], [sb[s][1] for s in seeds])
            rows.append({"dataset": dataset, "protocol": protocol, "features": features, "database_coding": coding,
                         "direction": DIRECTIONS[direction], "bits": bits, "seeds": len(seeds),
                         "queries": result.n_queries, f"{a} − {b}": result.difference.estimate,
                         "low": result.difference.low, "high": result.difference.high, "p": result.p_value})
    table = pd.DataFrame(rows)
    if not table.empty:
        table["p (Holm)"] = holm(table["p"].tolist())
    return table


def ranking_entries(frame: pd.DataFrame, metric: str = "map@all") -> pd.DataFrame:
    """One row per leaderboard column (dataset, protocol, features, coding, direction, bits), one column
    per leaderboard row (method or configuration) with its mean over the seeds the column
    shares (NaN where not run, failed, not applicable, or without a shared seed)."""
    rows = []
    for table in build_tables(frame, metric, chance=False):
        check_one_configuration(table.cells, "row")
        for bits in table.means.columns:
            row = dict(zip(ENTRY_COLUMNS, (table.dataset, table.protocol, table.features, table.database_coding,
                                           table.direction, int(bits))))
            row.update(table.comparable[bits].to_dict())
            rows.append(row)
    entries = pd.DataFrame(rows)
    methods = sorted(c for c in entries.columns if c not in ENTRY_COLUMNS)
    return entries[[*ENTRY_COLUMNS, *methods]]
