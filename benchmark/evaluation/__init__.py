"""Retrieval metrics by Hamming ranking; one entry point, :func:`evaluate`.

- :mod:`cmhbench.evaluation.metrics`: the metric names and their definitions,
  :func:`evaluate`, curves.
- :mod:`cmhbench.evaluation.ties`: tie-aware AP and AP@K (exact expectations over the orders
  of tied items) and the best and worst tie orders, from per-distance counts.
- :mod:`cmhbench.evaluation.engine`: packed codes, popcount distances, per-query ranking
  statistics (numpy; a numba kernel where numba is installed).
- :mod:`cmhbench.evaluation.scoring`: scoring a fresh cell (the runner's path) and the
  arrays a cell stores about its evaluation.
- :mod:`cmhbench.evaluation.rescore`: re-scoring a stored cell's ``arrays.npz`` and
  scoring an external codes file, with their inputs validated.
"""

from cmhbench.evaluation.engine import (
    PackedBits,
    RankingStats,
    available_backends,
    pack_bits,
    packed_bits,
    ranking_stats,
)
from cmhbench.evaluation.metrics import (
    METRIC_DEFINITIONS,
    NOTES,
    RELEVANCE,
    TIE_RULE,
    MetricError,
    MetricSpec,
    check_metric,
    compute_stats,
    evaluate,
    hamming_distances,
    parse_metric,
    per_query,
    precision_at_k,
    precision_recall_by_radius,
    scores,
)
from cmhbench.evaluation.rescore import (
    CODES_FILE_FORMAT,
    EvaluationInputError,
    evaluate_cell,
    evaluation_arrays,
    score_cell_arrays,
    score_cell_file,
    score_codes_file,
)
from cmhbench.evaluation.scoring import ARRAY_DEFINITIONS, DEFAULT_K_GRID, score_cell
from cmhbench.evaluation.ties import ap_at_k_extremes, tie_aware_ap, tie_aware_ap_at_k

__all__ = [
    "ARRAY_DEFINITIONS",
    "CODES_FILE_FORMAT",
    "DEFAULT_K_GRID",
    "METRIC_DEFINITIONS",
    "NOTES",
    "RELEVANCE",
    "TIE_RULE",
    "EvaluationInputError",
    "MetricError",
    "MetricSpec",
    "PackedBits",
    "RankingStats",
    "ap_at_k_extremes",
    "available_backends",
    "check_metric",
    "compute_stats",
    "evaluate",
    "evaluate_cell",
    "evaluation_arrays",
    "hamming_distances",
    "pack_bits",
    "packed_bits",
    "parse_metric",
    "per_query",
    "precision_at_k",
    "precision_recall_by_radius",
    "ranking_stats",
    "score_cell",
    "score_cell_arrays",
    "score_cell_file",
    "score_codes_file",
    "scores",
    "tie_aware_ap",
    "tie_aware_ap_at_k",
]
