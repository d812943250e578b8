"""Content fingerprints of source files and the prepared-data cache.

Layout under the cache folder (``--cache-dir``; default ``$CMHBENCH_CACHE`` or the
user's cache directory, see :func:`default_cache_dir`)::

    CACHE/datasets/fingerprints/<hash of the path>.json   # sha256 memo: path, size, mtime, inode
    CACHE/datasets/<dataset>-<content id>/meta.json        # written last: the folder is complete
    CACHE/datasets/<dataset>-<content id>/image.npy        # float32, rows first
    CACHE/datasets/<dataset>-<content id>/text.npy         # float32
    CACHE/datasets/<dataset>-<content id>/labels.npy       # uint8 multi-hot
    CACHE/datasets/<dataset>-<content id>/given.npz        # a user file's own split, if any
    CACHE/datasets/<dataset>-<content id>/splits/<protocol>-v<V>-s<seed>.npz

A file is hashed once; later runs reuse the memo while its size, modification time and
inode are unchanged, so a 3 GB feature file is not re-read every run.  The prepared
folder is named by the content id (a hash of the source files' sha256 and the loader
version), so a changed source file misses the cache, and it is assembled in a temporary
folder and renamed into place, so readers see it complete or not at all.

The cache folder holds only what cmhbench wrote there: ``datasets/`` (above) and ``joblib/``
(the methods' bit-independent work: teachers, generators), plus a marker file
(:data:`MARKER`) written when cmhbench first uses a folder that is new, empty or holds only
those parts.  ``cmhbench cache clear`` removes those parts alone, and refuses a folder
without the marker that holds anything else (``--cache-dir ~`` must never empty a home).

Feature preprocessing (``--features``) is not stored here, by design: the folder holds the
raw arrays only, and :mod:`cmhbench.datasets.features` recomputes ``zscore``/``l2`` per
split in memory (the runner keeps one result per dataset, protocol, seed and preprocessing).
The statistics depend on a split's training rows, so an on-disk copy would be one n × d
array per protocol, seed and preprocessing, while recomputing costs milliseconds (measured,
CPU, ``zscore``: 2.6 ms on Wikipedia, 17 ms on a 20,000-row synthetic set, 0.8 s for 20,000
rows of 4,096-d image and 1,386-d text features; see docs/datasets.md).  What derives from preprocessed
data (a teacher, a generator) is cached under the content key of the training arrays it
saw, so no cache can mix preprocessings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmhbench.datasets.base import DatasetError

log = logging.getLogger(__name__)


class CacheError(DatasetError):
    """A cache folder that cannot be read, written or cleared; the message names it.

    A dataset error because a run meets it while resolving its datasets, before any cell."""

#: The entries of a cache folder that cmhbench writes, and the marker naming the folder as its own.
CACHE_PARTS = ("datasets", "joblib")
MARKER = ".cmhbench-cache"
JOBLIB_FILES = ("output.pkl", "metadata.json", "func_code.py")
JOBLIB_GITIGNORE = "# Created by joblib automatically."
FINGERPRINTS = "fingerprints"
META = "meta.json"
HASH_CHUNK = 8 * 2**20


def default_cache_dir() -> Path:
    """``$CMHBENCH_CACHE``, else the user's cache directory: shared by prepared datasets
    (its ``datasets/`` part) and the methods' bit-independent work."""
    if os.environ.get("CMHBENCH_CACHE"):
        return Path(os.environ["CMHBENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cmhbench"


@dataclass(frozen=True)
class CacheUsage:
    """Files and bytes under one part of the cache folder (``cmhbench cache info``)."""

    part: str
    files: int
    bytes: int


def _foreign_entries(folder: Path) -> list[str]:
    """Names in the folder that cmhbench did not write there (joblib's own ``.gitignore`` is its)."""
    return sorted(p.name for p in folder.iterdir()
                  if p.name not in (*CACHE_PARTS, MARKER) and not _is_joblib_gitignore(p))


def _is_joblib_gitignore(path: Path) -> bool:
    try:
        return path.name == ".gitignore" and path.is_file() and path.read_text().startswith(JOBLIB_GITIGNORE)
    except (OSError, UnicodeDecodeError):
        return False


def _looks_like_cache_part(part: Path) -> bool:
    """Whether an unmarked ``datasets/`` or ``joblib/`` folder has the layout cmhbench writes:
    prepared folders named ``<dataset>-<content id>`` and fingerprints, or joblib's output
    files.  A user's own ``datasets/`` of data files does not pass."""
    if not part.exists():
        return True
    if not part.is_dir() or part.is_symlink():
        return False
    if part.name == "datasets":
        return all(entry.name == FINGERPRINTS or entry.name.startswith(".tmp-")
                   or re.fullmatch(r".+-[0-9a-f]{20}", entry.name) and (entry / META).is_file()
                   for entry in part.iterdir())
    return all(f.name in JOBLIB_FILES for f in part.rglob("*") if f.is_file())


def _is_cache_folder(folder: Path) -> bool:
    """Marked by cmhbench, or (a folder made before the marker existed) holding only its parts,
    each laid out as cmhbench lays it out."""
    return (folder / MARKER).is_file() or (
        not _foreign_entries(folder) and all(_looks_like_cache_part(folder / name) for name in CACHE_PARTS))


def _refusal(folder: Path, what: str) -> CacheError:
    foreign = _foreign_entries(folder)
    shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    return CacheError(f"{folder} is not a cmhbench cache folder (it holds {shown}); {what}; "
                      f"name a cache folder of its own with --cache-dir")


def prepare_cache_folder(folder: Path) -> Path:
    """Create the cache folder if needed, check that it can be written, and mark it as
    cmhbench's when it is new or holds only cmhbench's parts; called before a run starts,
    so a cache folder that is a file or read-only is one error, not one per cell."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise CacheError(f"cache folder {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".tmp-write-check-"):
            pass
        if not (folder / MARKER).exists() and _is_cache_folder(folder):
            (folder / MARKER).write_text("This folder is a cmhbench cache; `cmhbench cache clear` empties it.\n")
    except OSError as exc:
        raise CacheError(f"cache folder {folder} cannot be written: {exc.strerror or exc}") from None
    return folder


def cache_usage(folder: Path) -> list[CacheUsage]:
    """Per part of the cache folder (datasets, joblib), what it holds; empty when the folder
    does not exist.  Entries cmhbench did not write are not counted as cache."""
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise CacheError(f"cache folder {folder} is a file, not a folder")
    if not _is_cache_folder(folder):
        raise _refusal(folder, "nothing of it is cache")
    usage = []
    for part in (folder / name for name in CACHE_PARTS):
        if part.is_dir():
            files = [f for f in part.rglob("*") if f.is_file()]
            usage.append(CacheUsage(part.name, len(files), sum(f.stat().st_size for f in files)))
    return usage


def clear_cache(folder: Path) -> list[str]:
    """Delete cmhbench's parts of the cache folder (all of it can be recomputed) and return
    the names of the entries left alone; a folder that is not a cache is refused whole."""
    if folder.exists() and not folder.is_dir():
        raise CacheError(f"cache folder {folder} is a file, not a folder; nothing was cleared")
    if not folder.exists():
        return []
    if not _is_cache_folder(folder):
        raise _refusal(folder, "nothing was cleared")
    try:
        for name in CACHE_PARTS:
            if (folder / name).is_dir() and not (folder / name).is_symlink():
                shutil.rmtree(folder / name)
        if _is_joblib_gitignore(folder / ".gitignore"):
            (folder / ".gitignore").unlink()
        left = _foreign_entries(folder)
        if not left:
            shutil.rmtree(folder)  # only the marker remains
    except OSError as exc:
        raise CacheError(f"cannot clear the cache folder {folder}: {exc.strerror or exc}") from None
    return left


def cache_root(cache_dir: str | Path | None) -> Path:
    """The datasets part of a cache folder (the user's default when None)."""
    if cache_dir is None:
        cache_dir = default_cache_dir()
    return Path(cache_dir).expanduser() / "datasets"


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _write_json_atomic(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(value, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_fingerprint(path: Path, root: Path | None) -> str:
    """sha256 of a file's content, memoised under ``root`` by path, size, mtime and inode."""
    path = path.resolve()
    stat = _stat_key(path)
    memo = None
    if root is not None:
        memo = root / FINGERPRINTS / (hashlib.blake2b(str(path).encode(), digest_size=16).hexdigest() + ".json")
        try:
            entry = json.loads(memo.read_text())
            if entry.get("path") == str(path) and all(entry.get(k) == v for k, v in stat.items()):
                return str(entry["sha256"])
        except (OSError, ValueError, KeyError):
            pass
    digest = sha256_of(path)
    if memo is not None:
        try:
            _write_json_atomic(memo, {"path": str(path), **stat, "sha256": digest})
        except OSError:
            pass  # a read-only cache only costs a re-hash next time
    return digest


def content_id(fields: dict[str, Any]) -> str:
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


class Prepared:
    """A prepared dataset's folder: float32 features, uint8 labels, metadata, splits."""

    ARRAYS = ("image", "text", "labels")

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def meta(self) -> dict[str, Any] | None:
        """The metadata when the folder is complete and its arrays readable, else None."""
        try:
            meta = json.loads((self.folder / META).read_text())
            for name in self.ARRAYS:
                array = np.load(self.folder / f"{name}.npy", mmap_mode="r")
                if array.shape != tuple(meta["shapes"][name]):
                    return None
            return meta
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def arrays(self) -> dict[str, np.ndarray]:
        """Read-only memory maps of the three arrays."""
        return {name: np.asarray(np.load(self.folder / f"{name}.npy", mmap_mode="r")) for name in self.ARRAYS}

    def given(self) -> dict[str, np.ndarray]:
        path = self.folder / "given.npz"
        if not path.exists():
            return {}
        with np.load(path) as npz:
            return {k: npz[k] for k in npz.files}

    # -- splits -----------------------------------------------------------------------

    def split_path(self, protocol: str, version: int, seed: int) -> Path:
        return self.folder / "splits" / f"{protocol}-v{version}-s{seed}.npz"

    def load_split(self, protocol: str, version: int, seed: int) -> dict[str, Any] | None:
        try:
            with np.load(self.split_path(protocol, version, seed)) as npz:
                return {"query": npz["query"], "train": npz["train"], "database": npz["database"],
                        "notes": tuple(json.loads(str(npz["notes"])))}
        except (OSError, ValueError, KeyError):
            return None

    def save_split(self, protocol: str, version: int, seed: int, parts: dict[str, np.ndarray],
                   notes: tuple[str, ...]) -> None:
        path = self.split_path(protocol, version, seed)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, notes=np.array(json.dumps(list(notes))), **parts)
            os.replace(tmp, path)
        except OSError:
            pass


def _host() -> str:
    return socket.gethostname().replace("-", "_")


def remove_dead_preparations(root: Path) -> None:
    """Remove the temporary folders of preparations killed on this host (their pid is gone),
    so that a killed run leaves nothing that fills the disk for the next one."""
    for tmp in root.glob(".tmp-*"):
        parts = tmp.name.split("-", 3)  # .tmp-<host>-<pid>-<random>
        if len(parts) == 4 and parts[1] == _host() and parts[2].isdigit() and tmp.is_dir():
            try:
                os.kill(int(parts[2]), 0)
            except ProcessLookupError:
                shutil.rmtree(tmp, ignore_errors=True)
            except OSError:
                pass


class PreparedWriter:
    """Assemble a prepared folder in a temporary sibling, then rename it into place."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tmp: Path | None = None
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            remove_dead_preparations(folder.parent)
            self.tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".tmp-{_host()}-{os.getpid()}-"))
        except OSError as exc:
            log.warning("dataset cache %s is not writable (%s); the dataset is prepared in memory on every load",
                        folder.parent, exc.strerror)

    @property
    def active(self) -> bool:
        return self.tmp is not None

    def free_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(self.tmp or self.folder.parent).free
        except OSError:
            return None

    def array(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A writable array: a .npy memory map in the cache, or plain memory without one."""
        if self.tmp is None:
            return np.zeros(shape, dtype=dtype)
        return np.lib.format.open_memmap(self.tmp / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)

    def save_given(self, given: dict[str, np.ndarray]) -> None:
        if self.tmp is not None and given:
            np.savez(self.tmp / "given.npz", **given)

    def commit(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> bool:
        if self.tmp is None:
            return False
        try:
            for array in arrays.values():
                if isinstance(array, np.memmap):
                    array.flush()
            (self.tmp / META).write_text(json.dumps(meta, indent=1, sort_keys=True))
            if self.folder.exists():
                if Prepared(self.folder).meta() is not None:  # another process prepared it meanwhile
                    self.abort()
                    return True
                shutil.rmtree(self.folder, ignore_errors=True)  # an incomplete leftover
            os.replace(self.tmp, self.folder)
            self.tmp = None
            return True
        except OSError as exc:
            log.warning("could not store the prepared dataset in %s (%s)", self.folder, exc.strerror)
            self.abort()
            return False

    def abort(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
