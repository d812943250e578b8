"""Method registry: a decorator for built-in methods, entry points for plugins.

Built-in methods are the modules of this package; importing one runs its ``@register``
decorator, and the registry imports every module of the package on first use, so a
listing is always generated, never hand-kept.  Third-party packages declare an entry
point in the group ``cmhbench.methods`` whose value is a :class:`Hasher` subclass
(already decorated or not) or a module that registers on import.  Plugins load lazily;
one that fails to load is recorded with its error and skipped.

Parameters resolve in one order everywhere: constructor defaults < per-dataset
override < preset < the user's values.  The resolved set is what the harness records
and keys.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
import pkgutil
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping

from cmhbench.errors import UserError
from cmhbench.methods.base import HARNESS_PARAMS, PROVENANCES, Hasher, MethodInfo, PriorBuilder
from cmhbench.methods.domains import Choice, Domain

ENTRY_POINT_GROUP = "cmhbench.methods"
PRESETS = ("paper", "quick")
HELPER_MODULES = {"base", "catalog", "deep", "domains", "registry"}
"""Modules of this package that register no method (as does any module whose name starts
with ``_``).  Every other module registers the one method named after it, ``-`` written
``_`` (``cca_itq.py`` registers ``cca-itq``): the registry finds a method's module by its
name, so a run imports only the methods it runs.  Both rules are checked, with a clear
error, when a built-in registers and when the package is scanned."""

_UNSEARCHED = Choice((None,))  # the domain of a parameter that declares none: never searched

_methods: dict[str, type[Hasher]] = {}
_plugin_errors: dict[str, str] = {}
_state = {"builtins": False, "plugins": False}


class UnknownMethodError(UserError, KeyError):
    """A method name that is not registered (the message suggests a close match)."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the sentence
        return str(self.args[0])


class ParameterError(UserError, ValueError):
    """A hyper-parameter name, value or preset that a method does not accept."""


def register(
    *,
    name: str,
    title: str,
    authors: str,
    venue: str,
    year: int,
    kind: str,
    fidelity: str,
    deterministic: bool,
    memory: str,
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    dataset_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    override_sources: Mapping[str, str | Mapping[str, str]] | None = None,
    default_sources: Mapping[str, str] | None = None,
    url: str = "",
    version: int = 1,
    uses: tuple[str, ...] = (),
    prior_params: tuple[str, ...] = (),
    prior_ranges: Mapping[str, Domain] | None = None,
    prior: PriorBuilder | None = None,
) -> Callable[[type[Hasher]], type[Hasher]]:
    """Class decorator: attach :class:`MethodInfo` to a :class:`Hasher` and register it.

    ``version`` starts at 1 and is bumped whenever the method's behaviour changes;
    ``uses`` names registered methods it runs inside (a teacher).  See :func:`versions`.
    ``override_sources`` and ``default_sources`` say where values came from (:class:`MethodInfo`).
    ``prior_params``, ``prior_ranges`` and ``prior`` declare the similarity the method builds
    from features, for ``cmhbench priors`` (:class:`MethodInfo`).
    """

    def decorate(cls: type[Hasher]) -> type[Hasher]:
        if not (isinstance(cls, type) and issubclass(cls, Hasher)):
            raise TypeError(f"@register({name!r}) must decorate a Hasher subclass")
        info = MethodInfo(
            name=name,
            title=title,
            authors=authors,
            venue=venue,
            year=year,
            kind=kind,  # type: ignore[arg-type]
            fidelity=fidelity,  # type: ignore[arg-type]
            deterministic=deterministic,
            memory=memory,
            pair_encoder=cls.has_pair_encoder(),
            presets=dict(presets or {}),
            dataset_overrides=dict(dataset_overrides or {}),
            override_sources=dict(override_sources or {}),  # type: ignore[arg-type]
            default_sources=dict(default_sources or {}),  # type: ignore[arg-type]
            url=url,
            version=version,
            uses=tuple(uses),
            prior_params=tuple(prior_params),
            prior_ranges=dict(prior_ranges or {}),
            prior=prior,
        )
        _validate_info(cls, info)
        _check_builtin_module(cls, name)
        cls.info = info
        _add(cls)
        return cls

    return decorate


