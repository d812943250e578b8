"""The named benchmarks on real files (../shared/data): Wikipedia, and MIRFlickr-25K's real
labels and tags paired with generated image features."""

import numpy as np
import pytest

from cmhbench import datasets
from cmhbench.datasets import DatasetError
from cmhbench.datasets import protocols as P

WIKI_SHA256 = "65eb91876cf7df0547165271336dd068f10d1df7bf433969622338baf410413c"
LALL_SHA256 = "173eec1fb2603bb54c893467c127325556fbe5bc91dd7e647d136a8e4e9fd07d"
YALL_SHA256 = "a53d2ba6a5f3672b5e747aaa8b76d4af6be568d300715c6910d8c67bdef55f7e"


# -- Wikipedia ---------------------------------------------------------------------------

def test_wikipedia_default_protocol_is_wiki(shared_data, cache):
    source = datasets.resolve("wikipedia", shared_data, cache_dir=cache)
    assert source.default_protocol == "wiki" and source.check_protocol(None) == "wiki"
    identity = source.identity()
    assert identity["name"] == "wikipedia" and identity["sha256"] == [WIKI_SHA256]
    ds = source.load()
    assert ds.image.shape == (2866, 128) and ds.text.shape == (2866, 10) and ds.labels.shape == (2866, 10)
    assert ds.image.dtype == np.float32 and ds.labels.dtype == np.uint8
    assert (ds.labels.sum(axis=1) == 1).all()  # single label, classes 1..10 -> columns 0..9

    split = source.split(ds, "wiki", 0)
    assert split.sizes() == {"query": 693, "train": 2173, "database": 2173}
    assert split.query.tolist() == list(range(2173, 2866))
    assert np.array_equal(split.train, split.database)
    assert not np.intersect1d(split.query, split.database).size
    assert ds.labels[split.query].any(axis=0).all()  # every class among the queries
    assert source.split(ds, "wiki", 1).digest() == split.digest()  # fixed: the official split
    assert split.notes == ()


def test_wikipedia_matches_the_official_lists(shared_data, cache):
    ds = datasets.resolve("wikipedia", shared_data, cache_dir=cache).load()
    classes = []
    for name in ("trainset_txt_img_cat.list", "testset_txt_img_cat.list"):
        lines = (shared_data / "wikipedia" / name).read_text().split("\n")
        classes += [int(line.split("\t")[-1]) for line in lines if line.strip()]
    assert np.array_equal(ds.labels.argmax(axis=1) + 1, classes)


def test_wikipedia_has_only_its_own_protocol(shared_data, cache):
    source = datasets.resolve("wikipedia", shared_data, cache_dir=cache)
    with pytest.raises(DatasetError, match="no protocol 'djsrh'"):
        source.check_protocol("djsrh")


def test_default_data_folder_is_the_environment_variable(shared_data, cache, monkeypatch):
    monkeypatch.setenv("CMHBENCH_DATA", str(shared_data))
    assert datasets.resolve("wikipedia", cache_dir=cache).identity()["sha256"] == [WIKI_SHA256]


# -- MIRFlickr-25K -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def mir(mirflickr_dir, mir_cache):
    source = datasets.resolve("mirflickr25k", mirflickr_dir, cache_dir=mir_cache)
    return source, source.load()


def test_mirflickr_loads_real_labels_and_tags_with_v73_features(mir):
    source, ds = mir
    assert source.default_protocol == "djsrh" and source.protocols == ("djsrh", "dcmh", "ucch")
    assert ds.image.shape == (20015, 16) and ds.text.shape == (20015, 1386) and ds.labels.shape == (20015, 24)
    assert source.identity()["sha256"][1:] == [YALL_SHA256, LALL_SHA256]
    assert ds.labels.any(axis=1).all()
    assert set(np.unique(ds.text)) <= {0.0, 1.0}


def test_mirflickr_djsrh_sampling(mir):
    source, ds = mir
    split = source.split(ds, "djsrh", 0)
    assert split.sizes() == {"query": 2000, "train": 5000, "database": 18015}
    assert not np.intersect1d(split.query, split.database).size
    assert np.union1d(split.query, split.database).size == 20015
    assert np.isin(split.train, split.database).all()
    # label coverage: each label got its DJSRH quota of queries (160 for the first, 80 for the others)
    quotas = P.per_label_counts(2000, 24)
    assert all(ds.labels[split.query, j].sum() >= quotas[j] for j in range(24))
    assert ds.labels[split.train].any(axis=0).all()
    # label 2 (179 items) cannot give its 200 training pairs: reported, training topped up to 5,000
    assert any("label 2:" in note for note in split.notes) and any("topped up" in note for note in split.notes)
    again, other = source.split(ds, "djsrh", 0), source.split(ds, "djsrh", 1)
    assert again.digest() == split.digest() != other.digest()


def test_mirflickr_dcmh_and_ucch(mir):
    source, ds = mir
    dcmh = source.split(ds, "dcmh", 0)
    assert dcmh.sizes() == {"query": 2000, "train": 10000, "database": 18015}
    assert not np.intersect1d(dcmh.query, dcmh.database).size and np.isin(dcmh.train, dcmh.database).all()
    assert source.split(ds, "dcmh", 0).digest() == dcmh.digest() != source.split(ds, "dcmh", 1).digest()
    ucch = source.split(ds, "ucch", 0)
    assert ucch.query.tolist() == list(range(18015, 20015))
    assert np.array_equal(ucch.train, np.arange(18015)) and np.array_equal(ucch.database, np.arange(18015))
    assert source.split(ds, "ucch", 5).digest() == ucch.digest()  # fixed rows
    assert dcmh.digest() != ucch.digest() != source.split(ds, "djsrh", 0).digest()


