"""Named split protocols: which rows are queries, training pairs and database items.

Every protocol returns a :class:`~cmhbench.datasets.base.Split`; its ``digest`` goes into
each record and its name into each cell key, so results under two papers' protocols are
never pooled.  Seeded protocols draw with ``numpy.random.default_rng(seed)``: the same
seed gives the same split on every machine, another seed another split.  (The authors'
scripts draw with NumPy's unseeded global generator, so their exact index sets cannot be
reproduced by anyone; the *rule* is what is followed here.)

``djsrh``
    The sampling of DJSRH (Su et al., ICCV 2019, ``datasets.py``), reused verbatim by JDSH
    (Liu et al., SIGIR 2020).  Labels are visited in column order.  For each label, the
    items carrying it are shuffled, items already taken (as query or training pair) are
    removed, and the next ``q_j`` become queries and the following ``t_j`` training pairs.
    The per-label counts are the authors': on MIRFlickr-25K 160 queries / 400 training
    pairs for the first label and 80 / 200 for each of the other 23 (2,000 / 5,000 in
    all); on NUS-WIDE 200 / 500 for each of the 10 labels.  On other datasets the same
    rule gives them: ⌊total / #labels⌋, rounded down to a multiple of ten where it is at
    least ten, for every label, and the rest of the total for the first label.
    A label with too few untaken items gives what it has — its queries first, then its
    training pairs — and the shortfall is not moved to later labels (as in the authors'
    code: on MIRFlickr-25K label 2 of 24 has 179 items and yields fewer than 200
    training pairs).  The training set is then topped up to its total with items drawn
    at random from the database that are not yet training pairs (the authors' code does
    exactly this).  Their code has no top-up for queries; when the per-label draw leaves
    fewer than the total, queries are topped up here from the untaken labelled items and
    the split's notes say so.  Database = every item but the queries; training pairs are
    database items.  Label-less items are never drawn per label and never become
    queries; the training top-up may draw them, and they stay in the database.
``dcmh``
    DCMH (Jiang & Li, CVPR 2017): 2,000 queries drawn at random from the labelled items;
    database = all other items; 10,000 training pairs drawn at random from the database.
``ucch``
    UCCH (Hu et al., TPAMI 2022, ``src/cmdataset.py``, feature-level loaders): the last
    rows of the file are the queries — 2,000 (NUS-WIDE: 2,100; MS-COCO: 5,000, as in the
    authors' code) — and every other row is both a training pair and a database item.
    The released feature files are already shuffled (``*_rand``), so this split is fixed:
    it does not depend on the seed.
``wiki``
    Wikipedia (Rasiwasia et al., 2010): the official 693 test pairs are the queries, the
    2,173 training pairs are both the training set and the database.  Fixed.
``given``
    A user file's own ``query_idx`` / ``train_idx`` / ``database_idx`` (0-based).
    Without ``database_idx`` the database is every row but the queries; without
    ``train_idx`` the training set is the database.  Fixed.

For the fixed protocols (``ucch``, ``wiki``, ``given``), a query row without any label
could never have a relevant item: such rows are removed from the queries (they stay out
of the database too) and the split's notes count them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cmhbench.datasets.base import DatasetError, Split, sorted_unique

SPLIT_VERSION = 1  # bump when a rule changes: cached splits are then recomputed
SEEDED = ("djsrh", "dcmh")
FIXED = ("ucch", "wiki", "given")


@dataclass(frozen=True)
class Sizes:
    """The totals a dataset asks of each protocol."""

    djsrh_query: int = 2000
    djsrh_train: int = 5000
    dcmh_query: int = 2000
    dcmh_train: int = 10000
    ucch_query: int = 2000


def per_label_counts(total: int, n_labels: int) -> list[int]:
    """DJSRH's per-label counts: the first label takes what the others leave."""
    per = total // n_labels
    if per >= 10:
        per -= per % 10
    return [total - (n_labels - 1) * per] + [per] * (n_labels - 1)


def fit_problem(protocol: str, n: int, n_labelled: int, sizes: Sizes) -> str | None:
    """Why ``protocol`` cannot split ``n`` items (``n_labelled`` with a label), or None."""
    if protocol == "djsrh":
        q, t = sizes.djsrh_query, sizes.djsrh_train
        if n_labelled < q or n - q < t:
            return (f"it needs {q:,} labelled queries and {t:,} further training pairs "
                    f"({q + t:,} items), the dataset has {n:,} items ({n_labelled:,} labelled)")
    elif protocol == "dcmh":
        q, t = sizes.dcmh_query, sizes.dcmh_train
        if n_labelled < q or n - q < t:
            return (f"it needs {q:,} labelled queries and {t:,} training pairs from the other items "
                    f"({q + t:,} items), the dataset has {n:,} items ({n_labelled:,} labelled)")
    elif protocol == "ucch":
        if n <= sizes.ucch_query:
            return f"it takes the last {sizes.ucch_query:,} rows as queries, the dataset has only {n:,} rows"
    return None


def _labelled(labels: np.ndarray) -> np.ndarray:
    return np.asarray(labels).any(axis=1)


def _unlabelled_note(labels: np.ndarray, database: np.ndarray, train: np.ndarray) -> list[str]:
    unlabelled = ~_labelled(labels)
    notes = []
    if unlabelled.any():
        notes.append(f"{int(unlabelled.sum()):,} label-less items: never queries; "
                     f"{int(unlabelled[database].sum()):,} in the database, {int(unlabelled[train].sum()):,} "
                     "among the training pairs")
    return notes


