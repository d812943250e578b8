"""Retrieval metrics by Hamming ranking, each defined once, named, with a stated tie rule.

Every query is ranked against the whole database by the Hamming distance between codes.
Relevance: the query and the item share at least one label.  A query with no relevant
item in the database scores 0 and stays in the mean, in every metric but the ``-found``
ones.  Each metric is the mean over queries of a per-query score.

Tie rule.  Published code breaks ties between equal distances arbitrarily (an unstable
argsort), so its scores depend on the sort implementation.  Here every metric of the
ranking uses the *stable* rule: items at equal distance keep ascending database-row
order (``TIE_RULE``), so a score is a function of the codes alone.  ``tmap@all`` and
``tmap@K`` instead average over all orders of tied items, exactly
(:mod:`cmhbench.evaluation.ties` derives both).  For healthy codes the rule moves map@K a
little; for collapsed codes (a few distinct codes, so groups of hundreds of tied items
straddle rank K) the row-order map@K is reproducible but arbitrary, and ``tmap@K`` is the
number to read.

Notation for one query: items ranked 1..N; R relevant items in the database at 1-based
ranks p_1 < p_2 < ... < p_R; P(k) = precision of the top k; rel(k) = 1 if the item at
rank k is relevant; n_d / r_d = items / relevant items at Hamming distance d.

Metric names (``evaluate(..., metrics=(...))``; K ≥ 1 and H ≥ 0 are integers written in the name):

- ``map@all``: AP = (1/R) Σ_m m / p_m = (1/R) Σ_k P(k)·rel(k), over the whole ranking
  (DCMH; UCCH's code leaves out queries with no relevant item, ``map@all-found``).
- ``map@K``: AP@K = (1/R_K) Σ_{k≤K} P(k)·rel(k), R_K = relevant items in the top K (0 when
  none): the normalisation of DJSRH, JDSH, DGCPN, CIRH and DeepHash-pytorch's
  ``CalcTopMap``.  Common K: 50, 1000, 5000.
- ``map@K-found``: the same AP@K, averaged only over the queries with at least one relevant
  item in the top K (the others are dropped from the mean, not counted as 0): UCCH's
  ``fx_calc_map_multilabel_k(..., k=K)``.  ``map@all-found`` is its ``k=0`` (whole ranking,
  what UCCH's training script reports): ``map@all`` over the queries with any relevant item.
  NaN when no query qualifies.
- ``cmap@K``: the ``calc_map_k(qB, rB, query_L, retrieval_L, k)`` of the DCMH-pytorch
  lineage (torchcmh, DGCPN, MITH, ...): with t = min(K, R), AP = (1/t) Σ_{m≤t} m / p_m,
  the precision at each of the first t relevant items *wherever they are ranked* (not only
  inside the top K), averaged.  ``cmap@K`` with K ≥ R equals ``map@all``.  That code skips
  queries with no relevant item but divides by the number of all queries, so they count
  as 0, as here.
- ``tmap@all``: tie-aware AP (McSherry & Najork, ECIR 2008; He, Cakir, Bargal & Sclaroff,
  "Hashing as Tie-Aware Learning to Rank", CVPR 2018): the expected AP over all orders of
  the items inside each group of equal distance, every order equally likely.  Exact, from
  the per-distance counts: with N_<d and R_<d items / relevant items closer than d,
  AP_T = (1/R) Σ_d (r_d/n_d) Σ_{i=1}^{n_d} [R_<d + 1 + (i−1)(r_d−1)/(n_d−1)] / (N_<d + i)
  (a relevant item at place i of its group has, in expectation, (i−1)(r_d−1)/(n_d−1) other
  relevant items before it in the group; the second term is 0 when n_d = 1).
- ``tmap@K``: tie-aware AP@K, the exact expected AP@K (map@K's normalisation, 0 for an
  order with no relevant item in the top K) over all orders of the items inside each group
  of equal distance; the group straddling rank K makes the normaliser random
  (hypergeometric), see :mod:`cmhbench.evaluation.ties`.  ``tmap@K`` with K ≥ N equals
  ``tmap@all``.
- ``p@K``: precision of the top K, (relevant items in the top K) / K.
- ``r@K``: recall of the top K, (relevant items in the top K) / R.
- ``p@rH`` (e.g. ``p@r2``): precision within Hamming radius H: of the items at distance
  ≤ H, the fraction relevant; 0 when no item is that close (the usual convention, e.g.
  "precision within Hamming radius 2" in the hashing literature counts such a query as 0).
  Independent of ties.
- ``r@rH``: recall within Hamming radius H: relevant items at distance ≤ H, over R.

A K larger than the database is read as the database size.  Curves (stored per cell,
see :mod:`cmhbench.evaluation.rescore`): precision and recall at each K of a grid
(:func:`precision_at_k`, stable ties), and precision and recall within each Hamming
radius 0..bits (:func:`precision_recall_by_radius`, each a mean over queries of the
per-query values defined above).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from cmhbench.conventions import DEFAULT_METRICS
from cmhbench.errors import UserError
from cmhbench.evaluation.engine import PackedBits, RankingStats, pack_bits, ranking_stats
from cmhbench.evaluation.ties import ratio, tie_aware_ap, tie_aware_ap_at_k

TIE_RULE = ("stable: equal Hamming distances keep ascending database row order "
            "(every metric except tmap@all and tmap@K, which average exactly over all orders of tied items)")
RELEVANCE = "relevant = shares at least one label with the query"
METRIC_DEFINITIONS = {
    "map@all": "mean over queries of AP over the whole ranking, normalised by all relevant items",
    "map@K": "mean over queries of AP over the top K, normalised by the relevant items inside the top K "
             "(DJSRH / DeepHash CalcTopMap)",
    "cmap@K": "mean over queries of calc_map_k (DCMH lineage): mean precision at the first min(K, R) "
              "relevant items wherever they are ranked, R = relevant items in the database",
    "map@K-found": "map@K averaged only over the queries with at least one relevant item in the top K "
                   "(UCCH's fx_calc_map_multilabel_k); NaN when there is none",
    "map@all-found": "map@all averaged only over the queries with at least one relevant item "
                     "(UCCH's fx_calc_map_multilabel_k with k=0); NaN when there is none",
    "tmap@all": "mean over queries of tie-aware AP: the exact expected AP over all orders of items at "
                "equal Hamming distance (McSherry & Najork 2008; He et al. CVPR 2018)",
    "tmap@K": "mean over queries of tie-aware AP@K: the exact expected AP@K (map@K's normalisation) over "
              "all orders of items at equal Hamming distance",
    "p@K": "mean over queries of precision of the top K",
    "r@K": "mean over queries of recall of the top K",
    "p@rH": "mean over queries of precision within Hamming radius H (0 where no item is within H)",
    "r@rH": "mean over queries of recall within Hamming radius H",
}
NOTES = ("a query with no relevant item in the database scores 0 and stays in the mean, in every metric "
         "except the *-found ones, which drop it; a K larger than the database is read as the database size")

_RANKED = re.compile(r"^(map|cmap|tmap|p|r)@([1-9][0-9]*)$")
_WHOLE = re.compile(r"^(map|tmap)@all$")
_FOUND = re.compile(r"^map@(all|[1-9][0-9]*)-found$")
_RADIUS = re.compile(r"^(p|r)@r(0|[1-9][0-9]*)$")
_NAMES = ("map@all, map@K, map@K-found, map@all-found, cmap@K, tmap@all, tmap@K, p@K, r@K, p@rH, r@rH "
          "(K ≥ 1 and H ≥ 0 integers, e.g. map@50, tmap@50, p@r2)")


class MetricError(UserError, ValueError):
    """An unknown metric name."""


@dataclass(frozen=True)
class MetricSpec:
    """A parsed metric name: ``kind`` is the name's pattern (a key of METRIC_DEFINITIONS)."""

    name: str
    kind: str
    k: int | None  # the cut-off K, the Hamming radius H, or None for the whole ranking

    @property
    def needs_ranking(self) -> bool:
        """Whether the metric depends on the stable ranking (not only on per-distance counts)."""
        return self.kind in ("map@all", "map@K", "map@all-found", "map@K-found", "cmap@K", "p@K", "r@K")

    @property
    def found_only(self) -> bool:
        """Whether the mean runs only over queries that found a relevant item (NaN marks the others)."""
        return self.kind.endswith("-found")


