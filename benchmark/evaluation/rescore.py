"""Re-scoring stored cells and scoring external codes files, with their inputs validated.

Three entry points for the harness:

- :func:`score_cell_arrays` / :func:`score_cell_file`: the metrics of both directions from
  a cell's ``arrays.npz`` (packed codes and labels, as the runner writes them), for
  re-scoring stored cells with other metrics without re-running a method.
- :func:`evaluation_arrays`: what a cell stores about its evaluation beside its codes
  (per-query APs, curves; named in :data:`cmhbench.evaluation.scoring.ARRAY_DEFINITIONS`);
  :func:`evaluate_cell` returns the metrics and these arrays from one pass over the data.
- :func:`score_codes_file`: the metrics of codes produced elsewhere (``CODES_FILE_FORMAT``).

The first scoring of a cell, inside ``cmhbench run``, is :mod:`cmhbench.evaluation.scoring`;
this module validates stored or external arrays and then scores them the same way.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from cmhbench.conventions import (COLLAPSE_BELOW, COLLAPSE_MARK, DEFAULT_METRICS, DIRECTIONS, PER_QUERY_CUTOFFS,
                                  PER_QUERY_RADIUS)
from cmhbench.errors import UserError
from cmhbench.evaluation.engine import PackedBits, packed_bits
from cmhbench.evaluation.metrics import as_packed, compute_stats, scores
from cmhbench.evaluation.scoring import DEFAULT_K_GRID, metric_specs, score_directions

CELL_KEYS = ("i2t_query", "i2t_database", "t2i_query", "t2i_database",
             "query_labels", "database_labels", "n_bits", "n_labels")
CODES_FILE_FORMAT = """\
An external codes file is an .npz (np.savez) holding, for each direction it scores
(i2t: image queries against a text database; t2i: text queries against an image
database; one or both):
  <dir>_query      (n_query, bits)     codes of the queries
  <dir>_database   (n_database, bits)  codes of the database, rows in ascending original row order
Codes are either unpacked, integer or bool arrays of ±1 or 0/1 values (positive = bit set),
or packed, uint8 arrays from np.packbits(codes > 0, axis=1) with ceil(bits / 8) columns,
in which case the file also holds the scalar n_bits.
Labels (shared by both directions): query_labels (n_query, classes) and
database_labels (n_database, classes), multi-hot 0/1 arrays (or packed with np.packbits
and a scalar n_labels) in the file, or given as arrays to score_codes_file (those win).
"""

log = logging.getLogger(__name__)


class EvaluationInputError(UserError, ValueError):
    """Arrays to score that are missing, or of the wrong shape or values (names the file and key)."""


# ------------------------------------------------------------------------------- cells

def _cell_inputs(arrays: Mapping[str, np.ndarray], source: str) -> dict[str, tuple[PackedBits, ...]]:
    """Each direction's (query, database, query labels, database labels) from cell arrays."""
    missing = [k for k in CELL_KEYS if k not in arrays]
    if missing:
        raise EvaluationInputError(f"{source}: missing key(s) {', '.join(map(repr, missing))} "
                                   f"(a cell's arrays hold {', '.join(CELL_KEYS)})")
    n_bits = _scalar(arrays, "n_bits", source)
    n_labels = _scalar(arrays, "n_labels", source)
    ql = _packed(arrays, "query_labels", n_labels, source, "n_labels")
    dl = _packed(arrays, "database_labels", n_labels, source, "n_labels")
    out = {}
    for direction in DIRECTIONS:
        q = _packed(arrays, f"{direction}_query", n_bits, source, "n_bits")
        d = _packed(arrays, f"{direction}_database", n_bits, source, "n_bits")
        _check_rows(q, ql, f"{direction}_query", "query_labels", source)
        _check_rows(d, dl, f"{direction}_database", "database_labels", source)
        out[direction] = (q, d, ql, dl)
    return out


def _scalar(arrays: Mapping[str, Any], key: str, source: str) -> int:
    value = np.asarray(arrays[key])
    if value.size != 1 or not np.issubdtype(value.dtype, np.integer) or int(value.reshape(())) < 1:
        raise EvaluationInputError(f"{source}: key {key!r} must be one positive integer, got {value!r}")
    return int(value.reshape(()))


