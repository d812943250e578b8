"""Is a difference real?  Intervals, paired tests and rankings from stored per-query scores.

Two variances an interval or test can cover (``variance``, :data:`VARIANCES`):

- **seeds** (the default; "is method A better than method B?").  A seed is a training run
  (and, under seeded protocols, a split).  An entry or a paired difference d = A − B is the
  mean over seeds of each seed's mean per-query score.  Its interval is a t-interval and its
  test a paired t-test on the per-seed means (seeds paired by split), df = S − 1, when each
  seed has its own queries (**nested** design: :func:`nested_moments`); when every seed
  answered the same queries (**crossed** design, a fixed split: :func:`crossed_design` reads
  the stored query rows) the per-seed means share their query noise, so the query term of a
  two-way seeds × queries decomposition is added, with Satterthwaite's df
  (:func:`crossed_moments`).  A method whose scores do not move between seeds (a deterministic
  one on a fixed split) thus contributes no seed variance.  With fewer than
  :data:`MIN_SEEDS` seeds there is no seed-level estimate: the query scheme is used and the
  result's :class:`Scheme` says so.
- **queries** ("these trained models on other queries").  A percentile bootstrap over
  queries and a sign-flip permutation test on d (:func:`query_resampling`): within each
  seed's queries on a nested design, one shared set of query indices for every seed on a
  crossed one.  Its p cannot go below 1/(resamples + 1) (:func:`unreachable`).

Several comparisons at once are corrected with Holm's step-down method (:func:`holm`).
Why these and how well they hold (false positives, coverage, power) is in docs/statistics.md,
computed by :mod:`cmhbench.analysis.power`.

**Ranking across datasets** (:func:`rank_methods`).  Mean rank of each method over all
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
versions apart (:func:`cmhbench.analysis.leaderboard.with_rows`), so ``leaderboard --ci``, ``rank``
and ``report`` show them side by side; ``compare`` names methods, so it refuses such a method.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from cmhbench import store
from cmhbench.conventions import DIRECTIONS, PER_QUERY_METRICS, VARIANCES, per_query_array
from cmhbench.analysis.leaderboard import GROUP, LeaderboardError, build_tables, keyed_versions, test_cells, with_rows

CONFIDENCE = 0.95  # the reports' legends state these rules: cmhbench.conventions.INTERVAL_RULE, SIGNIFICANCE_RULE
N_RESAMPLES = 2000
ALPHA = 0.05
SEEDS, QUERIES = VARIANCES  # training runs and queries (the default), or these trained models only
#: Fewer seeds than this give no seed-level estimate (a t-interval with one degree of freedom
#: is uselessly wide, with none it does not exist): the query scheme is used instead, and said so.
MIN_SEEDS = 3
#: The one-sided confidence level of the seed mean square in the crossed design's df (:func:`crossed_moments`).
DF_SEED_LIMIT = 0.8
_CHUNK = 2_000_000  # resampling coefficients held at once (rows × values)


@dataclass(frozen=True)
class Scheme:
    """Which variance an interval or test covers, and over which design."""

    variance: str  # SEEDS or QUERIES: what the interval covers
    crossed: bool  # every seed answered the same queries (fixed split)
    n_seeds: int
    fallback: bool = False  # seeds were asked for, but there are fewer than MIN_SEEDS

    @property
    def design(self) -> str:
        return "crossed" if self.crossed else "nested"

    def label(self) -> str:
        """'seeds + queries', 'queries' or 'queries (2 seeds)': a table cell naming the variance covered."""
        if self.variance == SEEDS:
            return "seeds + queries"
        return f"queries ({_seeds(self.n_seeds)})" if self.fallback else "queries"

    def sentence(self) -> str:
        """One line saying what the intervals and p-values of this scheme cover and how."""
        shared = ("every seed answered the same queries (crossed design)" if self.crossed
                  else "each seed has its own split and queries (nested design)" if self.n_seeds > 1
                  else "one seed")
        if self.variance == SEEDS:
            how = ("t-interval on the per-seed means, paired t-test on the per-seed differences (seeds paired by "
                   "split), "
                   + ("plus the query term of a two-way seeds × queries decomposition (Satterthwaite df)"
                      if self.crossed else "df = seeds − 1"))
            return f"seeds + queries (retraining and other queries): {shared}; {how}."
        how = ("bootstrap over queries and sign-flip permutation test, "
               + ("one set of query indices resampled jointly for every seed" if self.crossed
                  else "queries resampled within each seed"))
        why = (f"only {_seeds(self.n_seeds)}, too few for seed variance (needs {MIN_SEEDS}), so retraining "
               "is not covered" if self.fallback else "these trained models; retraining is not covered")
        return f"queries ({why}): {shared}; {how}."


def _seeds(n: int) -> str:
    return "1 seed" if n == 1 else f"{n} seeds"


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    scheme: Scheme | None = None

    def text(self, digits: int = 4) -> str:
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def crossed_design(query_idx: Sequence[np.ndarray]) -> bool:
    """Whether the seeds form a crossed design: two or more seeds, all with the same query rows
    (a fixed split), read from the stored ``query_idx`` arrays rather than from a protocol's name."""
    first = np.asarray(query_idx[0]) if len(query_idx) else None
    return len(query_idx) > 1 and all(np.array_equal(first, q) for q in query_idx[1:])


