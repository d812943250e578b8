"""Judge UCHM's similarity generators before any hashing, on the validation split.

``python -m cmhbench.tools.generator_auc --dataset wikipedia --features zscore`` trains each
generator of :mod:`cmhbench.methods.uchm` (cross-attention ``attention``, concatenated-MLP
``mlp``, ``two-tower``) on the validation split's training rows, exactly as a uchm fit
would, and scores how well each similarity separates same-label from different-label
(validation query, validation database) pairs: ROC-AUC with paired query-bootstrap
intervals (:mod:`cmhbench.evaluation.pair_auc`).  Labels serve only this diagnostic; no
test query is read.

Similarities compared, all on the same pairs:

- ``fused``: S̃, the fused intra-modal cosine (uchm's prior, β as uchm resolves it);
- ``<generator>``: ½(g(x_i, y_j) + g(x_j, y_i)) of that generator alone;
- ``<generator>+prior``: what uchm's hashing networks are trained under,
  (1 − π)·φ_G(…) + π·φ(S̃) with π = ``prior_weight``.

It prints one table of AUCs and one of paired differences, and with ``--out`` writes them as
JSON.  CPU time is printed with each generator: these are acceptance measurements, run by
hand, not tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from cmhbench.evaluation.pair_auc import compare_similarities

log = logging.getLogger(__name__)

#: Query rows per forward pass when scoring (query, database) pairs (memory bound only).
QUERY_CHUNK = 32


def _uchm_params(dataset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    from cmhbench.methods.registry import resolve_params

    return resolve_params("uchm", dataset=dataset, preset="paper", params=overrides)


def similarity_matrices(image: np.ndarray, text: np.ndarray, train: np.ndarray, query: np.ndarray,
                        database: np.ndarray, params: dict[str, Any], generators: list[str],
                        seed: int) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Query × database similarities of S̃ and of each generator (alone and with the prior),
    the generators trained on ``train`` rows as a uchm fit trains them; and CPU seconds per generator."""
    import torch

    from cmhbench.methods import uchm

    X, Y = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)), torch.from_numpy(
        np.ascontiguousarray(text, dtype=np.float32))
    q, d = torch.as_tensor(query), torch.as_tensor(database)
    blocks = torch.split(q, QUERY_CHUNK)  # query rows, a block at a time: nothing is Q × n at once but the result
    calibration = uchm.estimate_calibration(image[train], text[train], params["beta"], params["confident"],
                                            params["calibration_pairs"],
                                            np.random.default_rng([seed, 11]))
    with torch.no_grad():
        fused = torch.cat([uchm.fused_cross(X[b], Y[b], X[d], Y[d], params["beta"]) for b in blocks])
    out = {"fused": fused.double().numpy()}
    prior = uchm.calibrate(fused, **calibration)
    seconds: dict[str, float] = {}
    for name in generators:
        config = uchm.UCHM(**{**params, "generator": name}).generator_config()
        t0 = time.process_time()
        fit = uchm.train_generator(image[train], text[train], config=config, seed=seed, calibration=calibration)
        scorer = uchm.load_scorer(config, image.shape[1], text.shape[1], fit["state"], "cpu")
        with torch.no_grad():
            u, v = uchm.project_all(scorer, X, Y)
            generated = torch.cat([uchm.generator_similarity(scorer, u, v, b, d) for b in blocks])
        seconds[name] = time.process_time() - t0
        out[name] = generated.double().numpy()
        blended = uchm.mixed_similarity(generated, prior, fit["calibration"], params["prior_weight"])
        out[f"{name}+prior"] = blended.double().numpy()
    return out, seconds


def comparisons(generators: list[str]) -> list[tuple[str, str]]:
    """The differences the issue asks for: each similarity against S̃, and the interaction
    generators against the two-tower one (alone and with the prior)."""
    pairs = [(f"{g}{suffix}", "fused") for g in generators for suffix in ("", "+prior")]
    if "two-tower" in generators:
        pairs += [(f"{g}{suffix}", f"two-tower{suffix}") for g in generators if g != "two-tower"
                  for suffix in ("", "+prior")]
    if {"attention", "mlp"} <= set(generators):
        pairs += [(f"attention{suffix}", f"mlp{suffix}") for suffix in ("", "+prior")]
    return pairs


def measure(dataset_name: str, *, data_dir: str | None, features: str, seed: int, generators: list[str],
            overrides: dict[str, Any], n_bootstrap: int) -> dict[str, Any]:
    from cmhbench.datasets.features import preprocess
    from cmhbench.datasets.registry import resolve
    from cmhbench.datasets.validation import validation_split

    source = resolve(dataset_name, data_dir, cache_dir=False)
    dataset = source.load()
    split = validation_split(source.split(dataset, source.default_protocol, seed), dataset.labels, seed)
    if features != "raw":
        dataset = preprocess(dataset, split.train, features)
    params = _uchm_params(dataset_name, overrides)
    sims, seconds = similarity_matrices(dataset.image, dataset.text, split.train, split.query, split.database,
                                        params, generators, seed)
    labels = dataset.labels.astype(np.float32)
    relevant = (labels[split.query] @ labels[split.database].T) > 0
    aucs, diffs = compare_similarities(sims, relevant, pairs=comparisons(generators), n_bootstrap=n_bootstrap,
                                       seed=seed)
    return {"dataset": dataset_name, "features": features, "seed": seed, "split": split.digest(),
            "sizes": {"train": int(len(split.train)), "query": int(len(split.query)),
                      "database": int(len(split.database))},
            "params": {k: params[k] for k in ("beta", "prior_weight", "soft_positive", "temperature", "gen_epochs",
                                              "gen_batch_size", "gen_hidden", "gen_tokens", "gen_width")},
            "cpu_seconds": seconds,
            "auc": {name: vars(est) for name, est in aucs.items()},
            "differences": {f"{a} - {b}": vars(est) for (a, b), est in diffs.items()}}


def _print(result: dict[str, Any]) -> None:
    print(f"{result['dataset']} ({result['features']}), seed {result['seed']}, validation split "
          f"{result['sizes']}; CPU s per generator: "
          + ", ".join(f"{k} {v:.0f}" for k, v in result["cpu_seconds"].items()))
    for name, est in result["auc"].items():
        print(f"  AUC {name:22s} {est['value']:.4f} [{est['low']:.4f}, {est['high']:.4f}]")
    for name, est in result["differences"].items():
        mark = "*" if est["low"] > 0 or est["high"] < 0 else " "
        print(f"  Δ {name:40s} {est['value']:+.4f} [{est['low']:+.4f}, {est['high']:+.4f}] {mark}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cmhbench.tools.generator_auc",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--features", default="raw")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--generators", default="two-tower,mlp,attention")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a uchm parameter (JSON value), e.g. --param gen_epochs=10")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.param:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    results = []
    for seed in (int(s) for s in args.seeds.split(",")):
        result = measure(args.dataset, data_dir=args.data_dir, features=args.features, seed=seed,
                         generators=args.generators.split(","), overrides=overrides, n_bootstrap=args.bootstrap)
        _print(result)
        results.append(result)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
