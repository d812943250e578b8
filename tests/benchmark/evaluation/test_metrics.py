import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from cmhbench.evaluation import (
    METRIC_DEFINITIONS,
    MetricError,
    check_metric,
    compute_stats,
    evaluate,
    hamming_distances,
    parse_metric,
    per_query,
    precision_at_k,
    precision_recall_by_radius,
)
from cmhbench.evaluation import engine
from cmhbench.evaluation.ties import harmonic_difference, tie_aware_ap

# ----------------------------------------------------------------- brute-force reference


def stable_order(qc_row, dc):
    dist = [int(np.sum(qc_row != dc[j])) for j in range(len(dc))]
    return sorted(range(len(dc)), key=lambda j: (dist[j], j)), dist


def relevant(ql_row, dl):
    return [bool(np.any(ql_row & dl[j])) for j in range(len(dl))]


def ap_of(rels, k=None):
    """AP of a 0/1 relevance sequence: over all (k None, normalised by all relevant) or top k."""
    seq = rels if k is None else rels[:k]
    hits, total = 0, 0.0
    for rank, rel in enumerate(seq, start=1):
        if rel:
            hits += 1
            total += hits / rank
    denom = sum(rels) if k is None else hits
    return total / denom if denom else 0.0


def calc_map_k_query(rels, k):
    """torchcmh / DGCPN calc_map_k for one query: mean precision at the first min(k, R) relevant."""
    total = min(k, sum(rels))
    if total == 0:
        return 0.0
    positions = [i + 1 for i, rel in enumerate(rels) if rel][:total]
    return float(np.mean([(m + 1) / p for m, p in enumerate(positions)]))


def brute_all(qc, dc, ql, dl, names):
    """{name: mean over queries} by brute force: sort every query's items by (distance, row)."""
    per_query = {name: [] for name in names}
    for i in range(len(qc)):
        order, dist = stable_order(qc[i], dc)
        rel = relevant(ql[i], dl)
        rels = [rel[j] for j in order]
        n_rel = sum(rels)
        for name in names:
            spec = parse_metric(name)
            k = None if spec.k is None else min(spec.k, len(dc))
            if spec.kind == "map@all":
                score = ap_of(rels)
            elif spec.kind == "map@K":
                score = ap_of(rels, k)
            elif spec.kind == "map@K-found":  # queries with nothing relevant in the top K leave the mean
                score = ap_of(rels, k) if any(rels[:k]) else np.nan
            elif spec.kind == "map@all-found":
                score = ap_of(rels) if n_rel else np.nan
            elif spec.kind == "cmap@K":
                score = calc_map_k_query(rels, spec.k)
            elif spec.kind == "p@K":
                score = sum(rels[:k]) / k
            elif spec.kind == "r@K":
                score = sum(rels[:k]) / n_rel if n_rel else 0.0
            elif spec.kind in ("p@rH", "r@rH"):
                inside = [j for j in range(len(dc)) if dist[j] <= spec.k]
                found = sum(rel[j] for j in inside)
                den = len(inside) if spec.kind == "p@rH" else n_rel
                score = found / den if den else 0.0
            elif spec.kind == "tmap@K":
                score = tie_aware_by_permutations(dist, rel, k)
            else:  # tmap@all
                score = tie_aware_by_permutations(dist, rel)
            per_query[name].append(score)
    return {name: float(np.nanmean(values)) for name, values in per_query.items()}


def brute(qc, dc, ql, dl, name):
    return brute_all(qc, dc, ql, dl, [name])[name]


def tie_aware_by_permutations(dist, rel, k=None):
    """Mean AP (AP@k) over every ordering consistent with the distances (all permutations of ties)."""
    groups = [[j for j in range(len(dist)) if dist[j] == d] for d in sorted(set(dist))]
    aps = []
    for perms in itertools.product(*(itertools.permutations(g) for g in groups)):
        aps.append(ap_of([rel[j] for perm in perms for j in perm], k))
    return float(np.mean(aps))


def random_case(rng, n_query, n_db, bits, n_labels, multi, p_label=0.25):
    qc = rng.choice([-1, 1], size=(n_query, bits)).astype(np.int8)
    dc = rng.choice([-1, 1], size=(n_db, bits)).astype(np.int8)
    if multi:
        ql = (rng.random((n_query, n_labels)) < p_label).astype(np.uint8)
        dl = (rng.random((n_db, n_labels)) < p_label).astype(np.uint8)
    else:
        ql = np.eye(n_labels, dtype=np.uint8)[rng.integers(0, n_labels, n_query)]
        dl = np.eye(n_labels, dtype=np.uint8)[rng.integers(0, n_labels, n_db)]
    ql[0] = 0  # a query with no relevant item scores 0 and stays in the mean
    return qc, dc, ql, dl


