"""Reading the arrays of the community's dataset files, whatever their container.

Supported containers, recognised by content (not by suffix):

- MATLAB v4/v5/v7 ``.mat`` through :mod:`scipy.io` (one variable is read at a time);
- MATLAB v7.3 ``.mat``, which is HDF5 with a MATLAB header, through :mod:`h5py`.  MATLAB
  writes column-major arrays, so an ``n × d`` matrix is stored as ``d × n``: its axes are
  reversed here, and rows are read in blocks without loading the file whole;
- plain HDF5 (``.h5``, ``.hdf5``, ``.h5py``) through :mod:`h5py`, rows first (as written
  by NumPy/h5py), read in blocks;
- NumPy ``.npz``, whose member headers give the shapes without loading the arrays.

Every failure — unreadable, truncated or corrupt file, missing key, non-numeric array —
is a one-line :class:`~cmhbench.datasets.base.DatasetError` naming the file, its folder
and the key.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np

from cmhbench.datasets.base import DatasetError

MAT5, MAT73, HDF5, NPZ = "mat-v5", "mat-v7.3", "hdf5", "npz"
BLOCK_BYTES = 64 * 2**20  # rows are converted this many source bytes at a time


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def where(path: Path) -> str:
    """``file.mat in /folder``: how messages name a file."""
    return f"{path.name} in {path.absolute().parent}"


def detect_format(path: Path) -> str:
    """The container of ``path``, from its first bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(128)
    except OSError as exc:
        raise DatasetError(f"{where(path)}: cannot be read ({one_line(exc.strerror or exc)})") from None
    if head.startswith(b"PK"):
        return NPZ
    try:
        import h5py
    except ImportError:  # h5py is a dependency; without it only HDF5 files fail, with a clear message
        h5py = None
    if h5py is None and (head.startswith(b"\x89HDF") or head.startswith(b"MATLAB 7.3")):
        raise DatasetError(f"{where(path)}: is HDF5 (MATLAB v7.3); reading it needs h5py: pip install h5py")
    if h5py is not None and h5py.is_hdf5(str(path)):
        return MAT73 if head.startswith(b"MATLAB 7.3") or path.suffix.lower() == ".mat" else HDF5
    if head.startswith(b"\x89HDF"):  # an HDF5 signature h5py does not accept: truncated
        return HDF5
    if not head:
        raise DatasetError(f"{where(path)}: the file is empty (truncated download?)")
    suffix = path.suffix.lower()
    if suffix != ".mat" or _looks_like_text(head):
        expected = {".npz": "an .npz (zip) archive", ".mat": "a MATLAB file"}.get(suffix, "an HDF5 file")
        kind = "text" if _looks_like_text(head) else "of no format cmhbench reads"
        raise DatasetError(f"{where(path)}: is not {expected}: its content is {kind} "
                           f"(it starts {head[:24]!r}); was another file saved under this name?")
    return MAT5  # MATLAB v5 has a text header; v4 has none, so scipy judges the rest