# --- seeds + queries: t on per-seed means, with the query term when crossed ------------------
def nested_moments(seed_means: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, standard error, df) from per-seed means (``(..., S)``): each seed's mean
    already carries its own queries' sampling noise, so their spread covers both sources."""
    seed_means = np.asarray(seed_means, dtype=np.float64)
    n = seed_means.shape[-1]
    se = seed_means.std(axis=-1, ddof=1) / np.sqrt(n)
    return seed_means.mean(axis=-1), se, np.full(se.shape, n - 1.0)


def crossed_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, standard error, df) for seeds × shared queries (``(..., S, Q)``).

    Two-way random-effects decomposition x_sq = μ + a_s + b_q + e_sq: the variance of the
    grand mean is σ_a²/S + σ_b²/Q + σ_e²/(SQ) = (MS_seeds + MS_queries − MS_residual)/(SQ),
    floored at the larger main term (a negative correction is noise).  Its df are
    Satterthwaite's, computed with MS_seeds at its one-sided upper confidence limit
    (:data:`DF_SEED_LIMIT`): plain Satterthwaite plugs in the estimate, and with 3 seeds a
    seed mean square small by chance both shrinks the error and inflates the df, which
    over-rejects (7–8% at α = 5% in docs/statistics.md's simulation).  Seeds whose scores are
    identical (a deterministic method on a fixed split) give MS_seeds = MS_residual = 0: the
    query term alone, with Q − 1 df.
    """
    x = np.asarray(x, dtype=np.float64)
    s, q = x.shape[-2:]
    grand = x.mean(axis=(-2, -1))
    seed_means, query_means = x.mean(axis=-1), x.mean(axis=-2)
    ss_seeds = q * np.sum((seed_means - grand[..., None]) ** 2, axis=-1)
    ss_queries = s * np.sum((query_means - grand[..., None]) ** 2, axis=-1)
    ss_total = np.sum((x - grand[..., None, None]) ** 2, axis=(-2, -1))
    df_s, df_q, df_e = s - 1.0, q - 1.0, (s - 1.0) * (q - 1.0)
    ms_s, ms_q = ss_seeds / df_s, ss_queries / df_q
    ms_e = np.maximum(ss_total - ss_seeds - ss_queries, 0.0) / df_e
    variance = np.maximum(ms_s + ms_q - ms_e, np.maximum(ms_s, ms_q))
    upper = ms_s * df_s / stats.chi2.ppf(1 - DF_SEED_LIMIT, df_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (upper + ms_q - ms_e) ** 2 / (upper ** 2 / df_s + ms_q ** 2 / df_q + ms_e ** 2 / df_e)
    return grand, np.sqrt(variance / (s * q)), np.clip(df, df_s, None)


def t_inference(estimate: np.ndarray, se: np.ndarray, df: np.ndarray,
                confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, two-sided p of estimate = 0) from a t-distributed estimate.  A zero standard
    error gives a point interval and p = 1 (estimate 0) or 0."""
    estimate, se = np.asarray(estimate, dtype=np.float64), np.asarray(se, dtype=np.float64)
    df = np.where(np.isfinite(df) & (df > 0), df, 1.0)
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(se > 0, 2 * stats.t.sf(np.abs(estimate) / se, df), np.where(estimate == 0, 1.0, 0.0))
    return estimate - half, estimate + half, p


# --- queries only: resampling, strata by seed (nested) or one shared query set (crossed) -----
def query_resampling(strata: Sequence[np.ndarray], confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                     seed: int = 0, test: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(estimate, low, high, p) of the mean over strata of each stratum's mean, with queries
    resampled within strata: a percentile bootstrap interval and, with ``test``, a two-sided
    sign-flip permutation p-value (each value's sign flipped at random: the paired test of
    A − B differences).  A stratum is ``(Q_s,)`` or ``(Q_s, B)`` for B data sets at once (the
    calibration test's simulations); the same resamples serve every one of them.
    """
    strata = [np.asarray(v, dtype=np.float64) for v in strata]
    rng = np.random.default_rng(seed)
    values = np.concatenate(strata)
    batch = values.ndim == 1
    values = values[:, None] if batch else values
    weights = np.concatenate([np.full(len(v), 1.0 / (len(strata) * len(v))) for v in strata])
    weighted = weights[:, None] * values
    estimate = weighted.sum(axis=0)
    boot = np.empty((n_resamples, values.shape[1]))
    beyond = np.zeros(values.shape[1])
    rows = max(1, _CHUNK // len(values))
    for start in range(0, n_resamples, rows):
        r = min(rows, n_resamples - start)
        counts = np.concatenate([rng.multinomial(len(v), np.full(len(v), 1.0 / len(v)), size=r) for v in strata],
                                axis=1)
        boot[start:start + r] = counts @ weighted
        if test:
            signs = rng.integers(0, 2, size=(r, len(values))) * 2.0 - 1.0
            flipped = np.abs(signs @ weighted)
            beyond += np.sum(flipped >= np.abs(estimate) * (1 - 1e-12) - 1e-15, axis=0)
    low, high = np.quantile(boot, [0.5 - confidence / 2, 0.5 + confidence / 2], axis=0)
    p = (beyond + 1) / (n_resamples + 1) if test else None
    if batch:
        return estimate[0], low[0], high[0], None if p is None else p[0]
    return estimate, low, high, p


# --- one mean (an entry, or a difference), either scheme -------------------------------------
@dataclass(frozen=True)
class Estimate:
    interval: Interval
    p_value: float | None  # two-sided p of a zero mean (differences only)
    p_floor: float  # the smallest p this test can give (0 for the t-test)


def estimate_mean(per_seed: Sequence[np.ndarray], crossed: bool = False, variance: str = SEEDS, test: bool = False,
                  confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = 0) -> Estimate:
    """The mean over seeds of each seed's mean per-query score, with an interval (and, with
    ``test``, a p-value of a zero mean) under ``variance``: SEEDS falls back to QUERIES with
    fewer than :data:`MIN_SEEDS` seeds, and says so in its :class:`Scheme`."""
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {', '.join(VARIANCES)}, not {variance!r}")
    samples = [np.asarray(s, dtype=np.float64) for s in per_seed]
    if crossed and len({len(s) for s in samples}) > 1:
        raise ValueError("a crossed design needs the same queries at every seed")
    fallback = variance == SEEDS and len(samples) < MIN_SEEDS
    scheme = Scheme(QUERIES if fallback else variance, crossed, len(samples), fallback)
    if scheme.variance == SEEDS:
        moments = crossed_moments(np.stack(samples)) if crossed else nested_moments([s.mean() for s in samples])
        low, high, p = t_inference(*moments, confidence=confidence)
        return Estimate(Interval(float(moments[0]), float(low), float(high), scheme), float(p) if test else None, 0.0)
    strata = [np.mean(samples, axis=0)] if crossed else samples
    estimate, low, high, p = query_resampling(strata, confidence, n_resamples, seed, test)
    return Estimate(Interval(float(estimate), float(low), float(high), scheme),
                    None if p is None else float(p), 1.0 / (n_resamples + 1))


def entry_interval(per_seed: list[np.ndarray], confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                   seed: int = 0, crossed: bool = False, variance: str = SEEDS) -> Interval:
    """Mean over seeds of mean per-query scores, with its interval under ``variance``."""
    return estimate_mean(per_seed, crossed, variance, False, confidence, n_resamples, seed).interval


@dataclass(frozen=True)
class PairedResult:
    difference: Interval  # A − B, with the scheme it covers
    p_value: float
    n_queries: int  # distinct queries: one seed's on a crossed design, every seed's on a nested one
    p_floor: float = 0.0  # the smallest p the test can give

    @property
    def scheme(self) -> Scheme | None:
        return self.difference.scheme


def paired_comparison(a: list[np.ndarray], b: list[np.ndarray], confidence: float = CONFIDENCE,
                      n_resamples: int = N_RESAMPLES, seed: int = 0, crossed: bool = False,
                      variance: str = SEEDS) -> PairedResult:
    """A − B on the same queries, seed by seed (d = A − B per query of a seed's split).

    SEEDS (3+ seeds): t-interval and paired t-test on the per-seed mean differences, with the
    query term on a crossed design (:func:`crossed_moments`); otherwise QUERIES: bootstrap
    interval and sign-flip permutation test over queries (:func:`query_resampling`)."""
    if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b)):
        raise ValueError("paired comparison needs the same seeds and the same queries for both methods")
    diffs = [np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64) for x, y in zip(a, b)]
    result = estimate_mean(diffs, crossed, variance, True, confidence, n_resamples, seed)
    n_queries = len(diffs[0]) if crossed else sum(map(len, diffs))
    return PairedResult(result.interval, result.p_value, n_queries, result.p_floor)


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
        raise LeaderboardError(f"per-query scores are stored for {', '.join(PER_QUERY_METRICS)}, not {metric!r}")
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

    interval: Interval  # its scheme says which variance it covers
    best: bool  # highest mean of its column
    tied_with_best: bool  # not significantly different from the column's best (Holm over the column)
    p_vs_best: float | None = None  # Holm-adjusted p of (best − this); None for the best itself
    test: Scheme | None = None  # the scheme of the test against the best (the column's shared seeds)


def leaderboard_statistics(frame: pd.DataFrame, metric: str = "map@all", alpha: float = ALPHA,
                           n_resamples: int = N_RESAMPLES, progress: bool = True,
                           variance: str = SEEDS) -> dict[tuple, EntryStatistics]:
    """(dataset, protocol, features, coding, direction, row, bits) -> interval and significance mark.

    For every leaderboard column (one table, one bit length) each entry gets its interval
    over the seeds it has, and every ranked entry is compared with the column's best by
    :func:`paired_comparison` over the seeds the column shares (the seeds that choose the
    best, :attr:`cmhbench.analysis.leaderboard.Table.shared`), both under ``variance`` (crossed or
    nested as the stored query rows say); the column's p-values are Holm-corrected together,
    and an entry whose adjusted p is at least ``alpha`` is marked as not significantly
    different from the best.  Collapsed entries are never the best.  Needs the per-query
    scores of ``metric``; shows a progress bar on a terminal.
    """
    from tqdm.auto import tqdm

    per_query_key("i2t", metric)  # fails early, naming the metrics that have per-query scores
    if variance not in VARIANCES:
        raise LeaderboardError(f"--variance must be one of {', '.join(VARIANCES)}, not {variance!r}")
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
        p_values, tests = [], {}
        for row in others:
            for seed in seeds:
                if not np.array_equal(scores[row][seed][0], scores[best][seed][0]):
                    raise LeaderboardError(f"{table.dataset} seed {seed}: {row} and {best} were scored on "
                                     "different queries")
            compared = paired_comparison([scores[best][s][1] for s in seeds], [scores[row][s][1] for s in seeds],
                                         n_resamples=n_resamples, variance=variance,
                                         crossed=crossed_design([scores[best][s][0] for s in seeds]))
            p_values.append(compared.p_value)
            tests[row] = compared.scheme
        adjusted = dict(zip(others, holm(p_values))) if others else {}
        for row in present.index:
            own = [scores[row][s] for s in sorted(scores[row])]
            interval = entry_interval([v for _, v in own], n_resamples=n_resamples, variance=variance,
                                      crossed=crossed_design([q for q, _ in own]))
            p = adjusted.get(row)
            tied = row == best or (p is not None and p >= alpha)
            result[table.key(row, bits)] = EntryStatistics(interval, row == best, tied, p, tests.get(row))
    return result


def compare_methods(frame: pd.DataFrame, a: str, b: str, metric: str = "map@all", variance: str = SEEDS,
                    n_resamples: int = N_RESAMPLES) -> pd.DataFrame:
    """Paired A − B per dataset, protocol, coding, direction and bits, Holm-corrected (test
    cells only), under ``variance``; each row names the design (crossed / nested, from the
    stored query rows) and the variance its interval covers (``covers``), and carries the
    smallest p its test can give (``p floor``).  A method with several configurations in one
    of them is an error, never a mix."""
    if variance not in VARIANCES:
        raise LeaderboardError(f"--variance must be one of {', '.join(VARIANCES)}, not {variance!r}")
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
                    raise LeaderboardError(f"{dataset} seed {seed}: {a} and {b} were scored on different queries")
            result = paired_comparison([sa[s][1] for s in seeds], [sb[s][1] for s in seeds], variance=variance,
                                       n_resamples=n_resamples, crossed=crossed_design([sa[s][0] for s in seeds]))
            rows.append({"dataset": dataset, "protocol": protocol, "features": features, "database_coding": coding,
                         "direction": DIRECTIONS[direction], "bits": bits, "seeds": len(seeds),
                         "design": result.scheme.design, "queries": result.n_queries,
                         f"{a} − {b}": result.difference.estimate, "low": result.difference.low,
                         "high": result.difference.high, "p": result.p_value, "covers": result.scheme.label(),
                         "p floor": result.p_floor, "_scheme": result.scheme})
    table = pd.DataFrame(rows)
    if not table.empty:
        table.insert(table.columns.get_loc("covers"), "p (Holm)", holm(table["p"].tolist()))
    return table


def unreachable(p_floors: Sequence[float], alpha: float = ALPHA) -> float | None:
    """The smallest Holm-adjusted p that ``len(p_floors)`` comparisons can reach, when it is at
    least ``alpha`` (no comparison can be significant whatever the data); None otherwise.
    Holm multiplies the smallest p by the number of comparisons, so a resampling test whose p
    cannot go below 1/(resamples + 1) loses everything past ``alpha × (resamples + 1)`` rows."""
    if not len(p_floors):
        return None
    smallest = min(1.0, len(p_floors) * min(p_floors))
    return smallest if smallest >= alpha else None


def compare_text(table: pd.DataFrame, metric: str, alpha: float = ALPHA) -> str:
    """``cmhbench compare``'s output: the rows of :func:`compare_methods`, then one line per
    scheme saying which variance the intervals and p-values cover, and one line instead of the
    p-values where Holm over the rows cannot reach ``alpha``."""
    from tabulate import tabulate

    shown = table.drop(columns=["p floor", "_scheme"])
    floor = unreachable(table["p floor"].tolist(), alpha)
    if floor is not None:
        shown = shown.drop(columns=["p", "p (Holm)"])
    formats = [".3g" if column.startswith("p") else ".4f" for column in shown.columns]  # p: no 0.0000
    lines = [tabulate(shown.values.tolist(), headers=list(shown.columns), floatfmt=formats), "",
             f"{metric}; difference = mean over seeds of the mean per-query difference; 95% intervals; "
             "p Holm-corrected over the rows."]
    seen = []
    for scheme in table["_scheme"]:
        if scheme.sentence() not in seen:
            seen.append(scheme.sentence())
    lines += [f"Intervals and p cover {sentence}" for sentence in seen]
    if floor is not None:
        lines.append(f"p not shown: with {len(table)} rows, Holm-adjusted p cannot go below {floor:.3g} ≥ α = "
                     f"{alpha} (a resampling p is at least 1/(resamples + 1)), so no row can be significant; "
                     "compare fewer rows, or give 3+ seeds for the t-test.")
    return "\n".join(lines) + "\n"


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
