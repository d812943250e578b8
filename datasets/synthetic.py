"""``synthetic``: the built-in default, paired multi-label data that needs no download.

Generative story (all draws from one generator seeded by ``data_seed``):

1. Labels with co-occurrence: a Gaussian label propensity g ~ N(0, A Aᵀ + I) with a
   low-rank A (so some labels tend to appear together); label j is on where g_j exceeds
   its (1 − ``label_rate``) quantile, and every item keeps at least its strongest label.
2. Shared semantics: s = (labels · E) / √(#labels) + ``semantic_noise`` · ε, with label
   embeddings E (``n_labels`` × ``latent_dim``).
3. Two different nonlinear views, each mixing the semantics with nuisance factors of its
   own modality (``nuisance_dim`` each, as strong as the semantics):
   image = relu(tanh([s, u_I] P_I) Q_I) + noise;
   text  = softplus(2·[s, u_T] P_T) Q_T, made sparse like a bag of words (entries below
   their column median set to zero) + noise.

So neither modality is a linear function of the other, nuisance directions compete with
semantic ones, and retrieval is far from trivial — yet learnable: ``cca-itq`` sits well
above ``random`` and well below 1.0 mAP.  The ``synthetic`` protocol draws ``n_query``
queries per seed; the rest is the database, and ``n_train`` training pairs come from it.

**Sizes.**  ``synthetic`` alone is the small default above.  ``synthetic:KEY=VALUE+...``
sets sizes (``n_items``, ``n_query``, ``n_train``, ``n_labels``, ``image_dim``,
``text_dim``), and ``shape=NAME`` starts from the sizes of a public dataset (:data:`SHAPES`),
so that timing and GPU runs can use, say, MIRFlickr-shaped features without its files:
``synthetic:shape=mirflickr25k`` or ``synthetic:shape=mirflickr25k+n_items=8000`` (``+``
separates the items because ``--datasets`` is a comma-separated list).  Given ``n_items``,
a shape's queries and training pairs (those not given) scale in proportion.  Only the
shapes are the public dataset's; the contents are still this generator's (its memory is
about 3 × n_items × (image_dim + text_dim) × 8 bytes while generating).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmhbench.datasets.base import Dataset, DatasetError, DatasetSource, Split, random_split
from cmhbench.datasets.registry import register_dataset

GENERATOR_VERSION = 1


@dataclass(frozen=True)
class SyntheticConfig:
    n_items: int = 3000
    n_query: int = 300
    n_train: int = 1500
    n_labels: int = 12
    label_rate: float = 0.1
    image_dim: int = 96
    text_dim: int = 48
    latent_dim: int = 16
    nuisance_dim: int = 16
    semantic_noise: float = 0.6
    feature_noise: float = 0.3
    data_seed: int = 0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if name != "data_seed" and not value > 0:
                raise DatasetError(f"synthetic: {name} must be positive, got {value}")
        if not self.n_query + self.n_train <= self.n_items:
            raise DatasetError("synthetic: n_query + n_train must not exceed n_items")


#: Sizes of public datasets (items, queries and training pairs of the protocol most deep
#: papers use, classes, feature widths), for synthetic features of the same shape.
SHAPES: dict[str, dict[str, int]] = {
    # 2,866 pairs: the official 693 test pairs as queries, 2,173 training pairs; 128-d SIFT, 10-d LDA
    "wikipedia": {"n_items": 2866, "n_query": 693, "n_train": 2173, "n_labels": 10, "image_dim": 128,
                  "text_dim": 10},
    # 20,015 pairs, 2,000 queries, 5,000 training pairs (DJSRH's protocol); 4,096-d fc7, 1,386-d tags
    "mirflickr25k": {"n_items": 20015, "n_query": 2000, "n_train": 5000, "n_labels": 24, "image_dim": 4096,
                     "text_dim": 1386},
    # 186,577 pairs of the 10 largest classes, 2,000 queries, 5,000 training pairs; 1,000-d tags
    "nuswide": {"n_items": 186577, "n_query": 2000, "n_train": 5000, "n_labels": 10, "image_dim": 4096,
                "text_dim": 1000},
}
SIZE_FIELDS = ("n_items", "n_query", "n_train", "n_labels", "image_dim", "text_dim")


def sized_config(text: str = "") -> SyntheticConfig:
    """The configuration named by the options of ``synthetic:OPTIONS`` (``""``: the default):
    ``shape=NAME`` and ``SIZE=INTEGER`` items joined by ``+``, sizes overriding the shape's."""
    sizes: dict[str, int] = {}
    shape: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split("+"))):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not value:
            raise DatasetError(f"synthetic: options must look like KEY=VALUE, got {item!r}")
        if key == "shape":
            if value not in SHAPES:
                raise DatasetError(f"synthetic: unknown shape {value!r} (known: {', '.join(SHAPES)})")
            shape = SHAPES[value]
        elif key in SIZE_FIELDS:
            try:
                sizes[key] = int(value)
            except ValueError:
                raise DatasetError(f"synthetic: {key} must be an integer, got {value!r}") from None
        else:
            raise DatasetError(f"synthetic: unknown option {key!r} (known: shape, {', '.join(SIZE_FIELDS)})")
    merged = {**shape, **sizes}
    if shape and "n_items" in sizes:
        # a resized shape keeps its proportions of queries and training pairs, unless given
        scale = sizes["n_items"] / shape["n_items"]
        for key in ("n_query", "n_train"):
            if key not in sizes:
                merged[key] = max(1, round(shape[key] * scale))
    return SyntheticConfig(**merged)


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


