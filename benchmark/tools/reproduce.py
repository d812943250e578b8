"""Reproduce a published table: run its grid file, then print ours beside the published values.

    python -m cmhbench.tools.reproduce docs/reproduce/djsrh-iccv-2019-table-2.toml --data-dir "$CMHBENCH_DATA"
    python -m cmhbench.tools.reproduce docs/reproduce/ucch-tpami-2023-table-1.toml --stand-in 400 --preset quick

Each file of ``docs/reproduce/`` is an ordinary grid file (``cmhbench run --config``) holding
one published table's methods, datasets, protocol, bit lengths and seeds.  This runs it into
``results/reproduce/<file name>`` (``--out`` to change; a rerun resumes) and then prints
``cmhbench leaderboard --published`` for every metric the published tables report for its
datasets and methods.  Options it does not know go to ``cmhbench run`` (``--jobs``,
``--methods``, ``--bits``, ...).

``--stand-in N`` checks the plumbing without the files: each dataset becomes a synthetic set
of its shape (``synthetic:shape=NAME`` where cmhbench knows the shape) with N pairs, on the
synthetic protocol.  A stand-in's numbers are the generator's, and no published value is
ever put beside them (the dataset's name differs, so nothing matches).

Commands are run as subprocesses of ``python -m cmhbench``: exactly what a user would type.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from cmhbench import published
from cmhbench.harness.config import load_config
from cmhbench.datasets.synthetic import SHAPES

DEFAULT_OUT = Path("results") / "reproduce"


def stand_in(dataset: str, n_items: int) -> str:
    """A synthetic dataset of ``dataset``'s shape (where known: its queries and training pairs
    scale with ``n_items``) with ``n_items`` pairs; else 10 % queries and half for training."""
    if dataset in SHAPES:
        return f"synthetic:shape={dataset}+n_items={n_items}"
    return f"synthetic:n_items={n_items}+n_query={max(1, n_items // 10)}+n_train={max(2, n_items // 2)}"


def published_metrics(methods: Sequence[str], datasets: Sequence[str]) -> list[str]:
    """The metrics the published tables report for these methods on these datasets, in order."""
    found = [r.metric for r in published.load() if r.method in methods and r.dataset in datasets]
    return list(dict.fromkeys(found)) or ["map@all"]


def commands(grid: Path, out: Path, stand_in_items: int | None, run_options: Sequence[str]) -> list[list[str]]:
    """The ``cmhbench`` command lines of the recipe: one run, then one leaderboard per metric."""
    config = load_config(grid)
    run = ["run", "--config", str(grid), "--out", str(out), *run_options]
    if stand_in_items is not None:
        run += ["--datasets", ",".join(stand_in(d, stand_in_items) for d in config.get("datasets", ["synthetic"])),
                "--protocol", "synthetic"]
    metrics = published_metrics(config.get("methods", []), config.get("datasets", []))
    return [run] + [["leaderboard", str(out), "--published", "--metric", metric] for metric in metrics]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cmhbench.tools.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("grid", type=Path, help="a grid file of docs/reproduce/")
    parser.add_argument("--out", type=Path, help="results folder (default: results/reproduce/<grid file name>)")
    parser.add_argument("--stand-in", dest="stand_in", type=int, metavar="N",
                        help="synthetic stand-ins of N pairs for the datasets (checks the plumbing, not the numbers)")
    args, run_options = parser.parse_known_args(argv)
    out = args.out or DEFAULT_OUT / args.grid.stem
    for command in commands(args.grid, out, args.stand_in, run_options):
        print(f"$ cmhbench {' '.join(command)}", file=sys.stderr, flush=True)
        code = subprocess.run([sys.executable, "-m", "cmhbench", *command]).returncode
        if code not in (0, 1):  # 1: some cells failed; their rows say so, and the rest still compares
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