def _validate_info(cls: type[Hasher], info: MethodInfo) -> None:
    if info.kind not in ("reference", "shallow", "deep"):
        raise ValueError(f"method {info.name!r}: kind must be reference, shallow or deep")
    if info.fidelity not in ("paper", "reconstructed"):
        raise ValueError(f"method {info.name!r}: fidelity must be paper or reconstructed")
    if isinstance(info.version, bool) or not isinstance(info.version, int) or info.version < 1:
        raise ValueError(f"method {info.name!r}: version must be a positive integer, got {info.version!r}")
    missing = [p for p in HARNESS_PARAMS if p not in cls.param_names()]
    if missing:
        raise TypeError(f"method {info.name!r}: constructor must accept {', '.join(missing)}")
    known = set(cls.default_params())
    for where, table in [("preset", info.presets), ("dataset override", info.dataset_overrides)]:
        for label, values in table.items():
            unknown = sorted(set(values) - known)
            if unknown:
                raise TypeError(f"method {info.name!r}: {where} {label!r} sets unknown parameters {unknown}")
    _validate_sources(info, known)
    _validate_prior(cls, info, known)
    for preset in info.presets:
        if preset not in PRESETS:
            raise ValueError(f"method {info.name!r}: unknown preset {preset!r} (presets are {PRESETS})")
    undeclared = sorted(set(cls.param_domains) - known)
    if undeclared:
        raise TypeError(f"method {info.name!r}: param_domains names unknown parameters {undeclared}")
    defaults = cls.default_params()
    for where, values in [("default", defaults), *[(f"preset {k!r}", v) for k, v in info.presets.items()],
                          *[(f"dataset override {k!r}", v) for k, v in info.dataset_overrides.items()]]:
        for key, value in values.items():
            domain = cls.param_domains.get(key)
            if domain is not None and not domain.contains(value):
                raise TypeError(f"method {info.name!r}: {where} {key}={value!r} is outside its domain "
                                f"({domain.describe()})")


def _validate_prior(cls: type[Hasher], info: MethodInfo, known: set[str]) -> None:
    """Prior parameters exist, each has a search range, and a builder says how to score them."""
    if bool(info.prior_params) != (info.prior is not None):
        raise TypeError(f"method {info.name!r}: prior_params and prior go together (the parameters and the "
                        "function that builds the similarity they weight)")
    unknown = sorted(set(info.prior_params) - known) + sorted(set(info.prior_ranges) - set(info.prior_params))
    if unknown:
        raise TypeError(f"method {info.name!r}: prior_params/prior_ranges name unknown or undeclared parameters "
                        f"{unknown}")
    for name in info.prior_params:
        if not _prior_domain(cls, info, name).searchable:
            raise TypeError(f"method {info.name!r}: prior parameter {name!r} has no search range (declare one in "
                            "param_domains or prior_ranges)")


def prior_domain(method: str | type[Hasher], name: str) -> Domain:
    """The range a prior parameter is searched over: ``prior_ranges`` first, else its own domain."""
    cls = _as_class(method)
    return _prior_domain(cls, cls.info, name)


def _prior_domain(cls: type[Hasher], info: MethodInfo, name: str) -> Domain:
    domain = info.prior_ranges.get(name)
    return domain if domain is not None else cls.param_domains.get(name, _UNSEARCHED)


def _validate_sources(info: MethodInfo, known: set[str]) -> None:
    """Every declared provenance is one of :data:`PROVENANCES` and names a value that exists."""
    def check(where: str, provenance: Any) -> None:
        if provenance not in PROVENANCES:
            raise ValueError(f"method {info.name!r}: {where} has provenance {provenance!r} "
                             f"(provenances are {', '.join(PROVENANCES)})")

    for dataset, entry in info.override_sources.items():
        values = info.dataset_overrides.get(dataset)
        if values is None:
            raise TypeError(f"method {info.name!r}: override_sources names {dataset!r}, which has no dataset override")
        for param, provenance in (entry.items() if isinstance(entry, Mapping) else [("", entry)]):
            if param and param not in values:
                raise TypeError(f"method {info.name!r}: override_sources[{dataset!r}] names {param!r}, "
                                "which that override does not set")
            check(f"dataset override {dataset!r}" + (f" {param}" if param else ""), provenance)
    for param, provenance in info.default_sources.items():
        if param not in known:
            raise TypeError(f"method {info.name!r}: default_sources names unknown parameter {param!r}")
        check(f"default {param}", provenance)


