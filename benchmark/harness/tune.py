"""Fair model selection: one Optuna study per method, scored on validation splits only.

Each method gets the same budget — ``trials`` completed trials of a seeded TPE sampler over
the search ranges it declares (:mod:`cmhbench.methods.domains`).  A trial is a set of
ordinary cells (datasets × bits × seeds) whose ``split`` is ``validation``
(:mod:`cmhbench.datasets.validation`): they run through the same executor as ``cmhbench
run`` (serial, joblib or Dask), are stored under ``OUT/trials/`` (never beside test cells,
never in a leaderboard), and are skipped when already stored.  The objective is the mean
over those cells of the mean of I→T and T→I ``metric``; test-query labels are never read.

The study lives in ``OUT/study.journal`` (Optuna's journal storage: append-only, safe to
kill).  Running the same command again continues it: completed trials are kept, a trial
that was running when the process died is finished with its own parameters (its stored
cells are reused), and new trials are asked until ``trials`` are complete.  The sampler is
seeded with ``--sampler-seed`` for a fresh study; a resumed one is seeded from that seed and
the study's length, so an uninterrupted study is reproducible and a resumed one does not
repeat its random start-up points.  A fresh study's first trial is the method's defaults
(the values a plain ``run`` of the same grid would use), when they are one point of the search
space, so ``tuned.toml`` can say how the defaults scored (``default_value``) and the chosen
values are never worse on the validation objective.  Run one ``tune`` per folder at a time.  The best
parameters go to ``OUT/tuned.toml`` as ``[variants.<method>-tuned]``, with a ``tuned``
table naming the study, the validation splits' hashes, the metric and the trial count, so
every record of a tuned variant says where its values came from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from cmhbench import store
from cmhbench.harness.config import RunSettings
from cmhbench.conventions import DIRECTIONS
from cmhbench.datasets import DatasetSource
from cmhbench.errors import UserError
from cmhbench.harness.executor import run_cells
from cmhbench.harness.grid import GridSpec, build_cells
from cmhbench.methods import registry
from cmhbench.methods.domains import search_space, suggest
from cmhbench.harness.runner import RunContext
from cmhbench.schema import canonical_json

logger = logging.getLogger(__name__)

DEFAULTS = {"bits": [32]}  # tune's own defaults, under options and grid file: one bit length keeps trials cheap
TRIALS_DIR = "trials"
STUDY_FILE = "study.journal"
TUNED_FILE = "tuned.toml"
TUNED_SUFFIX = "-tuned"
POINT_PARAM = "prior_point"  # the categorical over given sets of values (tune_method's ``points``)
WAIT_FOR_CLAIM_S = 1.0  # how often a trial looks again at a cell another process holds


class TuneError(UserError, ValueError):
    """A tuning request that cannot run (a method without a search space, bad trial count)."""


@dataclass(frozen=True)
class TrialResult:
    number: int
    value: float | None  # None: the trial failed
    params: dict[str, Any]
    error: str | None = None


@dataclass
class StudyResult:
    """One method's finished study: its best parameters and where they came from."""

    method: str
    study: str
    best_value: float
    best_params: dict[str, Any]
    fixed_params: dict[str, Any]
    completed: int
    failed: int
    validation: dict[str, dict[str, Any]] = field(default_factory=dict)  # "dataset/sS" -> hash, sizes
    default_value: float | None = None  # the objective at the method's default values (trial 0), if tried

    @property
    def variant(self) -> str:
        return f"{self.method}{TUNED_SUFFIX}"


def check_tunable(methods: list[str], search: list[str] | None = None) -> None:
    """Every method is registered and declares a search range (within ``search``, when given),
    and every name in ``search`` is searched for some method; else one clear error."""
    for method in methods:
        cls = registry.get(method)
        if not search_space(cls.param_domains):
            raise TuneError(f"method {method!r} declares no search range (param_domains with search=...), "
                            "so it cannot be tuned")
        if search is not None and not searched_domains(method, search):
            raise TuneError(f"--search leaves method {method!r} nothing to search (its search ranges: "
                            f"{', '.join(search_space(cls.param_domains))})")
    if search is not None:
        known = {name for method in methods for name in search_space(registry.get(method).param_domains)}
        unknown = [name for name in search if name not in known]
        if unknown:
            raise TuneError(f"--search names parameters no listed method searches: {', '.join(unknown)} "
                            f"(searchable: {', '.join(sorted(known))})")