def _looks_like_text(head: bytes) -> bool:
    """Printable ASCII or UTF-8 text without a MATLAB header (a CSV, a note, an HTML error page)."""
    if head.startswith(b"MATLAB"):
        return False
    for cut in range(4):  # the 128 bytes read may end inside a multi-byte character
        try:
            text = head[:len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return bool(text) and all(ch.isprintable() or ch in "\t\r\n" for ch in text)
    return False


def v5_truncation(path: Path) -> str | None:
    """Why a MATLAB v5 file is cut short, or None: walks the top-level element tags.

    scipy lists the variables of a truncated file up to the cut without complaint, which
    would read as "missing key"; the tags say how long each element is.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        header = fh.read(128)
        if not header.startswith(b"MATLAB 5.0") or len(header) < 128:
            return None  # MATLAB v4 (no header): scipy's own checks apply
        order = "<" if header[126:128] == b"IM" else ">"
        position = 128
        while position < size:
            fh.seek(position)
            tag = fh.read(8)
            if len(tag) < 8:
                return f"{size - position} stray bytes at the end"
            kind, nbytes = np.frombuffer(tag, dtype=f"{order}u4")
            if kind >> 16:  # small data element: type and size share the first word
                position += 8
                continue
            end = position + 8 + int(nbytes)
            if kind != 15 and nbytes % 8:  # uncompressed elements are padded to 8 bytes
                end += 8 - int(nbytes) % 8
            if end > size:
                return f"an element needs {end - size:,} more bytes than the file's {size:,}"
            position = end
    return None


class ArrayFile:
    """One file's arrays: names and row-first shapes from the headers, data on demand.

    ``shapes`` maps every numeric array to its shape as the benchmark sees it (rows
    first, MATLAB v7.3 axes reversed); arrays of other kinds (cells, structs, strings)
    are listed in ``others`` so that a missing-key message can name everything found.
    """

    def __init__(self, path: str | Path, dataset: str = "") -> None:
        self.path = Path(path)
        self.dataset = dataset
        self.format = detect_format(self.path)
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.others: list[str] = []
        self._loaded: dict[str, np.ndarray] = {}
        try:
            getattr(self, f"_scan_{self.format.replace('-', '_').replace('.', '')}")()
        except DatasetError:
            raise
        except Exception as exc:  # every reader has its own exception types
            raise self.corrupt(exc) from None

    # -- messages ---------------------------------------------------------------------

    def _prefix(self) -> str:
        return f"{self.dataset}: {where(self.path)}" if self.dataset else where(self.path)

    def corrupt(self, exc: BaseException) -> DatasetError:
        return DatasetError(f"{self._prefix()}: cannot be read as {self.format} — truncated or corrupt? "
                            f"({type(exc).__name__}: {one_line(exc)})")

    def found(self) -> str:
        names = sorted(self.shapes) + sorted(self.others)
        return ", ".join(names) if names else "no arrays"

    def require(self, *keys: str) -> None:
        """Raise naming the keys found when any of ``keys`` is not a numeric array here."""
        missing = [k for k in keys if k not in self.shapes]
        if missing:
            what = "key" if len(missing) == 1 else "keys"
            not_numeric = [k for k in missing if k in self.others]
            detail = f" ({', '.join(not_numeric)} not numeric)" if not_numeric else ""
            raise DatasetError(f"{self._prefix()}: missing {what} {', '.join(repr(k) for k in missing)}"
                               f"{detail} (found: {self.found()})")

    def first_of(self, keys: tuple[str, ...]) -> str:
        """The first of ``keys`` present, or an error naming all of them and the keys found."""
        for key in keys:
            if key in self.shapes:
                return key
        wanted = " or ".join(repr(k) for k in keys)
        raise DatasetError(f"{self._prefix()}: missing key {wanted} (found: {self.found()})")

    # -- header scans -----------------------------------------------------------------

    def _scan_mat_v5(self) -> None:
        import scipy.io

        problem = v5_truncation(self.path)
        if problem:
            raise DatasetError(f"{self._prefix()}: cannot be read as {self.format} — truncated or corrupt? "
                               f"({problem})")
        for name, shape, cls in scipy.io.whosmat(str(self.path)):
            if name.startswith("__"):
                continue
            if cls in ("cell", "struct", "char", "object", "function_handle", "opaque"):
                self.others.append(name)
            else:
                self.shapes[name] = tuple(int(s) for s in shape)

    def _scan_hdf(self, reverse: bool) -> None:
        import h5py

        with h5py.File(self.path, "r") as fh:
            def visit(name: str, obj: object) -> None:
                if name.startswith("#") or not isinstance(obj, h5py.Dataset):
                    return
                if obj.dtype.kind in "biuf" and obj.ndim >= 1:
                    matlab_class = obj.attrs.get("MATLAB_class", b"")
                    if isinstance(matlab_class, bytes) and matlab_class in (b"char", b"cell", b"struct"):
                        self.others.append(name)
                        return
                    shape = tuple(int(s) for s in obj.shape)
                    self.shapes[name] = shape[::-1] if reverse else shape
                else:
                    self.others.append(name)

            fh.visititems(visit)

    def _scan_mat_v73(self) -> None:
        self._scan_hdf(reverse=True)

    def _scan_hdf5(self) -> None:
        self._scan_hdf(reverse=False)

    def _scan_npz(self) -> None:
        with zipfile.ZipFile(self.path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                name = info.filename[:-4]
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                if dtype.kind in "biuf" and len(shape) >= 1:
                    self.shapes[name] = tuple(int(s) for s in shape)
                else:
                    self.others.append(name)

    # -- data -------------------------------------------------------------------------

    def read(self, key: str) -> np.ndarray:
        """The whole array, rows first, in its stored dtype."""
        self.require(key)
        if key in self._loaded:
            return self._loaded[key]
        try:
            if self.format == MAT5:
                import scipy.io

                value = scipy.io.loadmat(str(self.path), variable_names=[key])[key]
                array = value.toarray() if hasattr(value, "toarray") else np.asarray(value)
            elif self.format == NPZ:
                with np.load(self.path, allow_pickle=False) as npz:
                    array = npz[key]
            else:
                import h5py

                with h5py.File(self.path, "r") as fh:
                    array = fh[key][()]
                if self.format == MAT73:
                    array = array.T
        except DatasetError:
            raise
        except Exception as exc:
            raise self.corrupt(exc) from None
        self._loaded[key] = array
        return array

    def blocks(self, key: str) -> Iterator[tuple[int, np.ndarray]]:
        """``(first_row, rows)`` blocks of a 2-D array, read lazily from HDF5 containers."""
        self.require(key)
        if self.format in (MAT5, NPZ):
            array = self.read(key)
            yield 0, array
            self.forget(key)
            return
        import h5py

        rows, cols = (self.shapes[key] + (1,))[:2]
        try:
            with h5py.File(self.path, "r") as fh:
                data = fh[key]
                step = max(1, BLOCK_BYTES // max(1, cols * data.dtype.itemsize))
                for start in range(0, rows, step):
                    stop = min(rows, start + step)
                    if self.format == MAT73:
                        block = data[:, start:stop].T if data.ndim == 2 else data[start:stop]
                    else:
                        block = data[start:stop]
                    yield start, block
        except DatasetError:
            raise
        except Exception as exc:
            raise self.corrupt(exc) from None

    def forget(self, key: str) -> None:
        self._loaded.pop(key, None)
