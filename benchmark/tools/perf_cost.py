"""``python -m cmhbench.tools.perf cost``: what one cell of each method costs at a public dataset's size.

For every registered method (shallow, deep and the reference alike), on synthetic features of
a public dataset's shape (:data:`cmhbench.datasets.synthetic.SHAPES`; no files needed), it
measures the three phases of a cell as the runner runs them:

- **fit**: a shallow or reference method's whole fit; a deep method's first epoch, its
  ``epochs`` set to 1 and its set-up (a teacher, a generator) shrunk to what its
  :meth:`~cmhbench.methods.base.Hasher.setup_minimum` says, timed from the end of
  ``_prepare`` (so dgcpn's graph and any teacher count as set-up, shown apart) to the epoch's
  progress report;
- **encode**: both modalities of the queries and of the database.  Codes are row-independent
  by the method contract, so the database is coded on at most ``--encode-rows`` rows and the
  time scaled to its full size (NUS-WIDE's features alone would take 3.7 GB);
- **evaluation**: the runner's scoring (``score_cell``: default metrics and the stored
  per-query arrays, both directions) at the full query and database sizes, the database
  codes and labels drawn with replacement from the coded rows;
- **peak memory**: the process's resident memory (psutil, sampled every 10 ms by
  :class:`cmhbench.harness.provenance.PeakMemory`) during the fit, above what it held just before it
  (the data included there).  Torch's CPU allocations are resident memory too; GPU memory is
  not measured here (``perf gpu`` does).

Times are CPU seconds of the measuring process: run with one thread (``OMP_NUM_THREADS=1``
and its BLAS twins) they are what the work takes on an idle core, however loaded the machine
is; the fit's wall-clock time is printed beside them.  Each measurement runs in a fresh process, so that memory one fit freed (and the allocator
kept) cannot hide the next fit's.  With ``--growth N`` it also fits each method on N, 2N and
4N training pairs and reports the growth exponents of fit time and fit memory: the slope of
a least-squares line through (log n, log value).  Numbers depend on the machine and on what
else runs there: the header prints the load average, which the docs state beside every number.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any, Sequence

import numpy as np

from cmhbench.datasets.synthetic import SHAPES


@dataclass(frozen=True)
class Job:
    """One measurement: a method fitted on ``n_train`` pairs of a shape."""

    method: str
    shape: str
    n_train: int
    bits: int
    preset: str = "paper"
    encode_rows: int = 20_000
    score: bool = True  # encode and evaluate too (growth points only fit)
    seed: int = 0


@dataclass
class Cost:
    """What :func:`measure` found; ``error`` is set instead when the fit failed or refused.

    Times are CPU seconds of the measuring process (all its threads): with one thread they are
    what the work takes on an idle core, whatever else runs on the machine; ``fit_wall_s`` is
    the fit's wall-clock time, which other processes stretch."""

    job: Job
    fit_s: float = math.nan  # shallow: the whole fit; deep: one epoch
    fit_wall_s: float = math.nan
    setup_s: float = math.nan  # deep: before the first epoch (networks, graph, set-up at its minimum)
    encode_s: float = math.nan  # queries and the full database, both modalities
    eval_s: float = math.nan
    fit_peak_mb: float = math.nan
    error: str = ""


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def all_methods() -> list[str]:
    """Every registered method, the reference first, then by kind and year: asked of the
    registry, so a new method is measured without an edit here."""
    from cmhbench.methods.catalog import ordered

    return ordered()


def full_sizes(shape: str) -> tuple[int, int]:
    """(queries, database rows) of a shape's protocol: every non-query item is in the database."""
    sizes = SHAPES[shape]
    return sizes["n_query"], sizes["n_items"] - sizes["n_query"]


def train_sizes(text: str, shape: str) -> list[int]:
    """``--train 5000,all``: pair counts, ``all`` being the whole retrieval set (the ``ucch``
    protocol trains on it); ``paper`` is the shape's usual training set."""
    n_query, n_database = full_sizes(shape)
    named = {"all": n_database, "paper": SHAPES[shape]["n_train"]}
    sizes = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        value = named.get(item)
        if value is None:
            if not item.isdigit() or int(item) < 2:
                raise ValueError(f"--train: {item!r} is not a pair count of at least 2, 'paper' or 'all'")
            value = int(item)
        sizes.append(min(value, n_database))
    return sizes


def growth_exponent(sizes: Sequence[float], values: Sequence[float]) -> float:
    """The slope of the least-squares line through (log size, log value): 1 for linear growth,
    2 for quadratic.  NaN when fewer than two points are positive."""
    points = [(math.log(s), math.log(v)) for s, v in zip(sizes, values) if s > 0 and v > 0 and math.isfinite(v)]
    if len(points) < 2:
        return math.nan
    x, y = np.array(points).T
    return float(np.polyfit(x, y, 1)[0])