def parse_metric(name: str) -> MetricSpec:
    """Parse and validate a metric name (see the module docstring for every name)."""
    if not isinstance(name, str):
        raise MetricError(f"unknown metric {name!r}; metrics are {_NAMES}")
    match = _WHOLE.match(name)
    if match:
        return MetricSpec(name, f"{match.group(1)}@all", None)
    match = _RANKED.match(name)
    if match:
        return MetricSpec(name, f"{match.group(1)}@K", int(match.group(2)))
    match = _FOUND.match(name)
    if match:
        whole = match.group(1) == "all"
        return MetricSpec(name, "map@all-found" if whole else "map@K-found", None if whole else int(match.group(1)))
    match = _RADIUS.match(name)
    if match:
        return MetricSpec(name, f"{match.group(1)}@rH", int(match.group(2)))
    raise MetricError(f"unknown metric {name!r}; metrics are {_NAMES}")


def check_metric(name: str) -> int | None:
    """Validate a metric name; return its cut-off K or Hamming radius H (None for the whole ranking)."""
    return parse_metric(name).k


# ------------------------------------------------------------------------------- inputs

def _as_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, wherever it lives
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def as_packed(x: Any, what: str) -> PackedBits:
    """Codes or labels as packed rows; ``x`` is a 2-D array (positive = bit set) or PackedBits."""
    if isinstance(x, PackedBits):
        return x
    arr = _as_array(x)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (rows × bits), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{what} have no columns")
    return pack_bits(arr)


