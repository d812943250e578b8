"""``python -m cmhbench.tools.perf gpu``: the GPU check — a paper-preset deep grid at MIRFlickr size.

Runs every registered deep method (``--methods`` to choose) at 16/32/64/128 bits on
MIRFlickr-shaped synthetic features (``synthetic:shape=mirflickr25k``: 20,015 pairs, 5,000
training pairs, 4,096-d images, 1,386-d tags) twice: with ``--cells-per-gpu 1`` (one cell at
a time) and with ``--cells-per-gpu K --jobs K``.  To fit a few minutes every method trains
``--fraction`` of its paper epochs (and of the set-up epochs it declares, a teacher's or a
generator's: :attr:`~cmhbench.methods.base.Hasher.setup_epochs`); the full paper
preset's time is extrapolated as measured fit seconds ÷ fraction, and the tables say so.
While each grid runs, ``nvidia-smi`` samples the GPU's utilisation and memory every 0.5 s.
It prints Markdown tables ready for the README and writes them to ``OUT/gpu-check.md``.

It refuses to run where torch sees no GPU (exit code 2).  ``scripts/gpu_check.sh`` installs
the project, runs ``perf train`` and the CPU-vs-GPU test, then this.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmhbench.tools.perf_train import chosen_methods

MIRFLICKR = "synthetic:shape=mirflickr25k"
BITS = (16, 32, 64, 128)


@dataclass
class GridRun:
    """One grid's wall time, its cells' records and the GPU samples taken meanwhile."""

    k: int
    wall_s: float
    timed_out: bool
    records: list[dict[str, Any]] = field(default_factory=list)
    utilisation: list[float] = field(default_factory=list)
    memory_mb: list[float] = field(default_factory=list)


def scaled_params(methods: list[str], fraction: float) -> list[str]:
    """``--param`` options giving each method ``fraction`` of its paper epochs (at least 1)."""
    from cmhbench.methods.registry import get, resolve_params

    out = []
    for method in methods:
        params = resolve_params(method)
        for name in ("epochs", *get(method).setup_epochs):  # a teacher's or generator's epochs too
            out += ["--param", f"{method}.{name}={max(1, math.ceil(params[name] * fraction))}"]
    return out


def _sampler(path: Path) -> subprocess.Popen | None:
    if shutil.which("nvidia-smi") is None:
        return None
    with open(path, "w") as fh:
        return subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                                 "-lms", "500", "-i", "0"], stdout=fh, stderr=subprocess.DEVNULL)


def _samples(path: Path) -> tuple[list[float], list[float]]:
    util, mem = [], []
    for line in path.read_text().splitlines() if path.exists() else []:
        parts = [p.strip() for p in line.split(",")]
        try:
            util.append(float(parts[0]))
            mem.append(float(parts[1]))
        except (ValueError, IndexError):
            continue
    return util, mem


def read_records(out: Path) -> list[dict[str, Any]]:
    """The records of a results folder's finished cells."""
    return [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*/record.json"))]


def run_grid(out: Path, k: int, methods: list[str], fraction: float, timeout_s: float) -> GridRun:
    """``cmhbench run`` of the grid with K cells per GPU (``--jobs K``), sampled."""
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "cmhbench", "run", "--methods", ",".join(methods), "--datasets", MIRFLICKR,
               "--bits", ",".join(map(str, BITS)), "--seeds", "0", "--preset", "paper", "--device", "cuda",
               "--jobs", str(k), "--cells-per-gpu", str(k), "--out", str(out / "results"),
               "--cache-dir", str(out / "cache"), "--no-progress", *scaled_params(methods, fraction)]
    sampler = _sampler(out / "nvidia-smi.csv")
    start = time.perf_counter()
    timed_out = False
    try:
        subprocess.run(command, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        timed_out = True
    wall = time.perf_counter() - start
    if sampler is not None:
        sampler.terminate()
        sampler.wait()
    util, mem = _samples(out / "nvidia-smi.csv")
    return GridRun(k, wall, timed_out, read_records(out / "results"), util, mem)


def _mean(values: list[float]) -> str:
    return f"{sum(values) / len(values):.0f}" if values else "—"


def method_table(run: GridRun, fraction: float, methods: list[str]) -> str:
    """Per method at K = 1: measured fit seconds per cell and the paper-preset extrapolation."""
    lines = ["| method | cells ok | fit s per cell (measured) | paper-preset fit s (est. = ÷ fraction) | "
             "encode s | peak GPU MB |", "|---|---:|---:|---:|---:|---:|"]
    for method in methods:
        ok = [r for r in run.records if r["cell"]["base"] == method and r.get("status") == "ok"]
        if not ok:
            lines.append(f"| {method} | 0 | — | — | — | — |")
            continue
        fit = [r["timings"]["fit_s"] for r in ok]
        enc = [r["timings"]["encode_s"] for r in ok]
        peak = max(r.get("memory", {}).get("peak_gpu_mb", 0.0) for r in ok)
        mean_fit = sum(fit) / len(fit)
        lines.append(f"| {method} | {len(ok)} | {mean_fit:.1f} | {mean_fit / fraction:.0f} | "
                     f"{sum(enc) / len(enc):.1f} | {peak:.0f} |")
    return "\n".join(lines)


def grid_table(runs: list[GridRun], fraction: float, n_cells: int) -> str:
    lines = ["| cells per GPU | cells ok | wall s (measured) | paper-preset grid (est. = ÷ fraction) | "
             "mean GPU util % | peak GPU memory MB |", "|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        ok = sum(r.get("status") == "ok" for r in run.records)
        wall = f"{run.wall_s:.0f}" + (" (timed out)" if run.timed_out else "")
        est = f"{run.wall_s / fraction / 60:.1f} min" if ok == n_cells else "—"
        lines.append(f"| {run.k} | {ok}/{n_cells} | {wall} | {est} | {_mean(run.utilisation)} | "
                     f"{max(run.memory_mb) if run.memory_mb else '—'} |")
    return "\n".join(lines)


def bench_gpu(args: argparse.Namespace) -> int:
    import torch

    if not torch.cuda.is_available():
        print("cmhbench perf gpu: torch sees no GPU (a CPU-only torch, or no driver); nothing to check",
              file=sys.stderr)
        return 2
    methods = chosen_methods(args.methods)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name(0)
    total = torch.cuda.get_device_properties(0).total_memory / 2**30
    print(f"cmhbench perf gpu: {name} ({total:.0f} GiB), torch {torch.__version__}, {len(methods)} methods × "
          f"{len(BITS)} bits on {MIRFLICKR}, {args.fraction:g} of the paper epochs", flush=True)
    runs = []
    for k, timeout in ((1, args.timeout_one), (args.k, args.timeout_k)):
        run = run_grid(out / f"k{k}", k, methods, args.fraction, timeout)
        runs.append(run)
        print(f"  K={k}: {sum(r.get('status') == 'ok' for r in run.records)} cells ok in {run.wall_s:.0f} s, "
              f"mean GPU utilisation {_mean(run.utilisation)}%", flush=True)
    n_cells = len(methods) * len(BITS)
    report = "\n\n".join([
        f"GPU check on {name}: {', '.join(methods)} × bits {', '.join(map(str, BITS))} on MIRFlickr-shaped "
        f"synthetic features, paper presets at {args.fraction:g} of their epochs (estimates = measured ÷ "
        f"{args.fraction:g}; set-up time such as data generation is scaled too, so they are upper bounds).",
        "Per method, one cell at a time (K = 1):", method_table(runs[0], args.fraction, methods),
        "The grid:", grid_table(runs, args.fraction, n_cells),
        "Targets (issue #23): one MIRFlickr-size djsrh cell ≤ 20 s; the 24-cell grid ≤ 10 minutes."])
    (out / "gpu-check.md").write_text(report + "\n")
    print(report)
    return 0 if all(sum(r.get("status") == "ok" for r in run.records) == n_cells for run in runs) else 1


def add_parser(sub: Any) -> None:
    gpu = sub.add_parser("gpu", help="the GPU check: a MIRFlickr-size deep grid with 1 and K cells per GPU")
    gpu.add_argument("--methods", help="comma-separated deep methods (default: every registered deep method)")
    gpu.add_argument("--k", type=int, default=8, help="cells per GPU of the second grid (default 8)")
    gpu.add_argument("--fraction", type=float, default=0.05,
                     help="share of each method's paper epochs to train (default 0.05)")
    gpu.add_argument("--out", default="gpu-check", help="folder for the grids and gpu-check.md (default gpu-check)")
    gpu.add_argument("--timeout-one", type=float, default=150.0, help="seconds allowed to the K=1 grid")
    gpu.add_argument("--timeout-k", type=float, default=100.0, help="seconds allowed to the K grid")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.k < 1 or not 0 < args.fraction <= 1:
        parser.error("--k must be at least 1 and --fraction in (0, 1]")
    return bench_gpu(args)
