"""The dataset registry: names to resolvers, and :func:`resolve`, which finds a dataset's files.

Built-in datasets are the modules of this package that call :func:`register_dataset`;
they are imported on first use.  The other modules of the package are helpers, listed in
``HELPER_MODULES``; a new helper goes there (or gets a leading underscore), and a module
that is neither a helper nor registers a dataset is refused with a clear error.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import pkgutil
from pathlib import Path
from typing import Any, Callable

from cmhbench.datasets.base import DatasetError, DatasetSource
from cmhbench.datasets.cache import default_cache_dir, prepare_cache_folder
from cmhbench.datasets.generic import resolve_file

def default_data_dir() -> Path | None:
    """``$CMHBENCH_DATA``: where dataset files are looked for when no folder is given."""
    value = os.environ.get("CMHBENCH_DATA")
    return Path(value) if value else None


Resolver = Callable[..., DatasetSource]
_resolvers: dict[str, tuple[Resolver, str]] = {}
_loaded = {"builtins": False}
HELPER_MODULES = {"base", "cache", "catalog", "features", "filesource", "files", "generic", "protocols", "registry", "validation"}
FILE_SUFFIXES = (".npz", ".mat", ".h5", ".hdf5", ".h5py")  # --datasets path/to/own-features.npz


def register_dataset(name: str, summary: str) -> Callable[[Resolver], Resolver]:
    """Register a resolver ``f(data_dir: Path | None) -> DatasetSource`` under ``name``.

    A resolver may also accept the keyword arguments ``cache_dir`` (the cache folder for
    prepared data), ``options`` (``{"image": "FILE"}`` from ``NAME:image=FILE``) and
    ``spec`` (the name exactly as given, which its identity's ``name`` must be: the
    harness finds a cell's source by it); it gets them only when its signature names them.
    """

    def decorate(fn: Resolver) -> Resolver:
        _resolvers[name] = (fn, summary)
        return fn

    return decorate


def _load_builtins() -> None:
    if _loaded["builtins"]:
        return
    _loaded["builtins"] = True
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name.startswith("_") or module.name in HELPER_MODULES:
            continue
        qualified = f"cmhbench.datasets.{module.name}"
        importlib.import_module(qualified)
        if not any(fn.__module__ == qualified for fn, _ in _resolvers.values()):
            raise DatasetError(f"cmhbench/datasets/{module.name}.py registers no dataset: a helper module's name "
                               f"must start with '_' or be listed in cmhbench.datasets.registry.HELPER_MODULES")


def available() -> dict[str, str]:
    """Registered dataset names with a one-line summary each."""
    _load_builtins()
    return {name: summary for name, (_, summary) in sorted(_resolvers.items())}


def parse_options(name: str, text: str) -> dict[str, str]:
    """``image=FILE`` (the part after ``NAME:``) as a dict."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise DatasetError(f"dataset {name!r}: options must look like NAME:KEY=VALUE, e.g. mirflickr25k:image=FILE")
    return {key.strip(): value.strip()}


def _accepts(fn: Callable[..., Any], keyword: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return keyword in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def resolve(name: str, data_dir: str | Path | None = None, *,
            cache_dir: str | Path | None | bool = None) -> DatasetSource:
    """Find and fingerprint a dataset's files (or fix its generator) without loading it.

    ``name`` is a registered dataset (``mirflickr25k``), a registered dataset with an
    option (``mirflickr25k:image=my-features.mat``), or the path of the user's own
    ``.npz`` / ``.mat`` / ``.h5`` file.  ``data_dir`` defaults to ``$CMHBENCH_DATA``;
    ``cache_dir`` (prepared data, file fingerprints; its ``datasets/`` subfolder is used)
    to :func:`cmhbench.datasets.cache.default_cache_dir`, and ``cache_dir=False`` keeps
    everything in memory.  The source's ``identity()["name"]`` is ``name`` exactly as
    given.  A bad or missing file raises a one-line :class:`DatasetError` here, before
    anything runs.
    """
    _load_builtins()
    if cache_dir is not False:
        prepare_cache_folder(default_cache_dir() if cache_dir is None else Path(cache_dir))
    if data_dir is None:
        data_dir = default_data_dir()
    data_path = Path(data_dir).expanduser() if data_dir is not None else None
    base, sep, rest = name.partition(":")
    if name in _resolvers or (sep and base in _resolvers):
        resolver, _ = _resolvers[name if name in _resolvers else base]
        kwargs: dict[str, Any] = {}
        if sep and name not in _resolvers:
            if not _accepts(resolver, "options"):
                raise DatasetError(f"dataset {base!r} takes no options (got {name!r})")
            kwargs["options"] = parse_options(base, rest)
        if _accepts(resolver, "spec"):
            kwargs["spec"] = name
        if _accepts(resolver, "cache_dir"):
            kwargs["cache_dir"] = cache_dir
        return resolver(data_path, **kwargs)
    if name.lower().endswith(FILE_SUFFIXES):
        return resolve_file(name, data_path, cache_dir=cache_dir)
    if sep and base.lower().endswith(FILE_SUFFIXES):  # the user's file with an option: FILE:overlap=allow
        return resolve_file(name, data_path, cache_dir=cache_dir, options=parse_options(base, rest))
    names = sorted(_resolvers)
    close = difflib.get_close_matches(base, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise DatasetError(f"unknown dataset {name!r}{hint} (known: {', '.join(names)}; or the path of your own "
                       f"{' / '.join(FILE_SUFFIXES)} file)")
