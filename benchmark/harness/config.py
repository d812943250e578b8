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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from cmhbench.conventions import DEFAULT_METRICS
from cmhbench.datasets import default_cache_dir, default_data_dir
from cmhbench.errors import UserError
from cmhbench.harness.grid import GridSpec
from cmhbench.methods.registry import PRESETS

DEFAULT_OUT = Path("results") / "latest"
BACKENDS = ("loky", "dask")


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
    for key, value in config.items():
        _check_file_type(path, key, value, run_options()[key])
    return config


def _check_file_type(path: Path, key: str, value: Any, option: Option) -> None:
    """A grid file's values are typed TOML: a list option is an array, a number a number.
    (The command line's comma-separated text is for the command line: ``bits = "16"`` in a
    file is a mistake, and so is ``jobs = "2"``.)"""
    if option.parse in (_names, _integers) and not isinstance(value, list):
        example = "[16, 32]" if option.parse is _integers else '["a", "b"]'
        raise ConfigError(f"config file {path}: {key} must be a TOML array, e.g. {key} = {example}, "
                          f"got {value!r}")
    if option.type in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))
                                        or option.type is int and not isinstance(value, int)):
        raise ConfigError(f"config file {path}: {key} must be a TOML {'integer' if option.type is int else 'number'}, "
                          f"got {value!r}")


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
        values = params.setdefault(method, {})
        parsed = parse_value(value)
        if name in values and values[name] != parsed:
            raise ConfigError(f"--param {method}.{name} is given twice ({values[name]!r} and {parsed!r}); "
                              "give it once")
        values[name] = parsed
    return params


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


def _names(value: Any, what: str) -> list[str]:
    return _as_list(value, what)


def _integers(value: Any, what: str) -> list[int]:
    return _as_list(value, what, int)


def _path(value: Any, what: str) -> Path:
    return Path(_name(str(value) if isinstance(value, Path) else value, what))


def _device(value: Any, what: str) -> str:
    device = _name(value, what)
    if not DEVICE.fullmatch(device):
        raise ConfigError(f"{what} must be auto, cpu, cuda or cuda:K, got {device!r}")
    return device


def _jobs(value: Any, what: str) -> int:
    jobs = _integer(value, what, -1)
    if jobs == 0:
        raise ConfigError(f"{what} must be a positive number of workers or -1 (all cores), got {jobs}")
    return jobs


def _positive(value: Any, what: str) -> int:
    return _integer(value, what, 1)


def _backend(value: Any, what: str) -> str:
    backend = _name(value, what)
    if backend not in BACKENDS:
        raise ConfigError(f"{what} must be {' or '.join(BACKENDS)}, got {backend!r}")
    return backend


@dataclass(frozen=True)
class Option:
    """One run option as the user gives it: help text, checks, and where it may be written.

    Every option of ``run`` and ``tune`` is declared once, either in :data:`GRID_OPTIONS` or as
    a field of :class:`RunSettings`; both commands' parsers (:func:`cmhbench.cli`), the keys a
    grid file accepts (:data:`RUN_KEYS`) and the settings come from these declarations, so an
    option cannot reach one of them and miss another."""

    help: str
    parse: Callable[[Any, str], Any] | None = None  # checks a given value (the flag's text or a TOML value)
    type: Callable[[str], Any] | None = None  # argparse's conversion of the flag's text
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    action: str | None = None
    flag: bool = True  # a command-line option, --key-with-dashes
    file: bool = True  # a key of the grid file

    def argparse_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``add_argument`` (those that are set)."""
        given = {"help": self.help, "type": self.type, "choices": self.choices, "metavar": self.metavar,
                 "action": self.action}
        return {k: v for k, v in given.items() if v is not None}


def flag_of(key: str) -> str:
    """``database_coding`` -> ``--database-coding``."""
    return "--" + key.replace("_", "-")


#: The options that describe the grid: each becomes the :class:`GridSpec` field of its name,
#: whose default is the default (``--param`` and the grid file's tables fill ``params`` and
#: ``variants``; ``--config`` names the file).
GRID_OPTIONS: dict[str, Option] = {
    "methods": Option("comma-separated methods or variants (default: all built-in)", _names),
    "datasets": Option("comma-separated datasets (default: synthetic)", _names),
    "protocol": Option("split protocol (default: each dataset's own)"),
    "preset": Option("hyper-parameter preset (default: paper; quick for the bare default tour)", choices=PRESETS),
    "bits": Option("comma-separated bit lengths (default: 16,32,64,128)", _integers),
    "seeds": Option("comma-separated seeds (default: 0)", _integers),
    "database_coding": Option("modality (default) or unified: how database items are coded", _names),
    "features": Option("feature preprocessing: raw (default: the files as given), zscore (columns standardised "
                       "with training-row statistics) or l2 (rows scaled to unit norm)"),
    "param": Option("set a hyper-parameter (repeatable); VALUE is read as TOML", action="append",
                    metavar="METHOD.NAME=VALUE", file=False),
    "params": Option("[params.METHOD] tables of hyper-parameter values", flag=False),
    "variants": Option("[variants.NAME] tables: named rows with a base method and values", flag=False),
    "config": Option("TOML grid file (options given here override it)", file=False),
}


def setting(default: Any, help: str, parse: Callable[[Any, str], Any], *, factory: Callable[[], Any] | None = None,
            **how: Any) -> Any:
    """A :class:`RunSettings` field that is also a run option (``how``: the other :class:`Option` fields)."""
    metadata = {"option": Option(help, parse, **how)}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class RunSettings:
    """How a grid is run: where, on what, how many at once.  Each field below ``grid`` is a run
    option too (its ``setting`` declares flag and help), and reaches the cells through
    :meth:`cmhbench.runner.RunContext.from_settings`; none changes a cell's result."""

    grid: GridSpec
    out: Path = setting(DEFAULT_OUT, "results folder (default: results/latest)", _path)
    data_dir: Path | None = setting(None, "folder of dataset files (default: $CMHBENCH_DATA)", _path)
    cache_dir: Path | None = setting(None, "cache folder (default: $CMHBENCH_CACHE or ~/.cache/cmhbench)", _path)
    device: str = setting("auto", "auto (default), cpu, cuda or cuda:K", _device)
    jobs: int = setting(1, "parallel worker processes (default: 1; -1 = all cores)", _jobs, type=int)
    cells_per_gpu: int = setting(1, "deep cells that share one GPU at a time (default: 1; use --jobs ≥ K); each "
                                    "waits for a free slot and enough free GPU memory", _positive, type=int,
                                 metavar="K")
    threads: int | None = setting(1, "BLAS/torch threads per cell (default: 1; capped so that jobs × threads ≤ "
                                     "cores)", _positive, type=int)
    backend: str = setting("loky", "loky (local worker processes; default) or dask (a dask.distributed cluster)",
                           _backend, choices=BACKENDS)
    scheduler: str | None = setting(None, "dask scheduler address, e.g. tcp://HOST:8786 (implies --backend dask)",
                                    _name)
    timeout: float | None = setting(None, "seconds a cell may run before it is stored as failed", _seconds,
                                    type=float)
    metrics: list[str] = setting(None, "metrics every cell stores (grid file only)", _names, flag=False,
                                 factory=lambda: list(DEFAULT_METRICS))
    config: dict[str, Any] = field(default_factory=dict)  # the grid file's values and the options given


