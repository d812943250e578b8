"""The split rules on their own: sizes, disjointness, coverage, seeding, short labels."""

import numpy as np
import pytest

from cmhbench.datasets import Split
from cmhbench.datasets import protocols as P


def test_per_label_counts_are_the_authors_on_mirflickr_and_nuswide():
    assert P.per_label_counts(2000, 24) == [160] + [80] * 23
    assert P.per_label_counts(5000, 24) == [400] + [200] * 23
    assert P.per_label_counts(2000, 10) == [200] * 10
    assert P.per_label_counts(5000, 10) == [500] * 10
    for total, c in [(2000, 255), (5000, 80), (7, 3), (2000, 1)]:
        counts = P.per_label_counts(total, c)
        assert sum(counts) == total and len(counts) == c


def _labels(n=9000, c=6, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, c)) < 0.25).astype(np.uint8)
    labels[labels.sum(axis=1) == 0, 1] = 1
    return labels


def test_djsrh_sizes_disjointness_coverage_and_seeding():
    labels = _labels()
    s0, s0b, s1 = P.djsrh_split(labels, 0), P.djsrh_split(labels, 0), P.djsrh_split(labels, 1)
    assert s0.sizes() == {"query": 2000, "train": 5000, "database": 7000}
    assert not np.intersect1d(s0.query, s0.database).size
    assert np.union1d(s0.query, s0.database).size == len(labels)
    assert np.isin(s0.train, s0.database).all()
    counts = P.per_label_counts(2000, labels.shape[1])
    for j, quota in enumerate(counts):  # every label got its quota of queries drawn among its items
        assert labels[s0.query, j].sum() >= quota
    assert labels[s0.train].any(axis=0).all()
    assert s0.digest() == s0b.digest() != s1.digest()


def test_djsrh_short_label_gives_what_it_has_and_training_is_topped_up():
    labels = _labels()
    labels[:, 3] = 0
    labels[:50, 3] = 1  # label 4 has 50 items: fewer than its 330 queries + 830 training pairs
    split = P.djsrh_split(labels, 0)
    assert split.sizes() == {"query": 2000, "train": 5000, "database": 7000}
    assert any("label 4" in note for note in split.notes)
    assert any("topped up" in note for note in split.notes)


def test_label_less_items_are_never_queries_and_are_reported():
    labels = _labels(n=13000)
    labels[:400] = 0
    for split in (P.djsrh_split(labels, 0), P.dcmh_split(labels, 0)):
        assert labels[split.query].any(axis=1).all()
        assert any("400 label-less items" in note for note in split.notes)
        assert np.isin(np.arange(400), split.database).all()


def test_dcmh_sizes():
    labels = _labels(n=13000)
    split = P.dcmh_split(labels, 3)
    assert split.sizes() == {"query": 2000, "train": 10000, "database": 11000}
    assert not np.intersect1d(split.query, split.database).size
    assert np.isin(split.train, split.database).all()
    assert split.digest() != P.dcmh_split(labels, 4).digest()


def test_fixed_split_drops_label_less_queries():
    labels = _labels(n=100)
    labels[95] = 0
    split = P.last_rows_split("ucch", labels, 10)
    assert split.query.tolist() == [90, 91, 92, 93, 94, 96, 97, 98, 99]
    assert split.train.tolist() == split.database.tolist() == list(range(90))
    assert split.notes[0] == "1 label-less query rows removed from the queries"


def test_fit_problems_name_the_sizes():
    sizes = P.Sizes()
    assert "7,000 items" in P.fit_problem("djsrh", 3000, 3000, sizes)
    assert "12,000 items" in P.fit_problem("dcmh", 11999, 11999, sizes)
    assert "last 2,000 rows" in P.fit_problem("ucch", 2000, 2000, sizes)
    assert P.fit_problem("dcmh", 12000, 12000, sizes) is None


def test_split_notes_do_not_change_the_digest():
    a = Split("p", query=np.array([1]), train=np.array([2]), database=np.array([2, 3]))
    b = Split("p", query=np.array([1]), train=np.array([2]), database=np.array([3, 2]), notes=("x",))
    assert a.digest() == b.digest()


def test_index_checks():
    with pytest.raises(Exception, match="look 1-based"):
        P.check_indices("query_idx", np.arange(1, 11), 10, "f.npz")
    with pytest.raises(Exception, match="boolean mask"):
        P.check_indices("query_idx", np.ones(10, bool), 10, "f.npz")
    assert P.check_indices("query_idx", np.array([[0.0, 3.0]]), 10, "f.npz").tolist() == [0, 3]
