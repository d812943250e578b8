import numpy as np
import pytest

from cmhbench.evaluation.pair_auc import compare_similarities, pair_auc, pair_counts


def brute_auc(S, R, weights=None):
    """Mann–Whitney over every (relevant, irrelevant) pair, queries repeated by weight."""
    w = np.ones(S.shape[0]) if weights is None else weights
    pos = [(s, w[q]) for q in range(S.shape[0]) for s in S[q][R[q]]]
    neg = [(s, w[q]) for q in range(S.shape[0]) for s in S[q][~R[q]]]
    num = sum(wp * wn * (1.0 if p > n else 0.5 if p == n else 0.0) for p, wp in pos for n, wn in neg)
    return num / (sum(wp for _, wp in pos) * sum(wn for _, wn in neg))


@pytest.fixture()
def pairs():
    rng = np.random.default_rng(3)
    R = rng.random((7, 11)) < 0.3
    S = np.round(rng.normal(size=(7, 11)) + R, 1)  # rounding makes ties across queries
    return S, R


def test_auc_matches_brute_force_with_ties_and_weights(pairs):
    S, R = pairs
    counts = pair_counts(S, R)
    assert counts.auc() == pytest.approx(brute_auc(S, R))
    w = np.array([0, 2, 1, 0, 3, 1, 1], dtype=float)
    assert counts.auc(w) == pytest.approx(brute_auc(S, R, w))


def test_the_one_sort_auc_is_the_cross_count_auc(pairs):
    S, R = pairs
    assert pair_auc(S, R) == pytest.approx(brute_auc(S, R))
    assert pair_auc(np.zeros((4, 4)), np.eye(4, dtype=bool)) == 0.5
    assert np.isnan(pair_auc(S, np.zeros_like(R)))  # no relevant pair: no AUC


def test_perfect_and_reversed_similarities():
    R = np.eye(4, dtype=bool)
    S = np.eye(4)
    assert pair_counts(S, R).auc() == 1.0
    assert pair_counts(-S, R).auc() == 0.0
    assert pair_counts(np.zeros((4, 4)), R).auc() == 0.5


def test_paired_difference_interval(pairs):
    S, R = pairs
    noisy = S + np.random.default_rng(0).normal(scale=2.0, size=S.shape)
    aucs, diffs = compare_similarities({"clean": S, "noisy": noisy, "same": S.copy()}, R, n_bootstrap=300)
    assert aucs["clean"].value == pytest.approx(brute_auc(S, R))
    assert aucs["clean"].low <= aucs["clean"].value <= aucs["clean"].high
    # identical similarities: every paired resample gives a difference of exactly zero
    same = diffs[("clean", "same")]
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0) and not same.excludes_zero()
    assert diffs[("clean", "noisy")].value == pytest.approx(aucs["clean"].value - aucs["noisy"].value)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="same Q × D shape"):
        pair_counts(np.zeros((2, 3)), np.zeros((3, 2), dtype=bool))
    with pytest.raises(ValueError, match="non-finite"):
        pair_counts(np.array([[np.nan, 0.0]]), np.array([[True, False]]))
