"""Fixtures for the dataset tests: file writers, a MIRFlickr-25K folder, an isolated cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

MATLAB73_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 ."


def write_mat73(path: Path, **arrays: np.ndarray) -> Path:
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 behind a 512-byte header, arrays transposed."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as fh:
        for key, value in arrays.items():
            fh[key] = np.asarray(value).T
    with open(path, "r+b") as fh:
        fh.write(MATLAB73_HEADER.ljust(116))
    return path


def write_h5(path: Path, **arrays: np.ndarray) -> Path:
    import h5py

    with h5py.File(path, "w") as fh:
        for key, value in arrays.items():
            fh[key] = np.asarray(value)
    return path


def paired(n: int = 600, c: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """Small paired data with multi-hot labels, every row labelled."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, c)) < 0.3).astype(np.uint8)
    labels[labels.sum(axis=1) == 0, 0] = 1
    return {"image": rng.standard_normal((n, 8)), "text": rng.standard_normal((n, 6)).astype(np.float32),
            "labels": labels}


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """No test writes the user's cache or reads their data folder."""
    monkeypatch.setenv("CMHBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "default-cache"))
    monkeypatch.delenv("CMHBENCH_DATA", raising=False)


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def mirflickr_dir(shared_data, tmp_path_factory) -> Path:
    """DATA/mirflickr25k/ with the real LAll and YAll and generated float16 'VGG' features (v7.3, 16 columns)."""
    root = tmp_path_factory.mktemp("mirdata")
    folder = root / "mirflickr25k"
    folder.mkdir()
    for name in ("mirflickr25k-lall.mat", "mirflickr25k-yall.mat"):
        os.symlink(shared_data / "mirflickr25k" / name, folder / name)
    rng = np.random.default_rng(0)
    write_mat73(folder / "mirflickr25k-iall-vgg.mat", XAll=rng.standard_normal((20015, 16)).astype(np.float16))
    return root


@pytest.fixture(scope="module")
def mir_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mircache")


class Make:
    """File writers for tests (conftest modules are not importable under importlib mode)."""

    mat73 = staticmethod(write_mat73)
    h5 = staticmethod(write_h5)
    paired = staticmethod(paired)

    @staticmethod
    def mat5(path: Path, **arrays: np.ndarray) -> Path:
        import scipy.io

        scipy.io.savemat(path, arrays, do_compression=True)
        return path

    @staticmethod
    def npz(path: Path, **arrays: np.ndarray) -> Path:
        np.savez(path, **arrays)
        return path


@pytest.fixture
def make() -> type[Make]:
    return Make
