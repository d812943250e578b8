"""Many cells: skip the stored ones, run the rest in worker processes or on Dask.

Every worker claims, runs and writes its own cells (see :mod:`cmhbench.harness.runner`), so
nothing finished is lost when the scheduling process dies, and resuming is running the
same grid again: cells whose folder holds an intact ``ok`` or ``not-applicable`` record
are skipped, failed and corrupt ones are computed again.

Locally (``--jobs N``, serial included) each cell runs in one of N persistent worker
processes (:mod:`cmhbench.harness.pool`), so that nothing a method does — an exception,
``sys.exit``, a signal, the out-of-memory killer, a native call that ignores
``--timeout`` — can end the run: the worker's death is charged to the one cell it was
running, which is retried once in a fresh worker and then stored as failed.  A cluster is
Dask's, through joblib's Dask backend.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import AbstractContextManager, nullcontext
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

from tqdm.auto import tqdm

from cmhbench import store
from cmhbench.datasets import DatasetSource
from cmhbench.errors import UserError
from cmhbench.harness.grid import Cell
from cmhbench.methods import registry
from cmhbench.harness.pool import WORKER_DIED, run_in_workers
from cmhbench.harness.progress import ProgressWatcher
from cmhbench.harness.runner import CellOutcome, RunContext, run_and_store

HELD_POLL_S = 0.5  # how often a run looks again at the cells another run holds

logger = logging.getLogger(__name__)


@dataclass
class RunSummary:
    total: int
    skipped: int
    outcomes: list[CellOutcome] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def counts(self) -> Counter:
        return Counter(o.status for o in self.outcomes)

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def line(self) -> str:
        c = self.counts
        computed = c["ok"] + c["failed"] + c["not-applicable"]
        rate = computed / self.wall_s * 3600 if self.wall_s > 0 and computed else 0.0
        parts = [f"{self.total} cells: {self.skipped + c['skipped']} already stored, {computed} computed "
                 f"(ok {c['ok']}, failed {c['failed']}, not applicable {c['not-applicable']})"]
        if c["running-elsewhere"]:
            parts.append(f"{c['running-elsewhere']} left to another run that holds them")
        parts.append(f"wall {self.wall_s:.1f} s, {rate:.0f} cells/hour")
        return "; ".join(parts)


def plan(cells: list[Cell], out: os.PathLike | str, force: bool = False) -> tuple[list[Cell], int]:
    """The cells still to compute, and how many are skipped because they are stored."""
    unique = list({c.key: c for c in cells}.values())
    if force:
        return unique, 0
    done = store.done_keys(out)
    todo = [c for c in unique if c.key not in done]
    return todo, len(unique) - len(todo)


def longest_first(cells: list[Cell]) -> list[Cell]:
    """Parallel order: cells expected to take longest go first (deep before shallow, then
    longer codes), so that no worker starts a long cell when the others are nearly done
    (the greedy longest-processing-time rule)."""
    return sorted(cells, key=lambda c: (registry.get(c.base).info.kind != "deep", -c.bits))


class BackendError(UserError, RuntimeError):
    """A backend asked for that cannot run here (dask not installed, scheduler unreachable)."""


def _needs_gpu(cell: Cell, ctx: RunContext) -> bool:
    return ctx.device != "cpu" and registry.get(cell.base).info.kind == "deep"


def _dask(todo: list[Cell], sources: Mapping[str, DatasetSource], ctx: RunContext,
          scheduler: str | None) -> Iterator[CellOutcome]:
    """Run on a dask.distributed cluster through joblib's Dask backend; deep cells that may
    use a GPU are sent to workers that declare a ``GPU`` resource when any worker does, one
    task each, asking for ``1/cells_per_gpu`` of it (:mod:`cmhbench.harness.gpu_slots`)."""
    try:
        from distributed import Client
    except ImportError:
        raise BackendError("the dask backend needs dask.distributed: pip install 'cmhbench[dask]'") from None
    from joblib import Parallel, delayed, parallel_config

    try:
        client = Client(scheduler) if scheduler else Client(processes=True)
    except OSError as exc:  # unreachable address, timeout (TimeoutError is an OSError)
        raise BackendError(f"cannot reach the dask scheduler {scheduler or '(local cluster)'}: {exc}") from None
    try:
        workers = client.scheduler_info().get("workers", {}).values()
        has_gpu_workers = any("GPU" in (w.get("resources") or {}) for w in workers)
        gpu = [c for c in todo if has_gpu_workers and _needs_gpu(c, ctx)]
        cpu = [c for c in todo if c not in gpu]
        # --cells-per-gpu K: each deep cell asks for 1/K of a worker's GPU, so K run at once
        share = {"resources": {"GPU": 1.0 / ctx.cells_per_gpu}}
        for cells, resources, batch in ((cpu, {}, "auto"), (gpu, share, 1)):
            if not cells:
                continue
            with parallel_config(backend="dask", wait_for_workers_timeout=60, **resources):
                yield from Parallel(n_jobs=-1, return_as="generator_unordered", batch_size=batch)(
                    delayed(run_and_store)(cell, sources[cell.dataset_name], ctx) for cell in cells
                )
    finally:
        client.close()


def _watching(bar: tqdm, ctx: RunContext, todo: list[Cell]) -> AbstractContextManager:
    """Show the progress running cells report (epoch, loss) in the bar while it is shown."""
    if bar.disable:
        return nullcontext()
    return ProgressWatcher(bar, ctx.out, {c.key: c.label for c in todo})


def worker_count(jobs: int, cells: int) -> int:
    """``--jobs`` capped at the number of cells and of cores (-1 = all cores), with a note:
    more workers than either only costs start-up time and memory."""
    cores = os.cpu_count() or 1
    asked = cores if jobs == -1 else jobs
    workers = max(1, min(asked, cells, cores))
    if jobs != -1 and workers < asked and cells:
        limit = "cells to compute" if cells <= cores else "CPU cores"
        logger.warning("note: --jobs %d capped to %d (the number of %s)", jobs, workers, limit)
    return workers


def run_cells(cells: list[Cell], sources: Mapping[str, DatasetSource], ctx: RunContext, *,
              jobs: int = 1, backend: str = "loky", scheduler: str | None = None,
              progress: bool = True) -> RunSummary:
    """Run every cell not yet stored in ``ctx.out``; returns what happened to each."""
    start = time.perf_counter()
    store.prepare(ctx.out)
    todo, skipped = plan(cells, ctx.out, ctx.force)
    summary = RunSummary(total=len(todo) + skipped, skipped=skipped)
    with tqdm(total=len(todo), desc="cells", unit="cell", disable=not progress or not todo,
              dynamic_ncols=True) as bar, _watching(bar, ctx, todo):
        outcomes: Iterable[CellOutcome]
        if backend == "dask":
            outcomes = _dask(longest_first(todo), sources, ctx, scheduler)
        else:
            workers = worker_count(jobs, len(todo))
            order = todo if workers == 1 else longest_first(todo)
            outcomes = run_in_workers(order, sources, ctx, workers)
        for outcome in outcomes:
            summary.outcomes.append(outcome)
            if outcome.status == "failed":
                bar.write(f"failed: {outcome.label}: {outcome.error}")
            bar.set_postfix_str(outcome.label, refresh=False)
            bar.update()
    _await_cells_held_elsewhere(summary, {c.key: c for c in todo}, sources, ctx)
    summary.wall_s = time.perf_counter() - start
    return summary


def _await_cells_held_elsewhere(summary: RunSummary, cells: Mapping[str, Cell],
                                sources: Mapping[str, DatasetSource], ctx: RunContext) -> None:
    """Wait for the cells another live run holds: each ends stored by that run (counted as
    already stored) or, when its holder dies, computed here.  A run therefore never ends with
    cells undone that it was asked for, and a second run of the same grid exits when the grid
    is complete."""
    held = {o.key: i for i, o in enumerate(summary.outcomes) if o.status == "running-elsewhere"}
    if held:
        logger.warning("waiting for %d cell(s) that another run holds; Ctrl-C stops waiting (finished cells "
                       "stay stored)", len(held))
    while held:
        time.sleep(HELD_POLL_S)
        for key, index in list(held.items()):
            if store.is_done(ctx.out, key):
                summary.outcomes[index] = CellOutcome(key, cells[key].label, "skipped")
                del held[key]
            elif not store.is_claimed(ctx.out, key):  # its holder died: compute it here
                (outcome,) = run_in_workers([cells[key]], sources, ctx, 1)
                summary.outcomes[index] = outcome
                if outcome.status != "running-elsewhere":
                    del held[key]