def hamming_distances(query: np.ndarray, database: np.ndarray) -> np.ndarray:
    """Exact Hamming distances between two code matrices (±1 or 0/1), ``(n_query, n_db)`` int32.

    A helper for small inputs (tests, inspection): the evaluation itself never builds the
    full matrix.
    """
    q, d = as_packed(query, "query codes"), as_packed(database, "database codes")
    if q.n_bits != d.n_bits:
        raise ValueError(f"query codes have {q.n_bits} bits, database {d.n_bits}")
    qw, dw = q.u64(), d.u64()
    out = np.zeros((q.n, d.n), np.int32)
    for w in range(qw.shape[1]):
        out += np.bitwise_count(qw[:, None, w] ^ dw[None, :, w])
    return out


# --------------------------------------------------------------------- per-query scores

def _within_radius(stats: RankingStats, radius: int) -> tuple[np.ndarray, np.ndarray]:
    upto = min(radius, stats.n.shape[1] - 1) + 1
    return stats.n[:, :upto].sum(axis=1), stats.r[:, :upto].sum(axis=1)


def per_query(stats: RankingStats, metric: str | MetricSpec) -> np.ndarray:
    """The per-query scores of one metric, ``(Q,)`` float64 (their mean is the metric).

    For the ``*-found`` metrics a query without a relevant item (in the top K) is NaN: it
    is left out of the mean, and ``np.nanmean`` of the array is the metric.
    """
    spec = parse_metric(metric) if isinstance(metric, str) else metric
    relevant = stats.relevant
    if spec.needs_ranking and stats.ap_sum is None:
        raise ValueError(f"{spec.name} needs the stable ranking, which these statistics lack")
    if spec.kind == "map@all":
        return ratio(stats.ap_sum, relevant)
    if spec.kind == "map@all-found":
        return np.where(relevant > 0, ratio(stats.ap_sum, relevant), np.nan)
    if spec.kind == "tmap@all":
        return tie_aware_ap(stats.n, stats.r)
    if spec.kind == "tmap@K":
        return tie_aware_ap_at_k(stats.n, stats.r, spec.k)
    if spec.kind in ("p@rH", "r@rH"):
        retrieved, found = _within_radius(stats, spec.k)
        return ratio(found, retrieved if spec.kind == "p@rH" else relevant)
    if spec.kind == "cmap@K":
        col = _column(stats.rank_cutoffs, spec.k, spec.name)
        return ratio(stats.rank_sum[:, col], np.minimum(spec.k, relevant))
    k = min(spec.k, stats.n_database)
    col = _column(stats.pos_cutoffs, k, spec.name)
    hits = stats.hits[:, col]
    if spec.kind == "map@K":
        return ratio(stats.pos_sum[:, col], hits)
    if spec.kind == "map@K-found":
        return np.where(hits > 0, ratio(stats.pos_sum[:, col], hits), np.nan)
    if spec.kind == "p@K":
        return hits / float(k)
    return ratio(hits, relevant)  # r@K


def _column(cutoffs: Sequence[int], k: int, name: str) -> int:
    try:
        return cutoffs.index(k)
    except ValueError:
        raise ValueError(f"{name} needs cut-off {k}, which these statistics lack") from None


def requirements(specs: Iterable[MetricSpec]) -> dict[str, Any]:
    """What :func:`ranking_stats` must compute for these metrics."""
    specs = list(specs)
    return {
        "stable": any(s.needs_ranking for s in specs),
        "pos_cutoffs": tuple(s.k for s in specs if s.kind in ("map@K", "map@K-found", "p@K", "r@K")),
        "rank_cutoffs": tuple(s.k for s in specs if s.kind == "cmap@K"),
    }


