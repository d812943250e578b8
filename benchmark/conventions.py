"""The names that scoring, storing and reporting share, each defined here and nowhere else.

A leaf module (it imports nothing from cmhbench), so that the runner, the re-scoring
path, the configuration, the statistics and the reports can all take these from one
place without importing one another.
"""

from __future__ import annotations

DIRECTIONS: dict[str, str] = {"i2t": "I→T", "t2i": "T→I"}
"""Retrieval directions, in the order every table shows them, with their display labels:
``i2t`` = image queries against a text database, ``t2i`` = text queries against images."""

DEFAULT_METRICS: tuple[str, ...] = ("map@all", "map@50")
"""What ``cmhbench run`` (and every scoring function) computes when no metrics are named:
map over the whole ranking, and map@50 as DJSRH and its successors report it."""

RESCORE_METRICS: tuple[str, ...] = ("map@all", "map@50", "tmap@all", "cmap@50", "p@r2")
"""The default of ``cmhbench evaluate``: wider than :data:`DEFAULT_METRICS` on purpose.
Re-scoring exists to add metrics to stored cells without refitting, so by default it adds
the tie-aware map, the DCMH-lineage map@50 and precision within Hamming radius 2 beside
the two the run computed (re-computing only those two would change nothing)."""

PER_QUERY_CUTOFFS: tuple[int, ...] = (50,)
"""The K of the per-query AP@K arrays every cell stores."""

PER_QUERY_RADIUS = 2
"""The Hamming radius of the per-query precision array every cell stores."""

PER_QUERY_METRICS: tuple[str, ...] = ("map@all", *(f"map@{k}" for k in PER_QUERY_CUTOFFS), "tmap@all",
                                      f"p@r{PER_QUERY_RADIUS}")
"""Metrics whose per-query scores a cell stores (what intervals and paired tests need)."""


def per_query_array(direction: str, metric: str) -> str:
    """The ``arrays.npz`` key of a metric's per-query scores: ``map@all`` → ``i2t_ap@all``,
    ``map@50`` → ``i2t_ap@50``, ``tmap@all`` → ``i2t_tap@all``, ``p@r2`` → ``i2t_p@r2``."""
    if metric.startswith("map@"):
        name = metric[1:]
    elif metric == "tmap@all":
        name = "tap@all"
    elif metric.startswith("p@r"):
        name = metric
    else:
        raise ValueError(f"no per-query array is defined for {metric!r}")
    return f"{direction}_{name}"


# --- what the reports say about statistics and fidelity (stated alike in Markdown, LaTeX, HTML)

VARIANCES = ("seeds", "queries")
"""What statistics' intervals and tests cover (``--variance``; the first is the default): training
runs and queries, or queries only (these trained models) (:mod:`cmhbench.analysis.stats`)."""

INTERVAL_RULE = ("t-interval over seeds (training runs), plus the query term where every seed answered the "
                 "same queries; a bootstrap over queries only where an entry has fewer than 3 seeds")
"""How an entry's 95% interval is computed by default (:func:`cmhbench.analysis.stats.entry_interval`)."""

SIGNIFICANCE_RULE = ("paired t-test over seeds paired by split, plus the query term where every seed answered "
                     "the same queries (fewer than 3 seeds: permutation test over queries), Holm-corrected over "
                     "the column, α = 0.05")
"""How an entry is judged not different from its column's best by default
(:func:`cmhbench.analysis.stats.leaderboard_statistics`)."""

TIED_MARK = "≈"
"""The mark of an entry not significantly different from its column's best."""

RECONSTRUCTED = "reconstructed"
"""The fidelity of a method rebuilt from partial information; reports mark such methods."""

RECONSTRUCTED_MARK = "†"
"""The mark reports put after a reconstructed method's name."""

VALIDATION_MARK = "‡"
"""The mark reports put after a row some of whose values were chosen on a validation split: a
``cmhbench tune`` variant, or a value the method registered with provenance ``validation``
(a dataset override or a default; ``param_sources`` in the cell's record names them)."""

VALIDATION_LEGEND = (f"{VALIDATION_MARK} = some hyper-parameter values chosen on a validation split (a cmhbench "
                     "tune variant, or a dataset override or default the method registered as chosen so; "
                     "results.csv's param_sources names them), not taken from the paper or the authors' code")
"""The one sentence that explains :data:`VALIDATION_MARK`, in every report's legend."""

COLLAPSE_BELOW = 16
"""A coded database with fewer distinct codes than this (or than it has items) is collapsed:
its ranking is coarse and scores drift toward the chance level.  Healthy models on
Wikipedia's 2,173 items use 100+ codes from 16 bits on; the collapsed 16-bit cells of
docs/deep-baselines.md use 4–8.  The leaderboard's mark and ``evaluate --codes`` share it."""

COLLAPSE_MARK = "⚠"
"""The mark of a collapsed entry (never bold)."""
