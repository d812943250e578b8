"""Prior selection: one procedure chooses, per (dataset, features), the parameters that weight or
size the similarity a method builds from features (its *prior*), for every method that declares one.

A method declares its prior through ``@register(prior_params=..., prior=...)``
(:class:`cmhbench.methods.base.MethodInfo`); nothing here names a method or a dataset.

Stage 1 scores a grid of the same size for every method: :data:`GRID_POINTS` points, the first
being the method's own values (when they lie in the searched ranges), the others a Latin
hypercube over the prior parameters' search ranges drawn with :data:`GRID_SEED`.  Each point's
similarity is built over a seeded sample of at most :data:`MAX_ROWS` of the validation split's
training rows (:mod:`cmhbench.datasets.validation`) — a part that must be trained for it (a
teacher, a generator) is trained on those rows, for at most :data:`SETUP_EPOCHS` epochs — and
scored by its ROC-AUC against the labels of those rows over the pairs between two fixed halves of
them (:mod:`cmhbench.evaluation.pair_auc`; no item is paired with itself).  No test query is read.
The :data:`TOP_K` best points are kept.

Stage 2 is ``cmhbench tune`` (:func:`cmhbench.harness.tune.tune_method`) on the validation split with the
same trial count for every method, over the method's other search ranges plus one categorical
parameter choosing among stage 1's top points (its first trial: the best point with the other
defaults).

The output, ``OUT/priors.toml``, is a run config: the paper rows and one ``<method>-val`` variant
per method whose ``tuned`` table names every searched value (so its cells carry the validation
mark ‡), the grid size, the trial count, the validation labels used, the command and the date.
"""

from __future__ import annotations

import datetime
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from cmhbench.harness.config import RunSettings
from cmhbench.datasets import DatasetSource
from cmhbench.datasets.base import Dataset
from cmhbench.datasets.features import preprocess
from cmhbench.datasets.validation import validation_split
from cmhbench.errors import UserError
from cmhbench.evaluation.pair_auc import pair_auc
from cmhbench.methods import registry
from cmhbench.methods.base import PairedFeatures
from cmhbench.methods.domains import Bool, Choice, Domain, Int, Real, search_space
from cmhbench.harness.runner import RunContext
from cmhbench.harness.tune import DEFAULTS, STUDY_FILE, TRIALS_DIR, StudyResult, to_toml, tune_method

logger = logging.getLogger(__name__)

GRID_POINTS = 16  # stage 1's grid size, the same for every method
TOP_K = 4  # stage 1's points that stage 2 chooses among
GRID_SEED = 0  # the Latin hypercube's seed
MAX_ROWS = 2000  # validation training rows a prior is built over (a seeded sample above this)
SETUP_EPOCHS = 30  # at most this many epochs for each set-up stage (teacher, generator) in stage 1
ROWS_STREAM = 0x9A1035  # separates the row sample's draw from the splits' draws with the same seed
PRIORS_FILE = "priors.toml"
VARIANT_SUFFIX = "-val"


class PriorsError(UserError, ValueError):
    """A prior-selection request that cannot run (a method without a prior, several datasets)."""


@dataclass(frozen=True)
class ValidationRows:
    """What stage 1 reads: the features (preprocessed with the validation training rows'
    statistics) and labels of the sampled validation training rows, split into two halves."""

    image: np.ndarray
    text: np.ndarray
    labels: np.ndarray
    first: np.ndarray  # positions (in the sample) of the pairs' first items
    second: np.ndarray  # and of their second items
    split_hash: str

    @property
    def n(self) -> int:
        return self.image.shape[0]

    def relevance(self) -> np.ndarray:
        """first × second: the two items share a label (the retrieval metrics' rule)."""
        labels = self.labels.astype(np.float32)
        return (labels[self.first] @ labels[self.second].T) > 0


@dataclass(frozen=True)
class ScoredPoint:
    values: dict[str, Any]
    auc: float
    start: bool = False  # the method's own values (the grid's first point)


@dataclass
class PriorChoice:
    """One method's two stages."""

    method: str
    points: list[ScoredPoint]  # stage 1, in grid order
    top: list[ScoredPoint]  # the TOP_K best, best first
    study: StudyResult | None = None

    @property
    def variant(self) -> str:
        return f"{self.method}{VARIANT_SUFFIX}"


def check_priors(methods: list[str]) -> None:
    """Every method is registered and declares a prior; else one clear error."""
    missing = [m for m in methods if not registry.get(m).info.prior_params]
    if missing:
        have = [m for m in registry.available() if registry.get(m).info.prior_params]
        raise PriorsError(f"method(s) {', '.join(missing)} declare no prior (prior_params in @register); "
                          f"methods with one: {', '.join(have)}")


# --- stage 1 ----------------------------------------------------------------------------------

def unit_sample(n_points: int, n_dims: int, seed: int = GRID_SEED) -> np.ndarray:
    """A Latin hypercube in [0, 1)^d: each dimension's n strata hit once, in a seeded order."""
    rng = np.random.default_rng([seed, n_dims])
    return np.stack([(rng.permutation(n_points) + rng.random(n_points)) / n_points for _ in range(n_dims)], axis=1)


