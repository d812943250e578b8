import numpy as np
import pytest

from cmhbench import datasets, methods
from cmhbench.datasets.synthetic import SyntheticConfig, generate
from cmhbench.evaluation import evaluate


def test_generation_is_deterministic_for_a_data_seed():
    a, b = generate(SyntheticConfig(n_items=400, n_query=40, n_train=100)), generate(
        SyntheticConfig(n_items=400, n_query=40, n_train=100))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    c = generate(SyntheticConfig(n_items=400, n_query=40, n_train=100, data_seed=1))
    assert not np.array_equal(a.image, c.image)


def test_labels_are_multi_label_with_every_item_labelled():
    ds = generate(SyntheticConfig())
    per_item = ds.labels.sum(axis=1)
    assert per_item.min() >= 1 and per_item.mean() > 1.2
    assert ds.image.dtype == np.float32 and ds.image.shape == (3000, 96) and ds.text.shape == (3000, 48)


def test_split_is_seeded_and_queries_are_disjoint_from_the_database():
    source = datasets.resolve("synthetic")
    ds = source.load()
    s0, s0b, s1 = (source.split(ds, "synthetic", seed) for seed in (0, 0, 1))
    assert s0.sizes() == {"query": 300, "train": 1500, "database": 2700}
    assert not np.intersect1d(s0.query, s0.database).size
    assert np.isin(s0.train, s0.database).all()
    assert s0.digest() == s0b.digest() != s1.digest()


def test_unknown_dataset_and_protocol_are_named():
    with pytest.raises(datasets.DatasetError, match="did you mean 'synthetic'"):
        datasets.resolve("synthetc")
    source = datasets.resolve("synthetic")
    with pytest.raises(datasets.DatasetError, match="no protocol 'djsrh'"):
        source.check_protocol("djsrh")


def test_not_trivial_cca_itq_between_chance_and_perfect():
    source = datasets.resolve("synthetic")
    ds = source.load()
    split = source.split(ds, "synthetic", 0)
    scores = {}
    for name in ("random", "cca-itq"):
        model = methods.create(name, seed=0).fit(ds.paired(split.train), 32)
        q, db = model.encode_image(ds.image[split.query]), model.encode_text(ds.text[split.database])
        scores[name] = evaluate(q, db, ds.labels[split.query], ds.labels[split.database])["map@all"]
    assert scores["cca-itq"] > scores["random"] + 0.05
    assert scores["cca-itq"] < 0.8


def test_sizes_give_mirflickr_shaped_features_without_files():
    source = datasets.resolve("synthetic:shape=mirflickr25k+n_items=600")
    assert source.identity()["name"] == "synthetic:shape=mirflickr25k+n_items=600"  # cells find it by name
    ds = source.load()
    assert ds.image.shape == (600, 4096) and ds.text.shape == (600, 1386) and ds.labels.shape == (600, 24)
    # the shape's 2,000 queries and 5,000 training pairs of 20,015 scale with n_items
    assert source.split(ds, "synthetic", 0).sizes() == {"query": 60, "train": 150, "database": 540}
    sized = datasets.resolve("synthetic:n_items=500+n_query=50+n_train=100+image_dim=33+text_dim=7").load()
    assert sized.image.shape == (500, 33) and sized.text.shape == (500, 7)


def test_plain_synthetic_is_unchanged_by_the_sizes_option():
    default = datasets.resolve("synthetic")
    assert default.identity()["name"] == "synthetic"
    assert default.identity()["params"] == datasets.resolve("synthetic:n_items=3000").identity()["params"]


@pytest.mark.parametrize("spec, message", [
    ("synthetic:shape=cifar", "unknown shape 'cifar'"),
    ("synthetic:image_dim=wide", "image_dim must be an integer"),
    ("synthetic:colour=red", "unknown option 'colour'"),
    ("synthetic:n_items=100+n_query=90+n_train=20", "must not exceed n_items"),
])
def test_bad_sizes_are_named(spec, message):
    with pytest.raises(datasets.DatasetError, match=message):
        datasets.resolve(spec)
