"""Feature preprocessing, part of the protocol: ``raw``, ``zscore`` or ``l2`` features.

Features as distributed can be badly scaled for a network (Wikipedia's SIFT histograms sum
to 1, its LDA proportions too); a user asks for a standard preprocessing by name instead
of writing a new file, and every cell key, record and leaderboard says which one it used.

- ``raw``: the files as given.
- ``zscore``: each column minus its mean, divided by its standard deviation, both fitted on
  the *training rows only* and applied to every row (query, database), so no statistic of
  a query reaches training.  A column constant on the training rows maps to 0.
- ``l2``: each row divided by its Euclidean norm (a row of zeros stays zeros); no fitted
  statistics.

Each modality is transformed on its own; labels are untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cmhbench.datasets.base import Dataset
from cmhbench.schema import DEFAULT_FEATURES

FEATURES = (DEFAULT_FEATURES, "zscore", "l2")


def check_features(name: str) -> str:
    """``name`` if it is a known preprocessing, else a one-line ValueError naming the choices."""
    if name not in FEATURES:
        raise ValueError(f"features must be one of {', '.join(FEATURES)}, got {name!r}")
    return name


@dataclass(frozen=True)
class ZScore:
    """Column means and standard deviations fitted on training rows (std 0 → the column maps to 0)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> "ZScore":
        data = np.asarray(features)
        return cls(mean=data.mean(axis=0, dtype=np.float64), std=data.std(axis=0, dtype=np.float64))

    def apply(self, features: np.ndarray) -> np.ndarray:
        constant = self.std == 0
        scale = np.where(constant, 1.0, self.std)
        out = (np.asarray(features, dtype=np.float32) - self.mean.astype(np.float32)) / scale.astype(np.float32)
        out[:, constant] = 0.0
        return out


def l2_rows(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit Euclidean norm; all-zero rows stay zero."""
    data = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(data, axis=1, keepdims=True)
    return (data / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def transform(features: np.ndarray, train_rows: np.ndarray, name: str) -> np.ndarray:
    """One modality's features under preprocessing ``name``, statistics from ``train_rows``."""
    check_features(name)
    if name == "raw":
        return features
    if name == "l2":
        return l2_rows(features)
    return ZScore.fit(features[train_rows]).apply(features)


def preprocess(dataset: Dataset, train_rows: np.ndarray, name: str) -> Dataset:
    """The dataset with both modalities preprocessed (``raw`` returns it unchanged)."""
    if check_features(name) == "raw":
        return dataset
    return Dataset(dataset.name, transform(dataset.image, train_rows, name), transform(dataset.text, train_rows, name),
                   dataset.labels)