RANKED = ("map@all", "map@10", "map@500", "map@5-found", "map@all-found", "cmap@5", "cmap@1000", "p@1", "p@20",
          "p@999", "r@7", "r@500", "p@r0", "p@r2", "r@r3", "p@r200")


# ---------------------------------------------------------------------- brute-force tests


@pytest.mark.parametrize("bits", [3, 8, 13, 64, 100, 128])
@pytest.mark.parametrize("n_labels, multi", [(5, True), (4, False), (70, True)])
def test_every_metric_matches_brute_force_with_many_ties(bits, n_labels, multi):
    rng = np.random.default_rng(bits * 100 + n_labels)
    qc, dc, ql, dl = random_case(rng, 12, 90, bits, n_labels, multi, p_label=0.25 if n_labels < 70 else 0.03)
    got = evaluate(qc, dc, ql, dl, metrics=(*RANKED, "tmap@all"))
    assert list(got) == [*RANKED, "tmap@all"]
    want = brute_all(qc, dc, ql, dl, RANKED)
    for name in RANKED:
        assert got[name] == pytest.approx(want[name], abs=1e-12), name
    # tie-aware AP: the formula in exact arithmetic on brute-force per-distance counts
    dist = (qc[:, None, :] != dc[None, :, :]).sum(-1)
    rel = (ql.astype(int) @ dl.T.astype(int)) > 0
    exact = [exact_tie_aware_ap(np.bincount(dist[i], minlength=bits + 1),
                                np.bincount(dist[i][rel[i]], minlength=bits + 1)) for i in range(len(qc))]
    assert got["tmap@all"] == pytest.approx(np.mean(exact), abs=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_backends_agree_with_brute_force(backend):
    if backend == "numba" and "numba" not in engine.available_backends():
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(7)
    qc, dc, ql, dl = random_case(rng, 10, 80, 13, 6, True)
    names = (*RANKED, "tmap@all")
    names = (*names, "tmap@5", "tmap@40")
    got = evaluate(qc, dc, ql, dl, metrics=names, backend="numba" if backend == "numba" else "numpy", workers=3)
    want = brute_all(qc, dc, ql, dl, RANKED)
    for name in RANKED:
        assert got[name] == pytest.approx(want[name], abs=1e-12), name
    tie_aware = evaluate(qc, dc, ql, dl, ["tmap@all", "tmap@5", "tmap@40"], backend="numpy")
    for name in tie_aware:
        assert got[name] == pytest.approx(tie_aware[name], abs=1e-12), name


def test_worker_threads_do_not_change_results():
    rng = np.random.default_rng(11)
    qc, dc, ql, dl = random_case(rng, 37, 300, 16, 8, True)
    names = ("map@all", "map@50", "cmap@50", "tmap@all", "p@r2", "p@100")
    one = evaluate(qc, dc, ql, dl, names, workers=1)
    assert evaluate(qc, dc, ql, dl, names, workers=4) == one


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_tie_aware_map_is_the_mean_over_all_tie_orderings(seed, backend):
    """tmap@all and tmap@K from codes with many ties: the mean of AP (AP@K) over every
    permutation of every group of tied items."""
    if backend not in engine.available_backends():
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(seed)
    bits = [2, 3, 2, 4, 3, 2][seed]
    qc, dc, ql, dl = random_case(rng, 4, 7, bits, 3, seed % 2 == 0, p_label=0.4)
    names = ["tmap@all", "tmap@1", "tmap@2", "tmap@3", "tmap@5", "tmap@7", "tmap@50"]
    got = evaluate(qc, dc, ql, dl, names, backend=backend)
    want = brute_all(qc, dc, ql, dl, names)
    for name in names:
        assert got[name] == pytest.approx(want[name], abs=1e-12), name
    assert got["tmap@7"] == pytest.approx(got["tmap@all"], abs=1e-12)  # K = N: the whole ranking


def exact_tie_aware_ap(n, r):
    """The tie-aware AP formula in exact rational arithmetic, term by term."""
    n, r = [int(x) for x in n], [int(x) for x in r]
    total = sum(r)
    if total == 0:
        return 0.0
    before = rel_before = 0
    ap = Fraction(0)
    for nd, rd in zip(n, r):
        if rd:
            for i in range(1, nd + 1):
                spread = Fraction((i - 1) * (rd - 1), nd - 1) if nd > 1 else 0
                ap += Fraction(rd, nd) * (rel_before + 1 + spread) / (before + i)
        before += nd
        rel_before += rd
    return float(ap / total)


def test_tie_aware_map_matches_exact_arithmetic_on_large_groups():
    rng = np.random.default_rng(5)
    for _ in range(4):
        n = rng.integers(0, 400, size=9)
        r = np.minimum(n, rng.integers(0, 200, size=9))
        assert tie_aware_ap(n[None], r[None])[0] == pytest.approx(exact_tie_aware_ap(n, r), rel=1e-13, abs=1e-15)


def test_harmonic_difference_is_accurate_far_out():
    a = np.array([0, 0, 1, 5, 63, 64, 65, 100, 9999, 190_000, 10**9])
    b = np.array([0, 1, 70, 64, 64, 64, 66, 2000, 10_001, 190_002, 10**9 + 3])
    for ai, bi, got in zip(a, b, harmonic_difference(a, b)):
        want = math.fsum(1.0 / i for i in range(int(ai) + 1, int(bi) + 1)) if bi - ai < 10**6 else None
        if want is None:
            want = float(sum(Fraction(1, i) for i in range(int(ai) + 1, int(bi) + 1)))
        assert got == pytest.approx(want, rel=1e-14, abs=1e-300)


def test_curves_match_brute_force():
    rng = np.random.default_rng(3)
    qc, dc, ql, dl = random_case(rng, 9, 60, 10, 5, True)
    grid = (1, 5, 30, 60, 100)
    stats = compute_stats(qc, dc, ql, dl, ["map@all"], extra_cutoffs=grid)
    ks, precision, recall = precision_at_k(stats, grid)
    assert ks.tolist() == [1, 5, 30, 60]
    want = brute_all(qc, dc, ql, dl, [f"{m}@{k}" for k in ks for m in "pr"]
                     + [f"{m}@r{rad}" for rad in range(11) for m in "pr"])
    for k, p, r in zip(ks, precision, recall):
        assert p == pytest.approx(want[f"p@{k}"], abs=1e-12)
        assert r == pytest.approx(want[f"r@{k}"], abs=1e-12)
    radius, precision, recall = precision_recall_by_radius(stats)
    assert radius.tolist() == list(range(11))
    for rad, p, r in zip(radius, precision, recall):
        assert p == pytest.approx(want[f"p@r{rad}"], abs=1e-12)
        assert r == pytest.approx(want[f"r@r{rad}"], abs=1e-12)
    assert recall[-1] == pytest.approx(np.mean([(ql[i] @ dl.T > 0).any() for i in range(9)]))


def test_map_matches_the_original_brute_force():
    rng = np.random.default_rng(1)
    qc, dc, ql, dl = random_case(rng, 25, 120, 8, 5, True)
    names = ("map@all", "map@10", "map@500")
    got = evaluate(qc, dc, ql, dl, metrics=names)
    assert got == pytest.approx(brute_all(qc, dc, ql, dl, names), abs=1e-12)


# ------------------------------------------------------------------ UCCH's map@K convention


def ucch_map_k(retrieval, retrieval_labels, query, query_labels, k=0, sort_kind="quicksort"):
    """UCCH's ``fx_calc_map_multilabel_k`` (penghu-cs/UCCH, UCCH.py), re-written here from its
    published formula: rank by SciPy's normalised Hamming distance with an argsort, keep the
    top k (k = 0: all), and average AP@k = Σ rel·precision / (relevant in the top k) over the
    queries with at least one relevant item in the top k only.  ``sort_kind``: NumPy's default
    quicksort as published; "stable" for database row order inside ties, the cmhbench rule."""
    from scipy.spatial.distance import cdist

    order = cdist(query, retrieval, "hamming").argsort(axis=1, kind=sort_kind)
    k = k or retrieval.shape[0]
    aps = []
    for i in range(query.shape[0]):
        relevant = retrieval_labels[order[i, :k]] @ query_labels[i] > 0
        if relevant.sum() > 0:
            precision = np.cumsum(relevant) / np.arange(1.0, relevant.size + 1)
            aps.append(float(relevant @ precision / relevant.sum()))
    return float(np.mean(aps))


@pytest.mark.parametrize("seed", range(3))
def test_map_found_equals_ucchs_function_with_the_same_tie_rule(seed):
    rng = np.random.default_rng(seed)
    qc, dc, ql, dl = random_case(rng, 60, 400, 12, 9, True, p_label=0.06)  # sparse labels: misses in the top K
    names = ["map@5-found", "map@50-found", "map@all-found", "map@50"]
    got = evaluate(qc, dc, ql, dl, names)
    for k in (5, 50):
        assert got[f"map@{k}-found"] == pytest.approx(ucch_map_k(dc, dl, qc, ql, k, "stable"), abs=1e-12)
    assert got["map@all-found"] == pytest.approx(ucch_map_k(dc, dl, qc, ql, 0, "stable"), abs=1e-12)
    # the same per-query AP@K; dropping queries with no hit can only raise the mean
    stats = compute_stats(qc, dc, ql, dl, ["map@50"])
    found = stats.hits[:, 0] > 0
    assert 0 < found.sum() < len(qc)
    assert got["map@50-found"] == pytest.approx(got["map@50"] * len(qc) / found.sum(), abs=1e-12)


def test_map_found_equals_ucchs_published_function_where_no_distances_tie():
    """Thermometer database codes (item j has its first j bits set): the all-off and all-on
    queries see every item at a different distance, so UCCH's unstable argsort is exact."""
    rng = np.random.default_rng(5)
    bits = 64
    perm = rng.permutation(bits + 1)  # database rows not in rank order
    dc = np.where(np.arange(bits)[None, :] < np.arange(bits + 1)[:, None], 1, -1).astype(np.int8)[perm]
    qc = np.array([[-1] * bits, [1] * bits, [-1] * bits], np.int8)
    dl = (rng.random((bits + 1, 6)) < 0.3).astype(np.uint8)
    ql = np.array([[1, 0, 0, 1, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]], np.uint8)  # query 3: nothing
    dl[:, 5] = 0
    for k in (3, 10, 0):
        name = f"map@{k}-found" if k else "map@all-found"
        assert evaluate(qc, dc, ql, dl, [name])[name] == pytest.approx(ucch_map_k(dc, dl, qc, ql, k), abs=1e-12)
    assert evaluate(qc, dc, ql, dl, ["map@all"])["map@all"] == pytest.approx(
        ucch_map_k(dc, dl, qc, ql, 0) * 2 / 3, abs=1e-12)


# ------------------------------------------------------------------------- tie rule, inputs


def test_ties_are_broken_by_database_row():
    q = np.array([[1, 1]], dtype=np.int8)
    db = np.array([[1, 1], [1, 1]], dtype=np.int8)  # both at distance 0
    labels_q = np.array([[1]], dtype=np.uint8)
    assert evaluate(q, db, labels_q, np.array([[0], [1]], np.uint8))["map@all"] == pytest.approx(0.5)
    assert evaluate(q, db, labels_q, np.array([[1], [0]], np.uint8))["map@all"] == pytest.approx(1.0)
    # tie-aware AP averages both orders: (1/2 + 1) / 2
    assert evaluate(q, db, labels_q, np.array([[0], [1]], np.uint8), ["tmap@all"])["tmap@all"] == pytest.approx(0.75)


def test_calc_map_k_reaches_past_the_top_k_and_map_at_k_does_not():
    q = np.array([[1, 1, 1]], dtype=np.int8)
    db = np.array([[1, 1, 1], [1, 1, -1], [1, -1, -1], [-1, -1, -1]], dtype=np.int8)
    lq = np.array([[1]], np.uint8)
    ldb = np.array([[1], [0], [1], [1]], np.uint8)  # relevant at ranks 1, 3, 4
    got = evaluate(q, db, lq, ldb, ["map@2", "cmap@2", "cmap@9", "map@all"])
    assert got["map@2"] == pytest.approx(1.0)  # only rank 1 inside the top 2
    assert got["cmap@2"] == pytest.approx((1 + 2 / 3) / 2)  # the first two relevant, at ranks 1 and 3
    assert got["cmap@9"] == pytest.approx(got["map@all"]) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)


