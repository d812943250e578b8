"""Tie-aware AP@K and the best/worst tie orders, against enumeration and sampling of tie orders."""

import itertools
from fractions import Fraction

import numpy as np
import pytest

from cmhbench.evaluation import ap_at_k_extremes, evaluate, tie_aware_ap, tie_aware_ap_at_k


def ap_at_k(rels, k):
    """AP@K of a 0/1 sequence with map@K's normalisation (relevant items in the top K), exact."""
    hits, total = 0, Fraction(0)
    for rank, rel in enumerate(rels[:k], start=1):
        if rel:
            hits += 1
            total += Fraction(hits, rank)
    return total / hits if hits else Fraction(0)


def every_tie_order(n, r):
    """Every relevance sequence the groups allow, each group's placements of its relevant
    items enumerated; each is equally likely under uniformly random orders within groups."""
    per_group = []
    for nd, rd in zip(n, r):
        per_group.append([[int(i in places) for i in range(nd)]
                          for places in itertools.combinations(range(nd), rd)])
    for combo in itertools.product(*per_group):
        yield [rel for group in combo for rel in group]


def random_counts(rng, max_groups=4, max_size=6):
    n = rng.integers(0, max_size, rng.integers(1, max_groups + 1))
    n[rng.integers(len(n))] += 1  # at least one item
    r = np.array([rng.integers(0, nd + 1) for nd in n])
    return n, r


@pytest.mark.parametrize("seed", range(5))
def test_tmap_at_k_is_the_exact_mean_over_every_tie_order(seed):
    rng = np.random.default_rng(seed)
    cases = [random_counts(rng) for _ in range(25)]
    want = {}
    for i, (n, r) in enumerate(cases):
        for k in range(1, int(n.sum()) + 2):
            values = [ap_at_k(seq, k) for seq in every_tie_order(n, r)]
            want[i, k] = float(sum(values, Fraction(0)) / len(values)), float(min(values)), float(max(values))
            assert tie_aware_ap_at_k(n[None], r[None], k)[0] == pytest.approx(want[i, k][0], abs=1e-14), (n, r, k)
            worst, best = ap_at_k_extremes(n[None], r[None], k)
            assert worst[0] == pytest.approx(want[i, k][1], abs=1e-14), (n, r, k)
            assert best[0] == pytest.approx(want[i, k][2], abs=1e-14), (n, r, k)
    # all cases as the rows of one batch (as the engine hands them over): the same values
    width = max(len(n) for n, _ in cases)
    n_all = np.array([np.pad(n, (0, width - len(n))) for n, _ in cases])
    r_all = np.array([np.pad(r, (0, width - len(r))) for _, r in cases])
    for k in (1, 3, 8):
        rows = [i for i, (n, _) in enumerate(cases) if (i, k) in want]
        got = (tie_aware_ap_at_k(n_all, r_all, k), *ap_at_k_extremes(n_all, r_all, k))
        for i in rows:
            assert [g[i] for g in got] == pytest.approx(want[i, k], abs=1e-14), (cases[i], k)


def test_tmap_at_k_matches_many_random_orders_on_large_tie_groups():
    """Groups of hundreds of items straddling K (collapsed codes): the exact expectation
    against 4,000 sampled orders, within five standard errors."""
    rng = np.random.default_rng(12)
    n = np.array([3, 0, 40, 700, 250, 7])
    r = np.array([1, 0, 9, 160, 90, 2])
    dist = np.repeat(np.arange(len(n)), n)
    rel = np.concatenate([np.arange(nd) < rd for nd, rd in zip(n, r)])
    orders = np.argsort(dist + rng.random((4000, len(dist))), axis=1)  # by distance, ties at random
    ranked = rel[orders]
    hits = np.cumsum(ranked, axis=1)
    terms = np.where(ranked, hits / np.arange(1, len(dist) + 1), 0.0)
    for k in (1, 20, 50, 300, 1000):
        found = hits[:, k - 1]
        samples = np.divide(terms[:, :k].sum(axis=1), found, out=np.zeros(len(found)), where=found > 0)
        mean, se = samples.mean(), samples.std() / np.sqrt(len(samples))
        got = tie_aware_ap_at_k(n[None], r[None], k)[0]
        assert abs(got - mean) < 5 * se + 1e-12, (k, got, mean, se)
        worst, best = ap_at_k_extremes(n[None], r[None], k)
        assert worst[0] <= min(samples) + 1e-12 and max(samples) <= best[0] + 1e-12


