"""Datasets: sources resolved by name, loaded on demand, split by named protocols."""

from cmhbench.datasets.base import (
    Dataset,
    DatasetError,
    DatasetSource,
    Split,
    available,
    register_dataset,
    resolve,
)
from cmhbench.datasets.catalog import catalog, listing, rows

__all__ = ["Dataset", "DatasetError", "DatasetSource", "Split", "available", "catalog", "listing", "register_dataset",
           "resolve", "rows"]
