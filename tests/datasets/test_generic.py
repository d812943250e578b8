"""The user's own file (--datasets path/to/file.npz|.mat|.h5), and every bad-file message.

Each bad file fails at resolution (before any cell runs) with a one-line DatasetError that
names the file, its folder and the key or modality.
"""

import numpy as np
import pytest

from cmhbench import datasets
from cmhbench.datasets import DatasetError


def _raises(path, match, cache, data_dir=None):
    with pytest.raises(DatasetError, match=match) as err:
        datasets.resolve(str(path), data_dir, cache_dir=cache)
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("suffix", ["npz", "mat", "h5"])
def test_own_file_in_each_container(tmp_path, cache, make, suffix):
    data = make.paired(n=3000)
    writer = {"npz": make.npz, "mat": make.mat5, "h5": make.h5}[suffix]
    path = writer(tmp_path / f"mine.{suffix}", **data)
    source = datasets.resolve(str(path), cache_dir=cache)
    assert source.identity()["name"] == str(path)
    assert source.default_protocol == "dcmh" and "given" not in source.protocols
    ds = source.load()
    assert np.allclose(ds.image, data["image"]) and np.array_equal(ds.labels, data["labels"])
    with pytest.raises(DatasetError, match="protocol 'dcmh' does not fit: .*12,000 items.*3,000 items.*query_idx.*"
                                           "--protocol given"):
        source.check_protocol(None)
    split = source.split(ds, "ucch", 0)
    assert split.sizes() == {"query": 2000, "train": 1000, "database": 1000}


def test_own_split_is_the_given_protocol(tmp_path, cache, make):
    data = make.paired(n=500)
    data["labels"][7] = 0  # a label-less query row
    path = make.npz(tmp_path / "mine.npz", **data, query_idx=np.arange(0, 50), train_idx=np.arange(50, 250))
    source = datasets.resolve(str(path), cache_dir=cache)
    assert source.default_protocol == "given"
    split = source.split(source.load(), "given", 0)
    assert split.sizes() == {"query": 49, "train": 200, "database": 450}
    assert 7 not in split.query and 7 not in split.database
    assert split.notes[0] == "1 label-less query rows removed from the queries"


def test_relative_path_is_also_looked_for_in_the_data_folder(tmp_path, cache, make):
    make.npz(tmp_path / "mine.npz", **make.paired(n=100))
    assert datasets.resolve("mine.npz", tmp_path, cache_dir=cache).load().n == 100


def test_class_id_labels_become_one_hot(tmp_path, cache, make):
    data = make.paired(n=100)
    data["labels"] = np.arange(100) % 4
    ds = datasets.resolve(str(make.npz(tmp_path / "ids.npz", **data)), cache_dir=cache).load()
    assert ds.labels.shape == (100, 4) and (ds.labels.sum(axis=1) == 1).all()


# -- bad files: the cases `cmhbench run` turns into exit code 2 -----------------------------

def test_missing_file(tmp_path, cache):
    message = _raises(tmp_path / "absent.npz", "absent.npz not found", cache)
    assert str(tmp_path) in message and "image, text, labels" in message


def test_missing_keys_name_the_keys_found(tmp_path, cache, make):
    path = make.npz(tmp_path / "mine.npz", image=np.zeros((5, 2)), feats=np.zeros((5, 2)))
    message = _raises(path, r"missing keys 'text', 'labels' \(found: feats, image\)", cache)
    assert f"mine.npz in {tmp_path}" in message


def test_missing_key_in_a_named_dataset(tmp_path, cache, make):
    make.mat5(tmp_path / "wikiData.mat", I_tr=np.zeros((3, 2)))
    with pytest.raises(DatasetError, match=r"wikiData.mat in .*: missing keys 'I_te', 'T_tr', .*'L_te' \(found: I_tr"):
        datasets.resolve("wikipedia", tmp_path, cache_dir=cache)


def test_row_counts_that_differ_name_both(tmp_path, cache, make):
    data = make.paired(n=50)
    data["text"] = data["text"][:40]
    message = _raises(make.npz(tmp_path / "mine.npz", **data), "row counts differ", cache)
    assert "image (image in mine.npz in" in message and ") has 50 rows" in message
    assert "text (text in mine.npz in" in message and ") has 40 rows" in message


def test_nan_and_inf_are_counted_per_modality(tmp_path, cache, make):
    data = make.paired(n=50)
    data["text"][3, :2] = np.nan
    data["text"][9, 0] = np.inf
    message = _raises(make.mat5(tmp_path / "mine.mat", **data), "text features", cache)
    assert "2 NaN and 1 Inf values in 2 rows" in message and f"(text in mine.mat in {tmp_path})" in message


def test_labels_must_be_zero_one(tmp_path, cache, make):
    data = make.paired(n=50)
    data["labels"][0, 0] = 2
    path = make.npz(tmp_path / "mine.npz", **data)
    _raises(path, r"labels \(labels in mine.npz in .*\) must be 0/1 multi-hot; 1 values are not \(e.g. 2\)", cache)


def test_no_labelled_row(tmp_path, cache, make):
    data = make.paired(n=50)
    data["labels"][:] = 0
    _raises(make.npz(tmp_path / "mine.npz", **data), "no item has a label", cache)


def test_indices_out_of_range(tmp_path, cache, make):
    path = make.npz(tmp_path / "mine.npz", **make.paired(n=50), query_idx=np.arange(1, 51))
    _raises(path, r"mine.npz in .*: query_idx has row numbers 1..50 outside 0..49 \(.*0-based", cache)


def test_truncated_mat_file(tmp_path, cache, make):
    path = make.mat5(tmp_path / "mine.mat", **make.paired(n=300))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _raises(path, r"mine.mat in .*: cannot be read as mat-v5 — truncated or corrupt\?", cache)


def test_truncated_hdf5_and_npz(tmp_path, cache, make):
    for path in (make.h5(tmp_path / "mine.h5", **make.paired(n=300)), make.npz(tmp_path / "mine.npz", **make.paired())):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        _raises(path, f"{path.name} in .*: cannot be read as .* truncated or corrupt", cache)


def test_garbage_and_empty_files(tmp_path, cache):
    (tmp_path / "junk.mat").write_bytes(bytes(range(256)) * 2)  # binary, no header: judged as MATLAB v4
    _raises(tmp_path / "junk.mat", "junk.mat in .*truncated or corrupt", cache)
    (tmp_path / "empty.mat").write_bytes(b"")
    _raises(tmp_path / "empty.mat", "empty.mat in .*: the file is empty", cache)


def test_features_must_be_matrices(tmp_path, cache, make):
    data = make.paired(n=20)
    data["image"] = np.zeros((20, 2, 2))
    _raises(make.npz(tmp_path / "mine.npz", **data), "image has shape .*rows × dimensions", cache)


def test_unknown_name_mentions_files(cache):
    with pytest.raises(DatasetError, match="did you mean 'wikipedia'.*own .npz"):
        datasets.resolve("wikipedai", cache_dir=cache)
    with pytest.raises(DatasetError, match="takes no options"):
        datasets.resolve("wikipedia:image=x.mat", cache_dir=cache)
