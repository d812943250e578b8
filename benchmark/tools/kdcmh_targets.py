"""Judge kdcmh's distilled targets before any student is trained, on the validation split.

``python -m cmhbench.tools.kdcmh_targets --dataset wikipedia --features zscore`` builds the
first-round similarity s and target P of each kdcmh variant exactly as a fit would (the
teacher trained on the validation split's training rows, or read from ``--cache-dir``) and
scores how well each separates same-label from different-label *training* pairs: ROC-AUC
with paired query-bootstrap intervals (:mod:`cmhbench.evaluation.pair_auc`), each variant
against the first (s against s, P against P).  The pairs are (a, b) with a in a seeded fifth
of the training rows (at most ``--anchors``) and b in the rest, so no item is paired with
itself.  A knn target is scored as the 0/1 matrix P the student is trained on (with its
precision and recall); a graded one as s (σ(κ·s) ranks the same).  A variant with ``rounds``
R > 1 is scored on its last round's target: a student of R − 1 rounds is trained and the
similarity built from its outputs.

With ``--map`` it then runs each variant as a validation cell (the split ``cmhbench tune``
uses; 32 bits unless ``--bits``) into ``--out`` and prints validation map@all.  Labels serve
only this diagnostic; no test query is read.  Run by hand: these are study measurements,
not tests.  Variants are ``NAME=JSON`` (kdcmh parameters over the paper preset and the
dataset's override), e.g. ``--variant joint='{"similarity": "joint"}'``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from cmhbench.conventions import DIRECTIONS
from cmhbench.evaluation.pair_auc import compare_similarities

#: At most this many anchor rows (the AUC's "queries"; the bootstrap resamples them).
ANCHORS = 400


def target_matrix(s: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """P as the student sees it: the symmetric kNN 0/1 matrix (k from ``knn_fraction``, the own
    pair excluded from the ranking), or s itself for the graded target (σ(κ·s) ranks the same)."""
    from cmhbench.methods.kdcmh import knn_count

    if params["distill"] != "knn":
        return s
    k = knn_count(s.shape[0], params["knn_fraction"])
    ranked = s.copy()
    np.fill_diagonal(ranked, -np.inf)
    tau = -np.partition(-ranked, k - 1, axis=1)[:, k - 1]
    return ((s >= tau[:, None]) | (s >= tau[None, :])).astype(np.float64)


def measure(dataset_name: str, *, data_dir: str | None, features: str, seed: int, variants: dict[str, dict],
            cache_dir: Path | None, anchors: int, n_bootstrap: int, preset: str = "paper") -> dict[str, Any]:
    import joblib

    from cmhbench.datasets.features import preprocess
    from cmhbench.datasets.registry import resolve
    from cmhbench.datasets.validation import validation_split
    from cmhbench.methods import create
    from cmhbench.methods.registry import resolve_params

    source = resolve(dataset_name, data_dir, cache_dir=False)
    dataset = source.load()
    split = validation_split(source.split(dataset, source.default_protocol, seed), dataset.labels, seed)
    if features != "raw":
        dataset = preprocess(dataset, split.train, features)
    train = dataset.paired(split.train)
    memory = joblib.Memory(str(cache_dir), verbose=0) if cache_dir else None
    rng = np.random.default_rng([seed, 5])
    order = rng.permutation(train.n)
    a_rows = np.sort(order[:min(anchors, train.n // 5)])
    b_rows = np.sort(order[min(anchors, train.n // 5):])
    labels = dataset.labels[split.train].astype(np.float32)
    relevant = (labels[a_rows] @ labels[b_rows].T) > 0
    sims, seconds, used, hits = {}, {}, {}, {}
    for name, values in variants.items():
        params = resolve_params("kdcmh", dataset=dataset_name, preset=preset, params=values)
        t0 = time.process_time()
        model = create("kdcmh", dataset=dataset_name, params={**params, "rounds": 1}, seed=seed, device="cpu",
                       cache=memory)
        s = model.training_similarity(train)
        if params["rounds"] > 1:  # the last round's: from the outputs of a student of rounds − 1 rounds
            model = create("kdcmh", dataset=dataset_name, params={**params, "rounds": params["rounds"] - 1},
                           seed=seed, device="cpu", cache=memory).fit(train, 32)
            s = model.next_similarity(train)
        P = target_matrix(s, params)
        seconds[name] = time.process_time() - t0
        sims[f"{name}:s"] = s[np.ix_(a_rows, b_rows)]
        if params["distill"] == "knn":
            sims[f"{name}:P"] = P[np.ix_(a_rows, b_rows)]
            positive = sims[f"{name}:P"] > 0.5  # the pairs the student is told are neighbours
            hits[name] = {"precision": float(relevant[positive].mean()), "recall": float(positive[relevant].mean())}
        used[name] = {k: params[k] for k in ("distill", "similarity", "source", "teacher_codes", "knn_fraction",
                                             "coherence", "rounds")}
    first = next(iter(variants))  # the reference: each variant's s against its s, P against its P
    pairs = [(f"{name}:{part}", f"{first}:{part}") for name in variants if name != first for part in "sP"
             if f"{name}:{part}" in sims and f"{first}:{part}" in sims]
    aucs, diffs = compare_similarities(sims, relevant, pairs=pairs, n_bootstrap=n_bootstrap, seed=seed)
    return {"dataset": dataset_name, "features": features, "seed": seed, "split": split.digest(),
            "sizes": {"train": int(train.n), "anchors": int(len(a_rows)), "partners": int(len(b_rows)),
                      "relevant_share": float(relevant.mean())},
            "variants": used, "cpu_seconds": seconds, "knn_precision_recall": hits,
            "auc": {name: vars(est) for name, est in aucs.items()},
            "differences": {f"{a} - {b}": vars(est) for (a, b), est in diffs.items()}}


def validation_map(dataset_name: str, *, data_dir: str | None, features: str, seed: int, bits: int,
                   variants: dict[str, dict], out: Path, cache_dir: Path | None,
                   preset: str = "paper") -> dict[str, dict[str, float]]:
    """Each variant's validation map@all (I→T, T→I), as ``cmhbench tune`` scores a trial."""
    from cmhbench import store
    from cmhbench.datasets.registry import resolve
    from cmhbench.harness.executor import run_cells
    from cmhbench.harness.grid import GridSpec, build_cells
    from cmhbench.harness.runner import RunContext

    sources = {dataset_name: resolve(dataset_name, data_dir)}
    names = [f"kdcmh-{name}" for name in variants]
    spec = GridSpec(methods=names, datasets=[dataset_name], bits=[bits], seeds=[seed], preset=preset,
                    features=features, database_coding=["modality"],
                    variants={f"kdcmh-{name}": {"base": "kdcmh", **values} for name, values in variants.items()})
    cells = build_cells(spec, sources, split="validation")
    run_cells(cells, sources, RunContext(out=out, cache_dir=cache_dir, device="cpu"), progress=False)
    result = {}
    for cell in cells:
        record = store.read_record(out, cell.key)
        scored = record["metrics"] if record.get("status") == "ok" else {}
        result[cell.method] = {"status": record.get("status"), "fit_s": (record.get("timings") or {}).get("fit_s"),
                               **{d: scored.get(d, {}).get("map@all") for d in DIRECTIONS}}
    return result


