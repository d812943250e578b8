import numpy as np
import pytest

from cmhbench.evaluation import MetricError, check_metric, evaluate, hamming_distances


def brute_force(qc, dc, ql, dl, k):
    """Per query: sort by (distance, database row), then AP as defined."""
    aps = []
    for i in range(len(qc)):
        dist = [int(np.sum(qc[i] != dc[j])) for j in range(len(dc))]
        order = sorted(range(len(dc)), key=lambda j: (dist[j], j))
        order = order if k is None else order[:k]
        hits, total = 0, 0.0
        for rank, j in enumerate(order, start=1):
            if np.any(ql[i] & dl[j]):
                hits += 1
                total += hits / rank
        if k is None:
            relevant = sum(bool(np.any(ql[i] & dl[j])) for j in range(len(dc)))
            aps.append(total / relevant if relevant else 0.0)
        else:
            aps.append(total / hits if hits else 0.0)
    return float(np.mean(aps))


@pytest.mark.parametrize("bits", [3, 8, 20])
@pytest.mark.parametrize("n_labels, multi", [(5, True), (4, False)])
def test_map_matches_brute_force_with_many_ties(bits, n_labels, multi):
    rng = np.random.default_rng(bits * 10 + n_labels)
    qc = rng.choice([-1, 1], size=(25, bits)).astype(np.int8)
    dc = rng.choice([-1, 1], size=(120, bits)).astype(np.int8)
    if multi:
        ql = (rng.random((25, n_labels)) < 0.25).astype(np.uint8)
        dl = (rng.random((120, n_labels)) < 0.25).astype(np.uint8)
    else:
        ql = np.eye(n_labels, dtype=np.uint8)[rng.integers(0, n_labels, 25)]
        dl = np.eye(n_labels, dtype=np.uint8)[rng.integers(0, n_labels, 120)]
    ql[0] = 0  # a query with no relevant item scores 0 and stays in the mean
    got = evaluate(qc, dc, ql, dl, metrics=("map@all", "map@10", "map@500"))
    assert got["map@all"] == pytest.approx(brute_force(qc, dc, ql, dl, None), abs=1e-12)
    assert got["map@10"] == pytest.approx(brute_force(qc, dc, ql, dl, 10), abs=1e-12)
    assert got["map@500"] == pytest.approx(brute_force(qc, dc, ql, dl, 500), abs=1e-12)


def test_ties_are_broken_by_database_row():
    q = np.array([[1, 1]], dtype=np.int8)
    db = np.array([[1, 1], [1, 1]], dtype=np.int8)  # both at distance 0
    labels_q = np.array([[1]], dtype=np.uint8)
    assert evaluate(q, db, labels_q, np.array([[0], [1]], np.uint8))["map@all"] == pytest.approx(0.5)
    assert evaluate(q, db, labels_q, np.array([[1], [0]], np.uint8))["map@all"] == pytest.approx(1.0)


def test_hamming_distances_are_exact():
    rng = np.random.default_rng(3)
    a = rng.choice([-1, 1], size=(7, 64)).astype(np.int8)
    b = rng.choice([-1, 1], size=(9, 64)).astype(np.int8)
    expected = (a[:, None, :] != b[None, :, :]).sum(-1)
    assert np.array_equal(hamming_distances(a, b), expected)


@pytest.mark.parametrize("name", ["map", "map@0", "map@-5", "precision@5", "MAP@all"])
def test_unknown_metric_names_are_refused(name):
    with pytest.raises(MetricError, match="unknown metric"):
        check_metric(name)