def test_mirflickr_named_features_file(mirflickr_dir, mir_cache, mir, make, tmp_path):
    own = make.npz(tmp_path / "resnet.npz", feats=np.random.default_rng(1).random((20015, 3), dtype=np.float32))
    spec = f"mirflickr25k:image={own}"
    source = datasets.resolve(spec, mirflickr_dir, cache_dir=mir_cache)
    assert source.identity()["name"] == spec and source.name == "mirflickr25k"
    assert source.identity() != mir[0].identity()
    assert source.load().image.shape == (20015, 3)
    with pytest.raises(DatasetError, match="no option 'text'"):
        datasets.resolve("mirflickr25k:text=x.mat", mirflickr_dir, cache_dir=mir_cache)
    with pytest.raises(DatasetError, match="'nope.mat' not found"):
        datasets.resolve("mirflickr25k:image=nope.mat", mirflickr_dir, cache_dir=mir_cache)


def test_mirflickr_missing_image_features_names_file_and_folder(shared_data, cache):
    with pytest.raises(DatasetError) as err:
        datasets.resolve("mirflickr25k", shared_data, cache_dir=cache)
    message = str(err.value)
    assert "mirflickr25k-iall-vgg.mat" in message and "XAll" in message
    assert f"put it in {shared_data / 'mirflickr25k'}/" in message and "mirflickr25k:image=FILE" in message
    assert "\n" not in message


def test_no_data_folder_says_how_to_give_one(cache):
    with pytest.raises(DatasetError, match="pass --data-dir DIR or set CMHBENCH_DATA"):
        datasets.resolve("nuswide", cache_dir=cache)


def test_dcmh_single_file_layout(tmp_path, cache, make):
    data = make.paired(n=300, c=4)
    folder = tmp_path / "mirflickr25k"
    folder.mkdir()
    make.mat73(folder / "FLICKR-25K.mat", LAll=data["labels"], YAll=data["text"],
               images=np.zeros((300, 4, 4, 3), np.uint8))
    with pytest.raises(DatasetError, match="FLICKR-25K.mat holds raw images, not features"):
        datasets.resolve("mirflickr25k", tmp_path, cache_dir=cache)
    make.mat73(folder / "FLICKR-25K.mat", LAll=data["labels"], YAll=data["text"], XAll=data["image"])
    source = datasets.resolve("mirflickr25k", tmp_path, cache_dir=cache)
    ds = source.load()
    assert np.array_equal(ds.labels, data["labels"]) and np.allclose(ds.image, data["image"])
    with pytest.raises(DatasetError, match="protocol 'djsrh' does not fit: .*7,000 items.*300 items"):
        source.check_protocol("djsrh")


def test_nuswide_reads_v5_and_v73_tags_alike(tmp_path, make):
    data = make.paired(n=2500, c=10)
    folder = tmp_path / "nus-wide-tc10"
    folder.mkdir()
    make.mat5(folder / "nus-wide-tc10-lall.mat", LAll=data["labels"])
    make.mat5(folder / "nus-wide-tc10-yall.mat", YAll=data["text"])
    make.mat73(folder / "nus-wide-tc10-xall-vgg.mat", XAll=data["image"])
    v5 = datasets.resolve("nuswide", tmp_path, cache_dir=tmp_path / "c1")
    make.mat73(folder / "nus-wide-tc10-yall.mat", YAll=data["text"])
    v73 = datasets.resolve("nuswide", tmp_path, cache_dir=tmp_path / "c1")
    assert v5.identity()["sha256"][1] != v73.identity()["sha256"][1]
    assert np.array_equal(v5.load().text, v73.load().text)
    ds = v73.load()
    assert v73.split(ds, "ucch", 0).sizes() == {"query": 2100, "train": 400, "database": 400}


def test_mscoco_and_iapr_layouts(tmp_path, cache, make):
    data = make.paired(n=5200, c=8)
    (tmp_path / "mscoco").mkdir()
    make.h5(tmp_path / "mscoco" / "MSCOCO_deep_doc2vec_data_rand.h5py", XAll=data["image"], YAll=data["text"],
            LAll=data["labels"])
    coco = datasets.resolve("mscoco", tmp_path, cache_dir=cache)
    assert coco.default_protocol == "ucch"
    assert coco.split(coco.load(), "ucch", 0).sizes() == {"query": 5000, "train": 200, "database": 200}

    d = make.paired(n=2300, c=12)
    make.mat5(tmp_path / "iapr-tc12-rand.mat", VDatabase=d["image"][:300], YDatabase=d["text"][:300],
              databaseL=d["labels"][:300], VTest=d["image"][300:], YTest=d["text"][300:], testL=d["labels"][300:])
    iapr = datasets.resolve("iapr-tc12", tmp_path, cache_dir=cache)
    ds = iapr.load()
    assert np.allclose(ds.image, d["image"]) and np.array_equal(ds.labels, d["labels"])
    assert iapr.split(ds, "ucch", 0).query.tolist() == list(range(300, 2300))