def measure(job: Job) -> Cost:
    """Fit, encode and score one method in this process (see the module docstring)."""
    from cmhbench.datasets.synthetic import generate, sized_config
    from cmhbench.evaluation.scoring import score_cell
    from cmhbench.methods import ResourceError, create, registry
    from cmhbench.harness.provenance import PeakMemory

    cost = Cost(job)
    cls = registry.get(job.method)
    deep = cls.info.kind == "deep"
    n_query, n_database = full_sizes(job.shape)
    coded = min(job.encode_rows, n_database) if job.score else 0
    n_items = n_query + max(job.n_train, coded)
    data = generate(sized_config(f"shape={job.shape}+n_items={n_items}+n_query={n_query}+n_train={job.n_train}"))
    queries, rest = np.arange(n_query), np.arange(n_query, n_items)
    train = data.paired(rest[:job.n_train])
    params = {**cls.setup_minimum(), "epochs": 1} if deep else {}
    model = create(cls, dataset=job.shape, preset=job.preset, params=params, seed=job.seed, device="cpu")
    stamps: dict[str, float] = {}
    if deep:  # the end of set-up: after _prepare (graph, teacher) returns
        prepare = model._prepare

        def stamped_prepare(run: Any, tr: Any) -> None:
            prepare(run, tr)
            stamps["prepared"] = _now()

        model._prepare = stamped_prepare

    def on_progress(report: Any) -> None:
        if report.stage == "epoch" and report.done == 1:
            stamps["epoch"] = _now()

    try:
        with PeakMemory() as memory:
            before = memory.peak_bytes or 0
            start = _now()
            model.fit(train, job.bits, progress=on_progress)
            end = _now()
    except (ResourceError, MemoryError) as exc:
        cost.error = f"refused: {exc}" if isinstance(exc, ResourceError) else "out of memory"
        return cost
    cost.fit_peak_mb = ((memory.peak_bytes or 0) - before) / 2**20
    first = stamps.get("prepared", start) if deep else start  # a deep method with its own _fit: no set-up apart
    last = stamps.get("epoch", end) if deep else end
    cost.fit_wall_s, cost.fit_s = last[0] - first[0], last[1] - first[1]
    if deep:
        cost.setup_s = first[1] - start[1]
    if not job.score:
        return cost
    rows = rest[:coded]
    start = time.process_time()
    codes = {"i2t_query": model.encode_image(data.image[queries]), "t2i_query": model.encode_text(data.text[queries])}
    query_s = time.process_time() - start
    start = time.process_time()
    codes["i2t_database"] = model.encode_text(data.text[rows])
    codes["t2i_database"] = model.encode_image(data.image[rows])
    cost.encode_s = query_s + (time.process_time() - start) * n_database / coded
    draw = np.random.default_rng(job.seed).integers(0, coded, size=n_database) if coded < n_database else None
    labels = data.labels[rows] if draw is None else data.labels[rows][draw]
    arrays = {name: np.packbits((c if draw is None or name.endswith("query") else c[draw]) > 0, axis=1)
              for name, c in codes.items()}
    arrays.update(query_labels=np.packbits(data.labels[queries] > 0, axis=1),
                  database_labels=np.packbits(labels > 0, axis=1), n_bits=np.array(job.bits),
                  n_labels=np.array(data.labels.shape[1]))
    few = {name: arrays[name][:4] for name in ("i2t_query", "t2i_query", "query_labels")}
    score_cell({**arrays, **few}, workers=1)  # untimed warm-up: numba compiles or loads its kernels
    start = time.process_time()
    score_cell(arrays, workers=1)
    cost.eval_s = time.process_time() - start
    return cost


