"""Scoring a cell's codes: the metrics of both directions and the arrays the cell stores.

This is the live path: ``cmhbench run`` scores every cell here, straight from the packed
arrays the runner has just built (they are trusted; nothing is re-validated).  Re-scoring
stored cells and scoring external files (:mod:`cmhbench.evaluation.rescore`) validate
their inputs first and then score them here too, so both give the same numbers.

Naming scheme of the evaluation arrays (``ARRAY_DEFINITIONS``), ``<dir>`` being ``i2t``
(image queries, text database) or ``t2i``; Q queries, G grid points, B = bits + 1:

========================  ========  ===========================================================
``<dir>_ap@all``          (Q,)      per-query AP over the whole ranking (mean = ``map@all``)
``<dir>_ap@K``            (Q,)      per-query AP@K, DJSRH normalisation (mean = ``map@K``);
                                    one array per K of ``ap_cutoffs`` (default K = 50)
``<dir>_tap@all``         (Q,)      per-query tie-aware AP (mean = ``tmap@all``)
``<dir>_p@r2``            (Q,)      per-query precision within Hamming radius 2 (mean = ``p@r2``)
``<dir>_relevant``        (Q,)      relevant items in the database per query
``<dir>_pk_k``            (G,)      the K grid of the P@K curve (K ≤ database size)
``<dir>_pk_precision``    (G,)      mean precision of the top K
``<dir>_pk_recall``       (G,)      mean recall of the top K
``<dir>_pr_radius``       (B,)      Hamming radius 0..bits
``<dir>_pr_precision``    (B,)      mean precision within the radius (0 for a query with none)
``<dir>_pr_recall``       (B,)      mean recall within the radius
========================  ========  ===========================================================
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from cmhbench.conventions import (
    DEFAULT_METRICS,
    DIRECTIONS,
    PER_QUERY_CUTOFFS,
    PER_QUERY_RADIUS,
    per_query_array,
)
from cmhbench.evaluation.engine import PackedBits, packed_bits
from cmhbench.evaluation.metrics import (
    MetricSpec,
    compute_stats,
    parse_metric,
    per_query,
    precision_at_k,
    precision_recall_by_radius,
    scores,
)

DEFAULT_K_GRID = (1, 10, 20, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000,
                  1500, 2000, 2500, 3000, 4000, 5000, 10000)
ARRAY_DEFINITIONS = {
    "<dir>_ap@all": "(Q,) per-query AP over the whole ranking; mean = map@all",
    "<dir>_ap@K": "(Q,) per-query AP@K normalised by the relevant items in the top K; mean = map@K",
    "<dir>_tap@all": "(Q,) per-query tie-aware AP; mean = tmap@all",
    "<dir>_p@rH": "(Q,) per-query precision within Hamming radius H (0 where no item is within H); mean = p@rH",
    "<dir>_relevant": "(Q,) relevant database items per query",
    "<dir>_pk_k": "(G,) the K grid of the precision@K curve (values above the database size dropped)",
    "<dir>_pk_precision": "(G,) mean precision of the top K (stable ties)",
    "<dir>_pk_recall": "(G,) mean recall of the top K (stable ties)",
    "<dir>_pr_radius": "(bits+1,) Hamming radius 0..bits",
    "<dir>_pr_precision": "(bits+1,) mean precision within the radius",
    "<dir>_pr_recall": "(bits+1,) mean recall within the radius",
}

Direction = tuple[PackedBits, PackedBits, PackedBits, PackedBits]
"""(query codes, database codes, query labels, database labels) of one direction."""


def metric_specs(metrics: str | Iterable[str | MetricSpec]) -> list[MetricSpec]:
    """Metric names (or specs) as parsed specs; one name alone is allowed."""
    metrics = [metrics] if isinstance(metrics, str) else metrics
    return [parse_metric(m) if isinstance(m, str) else m for m in metrics]


def cell_directions(arrays: Mapping[str, np.ndarray]) -> dict[str, Direction]:
    """Each direction's inputs from the packed arrays the runner builds (trusted, not checked)."""
    n_bits, n_labels = int(arrays["n_bits"]), int(arrays["n_labels"])
    ql = packed_bits(arrays["query_labels"], n_labels)
    dl = packed_bits(arrays["database_labels"], n_labels)
    return {d: (packed_bits(arrays[f"{d}_query"], n_bits), packed_bits(arrays[f"{d}_database"], n_bits), ql, dl)
            for d in DIRECTIONS}


def score_directions(
    inputs: Mapping[str, Direction],
    metrics: Iterable[str | MetricSpec] = DEFAULT_METRICS,
    *,
    ap_cutoffs: Sequence[int] = PER_QUERY_CUTOFFS,
    k_grid: Sequence[int] = DEFAULT_K_GRID,
    radius: int = PER_QUERY_RADIUS,
    workers: int | None = None,
    backend: str = "auto",
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """Metrics of each direction and the evaluation arrays, from one pass per direction.

    Returns ``({"i2t": {metric: value}, "t2i": {...}}, evaluation arrays)``, the arrays
    named as in ``ARRAY_DEFINITIONS``.
    """
    wanted = metric_specs(metrics)
    stored = metric_specs(["map@all", *(f"map@{int(k)}" for k in ap_cutoffs), "tmap@all", f"p@r{int(radius)}"])
    out_metrics: dict[str, dict[str, float]] = {}
    out_arrays: dict[str, np.ndarray] = {}
    for direction, (q, d, ql, dl) in inputs.items():
        stats = compute_stats(q, d, ql, dl, [*wanted, *stored], extra_cutoffs=tuple(k_grid),
                              workers=workers, backend=backend)
        out_metrics[direction] = scores(stats, wanted)
        for spec in stored:
            out_arrays[per_query_array(direction, spec.name)] = per_query(stats, spec)
        out_arrays[f"{direction}_relevant"] = stats.relevant
        ks, precision, recall = precision_at_k(stats, k_grid)
        out_arrays[f"{direction}_pk_k"] = ks
        out_arrays[f"{direction}_pk_precision"] = precision
        out_arrays[f"{direction}_pk_recall"] = recall
        radii, precision, recall = precision_recall_by_radius(stats)
        out_arrays[f"{direction}_pr_radius"] = radii
        out_arrays[f"{direction}_pr_precision"] = precision
        out_arrays[f"{direction}_pr_recall"] = recall
    return out_metrics, out_arrays


def score_cell(
    arrays: Mapping[str, np.ndarray],
    metrics: Iterable[str] = DEFAULT_METRICS,
    *,
    workers: int | None = None,
    backend: str = "auto",
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """A fresh cell's metrics and evaluation arrays, from the arrays the runner just built."""
    return score_directions(cell_directions(arrays), metrics, workers=workers, backend=backend)
