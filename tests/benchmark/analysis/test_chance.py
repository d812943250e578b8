"""The chance level: expected AP of a random ranking, checked against random rankings."""

import numpy as np
import pytest

from cmhbench.analysis.chance import expected_ap, metric_chance, relevant_counts


def _simulated_ap(r: int, n: int, trials: int, rng: np.random.Generator) -> float:
    total = 0.0
    for _ in range(trials):
        rel = np.zeros(n)
        rel[rng.choice(n, r, replace=False)] = 1
        hits = np.cumsum(rel)
        total += float(np.sum(rel * hits / np.arange(1, n + 1)) / r)
    return total / trials


@pytest.mark.parametrize("r, n", [(1, 10), (3, 10), (10, 40), (40, 40)])
def test_expected_ap_matches_random_rankings(r, n):
    simulated = _simulated_ap(r, n, 4000, np.random.default_rng(0))
    assert expected_ap(np.array([r]), n)[0] == pytest.approx(simulated, abs=0.01)


def test_no_relevant_item_scores_zero_and_precision_metrics_use_the_fraction():
    assert expected_ap(np.array([0]), 10)[0] == 0.0
    relevant = relevant_counts(np.array([[1, 0], [0, 1]]), np.array([[1, 0], [1, 0], [0, 1], [1, 1]]))
    assert relevant.tolist() == [3, 2]
    assert metric_chance("map@50", relevant, 4) == pytest.approx((3 / 4 + 2 / 4) / 2)
    assert metric_chance("ndcg@10", relevant, 4) is None
