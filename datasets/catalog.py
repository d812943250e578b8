"""What ``cmhbench list datasets [--data-dir DIR]`` shows: each dataset, its files, where
they are looked for, which are present, and how to obtain the missing ones.

Only file presence is checked (no hashing, no reading), so listing is instant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cmhbench.datasets.registry import available, default_data_dir


@dataclass
class FileStatus:
    role: str
    names: tuple[str, ...]
    keys: tuple[str, ...]
    holds: str
    found: Path | None

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


def catalog(data_dir: str | Path | None = None) -> list[DatasetEntry]:
    """One entry per registered dataset, with file presence under ``data_dir`` (default $CMHBENCH_DATA)."""
    from cmhbench.datasets.real import SPECS, Finder

    folder, _ = _data_dir(data_dir)
    entries = []
    for name, summary in available().items():
        spec = SPECS.get(name)
        if spec is None:
            entries.append(DatasetEntry(name, summary, builtin=name == "synthetic",
                                        protocols=("synthetic",) if name == "synthetic" else (),
                                        default_protocol="synthetic" if name == "synthetic" else ""))
            continue
        finder = Finder(spec, folder)
        files = [FileStatus(e.role, e.names, e.keys, e.holds, finder.find(e.names)) for e in spec.files]
        entries.append(DatasetEntry(name, summary, spec.protocols, spec.default_protocol, finder.folders(), files,
                                    spec.alternative, spec.obtain))
    return entries


def rows(data_dir: str | Path | None = None) -> tuple[list[list[str]], list[str]]:
    """A summary table: (rows, headers) for ``tabulate``."""
    table = []
    for entry in catalog(data_dir):
        protocols = ", ".join(f"{p}*" if p == entry.default_protocol else p for p in entry.protocols)
        table.append([entry.name, entry.status, protocols, entry.summary])
    return table, ["dataset", "status", "protocols (* default)", "description"]


def listing(data_dir: str | Path | None = None) -> str:
    """The full text of ``cmhbench list datasets``: the table, then each dataset's files."""
    from tabulate import tabulate

    folder, origin = _data_dir(data_dir)
    table, headers = rows(data_dir)
    lines = [tabulate(table, headers=headers), ""]
    if folder is None:
        lines.append("Data folder: none given — pass --data-dir DIR or set CMHBENCH_DATA.")
    else:
        exists = "" if folder.is_dir() else " (does not exist)"
        lines.append(f"Data folder: {folder}{exists} (from {origin}); each dataset is looked for in DIR/<folder>/ "
                     "for each of its folder names, then in DIR/.")
    lines.append("Your own features: --datasets path/to/file.npz|.mat|.h5 with arrays image, text, labels "
                 "(optional query_idx, train_idx, database_idx); see docs/datasets.md.")
    for entry in catalog(data_dir):
        if not entry.files:
            continue
        lines += ["", f"{entry.name}: {entry.status}"]
        if entry.folders:
            lines.append(f"  looks in: {', '.join(str(f) for f in entry.folders)}")
        for f in entry.files:
            names = " or ".join(f.names)
            state = f"present: {f.found}" if f.present else "MISSING"
            lines.append(f"  {f.role:<6} {names} [{', '.join(f.keys)}] — {f.holds} — {state}")
        if entry.alternative:
            lines.append(f"  alternatively: {entry.alternative}")
        if any(not f.present for f in entry.files):
            lines.append(f"  obtain: {entry.obtain}")
    return "\n".join(lines) + "\n"
