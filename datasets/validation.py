"""Validation splits: a seeded query/database split carved out of a protocol's non-query rows.

Model selection (``cmhbench tune``) must never see a test query.  Given any protocol's
:class:`~cmhbench.datasets.base.Split`, :func:`validation_split` draws validation queries
from the labelled database rows that are not test queries, preferring rows that are not
training pairs:

- where the database is larger than the training set (``djsrh``, ``dcmh``, ``synthetic``),
  the validation queries are database rows outside the training set, and trials train on
  the protocol's own training pairs;
- where the database *is* the training set (``wiki``, ``ucch``, ``given`` without
  ``train_idx``), the validation queries come out of the training rows, and trials train
  without them (validation training set = training set minus validation queries).

The validation database is every database row that is neither a test query nor a
validation query.  The number of validation queries is the protocol's number of test
queries, capped at :data:`VALIDATION_FRACTION` of the candidate rows so that a small
training set keeps most of its pairs (Wikipedia: 2,173 pairs give 435 validation queries,
not 693).  Labels decide only which rows can be queries (a label-less row could never have
a relevant item) and are used afterwards only to score.

The draw uses ``numpy.random.default_rng([seed, VALIDATION_STREAM])``: seeded, independent
of the protocol's own draw, the same on every machine.  The split's digest is recorded
with every trial cell, apart from the test split's.
"""

from __future__ import annotations

import numpy as np

from cmhbench.datasets.base import DatasetError, Split, sorted_unique

VALIDATION_FRACTION = 0.2
VALIDATION_STREAM = 0x7A11D  # separates this draw from a protocol's draw with the same seed
ROLES = ("test", "validation")


def validation_split(split: Split, labels: np.ndarray, seed: int,
                     fraction: float = VALIDATION_FRACTION) -> Split:
    """The validation split of ``split`` for ``seed``; it contains no row of ``split.query``."""
    labels = np.asarray(labels)
    test_query = split.query
    pool = np.setdiff1d(split.database, test_query, assume_unique=True)
    candidates = pool[labels[pool].any(axis=1)]
    n_query = min(len(test_query), int(round(fraction * len(candidates))))
    if n_query < 1 or len(pool) - n_query < 1:
        raise DatasetError(f"protocol {split.protocol!r}: {len(candidates):,} labelled non-query database rows "
                           "are too few to carve a validation split")
    rng = np.random.default_rng([int(seed), VALIDATION_STREAM])
    in_train = np.isin(candidates, split.train)
    outside, inside = candidates[~in_train], candidates[in_train]
    order = np.concatenate([outside[rng.permutation(outside.size)], inside[rng.permutation(inside.size)]])
    query = sorted_unique(order[:n_query])
    database = np.setdiff1d(pool, query, assume_unique=True)
    train = np.setdiff1d(split.train, np.concatenate([query, test_query]))
    if train.size < 2:
        raise DatasetError(f"protocol {split.protocol!r}: the validation split leaves fewer than 2 training pairs")
    from_train = int(np.isin(query, split.train).sum())
    notes = (f"validation split of {split.protocol!r} (seed {seed}): {query.size:,} queries from labelled "
             f"non-query database rows ({from_train:,} taken out of the training pairs); no test query used",)
    return Split(f"{split.protocol}:validation", query=query, train=train, database=database, notes=notes)


def split_for_role(split: Split, labels: np.ndarray, seed: int, role: str) -> Split:
    """The split a cell of ``role`` (``test`` or ``validation``) is scored on."""
    if role == "test":
        return split
    if role == "validation":
        return validation_split(split, labels, seed)
    raise DatasetError(f"unknown split role {role!r} (roles: {', '.join(ROLES)})")