def _add(cls: type[Hasher]) -> None:
    name = cls.info.name
    current = _methods.get(name)
    if current is not None and current is not cls and _qualname(current) != _qualname(cls):
        raise ValueError(f"method name {name!r} is taken by {_qualname(current)}")
    _methods[name] = cls


def unregister(name: str) -> None:
    """Remove a method (for tests that register throw-away methods)."""
    _methods.pop(name, None)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def module_name(method: str) -> str:
    """The module of this package that must hold a built-in method: ``cca-itq`` → ``cca_itq``."""
    return method.replace("-", "_")


def _method_modules() -> list[str]:
    """The modules of this package that hold a method (not helpers), by file name only."""
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                  if not m.name.startswith("_") and m.name not in HELPER_MODULES)


def builtin_names() -> list[str]:
    """The built-in methods' names, read from the package's file names: no method module
    (and so no torch) is imported."""
    return sorted(m.replace("_", "-") for m in _method_modules())


def _check_builtin_module(cls: type[Hasher], name: str) -> None:
    if not is_builtin(cls):
        return
    module = cls.__module__.rsplit(".", 1)[1]
    if module != module_name(name):
        raise ValueError(f"built-in method {name!r} is registered in cmhbench/methods/{module}.py but must live in "
                         f"cmhbench/methods/{module_name(name)}.py (the registry finds a method's module by its name)")


def _load_builtins() -> None:
    if _state["builtins"]:
        return
    _state["builtins"] = True
    for module in _method_modules():
        importlib.import_module(f"cmhbench.methods.{module}")
        if module.replace("_", "-") not in _methods:
            raise ValueError(f"cmhbench/methods/{module}.py registers no method named "
                             f"{module.replace('_', '-')!r}: a helper module's name must start with '_' or be "
                             f"listed in cmhbench.methods.registry.HELPER_MODULES")