def scores(stats: RankingStats, metrics: Iterable[str | MetricSpec]) -> dict[str, float]:
    """{metric name: mean over queries} from computed statistics."""
    out = {}
    for metric in metrics:
        spec = parse_metric(metric) if isinstance(metric, str) else metric
        values = per_query(stats, spec)
        if spec.found_only:
            values = values[~np.isnan(values)]
        out[spec.name] = float(values.mean()) if values.size else float("nan")
    return out


# ------------------------------------------------------------------------------ curves

def precision_at_k(stats: RankingStats, grid: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean precision and recall of the top K for each K of ``grid`` (stable ties).

    Returns ``(k, precision, recall)``; K values larger than the database are dropped
    (duplicates too), so ``k`` is the grid actually used.  The statistics must have been
    computed with these K among ``pos_cutoffs``.
    """
    ks = np.array(sorted({int(k) for k in grid if 1 <= int(k) <= stats.n_database}), np.int64)
    if stats.ap_sum is None:
        raise ValueError("precision at K needs the stable ranking, which these statistics lack")
    cols = [_column(stats.pos_cutoffs, int(k), f"p@{k}") for k in ks]
    hits = stats.hits[:, cols].astype(np.float64)
    precision = (hits / ks).mean(axis=0) if len(hits) else np.zeros(len(ks))
    recall = ratio(hits, stats.relevant[:, None]).mean(axis=0) if len(hits) else np.zeros(len(ks))
    return ks, precision, recall


def precision_recall_by_radius(stats: RankingStats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean precision and recall within each Hamming radius 0..bits (ties play no part).

    Returns ``(radius, precision, recall)``; per query, precision is 0 where no item is
    within the radius and recall is 0 where the query has no relevant item.
    """
    retrieved = np.cumsum(stats.n, axis=1)
    found = np.cumsum(stats.r, axis=1)
    precision = ratio(found, retrieved)
    recall = ratio(found, stats.relevant[:, None])
    radius = np.arange(stats.n.shape[1])
    if stats.n.shape[0] == 0:
        return radius, np.zeros(len(radius)), np.zeros(len(radius))
    return radius, precision.mean(axis=0), recall.mean(axis=0)


# ----------------------------------------------------------------------------- evaluate

def evaluate(
    query_codes: np.ndarray,
    database_codes: np.ndarray,
    query_labels: np.ndarray,
    database_labels: np.ndarray,
    metrics: Iterable[str] = DEFAULT_METRICS,
    *,
    workers: int | None = None,
    backend: str = "auto",
) -> dict[str, float]:
    """Score codes of queries against a database; returns {metric name: value}.

    Codes: 2-D arrays, ±1 (or 0/1, bool: positive = bit set) or :class:`PackedBits`;
    labels: multi-hot 0/1 arrays (or PackedBits).  Database rows in ascending original row
    order (the stable tie rule follows it).  ``workers``: threads over query blocks
    (default: the cores this process may use); ``backend``: see :func:`ranking_stats`.
    """
    specs = [parse_metric(name) for name in ([metrics] if isinstance(metrics, str) else metrics)]
    stats = compute_stats(query_codes, database_codes, query_labels, database_labels, specs,
                          workers=workers, backend=backend)
    if stats.n.shape[0] == 0:
        raise ValueError("there are no queries to evaluate")
    return scores(stats, specs)


def compute_stats(
    query_codes: Any,
    database_codes: Any,
    query_labels: Any,
    database_labels: Any,
    metrics: Iterable[str | MetricSpec],
    *,
    extra_cutoffs: Sequence[int] = (),
    workers: int | None = None,
    backend: str = "auto",
) -> RankingStats:
    """The ranking statistics the given metrics (and ``extra_cutoffs``: top-K cut-offs for
    curves) need, from codes and labels in any form :func:`evaluate` accepts."""
    specs = [parse_metric(m) if isinstance(m, str) else m for m in metrics]
    need = requirements(specs)
    if extra_cutoffs:
        need["stable"] = True
        need["pos_cutoffs"] = need["pos_cutoffs"] + tuple(int(k) for k in extra_cutoffs)
    q = as_packed(query_codes, "query codes")
    d = as_packed(database_codes, "database codes")
    ql = as_packed(query_labels, "query labels")
    dl = as_packed(database_labels, "database labels")
    return ranking_stats(q, d, ql, dl, workers=workers, backend=backend, **need)