def _print(result: dict[str, Any]) -> None:
    print(f"{result['dataset']} ({result['features']}), seed {result['seed']}, validation training pairs "
          f"{result['sizes']}; CPU s: " + ", ".join(f"{k} {v:.0f}" for k, v in result["cpu_seconds"].items()))
    for name, est in result["auc"].items():
        print(f"  AUC {name:28s} {est['value']:.4f} [{est['low']:.4f}, {est['high']:.4f}]")
    for name, pr in result["knn_precision_recall"].items():
        print(f"  P of {name:26s} precision {pr['precision']:.4f} recall {pr['recall']:.4f}")
    for name, est in result["differences"].items():
        mark = "*" if est["low"] > 0 or est["high"] < 0 else " "
        print(f"  Δ {name:50s} {est['value']:+.4f} [{est['low']:+.4f}, {est['high']:+.4f}] {mark}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cmhbench.tools.kdcmh_targets", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--features", default="raw")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                        help="a kdcmh variant (parameters as JSON); the first is the reference of the differences")
    parser.add_argument("--preset", default="paper", help="kdcmh's preset under the variants (quick: a smoke test)")
    parser.add_argument("--anchors", type=int, default=ANCHORS)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--cache-dir", type=Path, default=None, help="teacher cache (shared with cmhbench run)")
    parser.add_argument("--map", action="store_true", help="also run each variant as a validation cell")
    parser.add_argument("--map-only", action="store_true", help="only the validation cells (no AUC)")
    parser.add_argument("--bits", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None, help="results folder of the validation cells (--map)")
    parser.add_argument("--json", type=Path, default=None, help="append the results here as one JSON line")
    args = parser.parse_args(argv)
    args.map = args.map or args.map_only
    if args.map and args.out is None:
        parser.error("--map needs --out")
    variants: dict[str, dict] = {} if args.map_only else {"defaults": {}}
    for item in args.variant:
        name, _, value = item.partition("=")
        variants[name] = json.loads(value) if value else {}
    if args.map_only:
        result: dict[str, Any] = {"dataset": args.dataset, "features": args.features, "seed": args.seed}
    else:
        result = measure(args.dataset, data_dir=args.data_dir, features=args.features, seed=args.seed,
                         variants=variants, cache_dir=args.cache_dir, anchors=args.anchors,
                         n_bootstrap=args.bootstrap, preset=args.preset)
        _print(result)
    if args.map:
        result["map@all"] = validation_map(args.dataset, data_dir=args.data_dir, features=args.features,
                                           seed=args.seed, bits=args.bits, variants=variants, out=args.out,
                                           cache_dir=args.cache_dir, preset=args.preset)
        for name, row in result["map@all"].items():
            scores = " ".join(f"{label} {row[d]}" for d, label in DIRECTIONS.items())
            print(f"  map@all {name:28s} {scores} ({row['status']}, fit {row['fit_s']} s)")
    if args.json is not None:
        with args.json.open("a") as f:
            f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
