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
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

CELLS = "cells"
CLAIMS = "claims"
RECORD = "record.json"
ARRAYS = "arrays.npz"
DONE_STATUSES = ("ok", "not-applicable")  # failed cells are tried again


class StoreError(OSError):
    """A results folder that cannot be written or read."""


def cells_dir(out: str | Path) -> Path:
    return Path(out) / CELLS


def prepare(out: str | Path) -> Path:
    """Create ``OUT/cells`` (checking it is writable) and remove dead runs' temporary folders."""
    root = cells_dir(out)
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".probe-{uuid.uuid4().hex}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise StoreError(f"cannot write results to {Path(out)}: {exc.strerror or exc}") from None
    host = _host()
    for tmp in root.glob(".tmp-*"):
        parts = tmp.name.split("-", 3)  # .tmp-<host>-<pid>-<uuid>
        if len(parts) == 4 and parts[1] == host and parts[2].isdigit() and not _alive(int(parts[2])):
            shutil.rmtree(tmp, ignore_errors=True)
    return root


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
    """Write a cell's record (and arrays) atomically; replaces an existing cell of that key."""
    root = cells_dir(out)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{_host()}-{os.getpid()}-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        if arrays is not None:
            with open(tmp / ARRAYS, "wb") as fh:
                np.savez_compressed(fh, **arrays)
                fh.flush()
                os.fsync(fh.fileno())
        with open(tmp / RECORD, "w") as fh:
            json.dump(record, fh, indent=1, sort_keys=True, default=_json_default, allow_nan=True)
            fh.flush()
            os.fsync(fh.fileno())
        final = root / key
        if final.exists():  # --force: move the old cell aside, then swap
            old = root / f".old-{key}-{uuid.uuid4().hex}"
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a record")


def iter_records(out: str | Path) -> Iterable[dict[str, Any]]:
    """Records of every complete cell in a results folder."""
    root = cells_dir(out)
    if not root.is_dir():
        return
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not (folder / RECORD).is_file():
            continue
        try:
            with open(folder / RECORD) as fh:
                yield json.load(fh)
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"unreadable record {folder / RECORD}: {exc}") from None


def read_record(out: str | Path, key: str) -> dict[str, Any]:
    with open(cells_dir(out) / key / RECORD) as fh:
        return json.load(fh)


def read_arrays(out: str | Path, key: str, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
    """A cell's arrays; with ``names``, only those (each array of the file is decompressed
    on access, so statistics over many cells read just the two they need)."""
    with np.load(cells_dir(out) / key / ARRAYS) as data:
        return {name: data[name] for name in (data.files if names is None else names)}


def done_keys(out: str | Path) -> set[str]:
    """Keys of cells that need no more work (``ok`` or ``not-applicable``)."""
    return {r["key"] for r in iter_records(out) if r.get("status") in DONE_STATUSES}


def load_results(*outs: str | Path) -> pd.DataFrame:
    """One row per cell from one or more results folders, metrics flattened as ``i2t/map@all``.

    The same cell found in several folders (runs merged from several machines) appears
    once: a finished copy is preferred to a failed one, then the latest.
    """
    rows = []
    for out in outs:
        if not cells_dir(out).is_dir():
            raise StoreError(f"{out} is not a cmhbench results folder (no {CELLS}/ inside)")
        for record in iter_records(out):
            rows.append(_flatten(record, out))
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["_done"] = frame["status"].isin(DONE_STATUSES)
    frame = frame.sort_values(["_done", "finished_at"]).drop_duplicates("key", keep="last")
    return frame.drop(columns="_done").sort_values(["dataset", "method", "bits", "seed"]).reset_index(drop=True)


def _flatten(record: Mapping[str, Any], out: str | Path) -> dict[str, Any]:
    cell = record["cell"]
    info = record.get("method_info", {})
    row = {
        "key": record["key"],
        "out": str(out),
        "method": cell["method"],
        "base": cell["base"],
        "dataset": cell["dataset"]["name"],
        "protocol": cell["protocol"],
        "database_coding": cell["database_coding"],
        "bits": cell["bits"],
        "seed": cell["seed"],
        "preset": cell.get("preset"),
        "split": cell.get("split", "test"),
        "tuned": (record.get("tuned") or {}).get("study"),
        "status": record["status"],
        "error": record.get("error"),
        "fidelity": info.get("fidelity"),
        "kind": info.get("kind"),
        "device": record.get("device"),
        "finished_at": record.get("finished_at"),
        "params": json.dumps(cell.get("params", {}), sort_keys=True),
        "split_hash": (record.get("split") or {}).get("hash"),
        "commit": (record.get("environment") or {}).get("commit"),
        "versions": json.dumps((record.get("environment") or {}).get("versions", {}), sort_keys=True),
    }
    for timing, seconds in record.get("timings", {}).items():
        row[timing] = seconds
    codes = record.get("codes") or {}
    if codes:  # the fewer distinct codes of the two coded databases: 1 = collapsed
        row["distinct_db_codes"] = min(codes[f"{d}_database"]["distinct"] for d in ("i2t", "t2i"))
    for direction, scores in (record.get("metrics") or {}).items():
        for metric, value in scores.items():
            row[f"{direction}/{metric}"] = value
    return row


def long_results(frame: pd.DataFrame) -> pd.DataFrame:
    """Tidy form: one row per cell × direction × metric (cells without scores keep one row)."""
    metric_cols = [c for c in frame.columns if "/" in c and c.split("/", 1)[0] in ("i2t", "t2i")]
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


def claim_is_stale(path: Path) -> bool:
    """Owner process gone (same host) or heartbeat silent for STALE_AFTER_S (any host)."""
    owner = _claim_owner(path)
    if owner.get("host") == _host() and isinstance(owner.get("pid"), int):
        return not _alive(owner["pid"])
    try:
        return time.time() - path.stat().st_mtime > STALE_AFTER_S
    except FileNotFoundError:
        return True


def claim(out: str | Path, key: str) -> Claim | None:
    """Take the claim on ``key``, or return None while another live process holds it."""
    root = claims_dir(out)
    root.mkdir(parents=True, exist_ok=True)
    path = root / key
    owner = json.dumps({"host": _host(), "pid": os.getpid(), "started": time.time()})
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
        with os.fdopen(fd, "w") as fh:
            fh.write(owner)
        return Claim(path)
    return None


def dead_claims(out: str | Path) -> set[str]:
    """Keys whose claim belongs to a dead process on this host (a worker that was killed)."""
    root = claims_dir(out)
    if not root.is_dir():
        return set()
    dead = set()
    for path in root.iterdir():
        owner = _claim_owner(path)
        if not path.name.startswith(".") and owner.get("host") == _host() and not _alive(owner.get("pid", -1)):
            dead.add(path.name)
    return dead


def is_done(out: str | Path, key: str) -> bool:
    try:
        return read_record(out, key).get("status") in DONE_STATUSES
    except (OSError, ValueError):
        return False