def _load_own_module(name: str) -> None:
    """Import only the built-in module named after a method: a worker process running a
    shallow cell then never imports torch (about 1.3 s of start-up per worker)."""
    module = module_name(name)
    if module.startswith("_") or module in HELPER_MODULES or not module.isidentifier():
        return
    try:
        importlib.import_module(f"cmhbench.methods.{module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"cmhbench.methods.{module}":
            raise


def _load_plugins() -> None:
    if _state["plugins"]:
        return
    _state["plugins"] = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        label = f"{ep.name} ({ep.value})"
        try:
            obj = ep.load()
            if inspect.isclass(obj):
                if not issubclass(obj, Hasher) or not hasattr(obj, "info"):
                    raise TypeError(f"{ep.value} is not a @register-ed Hasher subclass")
                _add(obj)
        except Exception as exc:  # a broken plugin must never break the benchmark
            last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
            where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
            _plugin_errors[label] = f"{type(exc).__name__}: {exc}{where}"


def _ensure_loaded() -> None:
    _load_builtins()
    _load_plugins()


def available() -> list[str]:
    """Names of all registered methods, built-in and plugin, sorted."""
    _ensure_loaded()
    return sorted(_methods)


def plugin_errors() -> dict[str, str]:
    """Entry points that failed to load, with their errors."""
    _ensure_loaded()
    return dict(_plugin_errors)


def is_builtin(cls: type[Hasher]) -> bool:
    return cls.__module__.startswith("cmhbench.methods.")


def suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def get(name: str) -> type[Hasher]:
    """The class registered under ``name``."""
    if name not in _methods and not _state["builtins"]:
        _load_own_module(name)
    if name not in _methods:
        _ensure_loaded()
    try:
        return _methods[name]
    except KeyError:
        broken = [f"{label}: {error}" for label, error in _plugin_errors.items() if label.split(" (")[0] == name]
        if broken:  # registered by a plugin that did not import: say why, not "did you mean"
            raise UnknownMethodError(f"method {name!r} comes from a plugin that failed to load: {broken[0]}") \
                from None
        names = sorted(_methods)
        raise UnknownMethodError(
            f"unknown method {name!r}{suggest(name, names)} (known: {', '.join(names)})"
        ) from None


def versions(method: str | type[Hasher]) -> dict[str, int]:
    """The versions a method's cells depend on: its own and those of the methods it uses
    (transitively), by name.  Part of every cell key unless all are 1, so cells stored
    before versions existed keep their keys, and a bump makes ``run`` recompute."""
    cls = _as_class(method)
    out = {cls.info.name: cls.info.version}
    for name in cls.info.uses:
        if name not in out:
            out.update(versions(name))
    return out


def _as_class(method: str | type[Hasher]) -> type[Hasher]:
    return get(method) if isinstance(method, str) else method


def coerce_value(cls: type[Hasher], name: str, value: Any) -> Any:
    """Check a user's value against the default's type (ints widen to floats)."""
    default = cls.default_params()[name]
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ParameterError(f"{cls.info.name}.{name} expects true/false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, (int, float, str)) and type(value) is not type(default):
        raise ParameterError(
            f"{cls.info.name}.{name} expects {type(default).__name__}, got {value!r} ({type(value).__name__})"
        )
    return value


def resolve_params(
    method: str | type[Hasher],
    dataset: str | None = None,
    preset: str = "paper",
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """defaults < per-dataset override < preset < user values, validated."""
    cls = _as_class(method)
    if preset not in PRESETS:
        raise ParameterError(f"unknown preset {preset!r}; presets are {', '.join(PRESETS)}")
    resolved = cls.default_params()
    if dataset is not None:
        resolved.update(cls.info.dataset_overrides.get(dataset, {}))
    resolved.update(cls.info.presets.get(preset, {}))
    for key, value in (params or {}).items():
        if key in HARNESS_PARAMS:
            raise ParameterError(f"{cls.info.name}.{key} is set by the harness per cell, not as a parameter")
        if key not in resolved:
            raise ParameterError(
                f"method {cls.info.name!r} has no parameter {key!r}{suggest(key, list(resolved))} "
                f"(parameters: {', '.join(resolved) or 'none'})"
            )
        resolved[key] = check_domain(cls, key, coerce_value(cls, key, value))
    return resolved


def param_sources(method: str | type[Hasher], dataset: str | None,
                  params: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Where the values of a resolved parameter set came from, for the values a method registered
    with a provenance: ``{param: {"from": "dataset override <name>" or "default", "provenance": ...}}``.

    A value counts as the override's (or the declared default's) when it equals it, however it
    was given: a cell's key holds values, not how they were typed, so equal parameter sets must
    have one provenance.  Values a preset or the user changed are left out."""
    cls = _as_class(method)
    info, defaults = cls.info, cls.default_params()
    override = info.dataset_overrides.get(dataset, {}) if dataset is not None else {}
    sources = {}
    for name, value in params.items():
        if name in override and value == override[name]:
            sources[name] = {"from": f"dataset override {dataset}",
                             "provenance": info.override_source(str(dataset), name)}
        elif name in info.default_sources and name in defaults and value == defaults[name]:
            sources[name] = {"from": "default", "provenance": info.default_sources[name]}
    return sources


def check_domain(cls: type[Hasher], name: str, value: Any) -> Any:
    """Refuse a value outside the parameter's declared domain (types are checked before)."""
    domain = cls.param_domains.get(name)
    if domain is not None and not domain.contains(value):
        raise ParameterError(f"{cls.info.name}.{name}={value!r} is outside its domain: {domain.describe()}")
    return value


def create(
    method: str | type[Hasher],
    *,
    dataset: str | None = None,
    preset: str = "paper",
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    device: str = "auto",
    cache: Any = None,
) -> Hasher:
    """Construct a method with resolved parameters and the harness's seed, device and cache."""
    cls = _as_class(method)
    resolved = resolve_params(cls, dataset=dataset, preset=preset, params=params)
    return cls(**resolved, seed=seed, device=device, cache=cache)