def test_tmap_at_k_beyond_the_database_is_tmap_all_and_at_one_is_the_chance_of_a_hit():
    rng = np.random.default_rng(3)
    n = rng.integers(0, 300, size=(20, 17))
    r = np.minimum(n, rng.integers(0, 120, size=(20, 17)))
    whole = tie_aware_ap(n, r)
    assert np.allclose(tie_aware_ap_at_k(n, r, int(n.sum(axis=1).max())), whole, rtol=1e-12, atol=1e-15)
    first = np.argmax(n > 0, axis=1)  # the closest non-empty group holds rank 1
    rows = np.arange(20)
    assert np.allclose(tie_aware_ap_at_k(n, r, 1), r[rows, first] / n[rows, first], rtol=1e-13)


def test_without_ties_every_order_is_the_same():
    n = np.ones((1, 30), np.int64)
    r = (np.random.default_rng(0).random((1, 30)) < 0.4).astype(np.int64)
    for k in (1, 7, 30):
        want = float(ap_at_k(list(r[0]), k))
        worst, best = ap_at_k_extremes(n, r, k)
        assert tie_aware_ap_at_k(n, r, k)[0] == pytest.approx(want, abs=1e-14)
        assert worst[0] == pytest.approx(want, abs=1e-14) and best[0] == pytest.approx(want, abs=1e-14)


def test_collapsed_codes_row_order_map_moves_with_the_database_order_and_tmap_does_not():
    """One database code for everything: map@50 under row order is whatever the rows say."""
    rng = np.random.default_rng(4)
    n_db = 400
    db = np.ones((n_db, 16), np.int8)
    q = rng.choice([-1, 1], size=(30, 16)).astype(np.int8)
    dl = np.eye(5, dtype=np.uint8)[rng.integers(0, 5, n_db)]
    ql = np.eye(5, dtype=np.uint8)[rng.integers(0, 5, 30)]
    names = ["map@50", "tmap@50"]
    scores = []
    for _ in range(3):
        perm = rng.permutation(n_db)
        scores.append(evaluate(q, db[perm], ql, dl[perm], names))
    assert len({round(s["map@50"], 12) for s in scores}) > 1
    assert len({round(s["tmap@50"], 12) for s in scores}) == 1


def test_extremes_bracket_row_order_and_tie_aware_scores():
    from cmhbench.evaluation import compute_stats

    rng = np.random.default_rng(6)
    q = rng.choice([-1, 1], size=(40, 6)).astype(np.int8)
    db = rng.choice([-1, 1], size=(500, 6)).astype(np.int8)
    ql = (rng.random((40, 4)) < 0.3).astype(np.uint8)
    dl = (rng.random((500, 4)) < 0.3).astype(np.uint8)
    stats = compute_stats(q, db, ql, dl, ["map@20"])
    worst, best = ap_at_k_extremes(stats.n, stats.r, 20)
    got = evaluate(q, db, ql, dl, ["map@20", "tmap@20"])
    assert worst.mean() <= got["map@20"] <= best.mean()
    assert worst.mean() <= got["tmap@20"] <= best.mean()
    assert worst.mean() < best.mean()


def test_queries_with_supports_of_very_different_widths_share_a_chunk():
    """One query's boundary group can hold any number of relevant items in the top K (a wide
    support), another's exactly K (one value, far from zero): scored together and alone alike."""
    n = np.array([[1000, 300], [300, 1000]])
    r = np.array([[500, 0], [300, 0]])
    together = tie_aware_ap_at_k(n, r, 200), *ap_at_k_extremes(n, r, 200)
    for row in range(2):
        alone = tie_aware_ap_at_k(n[row:row + 1], r[row:row + 1], 200), *ap_at_k_extremes(n[row:row + 1],
                                                                                           r[row:row + 1], 200)
        assert [a[0] for a in alone] == pytest.approx([t[row] for t in together], rel=1e-13)
    assert together[0][1] == together[1][1] == together[2][1] == 1.0  # every item of the top 200 is relevant
    assert together[1][0] < together[0][0] < together[2][0]


def test_wide_supports_are_split_into_chunks_without_changing_results(monkeypatch):
    from cmhbench.evaluation import ties

    rng = np.random.default_rng(8)
    n = rng.integers(50, 400, size=(12, 5))
    r = np.minimum(n, rng.integers(0, 200, size=(12, 5)))
    whole = tie_aware_ap_at_k(n, r, 600), ap_at_k_extremes(n, r, 600)
    monkeypatch.setattr(ties, "_CHUNK_CELLS", 1)
    assert np.allclose(tie_aware_ap_at_k(n, r, 600), whole[0], rtol=1e-13, atol=0)
    assert all(np.allclose(a, b, rtol=1e-13, atol=0) for a, b in zip(ap_at_k_extremes(n, r, 600), whole[1]))