def searched_domains(method: str, search: list[str] | None = None) -> dict[str, Any]:
    """The domains a study of ``method`` draws: its search ranges, restricted to ``search`` when
    given (the parameters left out keep their preset, override or ``--param`` values)."""
    space = search_space(registry.get(method).param_domains)
    return space if search is None else {name: d for name, d in space.items() if name in search}


def study_name(method: str, grid: GridSpec, sources: Mapping[str, DatasetSource], metric: str,
               search: list[str] | None = None, points: list[dict[str, Any]] | None = None) -> str:
    """The method plus a hash of the tuning problem: the same command resumes its own study,
    and a different problem (datasets, bits, seeds, metric, fixed values, search space) in the
    same folder starts another."""
    problem = {
        "datasets": [sources[d].identity() for d in grid.datasets],
        "protocol": grid.protocol, "bits": grid.bits, "seeds": grid.seeds, "preset": grid.preset,
        "coding": grid.database_coding, "features": grid.features, "metric": metric, "fixed": grid.user_params(method),
        "space": {k: repr(v) for k, v in searched_domains(method, search).items()},
        **({"points": points} if points else {}),
    }
    return f"{method}-{hashlib.sha256(canonical_json(problem).encode()).hexdigest()[:10]}"


def default_point(method: str, grid: GridSpec, sources: Mapping[str, DatasetSource],
                  domains: Mapping[str, Any]) -> dict[str, Any] | None:
    """The searched parameters' values in a plain ``run`` of the same grid, when they are one
    point of the search space: the same on every dataset of the study (per-dataset overrides
    can differ) and inside every search range.  None otherwise."""
    points = [registry.resolve_params(method, dataset=sources[d].name, preset=grid.preset,
                                      params=grid.user_params(method)) for d in grid.datasets]
    values = {name: points[0][name] for name in domains}
    if any(point[name] != values[name] for point in points[1:] for name in domains):
        return None
    return values if all(domains[name].in_search(v) for name, v in values.items()) else None


def objective(records: list[Mapping[str, Any]], metric: str) -> float:
    """Mean over cells of the mean of I→T and T→I ``metric``."""
    values = [(r["metrics"][d][metric]) for r in records for d in DIRECTIONS]
    return float(sum(values) / len(values))


def _storage(out: Path):
    import optuna

    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / STUDY_FILE)))


class _Trials:
    """Runs one trial's validation cells through the executor and scores them."""

    def __init__(self, method: str, settings: RunSettings, sources: Mapping[str, DatasetSource],
                 ctx: RunContext, metric: str) -> None:
        self.method, self.settings, self.sources, self.ctx, self.metric = method, settings, sources, ctx, metric
        self.validation: dict[str, dict[str, Any]] = {}

    def run(self, number: int, params: Mapping[str, Any]) -> TrialResult:
        grid = self.settings.grid
        values = {**grid.user_params(self.method), **params}
        spec = replace(grid, methods=[self.method], variants={}, params={self.method: values})
        cells = build_cells(spec, self.sources, split="validation")
        ctx = replace(self.ctx, config={**self.ctx.config, "tune": {"method": self.method, "trial": number}})
        while True:
            summary = run_cells(cells, self.sources, ctx, jobs=self.settings.jobs, backend=self.settings.backend,
                                scheduler=self.settings.scheduler, progress=False)
            # A cell held by another live process (e.g. a worker of a run killed a moment ago, still
            # finishing it) is stored by that process or, once its claim goes stale, by us next time.
            if not any(o.status == "running-elsewhere" for o in summary.outcomes):
                break
            time.sleep(WAIT_FOR_CLAIM_S)
        records = [store.read_record(ctx.out, cell.key) for cell in cells]
        failed = [r for r in records if r.get("status") != "ok"]
        if failed:
            return TrialResult(number, None, dict(params), failed[0].get("error") or "cell failed")
        for cell, record in zip(cells, records):
            split = record["split"]
            self.validation[f"{cell.dataset_name}/s{cell.seed}"] = {
                "hash": split["hash"], "queries": split["sizes"]["query"], "database": split["sizes"]["database"]}
        value = objective(records, self.metric)
        if not math.isfinite(value):
            return TrialResult(number, None, dict(params), f"objective is {value}")
        return TrialResult(number, value, dict(params))


