"""Mean average precision under Hamming ranking, with one stated tie rule.

Every query is ranked against the whole database by Hamming distance; items at equal
distance keep ascending database-row order (a stable sort), so a score is a function of
the codes alone, not of a sort implementation.  Relevance: the query and the item share
at least one label.  A query with no relevant item in the database scores 0 and stays in
the mean.

- ``map@all``: AP over the full ranking, AP = (1/R) Σ_k P(k)·rel(k), R = #relevant items.
- ``map@K``: AP over the top K with the DJSRH / DeepHash normalisation,
  AP@K = (1/R_K) Σ_{k≤K} P(k)·rel(k), R_K = #relevant items in the top K (0 if none).
"""

from __future__ import annotations

import re
from typing import Iterable

import numpy as np

TIE_RULE = "stable: equal Hamming distances keep ascending database row order"
RELEVANCE = "relevant = shares at least one label with the query"
METRIC_DEFINITIONS = {
    "map@all": "mean over queries of AP over the whole ranking, normalised by all relevant items",
    "map@K": "mean over queries of AP over the top K, normalised by the relevant items inside the top K",
}
_METRIC = re.compile(r"^map@(all|[1-9][0-9]*)$")


class MetricError(ValueError):
    """An unknown metric name."""


def check_metric(name: str) -> int | None:
    """Validate a metric name; return its cut-off K (None for the whole ranking)."""
    match = _METRIC.match(name)
    if not match:
        raise MetricError(f"unknown metric {name!r}; metrics are map@all and map@K for a positive K")
    return None if match.group(1) == "all" else int(match.group(1))


def hamming_distances(query: np.ndarray, database: np.ndarray) -> np.ndarray:
    """Hamming distances between ±1 code matrices, exact (float32 products of ±1 are integers)."""
    n_bits = query.shape[1]
    ip = query.astype(np.float32) @ database.astype(np.float32).T
    return ((n_bits - ip) * 0.5).astype(np.int32)


def evaluate(
    query_codes: np.ndarray,
    database_codes: np.ndarray,
    query_labels: np.ndarray,
    database_labels: np.ndarray,
    metrics: Iterable[str] = ("map@all", "map@50"),
) -> dict[str, float]:
    """Score ±1 codes of queries against a database; returns {metric name: value}."""
    cutoffs = {name: check_metric(name) for name in metrics}
    if query_codes.shape[1] != database_codes.shape[1]:
        raise ValueError(f"query codes have {query_codes.shape[1]} bits, database {database_codes.shape[1]}")
    n_query, n_db = query_codes.shape[0], database_codes.shape[0]
    ql = np.asarray(query_labels, dtype=np.float32)
    dl = np.asarray(database_labels, dtype=np.float32)
    totals = dict.fromkeys(cutoffs, 0.0)
    rank = np.arange(1, n_db + 1, dtype=np.float64)
    chunk = max(1, min(n_query, 2**25 // max(n_db, 1)))
    for start in range(0, n_query, chunk):
        stop = min(start + chunk, n_query)
        order = np.argsort(hamming_distances(query_codes[start:stop], database_codes), axis=1, kind="stable")
        relevant = (ql[start:stop] @ dl.T > 0)
        rel = np.take_along_axis(relevant, order, axis=1)
        hits = np.cumsum(rel, axis=1, dtype=np.float64)
        precision_at_hits = np.where(rel, hits / rank, 0.0)
        for name, k in cutoffs.items():
            k = n_db if k is None else min(k, n_db)
            found = hits[:, k - 1]
            ap = np.divide(precision_at_hits[:, :k].sum(axis=1), found, out=np.zeros(stop - start), where=found > 0)
            totals[name] += float(ap.sum())
    return {name: total / n_query for name, total in totals.items()}