def generate(config: SyntheticConfig) -> Dataset:
    rng = np.random.default_rng(config.data_seed)
    n, c, k, u = config.n_items, config.n_labels, config.latent_dim, config.nuisance_dim

    A = rng.standard_normal((c, 3))
    g = rng.multivariate_normal(np.zeros(c), A @ A.T + np.eye(c), size=n)
    labels = g > np.quantile(g, 1.0 - config.label_rate, axis=0)
    labels[np.arange(n), g.argmax(axis=1)] = True

    E = rng.standard_normal((c, k))
    s = labels @ E / np.sqrt(labels.sum(axis=1, keepdims=True))
    s += config.semantic_noise * rng.standard_normal((n, k))

    def view(hidden: int) -> tuple[np.ndarray, np.ndarray]:
        nuisance = rng.standard_normal((n, u))
        P = rng.standard_normal((k + u, hidden)) / np.sqrt(k + u)
        return np.hstack([s, nuisance]), P

    z_img, P_img = view(64)
    Q_img = rng.standard_normal((64, config.image_dim)) / 8.0
    image = np.maximum(np.tanh(z_img @ P_img) @ Q_img, 0.0)
    image += config.feature_noise * image.std() * rng.standard_normal(image.shape)

    z_txt, P_txt = view(48)
    Q_txt = np.abs(rng.standard_normal((48, config.text_dim))) / 7.0
    text = _softplus(2.0 * z_txt @ P_txt) @ Q_txt
    text = np.where(text > np.median(text, axis=0), text, 0.0)
    text += config.feature_noise * text.std() * rng.standard_normal(text.shape)

    return Dataset(
        name="synthetic",
        image=image.astype(np.float32),
        text=text.astype(np.float32),
        labels=labels.astype(np.uint8),
    )


class SyntheticSource(DatasetSource):
    name = "synthetic"
    default_protocol = "synthetic"
    protocols = ("synthetic",)

    def __init__(self, config: SyntheticConfig | None = None, name: str = "synthetic") -> None:
        self.config = config or SyntheticConfig()
        self.name = name

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "generator": GENERATOR_VERSION, "params": asdict(self.config)}

    def load(self) -> Dataset:
        return generate(self.config)

    def split(self, dataset: Dataset, protocol: str, seed: int) -> Split:
        self.check_protocol(protocol)
        cfg = self.config
        return random_split(dataset.n, cfg.n_query, cfg.n_train, seed, protocol)


@register_dataset("synthetic", "built-in multi-label paired data (default; no download); "
                                "synthetic:shape=mirflickr25k+n_items=8000 (shape, n_items, n_query, n_train, "
                                "n_labels, image_dim, text_dim) sets its sizes")
def resolve_synthetic(data_dir: Path | None = None, options: dict[str, str] | None = None,
                      spec: str = "synthetic") -> SyntheticSource:
    _, _, text = spec.partition(":")  # the whole option list (``options`` holds only its first item)
    return SyntheticSource(sized_config(text), name=spec)