def tune_method(method: str, settings: RunSettings, sources: Mapping[str, DatasetSource], ctx: RunContext, *,
                trials: int, metric: str = "map@all", sampler_seed: int = 0, search: list[str] | None = None,
                points: list[dict[str, Any]] | None = None,
                report: Callable[[str], None] = logger.info) -> StudyResult:
    """Run (or continue) one method's study until ``trials`` trials are complete.

    ``points`` (``cmhbench priors``' stage 2): sets of values the study also chooses among, as
    one categorical parameter (:data:`POINT_PARAM`, their index) beside ``search``; a trial
    runs the chosen set's values, and the result holds them, not the index.  A fresh study
    starts at the first set with the other parameters' defaults."""
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name(method, settings.grid, sources, metric, search, points)
    storage = _storage(settings.out)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)
    # A resumed study re-seeds its sampler from its length: the same seed again would re-propose the
    # interrupted run's first (random start-up) points instead of new ones.
    seed = sampler_seed if not study.trials else int.from_bytes(
        hashlib.sha256(f"{sampler_seed}/{len(study.trials)}".encode()).digest()[:4], "little")
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(seed=seed))
    domains = searched_domains(method, search)
    runner = _Trials(method, settings, sources, ctx, metric)
    run = (runner.run if not points else
           lambda number, params: runner.run(number, expand_point(params, points)))  # type: ignore[arg-type]
    space = set(domains) | ({POINT_PARAM} if points else set())
    if not study.trials and points:  # the first set (stage 1's best) with the other defaults
        point = default_point(method, settings.grid, sources, domains)
        study.enqueue_trial({POINT_PARAM: 0, **(point or {})})
    elif not study.trials:  # a fresh study tries the defaults first, so tuned-vs-default is on record
        point = default_point(method, settings.grid, sources, domains)
        if point is not None:
            study.enqueue_trial(point, user_attrs={"default": True})
        else:
            report(f"tune {method}: the defaults are not one point of the search space (outside a range, or "
                   "different per dataset); the study does not try them")

    def finish(result: TrialResult) -> None:
        if result.value is None:
            study.tell(result.number, state=TrialState.FAIL)
            report(f"tune {method}: trial {result.number} failed: {result.error}")
            return
        study.tell(result.number, result.value)
        best = study.best_trial
        report(f"tune {method}: trial {result.number} {metric}={result.value:.4f} · best {best.value:.4f} "
               f"(trial {best.number}) · {_count(study, TrialState.COMPLETE)}/{trials} complete")

    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # the process died in it
        if set(stale.params) == space:
            report(f"tune {method}: finishing interrupted trial {stale.number}")
            finish(run(stale.number, stale.params))
        else:
            study.tell(stale.number, state=TrialState.FAIL)
    done = _count(study, TrialState.COMPLETE)
    if done:
        report(f"tune {method}: study {name} has {done} complete trials; best {study.best_value:.4f}")
    while _count(study, TrialState.COMPLETE) < trials:
        if _count(study, TrialState.FAIL) >= max(trials, 3):
            raise TuneError(f"tune {method}: {_count(study, TrialState.FAIL)} trials failed; see the records "
                            f"under {settings.out / TRIALS_DIR}")
        trial = study.ask()
        params = suggest(domains, trial)
        if points:
            params = {POINT_PARAM: int(trial.suggest_categorical(POINT_PARAM, list(range(len(points))))), **params}
        finish(run(trial.number, params))
    best = study.best_trial
    if not runner.validation:  # every trial was done before this process: read the splits from the best one
        run(best.number, best.params)
    defaults = [t.value for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.user_attrs.get("default")]
    best_params = expand_point(best.params, points) if points else dict(best.params)
    return StudyResult(method=method, study=name, best_value=float(best.value), best_params=best_params,
                       fixed_params=settings.grid.user_params(method), completed=_count(study, TrialState.COMPLETE),
                       failed=_count(study, TrialState.FAIL), validation=runner.validation,
                       default_value=float(defaults[0]) if defaults else None)


