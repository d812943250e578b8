"""Validation splits: carved from non-query rows for every protocol, seeded, never a test query."""

import numpy as np
import pytest

from cmhbench.datasets import DatasetError
from cmhbench.datasets import protocols as P
from cmhbench.datasets.base import random_split
from cmhbench.datasets.validation import split_for_role, validation_split


def _labels(n=9000, c=6, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, c)) < 0.25).astype(np.uint8)
    labels[labels.sum(axis=1) == 0, 1] = 1
    labels[:200] = 0  # some label-less items
    return labels


def _splits(labels):
    """One split of every protocol (wiki is the given-queries rule on a fixed block of rows)."""
    n = len(labels)
    rows = np.arange(n)
    return {
        "djsrh": P.djsrh_split(labels, 3),
        "dcmh": P.dcmh_split(labels, 3, n_train=5000),
        "ucch": P.last_rows_split("ucch", labels, 2000),
        "wiki": P.fixed_split("wiki", labels, query=rows[-693:]),
        "given": P.fixed_split("given", labels, query=rows[:1500], train=rows[4000:7000], database=rows[1000:]),
        "synthetic": random_split(n, 300, 1500, 3, "synthetic"),
    }


@pytest.mark.parametrize("protocol", ["djsrh", "dcmh", "ucch", "wiki", "given", "synthetic"])
def test_validation_split_never_contains_a_test_query_row(protocol):
    labels = _labels()
    test = _splits(labels)[protocol]
    val = validation_split(test, labels, seed=3)
    for part in (val.query, val.train, val.database):
        assert not np.intersect1d(part, test.query).size
    assert not np.intersect1d(val.query, val.database).size
    assert not np.intersect1d(val.query, val.train).size  # trials train without their queries
    assert np.isin(val.query, test.database).all() and np.isin(val.train, test.train).all()
    assert labels[val.query].any(axis=1).all()  # every validation query can have a relevant item
    assert 0 < val.sizes()["query"] <= test.sizes()["query"]
    assert val.digest() != test.digest() and val.protocol == f"{protocol}:validation"


def test_validation_queries_come_from_training_rows_only_where_the_database_is_the_training_set():
    labels = _labels()
    splits = _splits(labels)
    wiki = validation_split(splits["wiki"], labels, 0)
    assert np.isin(wiki.query, splits["wiki"].train).all()
    assert wiki.sizes()["train"] == splits["wiki"].sizes()["train"] - wiki.sizes()["query"]
    djsrh = validation_split(splits["djsrh"], labels, 0)
    assert not np.isin(djsrh.query, splits["djsrh"].train).any()
    assert np.array_equal(djsrh.train, splits["djsrh"].train)  # trials train on the protocol's pairs


def test_validation_split_is_seeded():
    labels = _labels()
    test = _splits(labels)["ucch"]
    a, b, c = (validation_split(test, labels, s) for s in (0, 0, 1))
    assert a.digest() == b.digest() != c.digest()


def test_a_split_too_small_to_validate_is_refused_in_one_line():
    labels = np.ones((6, 2), dtype=np.uint8)
    test = P.fixed_split("given", labels, query=np.array([5]), database=np.array([0, 1]))
    with pytest.raises(DatasetError, match="too few to carve a validation split"):
        validation_split(test, labels, 0)
    with pytest.raises(DatasetError, match="unknown split role"):
        split_for_role(test, labels, 0, "holdout")