def measure_apart(job: Job) -> Cost:
    """:func:`measure` in a fresh process (spawned: no memory or threads inherited)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        try:
            return pool.submit(measure, job).result()
        except Exception as exc:  # one failing method must not lose the table
            return Cost(job, error=f"failed: {type(exc).__name__}: {exc}")


def _seconds(value: float) -> str:
    if not math.isfinite(value):
        return "—"
    if value < 10:
        return f"{value:.2f}"
    if value < 7200:
        return f"{value:.0f}"
    return f"{value / 3600:.1f} h"


def _number(value: float, digits: int = 0) -> str:
    return "—" if not math.isfinite(value) else f"{value:,.{digits}f}"


def _load() -> str:
    if not hasattr(os, "getloadavg"):
        return "unknown"
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def bench_cost(args: argparse.Namespace) -> int:
    from cmhbench.methods import registry
    from cmhbench.tools.perf_train import _table

    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else all_methods()
    for name in methods:
        registry.get(name)  # an unknown name fails here, with the registry's suggestion
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    for shape in shapes:
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r} (known: {', '.join(SHAPES)})")
    threads = {k: os.environ.get(k, "unset") for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    print(f"cmhbench perf cost: {', '.join(methods)} at {', '.join(shapes)} sizes on the CPU, {args.bits} bits, "
          f"{args.preset} preset; threads: {', '.join(f'{k}={v}' for k, v in threads.items())}")
    print(f"load average before: {_load()} (other processes on the machine slow every timing)", flush=True)
    rows, growth_rows, failures = [], [], 0
    for shape in shapes:
        n_query, n_database = full_sizes(shape)
        for method in methods:
            kind = registry.get(method).info.kind
            for n_train in train_sizes(args.train, shape):
                cost = measure_apart(Job(method, shape, n_train, args.bits, args.preset, args.encode_rows))
                failures += bool(cost.error) and not cost.error.startswith("refused")
                rows.append([method, kind, shape, f"{n_train:,}", _seconds(cost.fit_s), _seconds(cost.fit_wall_s),
                             _seconds(cost.setup_s), _seconds(cost.encode_s), _seconds(cost.eval_s),
                             _number(cost.fit_peak_mb), cost.error or ""])
                print(f"  {method} {shape} n={n_train}: fit {_seconds(cost.fit_s)} CPU s ({_seconds(cost.fit_wall_s)} wall), "
                      f"set-up {_seconds(cost.setup_s)}, encode {_seconds(cost.encode_s)}, eval {_seconds(cost.eval_s)}, "
                      f"peak {_number(cost.fit_peak_mb)} MB {cost.error} (load {_load()})", flush=True)
            if args.growth:
                sizes = [args.growth, 2 * args.growth, 4 * args.growth]
                points = [measure_apart(Job(method, shape, n, args.bits, args.preset, score=False)) for n in sizes]
                errors = [p.error for p in points if p.error]
                failures += bool(errors)
                growth_rows.append([method, kind, shape, " / ".join(f"{n:,}" for n in sizes),
                                    " / ".join(_seconds(p.fit_s) for p in points),
                                    " / ".join(_number(p.fit_peak_mb) for p in points),
                                    _number(growth_exponent(sizes, [p.fit_s for p in points]), 2),
                                    _number(growth_exponent(sizes, [p.fit_peak_mb for p in points]), 2),
                                    errors[0] if errors else ""])
                print(f"  {method} {shape} growth: {growth_rows[-1][6]} (time), {growth_rows[-1][7]} (memory)",
                      flush=True)
    if rows:
        print(_table(rows, ["method", "kind", "shape", "train pairs", "fit CPU s", "fit wall s", "set-up CPU s",
                            "encode CPU s", "eval CPU s", "fit peak MB", "note"]))
        print(f"CPU s: processor time of the measuring process (with one thread, the time on an idle core); "
              f"fit: the whole fit (shallow, reference) or one epoch (deep; set-up apart, at its minimum); "
              f"encode s: queries and the whole database ({n_database:,} rows for the last shape), both "
              f"modalities, scaled from at most {args.encode_rows:,} coded rows; eval s: the runner's scoring at "
              f"full size; fit peak MB: resident memory above the process's before the fit (psutil)")
    if growth_rows:
        print(_table(growth_rows, ["method", "kind", "shape", "train pairs", "fit CPU s", "fit peak MB",
                                   "time exponent", "memory exponent", "note"]))
        print("exponents: least-squares slope of log value over log training pairs (1 linear, 2 quadratic)")
    print(f"load average after: {_load()}")
    return 1 if failures else 0


def add_parser(sub: Any) -> None:
    """The ``cost`` subcommand of ``python -m cmhbench.tools.perf``."""
    co = sub.add_parser("cost", help="fit, encode and evaluation time and fit memory of each method at a dataset's "
                                     "size, and their growth with the training set")
    co.add_argument("--methods", help="comma-separated methods (default: every registered method)")
    co.add_argument("--shapes", default="mirflickr25k",
                    help=f"dataset shapes of the synthetic features (default mirflickr25k; known: {', '.join(SHAPES)})")
    co.add_argument("--train", default="paper",
                    help="training pairs, comma-separated: numbers, 'paper' (the shape's 5,000) or 'all' (the whole "
                         "retrieval set) (default paper)")
    co.add_argument("--growth", type=int, default=0, metavar="N",
                    help="also fit on N, 2N and 4N pairs and report growth exponents (default: not measured)")
    co.add_argument("--encode-rows", type=int, default=20_000,
                    help="database rows actually coded; the time is scaled to the full database (default 20000)")
    co.add_argument("--bits", type=int, default=64, help="code length (default 64)")
    co.add_argument("--preset", default="paper", choices=("paper", "quick"), help="parameter preset (default paper)")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    for name in ("encode_rows", "bits"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.growth and args.growth < 2:
        parser.error("--growth must be at least 2 training pairs")
    from cmhbench.errors import UserError

    try:
        for shape in filter(None, (s.strip() for s in args.shapes.split(","))):
            if shape in SHAPES:
                train_sizes(args.train, shape)
        return bench_cost(args)
    except (ValueError, UserError) as exc:  # a bad option or an unknown method name
        parser.error(str(exc))
    return 2  # not reached: parser.error exits


__all__ = ["Cost", "Job", "add_parser", "growth_exponent", "measure", "run", "train_sizes"]
