"""Benchmarks that print numbers (run by hand; not timed tests).

``python -m cmhbench.tools.perf eval`` times the evaluation engine against a reference written
the way published cross-modal hashing code evaluates (Hamming distances from ±1 float
inner products, an argsort and an AP per query), on synthetic codes and multi-hot
labels, at each bit length, in one process.  It checks that both give the same map@all
under the same tie rule (the reference sorts stably), and prints seconds, speed-up and
the engine's peak extra memory (resident memory above what the process held before).

    python -m cmhbench.tools.perf eval                                   # 2,000 × 190,000, 16/32/64/128 bits
    python -m cmhbench.tools.perf eval --queries 200 --database 20000    # quick
    python -m cmhbench.tools.perf eval --backend numpy --workers 1       # one path, one thread

``python -m cmhbench.tools.perf train`` times deep training steps (see :mod:`cmhbench.tools.perf_train`);
``python -m cmhbench.tools.perf cost`` measures fit, encode and evaluation time and fit memory of
every method at a public dataset's size (see :mod:`cmhbench.tools.perf_cost`);
``python -m cmhbench.tools.perf gpu`` is the GPU check (see :mod:`cmhbench.tools.perf_gpu`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Sequence

import numpy as np

from cmhbench.evaluation import engine, evaluate
from cmhbench.harness.provenance import PeakMemory
from cmhbench.tools import perf_cost, perf_gpu, perf_train

ENGINE_METRICS = ("map@all", "map@50", "tmap@all", "tmap@50", "map@50-found")


def synthetic_labels(rng: np.random.Generator, n: int, n_labels: int, mean_labels: float) -> np.ndarray:
    """Multi-hot labels with skewed class frequencies (a few common classes, a long tail),
    about ``mean_labels`` per item and at least one per item, like MIRFlickr or NUS-WIDE."""
    weights = 1.0 / np.arange(1, n_labels + 1) ** 0.8

    def expected(scale: float) -> np.ndarray:
        prob = np.minimum(weights * scale, 0.95)
        return prob, prob.sum() + np.prod(1 - prob)  # an item left without labels gets one

    lo, hi = 0.0, 100.0
    for _ in range(60):  # bisection for the class probabilities giving the mean
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expected(mid)[1] < mean_labels else (lo, mid)
    prob = expected(lo)[0]
    labels = rng.random((n, n_labels)) < prob
    empty = np.flatnonzero(~labels.any(axis=1))
    labels[empty, rng.choice(n_labels, size=empty.size, p=weights / weights.sum())] = True
    return labels.astype(np.uint8)


def reference_map(qB: np.ndarray, rB: np.ndarray, qL: np.ndarray, rL: np.ndarray, top: int = 50) -> tuple[float, float]:
    """map@all and map@top as published repositories compute them, one query at a time,
    with a stable sort so that ties follow database row order like the engine's."""
    n_bits = qB.shape[1]
    qB, rB = qB.astype(np.float32), rB.astype(np.float32)
    qL, rL = qL.astype(np.float32), rL.astype(np.float32)
    map_all = map_top = 0.0
    for i in range(qB.shape[0]):
        gnd = (qL[i] @ rL.T > 0).astype(np.float32)
        tsum = int(gnd.sum())
        if tsum == 0:
            continue
        hamm = 0.5 * (n_bits - qB[i] @ rB.T)
        ind = np.argsort(hamm, kind="stable")
        gnd = gnd[ind]
        count = np.arange(1, tsum + 1, dtype=np.float64)
        tindex = np.flatnonzero(gnd) + 1.0
        map_all += float(np.mean(count / tindex))
        head = gnd[:top]
        found = int(head.sum())
        if found:
            map_top += float(np.mean(np.arange(1, found + 1) / (np.flatnonzero(head) + 1.0)))
    return map_all / qB.shape[0], map_top / qB.shape[0]


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def bench_eval(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(args.seed)
    bits_list = [int(b) for b in args.bits.split(",")]
    workers = args.workers or engine.default_workers()
    backend = args.backend
    if backend == "auto":
        backend = "numba" if "numba" in engine.available_backends() else "numpy"
    ql = synthetic_labels(rng, args.queries, args.labels, args.mean_labels)
    dl = synthetic_labels(rng, args.database, args.labels, args.mean_labels)
    ref_q = args.queries if args.reference_queries is None else min(args.reference_queries, args.queries)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"cmhbench perf eval: {args.queries} queries × {args.database} database items, {args.labels} labels "
          f"(mean {dl.sum(1).mean():.2f} per item; {(ql[:200] @ dl.T > 0).mean():.1%} of pairs relevant), "
          f"backend {backend}, {workers} worker(s), best of {args.repeat}")
    scaled = "" if ref_q == args.queries else f", timed on {ref_q} queries and scaled"
    print(f"engine: {', '.join(ENGINE_METRICS)} together; reference: map@all and map@50, per query "
          f"(float ±1 inner products, stable argsort){scaled}")
    if load:
        print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs "
              "(other processes on the machine make timings noisy)")
    rows = []
    failures = 0
    for bits in bits_list:
        qc = np.where(rng.random((args.queries, bits)) < 0.5, 1, -1).astype(np.int8)
        dc = np.where(rng.random((args.database, bits)) < 0.5, 1, -1).astype(np.int8)
        # Warm-up on a few queries: compiles (or loads) the numba kernel, touches buffers.
        t0 = time.perf_counter()
        evaluate(qc[:4], dc, ql[:4], dl, ENGINE_METRICS, workers=workers, backend=backend)
        warm_s = time.perf_counter() - t0
        times, cpu = [], []
        peak = 0.0
        for _ in range(args.repeat):
            with PeakMemory(interval=0.002) as memory:
                base = memory.peak_bytes or 0
                t0, c0 = time.perf_counter(), time.process_time()
                got = evaluate(qc, dc, ql, dl, ENGINE_METRICS, workers=workers, backend=backend)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            peak = max(peak, ((memory.peak_bytes or 0) - base) / 2**20)
        engine_s = min(times)
        if ref_q < args.queries:
            check = evaluate(qc[:ref_q], dc, ql[:ref_q], dl, ENGINE_METRICS[:2],  # what the reference computes
                             workers=workers, backend=backend)
        else:
            check = got
        t0, c0 = time.perf_counter(), time.process_time()
        ref_all, ref_top = reference_map(qc[:ref_q], dc, ql[:ref_q], dl)
        ref_s = (time.perf_counter() - t0) * args.queries / ref_q
        ref_cpu = (time.process_time() - c0) * args.queries / ref_q
        agree = abs(ref_all - check["map@all"]) < 1e-9 and abs(ref_top - check["map@50"]) < 1e-9
        failures += not agree
        rows.append([str(bits), f"{engine_s:.3f}", f"{np.median(times):.3f}", f"{min(cpu):.3f}", f"{ref_s:.2f}",
                     f"{ref_cpu:.2f}", f"{ref_s / engine_s:.1f}x", f"{peak:.0f}", f"{warm_s:.2f}",
                     f"{check['map@all']:.6f}", f"{ref_all:.6f}", "yes" if agree else "NO"])
        print(f"  {bits} bits: engine {engine_s:.3f} s, reference {ref_s:.2f} s", file=sys.stderr, flush=True)
    print(_table(rows, ["bits", "engine s (best)", "engine s (median)", "engine CPU s", "reference s",
                        "reference CPU s", "speed-up", "engine peak extra MB", "warm-up s", "map@all engine",
                        "map@all reference", "same map"]))
    print("s: wall-clock seconds; CPU s: processor time of the whole process (all threads), less sensitive "
          "to other processes on the machine; speed-up: reference s / engine s (best)")
    print("warm-up s: first call on 4 queries (numba compile or cache load, buffers); not in the timings")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    if load:
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cmhbench.tools.perf", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("eval", help="time the evaluation engine against a per-query reference")
    ev.add_argument("--queries", type=int, default=2000, help="number of queries (default 2000)")
    ev.add_argument("--database", type=int, default=190_000, help="database size (default 190000)")
    ev.add_argument("--labels", type=int, default=24, help="number of classes (default 24)")
    ev.add_argument("--mean-labels", type=float, default=3.0, help="mean labels per item (default 3)")
    ev.add_argument("--bits", default="16,32,64,128", help="comma-separated code lengths (default 16,32,64,128)")
    ev.add_argument("--workers", type=int, default=None, help="engine threads (default: the usable cores)")
    ev.add_argument("--backend", choices=("auto", "numpy", "numba"), default="auto",
                    help="engine backend (default auto: numba where installed)")
    ev.add_argument("--repeat", type=int, default=3, help="timed engine runs per bit length (default 3)")
    ev.add_argument("--reference-queries", type=int, default=None,
                    help="time the slow reference on only this many queries and scale (default: all)")
    ev.add_argument("--seed", type=int, default=0)
    jobs = sub.add_parser("jobs", help="time a grid of shallow cells with --jobs 1 against --jobs N")
    jobs.add_argument("--jobs", type=int, default=2, help="parallel workers to compare with one (default 2)")
    jobs.add_argument("--methods", default="imh,lssh", help="methods of the grid (default imh,lssh: cells of "
                      "seconds each, so that worker start-up does not dominate)")
    jobs.add_argument("--bits", default="16,32,64,128", help="bit lengths (default 16,32,64,128: 8 cells)")
    perf_train.add_parser(sub)
    perf_cost.add_parser(sub)
    perf_gpu.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "train":
        return perf_train.run(args, parser)
    if args.command == "cost":
        return perf_cost.run(args, parser)
    if args.command == "gpu":
        return perf_gpu.run(args, parser)
    if args.command == "jobs":
        return bench_jobs(args)
    for name in ("queries", "database", "labels", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be positive")
    return bench_eval(args)


def bench_jobs(args: argparse.Namespace) -> int:
    """Wall time of the same grid with one worker and with N (fresh folders, paper preset)."""
    import tempfile
    from pathlib import Path

    from cmhbench import datasets
    from cmhbench.harness.executor import run_cells
    from cmhbench.harness.grid import GridSpec, build_cells
    from cmhbench.harness.runner import RunContext

    sources = {"synthetic": datasets.resolve("synthetic")}
    spec = GridSpec(methods=args.methods.split(","), bits=[int(b) for b in args.bits.split(",")])
    cells = build_cells(spec, sources)
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in (1, args.jobs):
            ctx = RunContext(out=Path(tmp) / f"jobs{jobs}", threads=1)
            start = time.perf_counter()
            summary = run_cells(cells, sources, ctx, jobs=jobs, progress=False)
            times[jobs] = time.perf_counter() - start
            assert summary.counts["ok"] == len(cells), summary.counts
    print(f"{len(cells)} cells ({args.methods}; synthetic; bits {args.bits}), 1 BLAS thread per worker")
    print(f"{'jobs':>5} {'wall s':>8} {'speed-up':>9}")
    for jobs, seconds in times.items():
        print(f"{jobs:>5} {seconds:>8.2f} {times[1] / seconds:>8.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
