"""Run settings from a TOML grid file and command-line options (the options win).

A grid file holds any of the ``run`` options plus per-method parameters and named
variants, so that an ablation is a set of ordinary cells::

    methods = ["cca-itq", "cca-itq-scaled"]
    datasets = ["synthetic"]
    bits = [16, 32]
    seeds = [0, 1, 2]
    preset = "paper"
    features = "zscore"       # raw (default), zscore or l2: see cmhbench.datasets.features

    [params.cca-itq]          # --param cca-itq.n_iter=100 does the same
    n_iter = 100

    [variants.cca-itq-scaled] # a row of its own
    base = "cca-itq"
    corr_power = 4.0
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from cmhbench.conventions import DEFAULT_METRICS
from cmhbench.datasets import default_cache_dir, default_data_dir
from cmhbench.errors import UserError
from cmhbench.grid import GridSpec

DEFAULT_BITS = [16, 32, 64, 128]
DEFAULT_OUT = Path("results") / "latest"
RUN_KEYS = {"methods", "datasets", "bits", "seeds", "preset", "protocol", "database_coding", "features", "params",
            "variants", "out", "data_dir", "cache_dir", "device", "jobs", "threads", "metrics", "backend",
            "scheduler", "timeout", "cells_per_gpu"}


class ConfigError(UserError, ValueError):
    """A grid file or option value that cannot be used; the message names it."""


def load_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            config = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    unknown = sorted(set(config) - RUN_KEYS)
    if unknown:
        raise ConfigError(f"config file {path}: unknown keys {', '.join(unknown)} "
                          f"(allowed: {', '.join(sorted(RUN_KEYS))})")
    for table in ("params", "variants"):
        value = config.get(table, {})
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise ConfigError(f"config file {path}: [{table}.NAME] must be tables of values")
    return config


def parse_list(text: str, what: str, kind: type = str) -> list[Any]:
    """'16,32' -> [16, 32]; names the option in the error."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ConfigError(f"{what} is empty")
    if kind is int:
        try:
            return [int(t) for t in items]
        except ValueError:
            raise ConfigError(f"{what} must be comma-separated integers, got {text!r}") from None
    return items


def parse_value(text: str) -> Any:
    """A --param value as TOML (numbers, true/false, quoted strings, arrays), else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_params(items: list[str]) -> dict[str, dict[str, Any]]:
    """['kdcmh.lr=0.1'] -> {'kdcmh': {'lr': 0.1}}."""
    params: dict[str, dict[str, Any]] = {}
    for item in items:
        target, sep, value = item.partition("=")
        method, dot, name = target.rpartition(".")
        if not sep or not dot or not method or not name:
            raise ConfigError(f"--param {item!r} must look like METHOD.NAME=VALUE")
        params.setdefault(method, {})[name] = parse_value(value)
    return params


@dataclass
class RunSettings:
    grid: GridSpec
    out: Path
    data_dir: Path | None
    cache_dir: Path | None
    device: str = "auto"
    jobs: int = 1
    cells_per_gpu: int = 1
    threads: int | None = 1
    backend: str = "loky"
    scheduler: str | None = None
    timeout: float | None = None
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    config: dict[str, Any] = field(default_factory=dict)


def _as_list(value: Any, what: str, kind: type = str) -> list[Any]:
    """A list option from a comma-separated string or a TOML array, each item of ``kind``."""
    if isinstance(value, str):
        return parse_list(value, what, kind)
    if isinstance(value, int) and not isinstance(value, bool) and kind is int:
        return [value]
    if not isinstance(value, list):
        raise ConfigError(f"{what} must be a list or a comma-separated string, got {value!r}")
    if not value:
        raise ConfigError(f"{what} is empty")
    for item in value:
        if not isinstance(item, kind) or isinstance(item, bool) or (kind is str and not item.strip()):
            raise ConfigError(f"{what} must be a list of {'integers' if kind is int else 'names'}, got {item!r}")
    return value


DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


def _integer(value: Any, what: str, minimum: int) -> int:
    """An integer option from the CLI or a grid file, at least ``minimum``."""
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ConfigError(f"{what} must be an integer, got {value!r}") from None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{what} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{what} must be at least {minimum}, got {value}")
    return value


def _seconds(value: Any, what: str) -> float:
    """A positive, finite number of seconds (0 is refused: leave the option out for no limit)."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigError(f"{what} must be a number of seconds, got {value!r}") from None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ConfigError(f"{what} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{what} must be a positive, finite number of seconds (leave it out for no limit), "
                          f"got {value!r}")
    return float(value)


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{what} must be a non-empty string, got {value!r}")
    return value