def expand_point(params: Mapping[str, Any], points: list[dict[str, Any]]) -> dict[str, Any]:
    """A trial's parameters with the index :data:`POINT_PARAM` replaced by that point's values."""
    rest = {k: v for k, v in params.items() if k != POINT_PARAM}
    return {**points[int(params[POINT_PARAM])], **rest}


def _count(study: Any, state: Any) -> int:
    return len(study.get_trials(deepcopy=False, states=(state,)))


def tune(settings: RunSettings, sources: Mapping[str, DatasetSource], ctx: RunContext, *, trials: int,
         metric: str = "map@all", sampler_seed: int = 0, search: list[str] | None = None,
         report: Callable[[str], None] = logger.info) -> list[StudyResult]:
    """Tune every method of ``settings.grid`` and write ``OUT/tuned.toml``."""
    if trials < 1:
        raise TuneError(f"--trials must be at least 1, got {trials}")
    check_tunable(settings.grid.methods, search)
    settings.grid.validate()
    settings.grid.check_methods()  # a bad fixed value fails here, before a study exists
    settings.out.mkdir(parents=True, exist_ok=True)
    trial_ctx = replace(ctx, out=settings.out / TRIALS_DIR, metrics=(metric,))
    results = [tune_method(m, settings, sources, trial_ctx, trials=trials, metric=metric,
                           sampler_seed=sampler_seed, search=search, report=report) for m in settings.grid.methods]
    write_tuned(settings.out / TUNED_FILE, settings.grid, results, metric)
    return results


def tuned_config(grid: GridSpec, results: list[StudyResult], metric: str) -> dict[str, Any]:
    """The ``run`` config of the tuned variants, with each one's provenance."""
    config: dict[str, Any] = {"methods": [r.variant for r in results], "datasets": grid.datasets, "bits": grid.bits,
                              "seeds": grid.seeds, "preset": grid.preset, "features": grid.features}
    if grid.protocol:
        config["protocol"] = grid.protocol
    variants = {}
    for r in results:
        variants[r.variant] = {"base": r.method, **r.fixed_params, **r.best_params, "tuned": {
            "study": r.study, "storage": STUDY_FILE, "metric": metric, "trials": r.completed,
            "searched": sorted(r.best_params),
            "failed_trials": r.failed, "best_value": round(r.best_value, 6),
            **({"default_value": round(r.default_value, 6)} if r.default_value is not None else {}),
            "objective": f"mean of I→T and T→I {metric} on the validation split, over bits "
                         f"{', '.join(map(str, grid.bits))} and seeds {', '.join(map(str, grid.seeds))}",
            "validation_splits": {k: v["hash"] for k, v in sorted(r.validation.items())},
            "validation_labels": {k: v["queries"] + v["database"] for k, v in sorted(r.validation.items())},
        }}
    config["variants"] = variants
    return config


def write_tuned(path: Path, grid: GridSpec, results: list[StudyResult], metric: str) -> None:
    config = tuned_config(grid, results, metric)
    header = ("# Written by cmhbench tune: the best parameters per method, chosen on validation splits only.\n"
              f"# Run them with: cmhbench run --config {path.name} --out RESULTS\n")
    text = header + to_toml(config)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_key(key: str) -> str:
    bare = key.replace("-", "").replace("_", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key)


def to_toml(config: Mapping[str, Any]) -> str:
    """A small TOML writer for run configs (scalars, arrays, and tables of them); no
    dependency for a few lines of output.  None values are left out (TOML has no null:
    the parameter then keeps its default)."""
    lines, tables = [], []
    for key, value in config.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif value is not None:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, table in tables:
        for name, values in table.items():
            lines.append(f"\n[{_toml_key(key)}.{_toml_key(name)}]")
            subtables = {k: v for k, v in values.items() if isinstance(v, dict)}
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items()
                      if k not in subtables and v is not None]
            for sub, sub_values in subtables.items():
                lines.append(f"\n[{_toml_key(key)}.{_toml_key(name)}.{_toml_key(sub)}]")
                lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in sub_values.items() if v is not None]
    return "\n".join(lines) + "\n"
