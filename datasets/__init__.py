"""Datasets: sources resolved by name, loaded on demand, split by named protocols."""

from cmhbench.datasets.base import Dataset, DatasetError, DatasetSource, Split
from cmhbench.datasets.cache import default_cache_dir
from cmhbench.datasets.catalog import catalog, listing, rows
from cmhbench.datasets.registry import available, default_data_dir, register_dataset, resolve

__all__ = ["Dataset", "DatasetError", "DatasetSource", "Split", "available", "catalog", "default_cache_dir",
           "default_data_dir", "listing", "register_dataset", "resolve", "rows"]
