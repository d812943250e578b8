"""Progress inside running cells, for the run's bar: poll the cells' progress files.

A method reports through the contract's callback (``Hasher.report_progress``); the cell's
callback (:class:`cmhbench.harness.runner.ProgressFile`) writes the latest report beside its
claim; here the scheduling process reads the files of its own running cells twice a
second and puts "epoch i/N loss x" into the bar's postfix.  Files, not a queue or a
callback into the bar, because the cell may run in this process, a joblib worker, a Dask
worker or a child process, and all of them can write a file in OUT.
"""

from __future__ import annotations

import threading
from typing import Any, Mapping

from cmhbench import store

POLL_S = 0.5


def progress_text(label: str, report: Mapping[str, Any]) -> str:
    """'djsrh/wiki/16b/s0 epoch 3/50 loss 0.1234', 'uchm/… generator epoch 2/40 …'."""
    values = " ".join(f"{name} {value:.4g}" for name, value in (report.get("values") or {}).items())
    stage = report.get("stage") or "epoch"
    return f"{label} {stage} {report.get('done')}/{report.get('total')}" + (f" {values}" if values else "")


def running_text(out: Any, labels: Mapping[str, str]) -> str | None:
    """Progress of the running cells of ``labels`` (key -> label), joined; None if none runs.

    A running cell that has not reported yet (loading its data, a set-up step) is shown as
    'label running', so the bar never names a cell that has finished while another works."""
    reports = store.read_progress(out)
    parts = [progress_text(labels[key], reports[key]) if key in reports else f"{labels[key]} running"
             for key in sorted(store.held_claims(out)) if key in labels]
    return " | ".join(parts) if parts else None


class ProgressWatcher:
    """A daemon thread that shows running cells' progress in a tqdm bar until stopped."""

    def __init__(self, bar: Any, out: Any, labels: Mapping[str, str], interval: float = POLL_S) -> None:
        self.bar, self.out, self.labels, self.interval = bar, out, dict(labels), interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="cmhbench-progress", daemon=True)

    def _watch(self) -> None:
        shown = None
        while not self._stop.wait(self.interval):
            text = running_text(self.out, self.labels)
            if text is not None and text != shown:
                self.bar.set_postfix_str(text, refresh=True)
                shown = text

    def __enter__(self) -> "ProgressWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * self.interval)
