"""The user's own paired features: ``--datasets path/to/file.npz`` (or ``.mat`` / ``.h5``).

The file holds ``image`` (n × d_x), ``text`` (n × d_y) and ``labels`` — n × c 0/1
multi-hot, or one class id per row (n or n × 1, ids from 0) — and optionally its own
split as 0-based row numbers: ``query_idx``, ``train_idx``, ``database_idx``.  With
``query_idx`` the default protocol is ``given``; without it, ``dcmh``.  The size-based
protocols (``djsrh``, ``dcmh``, ``ucch``) are available on any file large enough.

A given split whose queries also sit in the database or the training rows, or whose index
arrays repeat a row, is refused: queries in the database inflate every score (a query finds
itself), and silently dropping repeats hides a broken file.  ``FILE:overlap=allow`` accepts
such a file on purpose (the dataset's name in every record then says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cmhbench.datasets.base import DatasetError
from cmhbench.datasets.filesource import INDEX_KEYS, FileSource, Layout, Part
from cmhbench.datasets.files import ArrayFile

KEYS = ("image", "text", "labels")


OPTIONS = {"overlap": ("allow",)}


def resolve_file(spec: str, data_dir: Path | None = None, *, cache_dir: Any = None,
                 options: dict[str, str] | None = None) -> FileSource:
    """A source for the file ``spec`` (as given, or relative to ``data_dir``); ``options``
    come from ``FILE:KEY=VALUE`` (only ``overlap=allow``)."""
    name, spec = spec, spec.partition(":")[0] if options else spec
    for key, value in (options or {}).items():
        if value not in OPTIONS.get(key, ()):
            known = "; ".join(f"{k}={'|'.join(v)}" for k, v in OPTIONS.items())
            raise DatasetError(f"{name}: unknown option {key}={value} for your own file (known: {known})")
    path = Path(spec).expanduser()
    if not path.is_file() and not path.is_absolute() and data_dir is not None and (data_dir / path).is_file():
        path = data_dir / path
    if not path.is_file():
        looked = f" or in {data_dir}" if data_dir is not None and not Path(spec).is_absolute() else ""
        raise DatasetError(f"dataset file {path.name} not found at {path.parent}{looked}; your own file must hold "
                           "arrays image, text, labels (see docs/datasets.md)")
    af = ArrayFile(path)
    af.require(*KEYS)
    given = {key: Part(path, key) for key in INDEX_KEYS if key in af.shapes}
    if given and "query_idx" not in given:
        raise DatasetError(f"{spec}: {', '.join(given)} given without query_idx (found: {af.found()})")
    layout = Layout(image=(Part(path, "image"),), text=(Part(path, "text"),), labels=(Part(path, "labels"),),
                    given=given)
    protocols = (("given",) if given else ()) + ("dcmh", "djsrh", "ucch")
    return FileSource(name=name, spec=name, layout=layout, protocols=protocols, default_protocol=protocols[0],
                      cache_dir=cache_dir, own_file=True, allow_overlap=(options or {}).get("overlap") == "allow")
