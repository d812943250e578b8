"""What ``cmhbench list datasets [--data-dir DIR]`` shows: each dataset, its files, where
they are looked for, which are present, and how to obtain the missing ones.

Nothing is read but a present file that has a release checksum: its size, then (when the
size matches) its sha256, memoised in the cache folder as every file fingerprint is, so only
the first listing of a file hashes it.  The protocols with published numbers come from the
caller (``cmhbench.published``), which this package does not import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cmhbench.datasets.cache import cache_root
from cmhbench.datasets.registry import available, default_data_dir


@dataclass
class FileStatus:
    role: str
    names: tuple[str, ...]
    keys: tuple[str, ...]
    holds: str
    found: Path | None
    release: str = ""  # verified / differs / unknown (cmhbench.datasets.real); '' when absent

    @property
    def present(self) -> bool:
        return self.found is not None


@dataclass
class DatasetEntry:
    name: str
    summary: str
    protocols: tuple[str, ...] = ()
    default_protocol: str = ""
    folders: list[Path] = field(default_factory=list)
    files: list[FileStatus] = field(default_factory=list)
    alternative: str = ""
    obtain: str = ""
    builtin: bool = False
    published: tuple[str, ...] = ()  # protocols with published numbers a cell can be compared with

    @property
    def status(self) -> str:
        if self.builtin:
            return "built in"
        if not self.files:
            return "plugin"
        missing = sum(not f.present for f in self.files)
        return "ready" if missing == 0 else f"missing {missing} of {len(self.files)} files"


def _data_dir(data_dir: str | Path | None) -> tuple[Path | None, str]:
    if data_dir is not None:
        return Path(data_dir).expanduser(), "--data-dir"
    env = default_data_dir()
    return (env, "$CMHBENCH_DATA") if env is not None else (None, "")


def _file_status(expected, found: Path | None) -> FileStatus:
    from cmhbench.datasets.real import file_state

    state = ""
    if found is not None:
        try:
            state = file_state(found, cache_root(None))
        except OSError:
            state = ""  # unreadable: the run names it; listing stays a listing
    return FileStatus(expected.role, expected.names, expected.keys, expected.holds, found, state)


def catalog(data_dir: str | Path | None = None,
            published: Mapping[str, Sequence[str]] | None = None) -> list[DatasetEntry]:
    """One entry per registered dataset, with file presence under ``data_dir`` (default $CMHBENCH_DATA),
    each present file's release state, and ``published`` (dataset -> protocols with published numbers)."""
    from cmhbench.datasets.real import SPECS, Finder

    folder, _ = _data_dir(data_dir)
    published = published or {}
    entries = []
    for name, summary in available().items():
        spec = SPECS.get(name)
        if spec is None:
            entries.append(DatasetEntry(name, summary, builtin=name == "synthetic",
                                        protocols=("synthetic",) if name == "synthetic" else (),
                                        default_protocol="synthetic" if name == "synthetic" else "",
                                        published=tuple(published.get(name, ()))))
            continue
        finder = Finder(spec, folder)
        files = [_file_status(e, finder.find(e.names)) for e in spec.files]
        entries.append(DatasetEntry(name, summary, spec.protocols, spec.default_protocol, finder.folders(), files,
                                    spec.alternative, spec.obtain, published=tuple(published.get(name, ()))))
    return entries


def _rows(entries: list[DatasetEntry]) -> tuple[list[list[str]], list[str]]:
    table = []
    for entry in entries:
        protocols = ", ".join(f"{p}*" if p == entry.default_protocol else p for p in entry.protocols)
        table.append([entry.name, entry.status, protocols, ", ".join(entry.published) or "—", entry.summary])
    return table, ["dataset", "status", "protocols (* default)", "published numbers", "description"]


def rows(data_dir: str | Path | None = None,
         published: Mapping[str, Sequence[str]] | None = None) -> tuple[list[list[str]], list[str]]:
    """A summary table: (rows, headers) for ``tabulate``."""
    return _rows(catalog(data_dir, published))


def listing(data_dir: str | Path | None = None, published: Mapping[str, Sequence[str]] | None = None) -> str:
    """The full text of ``cmhbench list datasets``: the table, then each dataset's files.
    ``published``: dataset -> the protocols that have published numbers (``cmhbench.published``)."""
    from tabulate import tabulate

    from cmhbench.datasets.real import RELEASE_STATES

    folder, origin = _data_dir(data_dir)
    entries = catalog(data_dir, published)
    table, headers = _rows(entries)
    lines = [tabulate(table, headers=headers), ""]
    if folder is None:
        lines.append("Data folder: none given — pass --data-dir DIR or set CMHBENCH_DATA.")
    else:
        exists = "" if folder.is_dir() else " (does not exist)"
        lines.append(f"Data folder: {folder}{exists} (from {origin}); each dataset is looked for in DIR/<folder>/ "
                     "for each of its folder names, then in DIR/.")
    lines.append("Your own features: --datasets path/to/file.npz|.mat|.h5 with arrays image, text, labels "
                 "(optional query_idx, train_idx, database_idx); see docs/datasets.md.")
    if published is not None:
        lines.append("Published numbers: protocols with values in cmhbench's published tables "
                     "(cmhbench leaderboard --published puts them beside yours).")
    for entry in entries:
        if not entry.files:
            continue
        lines += ["", f"{entry.name}: {entry.status}"]
        if entry.folders:
            lines.append(f"  looks in: {', '.join(str(f) for f in entry.folders)}")
        for f in entry.files:
            names = " or ".join(f.names)
            state = f"present: {f.found}" if f.present else "MISSING"
            if f.release:
                state += f" — {RELEASE_STATES[f.release]}"
            lines.append(f"  {f.role:<6} {names} [{', '.join(f.keys)}] — {f.holds} — {state}")
        if entry.alternative:
            lines.append(f"  alternatively: {entry.alternative}")
        if any(not f.present for f in entry.files):
            lines.append(f"  obtain: {entry.obtain}")
    return "\n".join(lines) + "\n"