def _packed(arrays: Mapping[str, Any], key: str, n_bits: int, source: str, width_key: str) -> PackedBits:
    value = np.asarray(arrays[key])
    want = -(-n_bits // 8)
    if value.dtype != np.uint8 or value.ndim != 2 or value.shape[1] != want:
        raise EvaluationInputError(
            f"{source}: key {key!r} must be packed bits, uint8 of shape (rows, {want}) for "
            f"{width_key}={n_bits}, got {value.dtype} of shape {value.shape}")
    return packed_bits(value, n_bits)


def _check_rows(codes: PackedBits, labels: PackedBits, key: str, label_key: str, source: str) -> None:
    if codes.n != labels.n:
        raise EvaluationInputError(f"{source}: key {key!r} has {codes.n} rows but {label_key!r} has {labels.n}")


def evaluate_cell(
    arrays: Mapping[str, np.ndarray],
    metrics: Iterable[str] = DEFAULT_METRICS,
    *,
    ap_cutoffs: Sequence[int] = PER_QUERY_CUTOFFS,
    k_grid: Sequence[int] = DEFAULT_K_GRID,
    radius: int = PER_QUERY_RADIUS,
    workers: int | None = None,
    backend: str = "auto",
    source: str = "cell arrays",
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """Re-score a stored cell: metrics of both directions and the evaluation arrays.

    ``arrays``: a cell's arrays, validated here (keys ``CELL_KEYS``: packed codes and labels, ``n_bits``,
    ``n_labels``).  Returns ``({"i2t": {metric: value}, "t2i": {...}}, evaluation arrays)``,
    the arrays named as in ``ARRAY_DEFINITIONS``.
    """
    return score_directions(_cell_inputs(arrays, source), metrics, ap_cutoffs=ap_cutoffs, k_grid=k_grid,
                            radius=radius, workers=workers, backend=backend)


def score_cell_arrays(
    arrays: Mapping[str, np.ndarray],
    metrics: Iterable[str] = DEFAULT_METRICS,
    *,
    workers: int | None = None,
    backend: str = "auto",
    source: str = "cell arrays",
) -> dict[str, dict[str, float]]:
    """``{"i2t": {metric: value}, "t2i": {...}}`` from a cell's arrays (``CELL_KEYS``)."""
    specs = metric_specs(metrics)
    return {direction: scores(compute_stats(*inputs, specs, workers=workers, backend=backend), specs)
            for direction, inputs in _cell_inputs(arrays, source).items()}


def evaluation_arrays(
    arrays: Mapping[str, np.ndarray],
    *,
    ap_cutoffs: Sequence[int] = PER_QUERY_CUTOFFS,
    k_grid: Sequence[int] = DEFAULT_K_GRID,
    radius: int = PER_QUERY_RADIUS,
    workers: int | None = None,
    backend: str = "auto",
    source: str = "cell arrays",
) -> dict[str, np.ndarray]:
    """The arrays a cell stores about its evaluation (names in ``ARRAY_DEFINITIONS``)."""
    return evaluate_cell(arrays, (), ap_cutoffs=ap_cutoffs, k_grid=k_grid, radius=radius,
                         workers=workers, backend=backend, source=source)[1]


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file (no pickled objects), with errors that name the file."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise EvaluationInputError(f"{path}: the file is empty (0 bytes); expected an .npz archive of arrays")
        if not zipfile.is_zipfile(path):  # np.load would hand back a lone array (.npy) or guess at text
            raise EvaluationInputError(f"{path}: not a readable .npz file: not a zip archive (np.savez writes "
                                       "one; a single .npy array has no key names)")
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except EvaluationInputError:
        raise
    except FileNotFoundError:
        raise EvaluationInputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise EvaluationInputError(f"{path}: is a folder, not an .npz file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise EvaluationInputError(f"{path}: not a readable .npz file ({exc})") from None


def score_cell_file(
    path: str | Path,
    metrics: Iterable[str] = DEFAULT_METRICS,
    *,
    workers: int | None = None,
    backend: str = "auto",
) -> dict[str, dict[str, float]]:
    """Re-score a stored cell: ``path`` is its ``arrays.npz`` or the cell's folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "arrays.npz"
    return score_cell_arrays(load_npz(path), metrics, workers=workers, backend=backend, source=str(path))


# ----------------------------------------------------------------- external codes file

def score_codes_file(
    path: str | Path,
    metrics: Iterable[str] = DEFAULT_METRICS,
    *,
    query_labels: np.ndarray | None = None,
    database_labels: np.ndarray | None = None,
    workers: int | None = None,
    backend: str = "auto",
) -> dict[str, dict[str, float]]:
    """Score an external codes file (format: ``CODES_FILE_FORMAT``) for each direction it holds.

    Returns ``{direction: {metric: value}}``.  Raises :class:`EvaluationInputError`, naming
    the file and key, for missing keys, mismatched shapes or values that are not codes.
    """
    source = str(path)
    specs = metric_specs(metrics)
    arrays = load_npz(path)
    directions = [d for d in DIRECTIONS if f"{d}_query" in arrays or f"{d}_database" in arrays]
    if not directions:
        raise EvaluationInputError(
            f"{source}: no codes found; expected keys i2t_query and i2t_database and/or t2i_query "
            f"and t2i_database (found: {', '.join(sorted(arrays)) or 'nothing'})")
    for direction in directions:
        for role in ("query", "database"):
            if f"{direction}_{role}" not in arrays:
                raise EvaluationInputError(f"{source}: key '{direction}_{role}' is missing "
                                           f"(the file has '{direction}_{'database' if role == 'query' else 'query'}')")
    n_bits = _scalar(arrays, "n_bits", source) if "n_bits" in arrays else None
    labels = {}
    for role, given in (("query", query_labels), ("database", database_labels)):
        key = f"{role}_labels"
        if given is not None:
            labels[role] = _unpacked_labels(np.asarray(given), f"the {key} argument")
        elif key in arrays:
            labels[role] = _file_labels(arrays, key, source)
        else:
            raise EvaluationInputError(f"{source}: key {key!r} is missing and no {key} were given")
    if labels["query"].n_bits != labels["database"].n_bits:
        raise EvaluationInputError(f"{source}: query labels have {labels['query'].n_bits} classes, "
                                   f"database labels {labels['database'].n_bits}")
    results = {}
    for direction in directions:
        codes = {}
        for role in ("query", "database"):
            key = f"{direction}_{role}"
            codes[role] = _file_codes(arrays[key], key, n_bits, source)
            if codes[role].n != labels[role].n:
                raise EvaluationInputError(f"{source}: key {key!r} has {codes[role].n} rows but the "
                                           f"{role} labels have {labels[role].n}")
        if codes["query"].n_bits != codes["database"].n_bits:
            raise EvaluationInputError(f"{source}: key '{direction}_query' has {codes['query'].n_bits} bits "
                                       f"but '{direction}_database' has {codes['database'].n_bits}")
        if codes["query"].n == 0 or codes["database"].n == 0:
            raise EvaluationInputError(f"{source}: direction {direction} has no query or no database rows")
        _warn_if_collapsed(codes["database"], f"{direction}_database", source)
        stats = compute_stats(codes["query"], codes["database"], labels["query"], labels["database"], specs,
                              workers=workers, backend=backend)
        results[direction] = scores(stats, specs)
    return results


def _warn_if_collapsed(database: PackedBits, key: str, source: str) -> None:
    """The warning ``run`` gives a collapsed cell: a database coded with few distinct codes
    ranks in large tied groups, so its scores say little (all-zero codes score near chance)."""
    distinct = len(np.unique(database.data, axis=0))
    if distinct < min(COLLAPSE_BELOW, database.n):
        log.warning("%s: key %r holds only %d distinct code(s) for %d items (%s collapsed: fewer than %d), so "
                    "its scores sit near the chance level and rank nothing", source, key, distinct, database.n,
                    COLLAPSE_MARK, COLLAPSE_BELOW)


def _file_codes(value: np.ndarray, key: str, n_bits: int | None, source: str) -> PackedBits:
    if n_bits is not None:
        return _packed({key: value}, key, n_bits, source, "n_bits")
    if value.ndim != 2 or value.shape[1] == 0:
        raise EvaluationInputError(f"{source}: key {key!r} must be a 2-D array (rows × bits), got shape {value.shape}")
    if not (np.issubdtype(value.dtype, np.integer) or value.dtype == np.bool_):
        raise EvaluationInputError(f"{source}: key {key!r} must hold integer ±1 or 0/1 codes, got {value.dtype}")
    if value.size and not np.isin(value, (-1, 0, 1)).all():
        raise EvaluationInputError(
            f"{source}: key {key!r} holds values other than ±1 and 0/1; packed codes "
            f"(np.packbits) need the scalar key 'n_bits' in the file")
    if value.size and (value == -1).any() and (value == 0).any():
        raise EvaluationInputError(f"{source}: key {key!r} mixes -1 and 0; use ±1 or 0/1 codes")
    return as_packed(value, key)


def _file_labels(arrays: Mapping[str, np.ndarray], key: str, source: str) -> PackedBits:
    if "n_labels" in arrays:
        return _packed(arrays, key, _scalar(arrays, "n_labels", source), source, "n_labels")
    return _unpacked_labels(arrays[key], f"{source}: key {key!r}")


def _unpacked_labels(value: np.ndarray, where: str) -> PackedBits:
    if value.ndim != 2 or value.shape[1] == 0:
        raise EvaluationInputError(f"{where} must be a 2-D multi-hot array (rows × classes), got shape {value.shape}")
    if not (np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_):
        raise EvaluationInputError(f"{where} must be numeric multi-hot labels, got {value.dtype}")
    if value.size and not np.isin(value, (0, 1)).all():
        raise EvaluationInputError(f"{where} must be multi-hot 0/1 labels (packed labels need the scalar "
                                   f"key 'n_labels' in the file)")
    return as_packed(value, where)
