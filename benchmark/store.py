"""The results store: one folder per cell, written atomically, read back as a DataFrame.

Layout::

    OUT/cells/<key>/record.json   # everything needed to trust and reproduce the cell
    OUT/cells/<key>/arrays.npz    # packed codes, row indices, packed labels

A cell folder is assembled under ``OUT/cells/.tmp-*`` and renamed into place, so a
reader (or a resumed run) sees a cell completely or not at all; a run killed mid-write
leaves only a hidden temporary folder, removed by the next run on the same host.

While a cell runs, its worker holds a claim, ``OUT/claims/<key>`` (created with
``O_EXCL``, so only one process can hold it), refreshed by a heartbeat.  Claims live
outside ``cells/`` so that the rename stays the only way a cell appears.  Two runs on one
folder therefore never compute a cell twice; a claim whose process died (same host, pid
gone) or whose heartbeat stopped (any host) is stale and is taken over.

A results folder may come from someone else, so nothing in it is trusted: a cell's key
is the name of its folder, never a field of its record; every record read is checked
against :func:`validate_record`; each record carries the SHA-256 of its ``arrays.npz``,
which :func:`verify_cell` (``cmhbench check``, and ``run`` before it skips a cell)
compares.  Replacing a cell moves the old folder aside as ``.old-<key>-*`` first, and
:func:`recover` moves it back when a kill struck between the two renames.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import psutil

from cmhbench.conventions import DIRECTIONS, VALIDATION_MARK
from cmhbench.errors import UserError
from cmhbench.schema import CELL_TYPES, DEFAULT_FEATURES, DEFAULT_SPLIT  # noqa: F401  (DEFAULT_FEATURES: stats)

CELLS = "cells"
CLAIMS = "claims"
RECORD = "record.json"
ARRAYS = "arrays.npz"
DONE_STATUSES = ("ok", "not-applicable")  # failed cells are tried again
STATUSES = (*DONE_STATUSES, "failed")
CHECKSUM = "arrays_sha256"
#: The SHA-256 of the record itself (every other field, as :func:`record_digest` writes them):
#: a score edited by hand no longer matches it.  Records written before it existed have none
#: and read as "unverified" in ``cmhbench check``.
RECORD_CHECKSUM = "record_sha256"
KEY_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

logger = logging.getLogger(__name__)


class StoreError(UserError, OSError):
    """A results folder that cannot be written or read."""


def cells_dir(out: str | Path) -> Path:
    return Path(out) / CELLS


#: The file that names a folder as a cmhbench results folder (written when cmhbench creates
#: the folder, or adopts one that holds nothing but its own layout).
MARKER = ".cmhbench-results"
#: What cmhbench writes at a results folder's top level (run, report, tune).
OWN_ENTRIES = frozenset({MARKER, CELLS, CLAIMS, "results.csv", "leaderboard.md", "report", "trials",
                         "study.journal", "tuned.toml"})
#: System folders a results folder may never be, or be inside (the home folder itself is refused too).
SYSTEM_FOLDERS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sbin", "/sys",
                  "/usr", "/var")


def _refused_place(folder: Path) -> str | None:
    """Why ``folder`` can never hold results (the root, a system folder, the home folder), or None."""
    if folder == Path(folder.anchor):
        return "it is the file system's root"
    if folder == Path.home().resolve():
        return "it is your home folder itself"
    for system in SYSTEM_FOLDERS:
        if folder == Path(system) or Path(system) in folder.parents:
            if system == "/var" and (folder == Path("/var/tmp") or Path("/var/tmp") in folder.parents):
                continue
            return f"it is {'' if folder == Path(system) else 'inside '}the system folder {system}"
    return None


def _not_own(folder: Path) -> list[str]:
    """What keeps an unmarked folder from being taken for a results folder made before the
    marker existed: entries cmhbench does not write, tables without ``cells/`` (a user's own
    results.csv), and cells whose record is not valid.  Empty: the folder is adopted."""
    entries = sorted(p.name for p in folder.iterdir())
    foreign = [name for name in entries if name not in OWN_ENTRIES]
    if not (folder / CELLS).is_dir():  # tables without cells are someone else's (claims alone: a run starting)
        return foreign + [name for name in entries if name in ("results.csv", "leaderboard.md", "report")]
    for cell in sorted((folder / CELLS).iterdir()):
        if cell.name.startswith("."):
            continue
        try:
            valid = validate_record(json.loads((cell / RECORD).read_text()), cell.name) is None
        except (OSError, ValueError):
            valid = False
        if not valid:
            foreign.append(f"{CELLS}/{cell.name}")
    return foreign


def claim_folder(out: str | Path, into_existing: bool = False) -> Path:
    """Check that ``out`` may hold results and mark it as a results folder.

    Refused, before anything is written: the root, a system folder or anything inside one,
    the home folder itself, and (unless ``into_existing``) an existing non-empty folder
    that is neither marked nor laid out as cmhbench lays out a results folder, since a run
    rewrites ``results.csv`` and ``leaderboard.md`` there."""
    out = Path(out)
    folder = out.expanduser().resolve()
    why = _refused_place(folder)
    if why:
        raise StoreError(f"--out {out}: refused, {why}; name a folder of its own for the results")
    if folder.exists() and not folder.is_dir():
        raise StoreError(f"cannot write results to {out}: it is a file, not a folder")
    if folder.is_dir() and not (folder / MARKER).exists() and not into_existing:
        foreign = _not_own(folder)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise StoreError(f"--out {out} already holds files that are not cmhbench results ({shown}); a run "
                             "would rewrite results.csv and leaderboard.md there: name a new or empty folder, "
                             "or add --into-existing to write into it anyway")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / MARKER).exists():
            (folder / MARKER).write_text("This folder holds cmhbench results (cells/, results.csv, "
                                         "leaderboard.md).\n")
    except OSError as exc:
        raise StoreError(f"cannot write results to {out}: {exc.strerror or exc}") from None
    return folder


def unwritable(folder: Path) -> str | None:
    """Why this process cannot create a file in ``folder`` (the system's words), or None:
    asked before a command writes anywhere, so a read-only folder is one line, not a failure
    per cell naming a temporary file."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".tmp-write-check-"):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def prepare(out: str | Path, into_existing: bool = False) -> Path:
    """Claim the folder (:func:`claim_folder`), create ``OUT/cells`` (checking it is writable)
    and remove dead runs' temporary folders."""
    claim_folder(out, into_existing)
    root = cells_dir(out)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot write results to {Path(out)}: {exc.strerror or exc}") from None
    problem = unwritable(root)
    if problem:
        raise StoreError(f"cannot write results to {Path(out)}: {problem}")
    host = _host()
    for tmp in root.glob(".tmp-*"):
        parts = tmp.name.split("-", 3)  # .tmp-<host>-<pid>-<uuid>
        if len(parts) == 4 and parts[1] == host and parts[2].isdigit() and not _alive(int(parts[2])):
            shutil.rmtree(tmp, ignore_errors=True)
    recover(out)
    return root


def check_key(key: Any) -> str:
    """A cell key is a plain folder name (letters, digits, ``_.-``): never a path."""
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key) or key in (".", ".."):
        raise StoreError(f"{key!r} is not a valid cell key (a plain folder name is expected)")
    return key


