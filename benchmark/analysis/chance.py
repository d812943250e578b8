"""The chance level of a leaderboard: what a random ranking scores, from the stored labels.

A collapsed model, or one that learnt nothing, scores about this; a table without the
``random`` method would otherwise have nothing to compare with.

For one query with R relevant items among N, a ranking drawn uniformly at random has

    E[AP] = (R − 1)/(N − 1) + H_N · (N − R) / (N (N − 1)),   H_N = Σ_{k≤N} 1/k

(the item at rank k is relevant with probability R/N, and given that, the expected
precision at k is (1 + (k − 1)(R − 1)/(N − 1))/k; sum over k and divide by R).  It is
exact for ``map@all`` and ``tmap@all`` (the tie-aware AP of random codes is the AP of a
random order).  For the precision-like metrics (``map@K``, ``p@K``, ``p@rH``) the level
given is R/N, the expected precision of any prefix of a random ranking, the usual
approximation.  Other metrics get no level.  A query with R = 0 scores 0, as in the metrics.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

EXACT = ("map@all", "tmap@all")
PRECISION_LIKE = re.compile(r"^(map@\d+|p@\d+|p@r\d+)$")


def expected_ap(relevant: np.ndarray, n: int) -> np.ndarray:
    """E[AP] of a uniformly random ranking of ``n`` items, per query with ``relevant`` items."""
    r = np.asarray(relevant, dtype=np.float64)
    if n <= 1:
        return (r > 0).astype(np.float64)
    harmonic = float(np.sum(1.0 / np.arange(1, n + 1)))
    value = (r - 1) / (n - 1) + harmonic * (n - r) / (n * (n - 1))
    return np.where(r > 0, value, 0.0)


def relevant_counts(query_labels: np.ndarray, database_labels: np.ndarray) -> np.ndarray:
    """Items sharing at least one label with each query (multi-hot 0/1 inputs)."""
    q = (np.asarray(query_labels) > 0).astype(np.float32)
    d = (np.asarray(database_labels) > 0).astype(np.float32)
    return ((q @ d.T) > 0).sum(axis=1)


def metric_chance(metric: str, relevant: np.ndarray, n: int) -> float | None:
    """The mean over queries of the chance score of ``metric``, or None where none is defined."""
    if metric in EXACT:
        return float(expected_ap(relevant, n).mean())
    if PRECISION_LIKE.match(metric):
        return float((np.asarray(relevant, dtype=np.float64) / n).mean())
    return None


def chance_level(cells: pd.DataFrame, metric: str) -> float | None:
    """Mean over the seeds of ``cells`` (ok cells of one table) of the chance level of ``metric``.

    Reads the packed labels of one cell per seed (the split, hence the labels, depends on the
    seed only).  None when the metric has no defined level or no labels are stored.
    """
    from cmhbench import store

    if metric not in EXACT and not PRECISION_LIKE.match(metric):
        return None
    if cells.empty or not {"out", "key", "seed"} <= set(cells.columns):
        return None
    levels = []
    for _, row in cells.drop_duplicates("seed").iterrows():
        try:
            arrays = store.read_arrays(row["out"], row["key"], ("query_labels", "database_labels", "n_labels"))
        except (OSError, KeyError, ValueError):
            continue
        n_labels = int(arrays["n_labels"])
        q = np.unpackbits(arrays["query_labels"], axis=1)[:, :n_labels]
        d = np.unpackbits(arrays["database_labels"], axis=1)[:, :n_labels]
        levels.append(metric_chance(metric, relevant_counts(q, d), len(d)))
    levels = [v for v in levels if v is not None]
    return float(np.mean(levels)) if levels else None