def test_queries_without_relevant_items_score_zero_in_every_metric():
    rng = np.random.default_rng(2)
    qc, dc, _, dl = random_case(rng, 3, 20, 8, 4, True)
    ql = np.zeros((3, 4), np.uint8)
    names = ("map@all", "map@5", "cmap@5", "tmap@all", "tmap@5", "p@5", "r@5", "p@r8", "r@r8")
    assert evaluate(qc, dc, ql, dl, names) == dict.fromkeys(names, 0.0)
    # ... except the UCCH-style means, which have no query left to average
    assert all(np.isnan(v) for v in evaluate(qc, dc, ql, dl, ["map@5-found", "map@all-found"]).values())


def test_codes_may_be_zero_one_or_bool():
    rng = np.random.default_rng(4)
    qc, dc, ql, dl = random_case(rng, 6, 40, 12, 5, True)
    names = ("map@all", "tmap@all", "p@r1")
    want = evaluate(qc, dc, ql, dl, names)
    assert evaluate((qc > 0).astype(np.uint8), (dc > 0).astype(np.uint8), ql, dl, names) == want
    assert evaluate(qc > 0, dc > 0, ql.astype(bool), dl.astype(bool), names) == want


def test_mismatched_inputs_are_refused():
    q = np.ones((2, 8), np.int8)
    with pytest.raises(ValueError, match="bits"):
        evaluate(q, np.ones((3, 16), np.int8), np.ones((2, 3), np.uint8), np.ones((3, 3), np.uint8))
    with pytest.raises(ValueError, match="label rows"):
        evaluate(q, np.ones((3, 8), np.int8), np.ones((2, 3), np.uint8), np.ones((4, 3), np.uint8))
    with pytest.raises(ValueError, match="classes"):
        evaluate(q, np.ones((3, 8), np.int8), np.ones((2, 3), np.uint8), np.ones((3, 4), np.uint8))
    with pytest.raises(ValueError, match="backend"):
        evaluate(q, q, np.ones((2, 3), np.uint8), np.ones((2, 3), np.uint8), backend="cuda")