def recover(out: str | Path) -> list[str]:
    """Put back cells whose replacement was interrupted between its two renames.

    ``write_cell`` renames the old folder to ``.old-<key>-<hex>`` and then the new one into
    place; a kill in between leaves only the old copy, which is renamed back here.  An old
    copy whose cell is in place is a leftover and is removed, as is what an interrupted
    :func:`delete_cell` left.  Returns the restored keys.
    """
    root = cells_dir(out)
    restored = []
    if not root.is_dir():
        return restored
    for trash in root.glob(".deleted-*"):  # a deletion (delete_cell) killed before its rmtree finished
        shutil.rmtree(trash, ignore_errors=True)
    for old in sorted(root.glob(".old-*")):
        key = old.name[len(".old-"):].rsplit("-", 1)[0]
        if not KEY_PATTERN.fullmatch(key):
            continue
        try:
            if (root / key).exists():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.rename(root / key)
                restored.append(key)
                logger.warning("restored cell %s from an interrupted replacement", key)
        except OSError:
            pass  # a read-only folder: readers still see the cell once someone can write
    return restored


def _host() -> str:
    return socket.gethostname().replace("-", "_")


def _alive(pid: int) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_cell(out: str | Path, key: str, record: Mapping[str, Any], arrays: Mapping[str, np.ndarray] | None) -> Path:
    """Write a cell's record (and arrays) atomically; replaces an existing cell of that key.

    The record is stored with the key it is written under and the checksum of its arrays."""
    check_key(key)
    record = {k: v for k, v in record.items() if k not in (CHECKSUM, RECORD_CHECKSUM)}
    record["key"] = key
    root = cells_dir(out)
    tmp = root / f".tmp-{_host()}-{os.getpid()}-{uuid.uuid4().hex}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as exc:
        raise StoreError(f"cannot write results to {root}: {exc.strerror or exc}") from None
    try:
        if arrays is not None:
            with open(tmp / ARRAYS, "wb") as fh:
                np.savez_compressed(fh, **arrays)
                fh.flush()
                os.fsync(fh.fileno())
            record[CHECKSUM] = file_sha256(tmp / ARRAYS)
        record[RECORD_CHECKSUM] = record_digest(record)
        with open(tmp / RECORD, "w") as fh:
            json.dump(record, fh, indent=1, sort_keys=True, default=_json_default, allow_nan=True)
            fh.flush()
            os.fsync(fh.fileno())
        final = root / key
        if final.exists():  # --force or a retry: move the old cell aside, then swap
            old = root / f".old-{key}-{uuid.uuid4().hex[:12]}"
            final.rename(old)  # a kill from here to the next rename is undone by recover()
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except OSError as exc:  # a full disk, a folder made read-only: the user's to fix, named here
        shutil.rmtree(tmp, ignore_errors=True)
        raise StoreError(f"cannot write cell {root / key}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def delete_cell(out: str | Path, key: str) -> bool:
    """Delete a stored cell; False when there is none.  The folder leaves the readers' sight in
    one rename (to ``.deleted-<key>-<hex>``) before it is removed, so a kill never leaves half a
    cell: :func:`recover` removes what is left."""
    check_key(key)
    root = cells_dir(out)
    trash = root / f".deleted-{key}-{uuid.uuid4().hex[:12]}"
    try:
        (root / key).rename(trash)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StoreError(f"cannot delete cell {root / key}: {exc.strerror or exc}") from None
    shutil.rmtree(trash, ignore_errors=True)
    return True


def record_digest(record: Mapping[str, Any]) -> str:
    """SHA-256 of a record's fields but its own checksum, in one canonical JSON form (sorted
    keys, floats as Python writes them, so a record read back gives the same text)."""
    plain = json.loads(json.dumps({k: v for k, v in record.items() if k != RECORD_CHECKSUM},
                                  default=_json_default, allow_nan=True))  # as read back: keys are strings
    text = json.dumps(plain, sort_keys=True, allow_nan=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def record_problem(record: Mapping[str, Any]) -> str | None:
    """Why a valid record cannot be trusted as written (its checksum differs), or None; a record
    without a checksum (written before there was one) is not a problem, only unverified."""
    expected = record.get(RECORD_CHECKSUM)
    if expected is not None and expected != record_digest(record):
        return "record.json does not match its checksum (a score or field edited after it was written)"
    return None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write a derived file (results.csv, leaderboard.md, a report page) whole or not at all:
    a full disk or a kill leaves the previous version, never a truncated one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name[:200]}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a record")


def validate_record(data: Any, key: str) -> str | None:
    """What is wrong with a record read from folder ``key`` (None when it is usable).

    Only the fields that readers index are checked: a record must be a JSON object whose
    ``key`` is its folder's name, with a known ``status`` and a ``cell`` naming method,
    dataset, protocol, coding, bits and seed; scores must be numbers."""
    if not isinstance(data, dict):
        return f"the record is a JSON {type(data).__name__}, not an object"
    if data.get("key") != key:
        return f"the record's key {data.get('key')!r} is not its folder's name"
    if data.get("status") not in STATUSES:
        return f"unknown status {data.get('status')!r}"
    cell = data.get("cell")
    if not isinstance(cell, dict):
        return "no 'cell' object"
    for name, kind in CELL_TYPES.items():
        if not isinstance(cell.get(name), kind) or isinstance(cell.get(name), bool):
            return f"cell.{name} is missing or not a {kind.__name__}"
    if not isinstance(cell.get("dataset"), dict) or not isinstance(cell["dataset"].get("name"), str):
        return "cell.dataset.name is missing"
    if not isinstance(cell.get("params", {}), dict):
        return "cell.params is not an object"
    metrics = data.get("metrics") or {}
    if not isinstance(metrics, dict) or not all(
            isinstance(v, dict) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v.values())
            for v in metrics.values()):
        return "metrics are not numbers by direction"
    for name in ("timings", "codes", "method_info", "environment", "split", "param_sources"):
        if not isinstance(data.get(name) or {}, dict):
            return f"{name} is not an object"
    if data.get(CHECKSUM) is not None and not isinstance(data[CHECKSUM], str):
        return f"{CHECKSUM} is not a string"
    return None


