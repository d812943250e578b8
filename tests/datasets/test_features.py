"""Feature preprocessing: statistics from training rows only, and the shapes users see."""

import numpy as np
import pytest

from cmhbench.datasets import Dataset
from cmhbench.datasets.features import l2_rows, preprocess, transform


def _dataset(rng, n=60):
    image = rng.normal(3.0, 2.0, size=(n, 5)).astype(np.float32)
    image[:, 2] = 7.0  # a constant column
    text = rng.random((n, 4)).astype(np.float32)
    return Dataset("toy", image, text, np.ones((n, 1), dtype=np.uint8))


def test_zscore_statistics_come_from_training_rows_only():
    rng = np.random.default_rng(0)
    ds = _dataset(rng)
    train, query = np.arange(40), np.arange(40, 60)
    out = preprocess(ds, train, "zscore")
    assert np.allclose(out.image[train].mean(axis=0), 0, atol=1e-5)
    assert np.allclose(np.delete(out.image[train].std(axis=0), 2), 1, atol=1e-4)
    changed_image = ds.image.copy()
    changed_image[query] = rng.normal(-50, 9, size=(20, 5))  # queries change; training rows do not
    changed = preprocess(Dataset("toy", changed_image, ds.text, ds.labels), train, "zscore")
    assert np.array_equal(changed.image[train], out.image[train])
    assert np.array_equal(changed.text, out.text)
    expected = (changed_image[query] - ds.image[train].mean(0)) / np.where(ds.image[train].std(0) == 0, 1,
                                                                           ds.image[train].std(0))
    expected[:, 2] = 0
    assert np.allclose(changed.image[query], expected, atol=1e-4)


def test_a_column_constant_on_training_rows_maps_to_zero_everywhere():
    rng = np.random.default_rng(1)
    ds = _dataset(rng)
    image = ds.image.copy()
    image[50:, 2] = 100.0  # differs outside the training rows
    out = transform(image, np.arange(40), "zscore")
    assert (out[:, 2] == 0).all() and np.isfinite(out).all()


def test_l2_rows_have_unit_norm_and_zero_rows_stay_zero():
    rows = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    out = l2_rows(rows)
    assert np.allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert out.dtype == np.float32


def test_raw_is_the_dataset_unchanged_and_unknown_names_are_refused():
    ds = _dataset(np.random.default_rng(2))
    assert preprocess(ds, np.arange(10), "raw") is ds
    with pytest.raises(ValueError, match="features must be one of raw, zscore, l2, got 'pca'"):
        preprocess(ds, np.arange(10), "pca")