def test_hamming_distances_are_exact():
    rng = np.random.default_rng(3)
    for bits in (64, 13, 130):
        a = rng.choice([-1, 1], size=(7, bits)).astype(np.int8)
        b = rng.choice([-1, 1], size=(9, bits)).astype(np.int8)
        expected = (a[:, None, :] != b[None, :, :]).sum(-1)
        assert np.array_equal(hamming_distances(a, b), expected)


# ------------------------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["map", "map@0", "map@-5", "precision@5", "MAP@all", "tmap@0", "cmap@all",
                                  "p@r-1", "p@all", "map@05", "p@r", "", "map@all ", "map@50-Found", "map@found",
                                  "cmap@5-found", "tmap@50-found", "p@5-found", "map@0-found"])
def test_unknown_metric_names_are_refused(name):
    with pytest.raises(MetricError, match="unknown metric"):
        check_metric(name)


def test_unknown_metric_names_are_refused_before_any_work():
    with pytest.raises(MetricError, match="unknown metric 'mAP'"):
        evaluate(np.ones((1, 8)), np.ones((1, 8)), np.ones((1, 2)), np.ones((1, 2)), ["map@all", "mAP"])


@pytest.mark.parametrize("name, kind, k", [("map@all", "map@all", None), ("map@50", "map@K", 50),
                                           ("cmap@5000", "cmap@K", 5000), ("tmap@all", "tmap@all", None),
                                           ("tmap@50", "tmap@K", 50), ("map@50-found", "map@K-found", 50),
                                           ("map@all-found", "map@all-found", None),
                                           ("p@100", "p@K", 100), ("r@7", "r@K", 7), ("p@r2", "p@rH", 2),
                                           ("r@r0", "r@rH", 0)])