def run_options() -> dict[str, Option]:
    """Every run option, in the order ``--help`` lists them: the grid's, then the settings'."""
    settings = {f.name: f.metadata["option"] for f in fields(RunSettings) if "option" in f.metadata}
    return {**GRID_OPTIONS, **settings}


RUN_KEYS = frozenset(key for key, option in run_options().items() if option.file)


def run_settings(options: Mapping[str, Any], all_methods: list[str],
                 defaults: Mapping[str, Any] | None = None) -> RunSettings:
    """Merge command-line options (None = not given) over a config file over ``defaults``
    (a command's own, e.g. tune's bits) over the declared ones.

    With nothing given at all — no methods, datasets or config — this is the default
    tour: every built-in method on the synthetic set with the ``quick`` preset.
    """
    config = load_config(options["config"]) if options.get("config") else {}
    given = {k: v for k, v in options.items() if v is not None and k not in ("config", "param")}
    merged = {**(defaults or {}), **config, **given}
    tour = not any(k in merged for k in ("methods", "datasets"))
    declared = run_options()
    chosen = {k: declared[k].parse(v, k) if declared[k].parse else v for k, v in merged.items()
              if k not in ("params", "variants")}
    variants = {name: dict(v) for name, v in config.get("variants", {}).items()}
    params = {name: dict(values) for name, values in config.get("params", {}).items()}
    if "methods" not in chosen:
        chosen["methods"] = _names(all_methods, "methods")
    methods = chosen["methods"]
    if options.get("methods") is not None:
        # --methods narrows the config's grid: its [params] for rows left out no longer apply
        # (a --param naming a method outside the grid is still an error)
        kept = set(methods) | {str(variants[m].get("base")) for m in methods if m in variants}
        params = {name: values for name, values in params.items() if name in kept}
    for name, values in parse_params(options.get("param") or []).items():
        params.setdefault(name, {}).update(values)
    chosen.setdefault("preset", "quick" if tour else "paper")
    grid_fields = {f.name for f in fields(GridSpec)}
    grid = GridSpec(**{k: v for k, v in chosen.items() if k in grid_fields}, params=params, variants=variants)
    settings = RunSettings(
        grid=grid,
        **{k: v for k, v in chosen.items() if k not in grid_fields},
        config={**config, **{k: str(v) if isinstance(v, Path) else v for k, v in options.items() if v is not None}},
    )
    settings.data_dir = settings.data_dir or default_data_dir()
    settings.cache_dir = settings.cache_dir or default_cache_dir()
    if "backend" not in chosen and settings.scheduler:
        settings.backend = "dask"  # --scheduler implies the dask backend
    cores = os.cpu_count() or 1
    workers = cores if settings.jobs == -1 else settings.jobs
    if settings.threads and workers * settings.threads > cores:
        settings.threads = max(1, cores // workers)  # N workers × T threads ≤ cores
    return settings
