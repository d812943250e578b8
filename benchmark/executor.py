"""Many cells: skip the stored ones, run the rest serially or on joblib workers.

Every worker writes its own cell folders (see :mod:`cmhbench.runner`), so nothing
finished is lost when the scheduling process dies, and resuming is just running the
same grid again: cells whose folder holds an ``ok`` or ``not-applicable`` record are
skipped, failed ones are tried again.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

from tqdm.auto import tqdm

from cmhbench import store
from cmhbench.datasets import DatasetSource
from cmhbench.grid import Cell
from cmhbench.runner import CellOutcome, RunContext, run_and_store


@dataclass
class RunSummary:
    total: int
    skipped: int
    outcomes: list[CellOutcome] = field(default_factory=list)

    @property
    def counts(self) -> Counter:
        return Counter(o.status for o in self.outcomes)

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def plan(cells: list[Cell], out: os.PathLike | str, force: bool = False) -> tuple[list[Cell], int]:
    """The cells still to compute, and how many are skipped because they are stored."""
    unique = list({c.key: c for c in cells}.values())
    if force:
        return unique, 0
    done = store.done_keys(out)
    todo = [c for c in unique if c.key not in done]
    return todo, len(unique) - len(todo)


def _serial(todo: list[Cell], sources: Mapping[str, DatasetSource], ctx: RunContext,
            bar: tqdm) -> Iterator[CellOutcome]:
    for cell in todo:
        bar.set_postfix_str(cell.label, refresh=True)
        yield run_and_store(cell, sources[cell.dataset_name], ctx)


def _joblib(todo: list[Cell], sources: Mapping[str, DatasetSource], ctx: RunContext,
            jobs: int) -> Iterable[CellOutcome]:
    from joblib import Parallel, delayed

    return Parallel(n_jobs=jobs, return_as="generator_unordered")(
        delayed(run_and_store)(cell, sources[cell.dataset_name], ctx) for cell in todo
    )


def run_cells(cells: list[Cell], sources: Mapping[str, DatasetSource], ctx: RunContext, *,
              jobs: int = 1, force: bool = False, progress: bool = True) -> RunSummary:
    """Run every cell not yet stored in ``ctx.out``; returns what happened to each."""
    store.prepare(ctx.out)
    todo, skipped = plan(cells, ctx.out, force)
    summary = RunSummary(total=len(todo) + skipped, skipped=skipped)
    with tqdm(total=len(todo), desc="cells", unit="cell", disable=not progress or not todo,
              dynamic_ncols=True) as bar:
        outcomes = _serial(todo, sources, ctx, bar) if jobs == 1 else _joblib(todo, sources, ctx, jobs)
        for outcome in outcomes:
            summary.outcomes.append(outcome)
            if outcome.status == "failed":
                bar.write(f"failed: {outcome.label}: {outcome.error}")
            bar.set_postfix_str(outcome.label, refresh=False)
            bar.update()
    return summary
