"""What a record says about where and how it was computed: versions, commit, memory."""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psutil

import cmhbench

_PACKAGES = ("numpy", "scipy", "numba", "torch", "pandas", "joblib")


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the cmhbench source tree, with ``-dirty`` if it has local changes."""
    here = Path(cmhbench.__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    versions = {"cmhbench": cmhbench.__version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "versions": versions,
        "commit": git_commit(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "host": socket.gethostname(),
        "executable": sys.executable,
    }


def _rss_bytes() -> int | None:
    """This process's resident memory now, in bytes (psutil reads it portably: Linux, macOS, Windows)."""
    try:
        return int(psutil.Process().memory_info().rss)
    except (psutil.Error, OSError):
        return None


class PeakMemory:
    """Peak resident memory of this process while the block runs (sampled every 10 ms).

    ``ru_maxrss`` would only give the process's lifetime peak, which in a worker that ran
    several cells says nothing about this one; sampling gives the peak of this cell.
    ``peak_bytes`` stays None where the resident size cannot be read.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak_bytes: int | None = None
        self._stop = threading.Event()

    def __enter__(self) -> "PeakMemory":
        self.peak_bytes = _rss_bytes()
        if self.peak_bytes is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._update()

    def _update(self) -> None:
        rss = _rss_bytes()
        if rss is not None and rss > (self.peak_bytes or 0):
            self.peak_bytes = rss

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.peak_bytes is not None:
            self._thread.join()
            self._update()

    @property
    def peak_mb(self) -> float | None:
        return None if self.peak_bytes is None else round(self.peak_bytes / 2**20, 1)