def run_settings(options: Mapping[str, Any], all_methods: list[str]) -> RunSettings:
    """Merge command-line options (None = not given) over a config file over defaults.

    With nothing given at all — no methods, datasets or config — this is the default
    tour: every built-in method on the synthetic set with the ``quick`` preset.
    """
    config = load_config(options["config"]) if options.get("config") else {}
    merged = {**config, **{k: v for k, v in options.items() if v is not None and k != "config"}}
    tour = not any(k in merged for k in ("methods", "datasets"))
    methods = _as_list(merged.get("methods", all_methods), "methods")
    variants = {name: dict(v) for name, v in config.get("variants", {}).items()}
    params = {name: dict(values) for name, values in config.get("params", {}).items()}
    if options.get("methods") is not None:
        # --methods narrows the config's grid: its [params] for rows left out no longer apply
        # (a --param naming a method outside the grid is still an error)
        kept = set(methods) | {str(variants[m].get("base")) for m in methods if m in variants}
        params = {name: values for name, values in params.items() if name in kept}
    for name, values in parse_params(options.get("param") or []).items():
        params.setdefault(name, {}).update(values)
    grid = GridSpec(
        methods=methods,
        datasets=_as_list(merged.get("datasets", ["synthetic"]), "datasets"),
        bits=_as_list(merged.get("bits", DEFAULT_BITS), "bits", int),
        seeds=_as_list(merged.get("seeds", [0]), "seeds", int),
        preset=merged.get("preset", "quick" if tour else "paper"),
        protocol=merged.get("protocol"),
        database_coding=_as_list(merged.get("database_coding", ["modality"]), "database coding"),
        features=merged.get("features", "raw"),
        params=params,
        variants=variants,
    )
    data_dir = _name(merged["data_dir"], "data_dir") if "data_dir" in merged else None
    cache_dir = _name(merged["cache_dir"], "cache_dir") if "cache_dir" in merged else None
    device = _name(merged.get("device", "auto"), "device")
    if not DEVICE.fullmatch(device):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:K, got {device!r}")
    settings = RunSettings(
        grid=grid,
        out=Path(_name(str(merged["out"]), "out") if "out" in merged else DEFAULT_OUT),
        data_dir=Path(data_dir) if data_dir else default_data_dir(),
        cache_dir=Path(cache_dir) if cache_dir else default_cache_dir(),
        device=device,
        jobs=_integer(merged.get("jobs", 1), "jobs", -1),
        cells_per_gpu=_integer(merged.get("cells_per_gpu", 1), "cells_per_gpu", 1),
        threads=_integer(merged.get("threads", 1), "threads", 1),
        backend=_name(merged.get("backend", "dask" if merged.get("scheduler") else "loky"), "backend"),
        scheduler=_name(merged["scheduler"], "scheduler") if merged.get("scheduler") is not None else None,
        timeout=_seconds(merged["timeout"], "timeout") if "timeout" in merged else None,
        metrics=_as_list(merged.get("metrics", list(DEFAULT_METRICS)), "metrics"),
        config={**config, **{k: str(v) if isinstance(v, Path) else v for k, v in options.items() if v is not None}},
    )
    if settings.jobs == 0 or settings.jobs < -1:
        raise ConfigError(f"jobs must be a positive number of workers or -1 (all cores), got {settings.jobs}")
    if settings.cells_per_gpu < 1:
        raise ConfigError(f"cells_per_gpu must be at least 1, got {settings.cells_per_gpu}")
    if settings.backend not in ("loky", "dask"):
        raise ConfigError(f"backend must be loky or dask, got {settings.backend!r}")
    cores = os.cpu_count() or 1
    workers = cores if settings.jobs == -1 else settings.jobs
    if settings.threads and workers * settings.threads > cores:
        settings.threads = max(1, cores // workers)  # N workers × T threads ≤ cores
    return settings
