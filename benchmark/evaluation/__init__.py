"""Retrieval metrics by Hamming ranking; one entry point, :func:`evaluate`."""

from cmhbench.evaluation.metrics import (
    METRIC_DEFINITIONS,
    RELEVANCE,
    TIE_RULE,
    MetricError,
    check_metric,
    evaluate,
    hamming_distances,
)

__all__ = [
    "METRIC_DEFINITIONS",
    "RELEVANCE",
    "TIE_RULE",
    "MetricError",
    "check_metric",
    "evaluate",
    "hamming_distances",
]
