"""ROC-AUC of a similarity over (query, database) pairs, with a paired query bootstrap.

A method that trains under a similarity matrix (UCHM's generator, KDCMH's teacher) can be
judged before any hashing: how well does the similarity put same-label pairs above
different-label ones?  This module answers with the ROC-AUC over every (query, database)
pair, relevant = the two items share a label (the retrieval metrics' rule), ties counting
one half.

Intervals resample *queries* (the unit the pairs cluster on: all pairs of one query share
its item), and comparisons are paired: one resample of queries is applied to every
similarity, so the interval of a difference reflects how the similarities disagree on the
same queries.  Each resample's AUC comes from a Q × Q matrix of cross counts computed once
(``cross[a, b]`` = how many of query a's relevant pairs outscore query b's irrelevant ones),
so a thousand resamples cost a thousand small quadratic forms, not a thousand sorts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Resamples of queries for the intervals.
N_BOOTSTRAP = 1000


@dataclass(frozen=True)
class PairCounts:
    """What every resample's AUC is computed from: cross counts and per-query pair counts."""

    cross: np.ndarray  # Q × Q: query a's relevant pairs above query b's irrelevant ones (ties ½)
    relevant: np.ndarray  # per query: relevant pairs
    irrelevant: np.ndarray  # per query: irrelevant pairs

    def auc(self, weights: np.ndarray | None = None) -> float:
        """The AUC over all pairs, each query's pairs counted ``weights[q]`` times (default once)."""
        w = np.ones(len(self.relevant)) if weights is None else np.asarray(weights, dtype=np.float64)
        denominator = float(w @ self.relevant) * float(w @ self.irrelevant)
        return float(w @ self.cross @ w) / denominator if denominator > 0 else float("nan")


def _checked(similarity: np.ndarray, relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A finite Q × D similarity (float64) and the relevance of the same pairs (bool)."""
    S = np.asarray(similarity, dtype=np.float64)
    R = np.asarray(relevant, dtype=bool)
    if S.shape != R.shape or S.ndim != 2:
        raise ValueError(f"similarity {S.shape} and relevance {R.shape} must be the same Q × D shape")
    if not np.isfinite(S).all():
        raise ValueError("similarity has non-finite entries")
    return S, R


def pair_counts(similarity: np.ndarray, relevant: np.ndarray) -> PairCounts:
    """Cross counts of a Q × D similarity against the Q × D relevance of the same pairs."""
    S, R = _checked(similarity, relevant)
    n_queries = S.shape[0]
    owner = np.repeat(np.arange(n_queries), R.sum(axis=1))
    positives = S[R]  # row-major: grouped by query, in the order of ``owner``
    cross = np.zeros((n_queries, n_queries))
    for b in range(n_queries):
        negatives = np.sort(S[b][~R[b]])
        below = np.searchsorted(negatives, positives, side="left")
        not_above = np.searchsorted(negatives, positives, side="right")
        cross[:, b] = np.bincount(owner, weights=below + 0.5 * (not_above - below), minlength=n_queries)
    return PairCounts(cross=cross, relevant=R.sum(axis=1).astype(np.float64),
                      irrelevant=(~R).sum(axis=1).astype(np.float64))


def pair_auc(similarity: np.ndarray, relevant: np.ndarray) -> float:
    """The AUC over every pair of a Q × D similarity, ties ½ — what :func:`pair_counts` gives
    without the per-query cross counts that intervals need (one sort instead of Q: cheap enough
    to score many similarities, as ``cmhbench priors`` does).  NaN without pairs of both kinds."""
    S, R = _checked(similarity, relevant)
    negatives, positives = np.sort(S[~R]), S[R]
    if not negatives.size or not positives.size:
        return float("nan")
    below = np.searchsorted(negatives, positives, side="left")
    not_above = np.searchsorted(negatives, positives, side="right")
    return float((below.sum() + 0.5 * (not_above - below).sum()) / (positives.size * negatives.size))


@dataclass(frozen=True)
class AUCEstimate:
    """An AUC (or a difference of two) with its percentile bootstrap interval."""

    value: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}]"


def _interval(point: float, samples: np.ndarray, level: float) -> AUCEstimate:
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return AUCEstimate(point, float(low), float(high))


def compare_similarities(similarities: dict[str, np.ndarray], relevant: np.ndarray, *,
                         pairs: list[tuple[str, str]] | None = None, n_bootstrap: int = N_BOOTSTRAP,
                         level: float = 0.95,
                         seed: int = 0) -> tuple[dict[str, AUCEstimate], dict[tuple[str, str], AUCEstimate]]:
    """Each similarity's AUC and the differences of ``pairs`` (first minus second; default every
    pair, in the order given), with intervals from the same ``n_bootstrap`` resamples of queries."""
    counts = {name: pair_counts(S, relevant) for name, S in similarities.items()}
    n_queries = np.asarray(relevant).shape[0]
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n_queries, np.full(n_queries, 1.0 / n_queries), size=n_bootstrap)
    samples = {name: np.array([c.auc(w) for w in weights]) for name, c in counts.items()}
    points = {name: c.auc() for name, c in counts.items()}
    aucs = {name: _interval(points[name], samples[name], level) for name in counts}
    names = list(counts)
    if pairs is None:
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    unknown = sorted({name for pair in pairs for name in pair} - set(names))
    if unknown:
        raise ValueError(f"differences asked for unknown similarities: {', '.join(unknown)}")
    differences = {(a, b): _interval(points[a] - points[b], samples[a] - samples[b], level) for a, b in pairs}
    return aucs, differences


__all__ = ["AUCEstimate", "N_BOOTSTRAP", "PairCounts", "compare_similarities", "pair_auc", "pair_counts"]