def djsrh_split(labels: np.ndarray, seed: int, n_query: int = 2000, n_train: int = 5000) -> Split:
    labels = np.asarray(labels)
    n, c = labels.shape
    rng = np.random.default_rng(seed)
    q_counts, t_counts = per_label_counts(n_query, c), per_label_counts(n_train, c)
    taken = np.zeros(n, dtype=bool)
    queries, train = [], []
    short = []
    for j in range(c):
        rows = np.flatnonzero(labels[:, j])
        rows = rows[rng.permutation(rows.size)]
        rows = rows[~taken[rows]]
        q = rows[: q_counts[j]]
        t = rows[q_counts[j]: q_counts[j] + t_counts[j]]
        taken[q] = True
        taken[t] = True
        queries.append(q)
        train.append(t)
        if q.size < q_counts[j] or t.size < t_counts[j]:
            short.append(f"label {j + 1}: {q.size}/{q_counts[j]} queries, {t.size}/{t_counts[j]} training pairs")
    query = np.concatenate(queries)
    train_rows = np.concatenate(train)
    notes = []
    if short:
        notes.append("per-label draw short (as in the authors' code, not moved to other labels): " + "; ".join(short))
    if query.size < n_query:
        pool = np.flatnonzero(_labelled(labels) & ~taken)
        extra = pool[rng.permutation(pool.size)[: n_query - query.size]]
        taken[extra] = True
        notes.append(f"queries topped up with {extra.size:,} random labelled items")
        query = np.concatenate([query, extra])
    is_query = np.zeros(n, dtype=bool)
    is_query[query] = True
    database = np.flatnonzero(~is_query)
    if train_rows.size < n_train:
        is_train = np.zeros(n, dtype=bool)
        is_train[train_rows] = True
        pool = np.flatnonzero(~is_query & ~is_train)
        extra = pool[rng.permutation(pool.size)[: n_train - train_rows.size]]
        notes.append(f"training pairs topped up with {extra.size:,} random database items")
        train_rows = np.concatenate([train_rows, extra])
    notes += _unlabelled_note(labels, database, train_rows)
    return Split("djsrh", query=query, train=train_rows, database=database, notes=tuple(notes))


def dcmh_split(labels: np.ndarray, seed: int, n_query: int = 2000, n_train: int = 10000) -> Split:
    labels = np.asarray(labels)
    n = labels.shape[0]
    rng = np.random.default_rng(seed)
    labelled = np.flatnonzero(_labelled(labels))
    query = labelled[rng.permutation(labelled.size)[:n_query]]
    is_query = np.zeros(n, dtype=bool)
    is_query[query] = True
    database = np.flatnonzero(~is_query)
    train = database[rng.permutation(database.size)[:n_train]]
    notes = _unlabelled_note(labels, database, train)
    return Split("dcmh", query=query, train=train, database=database, notes=tuple(notes))


def fixed_split(protocol: str, labels: np.ndarray, query: np.ndarray, train: np.ndarray | None = None,
                database: np.ndarray | None = None) -> Split:
    """A split whose rows are given; label-less queries are dropped and counted."""
    labels = np.asarray(labels)
    n = labels.shape[0]
    query = sorted_unique(query)
    labelled = _labelled(labels)
    label_less = query[~labelled[query]]
    notes = []
    if label_less.size:
        notes.append(f"{label_less.size:,} label-less query rows removed from the queries")
        query = query[labelled[query]]
    if database is None:
        keep = np.ones(n, dtype=bool)
        keep[query] = False
        keep[label_less] = False  # dropped queries stay out of the database too
        database = np.flatnonzero(keep)
    database = sorted_unique(database)
    train = database if train is None else sorted_unique(train)
    notes += _unlabelled_note(labels, database, train)
    return Split(protocol, query=query, train=train, database=database, notes=tuple(notes))


def last_rows_split(protocol: str, labels: np.ndarray, n_query: int) -> Split:
    n = np.asarray(labels).shape[0]
    rows = np.arange(n)
    return fixed_split(protocol, labels, query=rows[n - n_query:], train=rows[: n - n_query],
                       database=rows[: n - n_query])


def check_indices(name: str, rows: np.ndarray, n: int, where: str) -> np.ndarray:
    """Validate a user's 0-based index array."""
    rows = np.asarray(rows)
    if rows.ndim != 1:
        rows = rows.reshape(-1)
    if rows.size == 0:
        raise DatasetError(f"{where}: {name} is empty")
    if rows.dtype.kind == "f":
        if not np.all(np.isfinite(rows)) or not np.all(rows == np.round(rows)):
            raise DatasetError(f"{where}: {name} must hold whole row numbers")
        rows = rows.astype(np.int64)
    elif rows.dtype.kind == "b":
        raise DatasetError(f"{where}: {name} must hold 0-based row numbers, not a boolean mask")
    rows = rows.astype(np.int64)
    low, high = int(rows.min()), int(rows.max())
    if low < 0 or high >= n:
        hint = " (row numbers are 0-based; these look 1-based)" if low >= 1 and high == n else ""
        raise DatasetError(f"{where}: {name} has row numbers {low}..{high} outside 0..{n - 1}{hint}")
    return rows
