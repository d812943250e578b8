"""The prepared-data cache and the fingerprint memo."""

import shutil

import numpy as np
import pytest

from cmhbench import datasets
from cmhbench.datasets import cache as cache_module
from cmhbench.datasets import filesource


def _own(tmp_path, make, seed=0):
    return make.npz(tmp_path / "mine.npz", **make.paired(n=2500, seed=seed))


def test_second_resolution_reads_only_the_cache(tmp_path, cache, make, monkeypatch):
    path = _own(tmp_path, make)
    first = datasets.resolve(str(path), cache_dir=cache)
    split = first.split(first.load(), "ucch", 0)

    def no_reading(*args, **kwargs):
        raise AssertionError("the source file was read again")

    monkeypatch.setattr(filesource, "ArrayFile", no_reading)
    monkeypatch.setattr(cache_module, "sha256_of", no_reading)  # the fingerprint comes from the memo
    second = datasets.resolve(str(path), cache_dir=cache)
    assert second.identity() == first.identity()
    ds = second.load()
    assert ds.image.dtype == np.float32 and not ds.image.flags.writeable
    assert second.split(ds, "ucch", 0).digest() == split.digest()
    assert list((second.folder / "splits").glob("ucch-v*-s0.npz"))


def test_a_changed_source_file_misses_the_cache(tmp_path, cache, make):
    path = _own(tmp_path, make, seed=0)
    before = datasets.resolve(str(path), cache_dir=cache)
    old = np.array(before.load().image)
    _own(tmp_path, make, seed=1)  # same name, new content
    after = datasets.resolve(str(path), cache_dir=cache)
    assert after.identity()["sha256"] != before.identity()["sha256"]
    assert after.folder != before.folder and before.folder.exists()
    assert not np.allclose(after.load().image, old)


def test_identity_is_content_not_place(tmp_path, cache, make):
    a = datasets.resolve("wikipedia", _wiki_copy(tmp_path / "a", make), cache_dir=cache)
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "a" / "wikiData.mat", tmp_path / "b" / "wikiData.mat")  # savemat stamps the time
    b = datasets.resolve("wikipedia", tmp_path / "b", cache_dir=cache)
    assert a.identity() == b.identity() and a.folder == b.folder


def _wiki_copy(folder, make):
    folder.mkdir()
    rng = np.random.default_rng(0)
    make.mat5(folder / "wikiData.mat", I_tr=rng.random((30, 4)), I_te=rng.random((10, 4)), T_tr=rng.random((30, 3)),
              T_te=rng.random((10, 3)), L_tr=np.arange(30)[:, None] % 10 + 1, L_te=np.arange(10)[:, None] + 1)
    return folder


def test_an_incomplete_cache_folder_is_rebuilt(tmp_path, cache, make):
    path = _own(tmp_path, make)
    source = datasets.resolve(str(path), cache_dir=cache)
    (source.folder / "image.npy").unlink()
    again = datasets.resolve(str(path), cache_dir=cache)
    assert again.load().image.shape == (2500, 8)


def test_without_a_cache(tmp_path, make):
    path = _own(tmp_path, make)
    source = datasets.resolve(str(path), cache_dir=False)
    assert source.folder is None
    assert source.split(source.load(), "ucch", 0).sizes()["query"] == 2000


def test_default_cache_folder_follows_the_environment(tmp_path, make, monkeypatch):
    monkeypatch.setenv("CMHBENCH_CACHE", str(tmp_path / "env-cache"))
    source = datasets.resolve(str(_own(tmp_path, make)))
    assert source.folder.parent == tmp_path / "env-cache" / "datasets"


def test_fingerprint_memo_is_refreshed_when_the_file_changes(tmp_path, cache):
    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    root = cache / "datasets"
    first = cache_module.file_fingerprint(path, root)
    assert first == cache_module.sha256_of(path)
    path.write_bytes(b"two!")
    assert cache_module.file_fingerprint(path, root) != first


def test_sources_pickle(tmp_path, cache, make):
    import pickle

    source = datasets.resolve(str(_own(tmp_path, make)), cache_dir=cache)
    clone = pickle.loads(pickle.dumps(source))
    assert clone.identity() == source.identity() and clone.load().n == 2500


@pytest.mark.parametrize("protocol", ["dcmh", "djsrh"])
def test_seeded_split_is_cached_per_seed(tmp_path, cache, make, protocol):
    path = make.npz(tmp_path / "big.npz", **make.paired(n=12500))
    source = datasets.resolve(str(path), cache_dir=cache)
    ds = source.load()
    a, b = source.split(ds, protocol, 0), source.split(ds, protocol, 1)
    assert a.digest() != b.digest()
    assert source.split(ds, protocol, 0).digest() == a.digest()
    assert len(list((source.folder / "splits").glob(f"{protocol}-*.npz"))) == 2