def _load_record(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        with open(folder / RECORD, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
        return None, f"unreadable record.json ({type(exc).__name__}: {exc})"
    problem = validate_record(data, folder.name) or record_problem(data)
    return (None, problem) if problem else (data, None)


def _cell_folders(out: str | Path) -> Iterable[Path]:
    root = cells_dir(out)
    if not root.is_dir():
        return
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not (folder / RECORD).is_file():
            continue
        yield folder


def iter_records(out: str | Path) -> Iterable[dict[str, Any]]:
    """Records of every complete, valid cell in a results folder.

    A record that fails :func:`validate_record` is skipped with a warning naming it (and
    ``cmhbench check``): it never crashes a reader and never lends its key to a writer."""
    for folder in _cell_folders(out):
        record, problem = _load_record(folder)
        if problem:
            logger.warning("skipping corrupt cell %s: %s (see: cmhbench check %s)", folder, problem, out)
            continue
        yield record


def read_record(out: str | Path, key: str) -> dict[str, Any]:
    """The valid record of cell ``key``; a missing or invalid one is a :class:`StoreError`."""
    folder = cells_dir(out) / check_key(key)
    if not (folder / RECORD).is_file():
        raise StoreError(f"no record for cell {key} in {out}")
    record, problem = _load_record(folder)
    if problem:
        raise StoreError(f"corrupt cell {folder}: {problem}")
    return record


def read_arrays(out: str | Path, key: str, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """A cell's arrays; with ``names``, only those (each array of the file is decompressed
    on access, so statistics over many cells read just the two they need).  A missing,
    truncated or tampered file is a one-line :class:`StoreError` naming the cell."""
    path = cells_dir(out) / check_key(key) / ARRAYS
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in (data.files if names is None else names)}
    except KeyError as exc:
        raise StoreError(f"corrupt cell {path.parent}: arrays.npz lacks {exc}") from None
    except Exception as exc:  # BadZipFile, zlib.error, EOFError, ValueError, OSError
        raise StoreError(f"corrupt cell {path.parent}: arrays.npz unreadable ({type(exc).__name__}: {exc}); "
                         f"see: cmhbench check {out}") from None


def verify_cell(out: str | Path, key: str) -> str | None:
    """What is wrong with stored cell ``key`` (None when intact): an invalid record, a
    missing arrays file for a finished cell, or arrays whose checksum does not match."""
    folder = cells_dir(out) / key
    record, problem = _load_record(folder)
    return problem or _arrays_problem(folder, record)


def _arrays_problem(folder: Path, record: Mapping[str, Any]) -> str | None:
    """What is wrong with the arrays of a cell whose record is valid (None when intact)."""
    arrays = folder / ARRAYS
    if record["status"] == "ok" and not arrays.is_file():
        return "arrays.npz is missing"
    expected = record.get(CHECKSUM)
    if arrays.is_file() and expected is not None:
        try:
            actual = file_sha256(arrays)
        except OSError as exc:
            return f"arrays.npz unreadable ({exc.strerror or exc})"
        if actual != expected:
            return "arrays.npz does not match the record's checksum (truncated or modified)"
    return None


def unverified(out: str | Path) -> list[str]:
    """Keys of the valid cells whose record has no checksum of its own (written before records
    carried one): their scores cannot be told from a hand edit."""
    return [r["key"] for r in iter_records(out) if RECORD_CHECKSUM not in r]


def check(out: str | Path) -> tuple[int, dict[str, str]]:
    """Verify every cell of a results folder: (number of cells, {key: problem} of corrupt ones)."""
    if not cells_dir(out).is_dir():
        raise StoreError(f"{out} is not a cmhbench results folder (no {CELLS}/ inside)")
    folders = list(_cell_folders(out))
    problems = {f.name: p for f in folders if (p := verify_cell(out, f.name))}
    return len(folders), problems


def done_keys(out: str | Path) -> set[str]:
    """Keys of intact cells that need no more work (``ok`` or ``not-applicable``); a corrupt
    cell is left out, so ``run`` computes it again."""
    done = set()
    for folder in _cell_folders(out):
        record, problem = _load_record(folder)
        if problem is None and record["status"] in DONE_STATUSES:
            problem = _arrays_problem(folder, record)
            if problem is None:
                done.add(folder.name)
        if problem:
            logger.warning("corrupt cell %s will be computed again: %s", folder.name, problem)
    return done


def load_results(*outs: str | Path) -> pd.DataFrame:
    """One row per cell from one or more results folders, metrics flattened as ``i2t/map@all``.

    The same cell found in several folders (runs merged from several machines) appears
    once: a finished copy is preferred to a failed one, then the latest.
    """
    rows = []
    for out in outs:
        if not cells_dir(out).is_dir():
            raise StoreError(f"{out} is not a cmhbench results folder (no {CELLS}/ inside)")
        recover(out)
        for record in iter_records(out):
            rows.append(_flatten(record, out))
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["_done"] = frame["status"].isin(DONE_STATUSES)
    frame = frame.sort_values(["_done", "finished_at"]).drop_duplicates("key", keep="last")
    return frame.drop(columns="_done").sort_values(["dataset", "method", "bits", "seed"]).reset_index(drop=True)


def config_digest(params: Mapping[str, Any]) -> str:
    """Eight hex digits naming a method's resolved hyper-parameters: two rows of one method
    with different digests are different configurations (a preset, a ``--param``)."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _flatten(record: Mapping[str, Any], out: str | Path) -> dict[str, Any]:
    cell = record["cell"]
    info = record.get("method_info", {})
    sizes = (record.get("split") or {}).get("sizes") or {}
    provenance = {name: str(source.get("provenance")) for name, source in (record.get("param_sources") or {}).items()
                  if isinstance(source, dict)}
    row = {
        "key": record["key"],
        "out": str(out),
        "method": cell["method"],
        "base": cell["base"],
        "dataset": cell["dataset"]["name"],
        "protocol": cell["protocol"],
        "features": cell.get("features", DEFAULT_FEATURES),  # records from before preprocessing existed
        "database_coding": cell["database_coding"],
        "bits": cell["bits"],
        "seed": cell["seed"],
        "preset": cell.get("preset"),
        "split": cell.get("split", DEFAULT_SPLIT),
        "tuned": (record.get("tuned") or {}).get("study"),
        "param_sources": json.dumps(provenance, sort_keys=True),
        "validation_mark": VALIDATION_MARK if record.get("tuned") or "validation" in provenance.values() else "",
        "status": record["status"],
        "error": record.get("error") or "",
        "fidelity": info.get("fidelity"),
        "kind": info.get("kind"),
        "device": record.get("device"),
        "finished_at": record.get("finished_at"),
        "variant": cell["method"] if cell["method"] != cell.get("base", cell["method"]) else "",
        "params": json.dumps(cell.get("params", {}), sort_keys=True),
        "config_digest": config_digest(cell.get("params", {})),
        # the method's and its teachers' versions (records from before versions existed: 1)
        "method_versions": json.dumps(cell.get("versions") or {cell["base"]: 1}, sort_keys=True),
        "n_queries": sizes.get("query"),
        "n_database": sizes.get("database"),
        "peak_rss_mb": (record.get("memory") or {}).get("peak_rss_mb"),
        "split_hash": (record.get("split") or {}).get("hash"),
        "release_files": ",".join(sorted(set((record.get("data_files") or {}).values()))),  # verified, differs, unknown
        "commit": (record.get("environment") or {}).get("commit"),
        "versions": json.dumps((record.get("environment") or {}).get("versions", {}), sort_keys=True),
    }
    for timing, seconds in record.get("timings", {}).items():
        row[timing] = seconds
    codes = record.get("codes") or {}
    if codes:  # the fewer distinct codes of the two coded databases: 1 = collapsed
        row["distinct_db_codes"] = min(codes[f"{d}_database"]["distinct"] for d in DIRECTIONS)
    for direction, scores in (record.get("metrics") or {}).items():
        for metric, value in scores.items():
            row[f"{direction}/{metric}"] = value
    return row


def long_results(frame: pd.DataFrame) -> pd.DataFrame:
    """Tidy form: one row per cell × direction × metric (cells without scores keep one row)."""
    metric_cols = [c for c in frame.columns if "/" in c and c.split("/", 1)[0] in DIRECTIONS]
    id_cols = [c for c in frame.columns if c not in metric_cols]
    if not metric_cols:
        return frame.assign(direction=None, metric=None, value=np.nan)
    long = frame.melt(id_vars=id_cols, value_vars=metric_cols, var_name="measure", value_name="value")
    scored = long["value"].notna()
    unscored = frame.loc[frame[metric_cols].isna().all(axis=1), id_cols]
    long = long[scored]
    long[["direction", "metric"]] = long["measure"].str.split("/", n=1, expand=True)
    long = pd.concat([long.drop(columns="measure"), unscored.assign(direction=None, metric=None, value=np.nan)])
    return long.sort_values(["dataset", "method", "bits", "seed", "direction", "metric"],
                            na_position="last").reset_index(drop=True)


# --- claims -------------------------------------------------------------------------------
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0


def claims_dir(out: str | Path) -> Path:
    return Path(out) / CLAIMS


class Claim:
    """A held claim on a cell; ``release()`` (or leaving the ``with`` block) gives it back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        self._stop.set()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _claim_owner(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


#: A claim file is created and its owner written in one breath; one still without an owner
#: after this long was cut short (a full disk) and belongs to nobody.
OWNERLESS_AFTER_S = 10.0


def _process_start(pid: int) -> float | None:
    """When process ``pid`` of this host started (seconds since the epoch), None if it is gone.
    With the pid it identifies a process: pids are reused, start times are not."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped by its parent
            return None
        return process.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, ValueError):
        return None
    except psutil.Error:  # access denied: it exists, its start time is unknown
        return 0.0


def _owner_alive(owner: Mapping[str, Any]) -> bool:
    """The claim's owner (this host) still runs: its pid exists and, where the claim recorded
    one, with the same start time (a reused pid is another process)."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        return False
    started, recorded = _process_start(pid), owner.get("pid_start")
    if started is None:
        return False
    return not isinstance(recorded, (int, float)) or not started or abs(started - recorded) < 1.0


def claim_is_stale(path: Path) -> bool:
    """Owner process gone (same host: pid and start time), no owner written (a full disk cut
    the claim short), or heartbeat silent for STALE_AFTER_S (any host, and also for a live pid
    here: after a container restart the pid may belong to another process)."""
    owner = _claim_owner(path)
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return True
    if owner.get("host") == _host():
        return not _owner_alive(owner) or age > STALE_AFTER_S
    if not owner:
        return age > OWNERLESS_AFTER_S
    return age > STALE_AFTER_S


def is_claimed(out: str | Path, key: str) -> bool:
    """A live process holds the cell's claim (a stale claim holds nothing)."""
    path = claims_dir(out) / key
    return path.exists() and not claim_is_stale(path)


def claim(out: str | Path, key: str) -> Claim | None:
    """Take the claim on ``key``, or return None while another live process holds it."""
    root = claims_dir(out)
    root.mkdir(parents=True, exist_ok=True)
    path = root / key
    owner = json.dumps({"host": _host(), "pid": os.getpid(), "pid_start": _process_start(os.getpid()),
                        "started": time.time()})
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not claim_is_stale(path):
                return None
            try:  # only one process wins the rename of a stale claim
                path.rename(root / f".stale-{key}-{uuid.uuid4().hex}")
            except FileNotFoundError:
                pass
            for old in root.glob(f".stale-{key}-*"):
                old.unlink(missing_ok=True)
            continue
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(owner)
        except OSError:  # a full disk: leave no ownerless claim to block the next run
            path.unlink(missing_ok=True)
            raise
        return Claim(path)
    return None


def drop_claim(out: str | Path, key: str, pid: int) -> None:
    """Remove the claim on ``key`` if process ``pid`` of this host holds it (a worker that was
    killed cannot release its own)."""
    path = claims_dir(out) / key
    owner = _claim_owner(path)
    if owner.get("host") == _host() and owner.get("pid") == pid:
        path.unlink(missing_ok=True)


def is_done(out: str | Path, key: str) -> bool:
    """The cell is stored intact with a finished status."""
    try:
        return read_record(out, key)["status"] in DONE_STATUSES and verify_cell(out, key) is None
    except (OSError, ValueError):
        return False


# --- progress of running cells --------------------------------------------------------------
PROGRESS_SUFFIX = ".progress"


def progress_path(out: str | Path, key: str) -> Path:
    """``OUT/claims/.<key>.progress``: the latest progress a running cell reported (hidden, so
    that claim scans skip it; removed when the cell ends)."""
    return claims_dir(out) / f".{key}{PROGRESS_SUFFIX}"


def write_progress(out: str | Path, key: str, values: Mapping[str, Any]) -> None:
    """Replace a running cell's progress file (atomic rename, no fsync: it is advisory)."""
    path = progress_path(out, key)
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(values, default=_json_default))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # progress is never worth failing a cell for


def held_claims(out: str | Path) -> list[str]:
    """Keys of the cells whose claim file exists (running, or left by a killed worker)."""
    try:
        return [p.name for p in claims_dir(out).iterdir() if not p.name.startswith(".")]
    except OSError:
        return []


def read_progress(out: str | Path) -> dict[str, dict[str, Any]]:
    """key -> the latest progress of every running cell (one whose claim is held) reporting one."""
    root = claims_dir(out)
    found = {}
    try:
        paths = list(root.glob(f".*{PROGRESS_SUFFIX}"))
    except OSError:
        return found
    for path in paths:
        key = path.name[1:-len(PROGRESS_SUFFIX)]
        if not (root / key).exists():  # left by a worker that was killed: its cell is not running
            continue
        try:
            found[key] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # replaced or removed while reading
    return found


def clear_progress(out: str | Path, key: str) -> None:
    progress_path(out, key).unlink(missing_ok=True)
