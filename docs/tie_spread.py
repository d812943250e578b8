"""How much map@K depends on the tie rule, for every stored cell of a results folder.

For each cell and direction it prints map@K under cmhbench's row-order rule, the tie-aware
expectation ``tmap@K``, the lowest and highest map@K any order of tied items can give (the
mean over queries of each query's worst and best AP@K), UCCH's ``map@K-found``, and the
distinct database codes.  Everything comes from the stored codes (``arrays.npz``); no
method is run.  README's "Why tie rules matter" table was made with it.

Usage (from the repository root):

    python docs/tie_spread.py results/NAME [--k 50]
"""

from __future__ import annotations

import argparse

import numpy as np

from cmhbench import store
from cmhbench.evaluation import ap_at_k_extremes, compute_stats, packed_bits, scores
from cmhbench.evaluation.rescore import DIRECTIONS


def spread_rows(out: str, k: int) -> list[list[str]]:
    rows = []
    for record in store.iter_records(out):
        if record["status"] != "ok":
            continue
        arrays = store.read_arrays(out, record["key"])
        n_bits, n_labels = int(arrays["n_bits"]), int(arrays["n_labels"])
        ql = packed_bits(arrays["query_labels"], n_labels)
        dl = packed_bits(arrays["database_labels"], n_labels)
        cell = record["cell"]
        dataset = cell["dataset"]["name"] if isinstance(cell["dataset"], dict) else cell["dataset"]
        for direction in DIRECTIONS:
            q = packed_bits(arrays[f"{direction}_query"], n_bits)
            d = packed_bits(arrays[f"{direction}_database"], n_bits)
            names = [f"map@{k}", f"tmap@{k}", f"map@{k}-found"]
            stats = compute_stats(q, d, ql, dl, names)
            got = scores(stats, names)
            worst, best = ap_at_k_extremes(stats.n, stats.r, k)
            distinct = len(np.unique(arrays[f"{direction}_database"], axis=0))
            rows.append([cell["method"], dataset, str(cell["bits"]), direction, str(distinct),
                         f"{got[f'map@{k}']:.3f}", f"{got[f'tmap@{k}']:.3f}", f"{worst.mean():.3f}",
                         f"{best.mean():.3f}", f"{got[f'map@{k}-found']:.3f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="a cmhbench results folder")
    parser.add_argument("--k", type=int, default=50, help="the cut-off K (default 50)")
    args = parser.parse_args()
    header = ["method", "dataset", "bits", "direction", "distinct database codes", f"map@{args.k} (row order)",
              f"tmap@{args.k}", "worst tie order", "best tie order", f"map@{args.k}-found"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in spread_rows(args.out, args.k):
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