def test_metric_names_parse(name, kind, k):
    spec = parse_metric(name)
    assert (spec.kind, spec.k) == (kind, k)
    assert check_metric(name) == k
    assert kind in METRIC_DEFINITIONS


def test_a_single_metric_name_may_be_given_as_a_string():
    rng = np.random.default_rng(8)
    qc, dc, ql, dl = random_case(rng, 4, 30, 8, 3, True)
    assert evaluate(qc, dc, ql, dl, "map@all") == evaluate(qc, dc, ql, dl, ["map@all"])


def test_cutoffs_beyond_the_database_read_as_its_size():
    rng = np.random.default_rng(9)
    qc, dc, ql, dl = random_case(rng, 5, 25, 8, 3, True)
    got = evaluate(qc, dc, ql, dl, ["map@all", "map@1000", "p@1000", "p@25", "r@1000", "r@r99"])
    assert got["map@1000"] == pytest.approx(got["map@all"])
    assert got["p@1000"] == pytest.approx(got["p@25"])
    assert got["r@1000"] == pytest.approx(got["r@r99"]) == pytest.approx(np.mean([(ql[i] @ dl.T > 0).any()
                                                                                      for i in range(5)]))


def test_statistics_report_their_backend_and_counts():
    rng = np.random.default_rng(10)
    qc, dc, ql, dl = random_case(rng, 6, 50, 12, 4, True)
    stats = compute_stats(qc, dc, ql, dl, ["tmap@all", "tmap@20"])
    assert stats.ap_sum is None  # counts only: no ranking was needed
    assert stats.n.shape == (6, 13) and (stats.n.sum(axis=1) == 50).all()
    assert stats.backend in engine.available_backends()
    assert np.array_equal(stats.relevant, (ql @ dl.T > 0).sum(axis=1))
    with pytest.raises(ValueError, match="needs the stable ranking"):
        per_query(stats, "map@all")