def from_unit(domain: Domain, u: float) -> Any:
    """The value at quantile ``u`` of a domain's search range (log scale where it says so)."""
    if isinstance(domain, Bool):
        return bool(u >= 0.5)
    if isinstance(domain, Choice):
        options = list(domain.options if domain.search is True else domain.search)
        return options[min(int(u * len(options)), len(options) - 1)]
    if not isinstance(domain, (Int, Real)):
        raise TypeError(f"no grid rule for {type(domain).__name__}")
    low, high = domain.search  # type: ignore[misc]
    if isinstance(domain, Int) and not domain.log:  # n equal strata of the integers in the range
        return int(min(low + math.floor(u * (high - low + 1)), high))
    value = math.exp(math.log(low) + u * math.log(high / low)) if domain.log else low + u * (high - low)
    if isinstance(domain, Int):
        return int(min(max(round(value), low), high))
    return float(min(max(float(f"{value:.4g}"), low), high))  # four digits: a readable file


def prior_grid(method: str, start: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Stage 1's :data:`GRID_POINTS` points: ``start``'s prior values first when they lie in every
    searched range, then a seeded Latin hypercube over the ranges."""
    names = registry.get(method).info.prior_params
    domains = {name: registry.prior_domain(method, name) for name in names}
    unit = unit_sample(GRID_POINTS, len(names))
    sampled = [{name: from_unit(domains[name], u[j]) for j, name in enumerate(names)} for u in unit]
    own = {name: start[name] for name in names}
    if all(domains[name].in_search(value) for name, value in own.items()):
        return [own] + sampled[:GRID_POINTS - 1]
    return sampled


def validation_rows(source: DatasetSource, protocol: str, seed: int, features: str) -> ValidationRows:
    """The sampled validation training rows of ``seed``'s split, and their two halves."""
    dataset: Dataset = source.load()
    split = validation_split(source.split(dataset, protocol, seed), dataset.labels, seed)
    dataset = preprocess(dataset, split.train, features)  # statistics of the validation training rows
    rng = np.random.default_rng([seed, ROWS_STREAM])
    rows = split.train
    if rows.size > MAX_ROWS:
        rows = np.sort(rng.choice(rows, size=MAX_ROWS, replace=False))
    order = rng.permutation(rows.size)
    half = rows.size // 2
    return ValidationRows(image=dataset.image[rows], text=dataset.text[rows], labels=np.asarray(dataset.labels)[rows],
                          first=np.sort(order[:half]), second=np.sort(order[half:]), split_hash=split.digest())


def stage1_params(method: str, resolved: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters a point is built with: the resolved ones, the point's values, and every
    set-up stage (the method's ``setup_epochs``) capped at :data:`SETUP_EPOCHS`."""
    params = {**resolved, **values}
    for name in registry.get(method).setup_epochs:
        params[name] = min(params[name], SETUP_EPOCHS)
    return params


def prior_auc(method: str, params: Mapping[str, Any], data: ValidationRows, *, seed: int, device: str,
              cache: Any = None) -> float:
    """ROC-AUC of the method's prior, built with ``params`` over ``data``'s rows, on the pairs
    between its two halves."""
    cls = registry.get(method)
    model = cls(**params, seed=seed, device=device, cache=cache)
    similarity = cls.info.prior(model, PairedFeatures(data.image, data.text))  # type: ignore[misc]
    if hasattr(similarity, "detach"):
        similarity = similarity.detach().cpu().double().numpy()
    similarity = np.asarray(similarity, dtype=np.float64)
    if similarity.shape != (data.n, data.n):
        raise RuntimeError(f"{method}'s prior is {similarity.shape}, expected ({data.n}, {data.n})")
    return pair_auc(similarity[np.ix_(data.first, data.second)], data.relevance())


def stage1(method: str, resolved: Mapping[str, Any], data: ValidationRows, *, seed: int, device: str,
           cache: Any = None, report: Callable[[str], None] = logger.info) -> tuple[list[ScoredPoint], list[ScoredPoint]]:
    """Every grid point's AUC (grid order) and the :data:`TOP_K` best (best first; ties keep grid
    order, so the method's own values win a tie)."""
    grid = prior_grid(method, resolved)
    own = {name: resolved[name] for name in registry.get(method).info.prior_params}
    scored: dict[str, float] = {}
    points = []
    for number, values in enumerate(grid):
        key = repr(sorted(values.items()))
        if key not in scored:  # an integer range can repeat a point: score it once
            scored[key] = prior_auc(method, stage1_params(method, resolved, values), data, seed=seed,
                                    device=device, cache=cache)
            report(f"priors {method}: point {number + 1}/{len(grid)} {_values(values)} AUC {scored[key]:.4f}")
        points.append(ScoredPoint(values, scored[key], start=number == 0 and values == own))
    if any(not math.isfinite(p.auc) for p in points):
        raise PriorsError(f"priors {method}: the validation rows hold no pair of both kinds (related and "
                          "unrelated), so no prior can be scored")
    ranked = sorted(range(len(points)), key=lambda i: -points[i].auc)
    top, seen = [], set()
    for i in ranked:
        key = repr(sorted(points[i].values.items()))
        if key not in seen:
            seen.add(key)
            top.append(points[i])
        if len(top) == TOP_K:
            break
    return points, top


def _values(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


# --- both stages --------------------------------------------------------------------------------

def choose_priors(settings: RunSettings, sources: Mapping[str, DatasetSource], ctx: RunContext, *, trials: int,
                  metric: str = "map@all", sampler_seed: int = 0, command: str = "",
                  report: Callable[[str], None] = logger.info) -> list[PriorChoice]:
    """Run both stages for every method of ``settings.grid`` and write ``OUT/priors.toml``."""
    grid = settings.grid
    if trials < 1:
        raise PriorsError(f"--trials must be at least 1, got {trials}")
    if len(grid.datasets) != 1 or len(grid.seeds) != 1:
        raise PriorsError("cmhbench priors chooses for one dataset and one seed at a time (one file per dataset "
                          f"and features); got datasets {', '.join(grid.datasets)} and seeds "
                          f"{', '.join(map(str, grid.seeds))}")
    check_priors(grid.methods)
    grid.validate()
    grid.check_methods()
    settings.out.mkdir(parents=True, exist_ok=True)
    source, seed = sources[grid.datasets[0]], grid.seeds[0]
    protocol = source.check_protocol(grid.protocol)
    data = validation_rows(source, protocol, seed, grid.features)
    cache = None
    if ctx.cache_dir is not None:
        import joblib

        cache = joblib.Memory(str(ctx.cache_dir), verbose=0)
    trial_ctx = replace(ctx, out=settings.out / TRIALS_DIR, metrics=(metric,))
    choices = []
    for method in grid.methods:
        resolved = registry.resolve_params(method, dataset=source.name, preset=grid.preset,
                                           params=grid.user_params(method))
        points, top = stage1(method, resolved, data, seed=seed, device=settings.device, cache=cache, report=report)
        cls = registry.get(method)
        rest = [name for name in search_space(cls.param_domains) if name not in cls.info.prior_params]
        study = tune_method(method, settings, sources, trial_ctx, trials=trials, metric=metric,
                            sampler_seed=sampler_seed, search=rest, points=[dict(p.values) for p in top],
                            report=report)
        choices.append(PriorChoice(method, points, top, study))
    write_priors(settings.out / PRIORS_FILE, settings, choices, data, metric, command)
    return choices


def priors_config(settings: RunSettings, choices: list[PriorChoice], data: ValidationRows, metric: str,
                  command: str) -> dict[str, Any]:
    """The run config: each method's paper row and its ``-val`` row, with provenance."""
    grid = settings.grid
    config: dict[str, Any] = {
        "methods": [name for c in choices for name in (c.method, c.variant)], "datasets": grid.datasets,
        "bits": grid.bits, "seeds": grid.seeds, "preset": grid.preset, "features": grid.features}
    if grid.protocol:
        config["protocol"] = grid.protocol
    variants = {}
    for c in choices:
        study = c.study
        assert study is not None
        labels = {k: v["queries"] + v["database"] for k, v in sorted(study.validation.items())}
        variants[c.variant] = {"base": c.method, **study.fixed_params, **study.best_params, "tuned": {
            "procedure": "cmhbench priors", "study": study.study, "storage": STUDY_FILE, "metric": metric,
            "searched": sorted(study.best_params),
            "prior_params": list(registry.get(c.method).info.prior_params),
            "grid_points": GRID_POINTS, "grid_seed": GRID_SEED, "top_k": TOP_K,
            "stage1_rows": data.n, "stage1_labels": data.n, "stage1_setup_epochs": SETUP_EPOCHS,
            "stage1_split": data.split_hash,
            "stage1_top_auc": [round(p.auc, 6) for p in c.top],
            **({"stage1_start_auc": round(c.points[0].auc, 6)} if c.points[0].start else {}),
            "trials": study.completed, "failed_trials": study.failed, "best_value": round(study.best_value, 6),
            "objective": f"mean of I→T and T→I {metric} on the validation split, over bits "
                         f"{', '.join(map(str, grid.bits))} and seeds {', '.join(map(str, grid.seeds))}",
            "validation_splits": {k: v["hash"] for k, v in sorted(study.validation.items())},
            "validation_labels": labels,
            "command": command, "date": datetime.date.today().isoformat(),
        }}
    config["variants"] = variants
    return config


def write_priors(path: Path, settings: RunSettings, choices: list[PriorChoice], data: ValidationRows, metric: str,
                 command: str) -> None:
    text = ("# Written by cmhbench priors: each method's prior and other values, chosen on the validation split "
            "only\n# (stage 1: prior ROC-AUC on validation training rows; stage 2: cmhbench tune). Paper rows are "
            "kept.\n"
            f"# Run them with: cmhbench run --config {path.name} --out RESULTS\n"
            + to_toml(priors_config(settings, choices, data, metric, command)))
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(text)
    tmp.replace(path)
