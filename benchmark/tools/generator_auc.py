"""Judge UCHM's training targets, and fit it, on the validation split only.

``python -m cmhbench.tools.generator_auc --dataset wikipedia --features zscore`` builds every
similarity uchm can train its hashing networks under, on the validation split's training
rows and exactly as a uchm fit builds it (the learned generators cross-fitted over the same
folds), and scores how well each separates same-label from different-label pairs *of
training rows* — the pairs the hashing loss sees: ROC-AUC with paired bootstrap intervals
(:mod:`cmhbench.evaluation.pair_auc`).  The pairs are (a, b) with a in a seeded sample of
``--anchors`` training rows and b in the other training rows, so no row is paired with
itself.  Labels serve only this measurement; no test query is read.

Similarities compared, all on the same pairs:

- ``fused``: S̃, the fused intra-modal cosine (uchm's prior, β as uchm resolves it);
- ``coherence``: the shared-neighbour control, φ_C(C), alone and ``+prior``;
- ``<generator>``: the cross-fitted S^G of that scorer alone, and ``<generator>+prior``:
  (1 − π)·S^G + π·φ(S̃), what the hashing networks are trained under.

``--fit-bits 16,32`` also fits uchm itself (``--param`` values, paper preset) on the
validation split's training rows and prints validation map@all in both directions and the
distinct database codes of each modality.  CPU seconds are printed with each generator and
fit: these are measurements run by hand, not tests.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from cmhbench.conventions import DIRECTIONS
from cmhbench.evaluation.pair_auc import compare_similarities

log = logging.getLogger(__name__)

#: Training rows that anchor the measured pairs (each paired with every other training row).
ANCHORS = 300


def _uchm_params(dataset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    from cmhbench.methods.registry import resolve_params

    return resolve_params("uchm", dataset=dataset, preset="paper", params=overrides)


def similarity_matrices(image: np.ndarray, text: np.ndarray, params: dict[str, Any], generators: list[str],
                        anchors: np.ndarray, others: np.ndarray,
                        seed: int) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """anchors × others similarities among the training rows ``image``, ``text``: S̃, the
    coherence control and each generator (alone and with the prior), built as a uchm fit builds
    them on these rows; and CPU seconds per generator."""
    import torch

    from cmhbench.methods import uchm

    X, Y = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)), torch.from_numpy(
        np.ascontiguousarray(text, dtype=np.float32))
    a, b = torch.as_tensor(anchors), torch.as_tensor(others)
    calibration = uchm.estimate_calibration(image, text, params["beta"], params["confident"],
                                            params["calibration_pairs"], np.random.default_rng([seed, 11]))
    with torch.no_grad():
        fused = uchm.fused_cross(X[a], Y[a], X[b], Y[b], params["beta"])
    out = {"fused": fused.double().numpy()}
    prior = uchm.calibrate(fused, **calibration)
    seconds: dict[str, float] = {}
    for name in generators:
        t0 = time.process_time()
        with torch.no_grad():
            if name == "coherence":
                coherence = uchm.coherence_for(X, Y, params["beta"], params["coherence_share"])
                cal = uchm.coherence_calibration(coherence, params["confident"], params["calibration_pairs"],
                                                 np.random.default_rng([seed, 12]))
                generated = uchm.calibrate(coherence.similarity(a, b), **cal)
            else:
                config = uchm.UCHM(**{**params, "generator": name}).generator_config()
                with torch.enable_grad():
                    fit = uchm.train_generator(image, text, config=config, seed=seed, calibration=calibration)
                generated = uchm.CrossFitted(config, fit, X, Y).similarity(a, b)
        seconds[name] = time.process_time() - t0
        out[name] = generated.double().numpy()
        out[f"{name}+prior"] = uchm.mixed_similarity(generated, prior, params["prior_weight"]).double().numpy()
    return out, seconds


def comparisons(generators: list[str]) -> list[tuple[str, str]]:
    """Each similarity against S̃, and every learned generator against the coherence control and
    the two-tower one (alone and with the prior)."""
    pairs = [(f"{g}{suffix}", "fused") for g in generators for suffix in ("", "+prior")]
    for control in ("coherence", "two-tower"):
        if control in generators:
            pairs += [(f"{g}{suffix}", f"{control}{suffix}") for g in generators
                      if g not in (control, "coherence") for suffix in ("", "+prior")]
    return pairs


def validation_data(dataset_name: str, data_dir: str | None, features: str, seed: int):
    from cmhbench.datasets.features import preprocess
    from cmhbench.datasets.registry import resolve
    from cmhbench.datasets.validation import validation_split

    source = resolve(dataset_name, data_dir, cache_dir=False)
    dataset = source.load()
    split = validation_split(source.split(dataset, source.default_protocol, seed), dataset.labels, seed)
    if features != "raw":
        dataset = preprocess(dataset, split.train, features)
    return dataset, split


def measure(dataset_name: str, *, data_dir: str | None, features: str, seed: int, generators: list[str],
            overrides: dict[str, Any], n_bootstrap: int, n_anchors: int = ANCHORS) -> dict[str, Any]:
    dataset, split = validation_data(dataset_name, data_dir, features, seed)
    params = _uchm_params(dataset_name, overrides)
    train = split.train
    order = np.random.default_rng([seed, 21]).permutation(len(train))
    anchors, others = np.sort(order[:n_anchors]), np.sort(order[n_anchors:])
    sims, seconds = similarity_matrices(dataset.image[train], dataset.text[train], params, generators,
                                        anchors, others, seed)
    labels = dataset.labels[train].astype(np.float32)
    relevant = (labels[anchors] @ labels[others].T) > 0
    aucs, diffs = compare_similarities(sims, relevant, pairs=comparisons(generators), n_bootstrap=n_bootstrap,
                                       seed=seed)
    return {"dataset": dataset_name, "features": features, "seed": seed, "split": split.digest(),
            "sizes": {"train": int(len(train)), "anchors": int(len(anchors)), "others": int(len(others))},
            "params": {k: params[k] for k in ("beta", "prior_weight", "folds", "margin", "regression_weight",
                                              "coherence_share", "gen_epochs", "gen_batch_size", "gen_hidden")},
            "cpu_seconds": seconds,
            "auc": {name: vars(est) for name, est in aucs.items()},
            "differences": {f"{a} - {b}": vars(est) for (a, b), est in diffs.items()}}


def fit_on_validation(dataset_name: str, *, data_dir: str | None, features: str, seed: int, bits: int,
                      overrides: dict[str, Any], cache: Path | None = None) -> dict[str, Any]:
    """Fit uchm on the validation split's training rows; its validation map@all and code counts
    (with ``cache``, a joblib cache folder, the generator is trained once for every bit length)."""
    import joblib

    from cmhbench.evaluation.metrics import evaluate
    from cmhbench.methods import create
    from cmhbench.methods.base import PairedFeatures

    dataset, split = validation_data(dataset_name, data_dir, features, seed)
    params = _uchm_params(dataset_name, overrides)
    train = PairedFeatures(dataset.image[split.train], dataset.text[split.train])
    t0 = time.process_time()
    memory = None if cache is None else joblib.Memory(str(cache), verbose=0)
    model = create("uchm", params=params, seed=seed, device="cpu", cache=memory).fit(train, bits)
    seconds = time.process_time() - t0
    q, d, L = split.query, split.database, dataset.labels
    image_db, text_db = model.encode_image(dataset.image[d]), model.encode_text(dataset.text[d])
    i2t = evaluate(model.encode_image(dataset.image[q]), text_db, L[q], L[d], ["map@all"])["map@all"]
    t2i = evaluate(model.encode_text(dataset.text[q]), image_db, L[q], L[d], ["map@all"])["map@all"]
    return {"dataset": dataset_name, "features": features, "seed": seed, "bits": bits, "params": overrides,
            "map@all": {d: float(v) for d, v in zip(DIRECTIONS, (i2t, t2i))}, "cpu_seconds": seconds,
            "distinct_codes": {"image": int(len(np.unique(image_db, axis=0))),
                               "text": int(len(np.unique(text_db, axis=0)))},
            "final_terms": {k: float(v[-1]) for k, v in model.loss_history_.items()}}


def _print(result: dict[str, Any]) -> None:
    print(f"{result['dataset']} ({result['features']}), seed {result['seed']}, validation training rows "
          f"{result['sizes']}; CPU s per generator: "
          + ", ".join(f"{k} {v:.0f}" for k, v in result["cpu_seconds"].items()))
    for name, est in result["auc"].items():
        print(f"  AUC {name:22s} {est['value']:.4f} [{est['low']:.4f}, {est['high']:.4f}]")
    for name, est in result["differences"].items():
        mark = "*" if est["low"] > 0 or est["high"] < 0 else " "
        print(f"  Δ {name:40s} {est['value']:+.4f} [{est['low']:+.4f}, {est['high']:+.4f}] {mark}")


def _print_fit(result: dict[str, Any]) -> None:
    c = result["distinct_codes"]
    scores = " ".join(f"{DIRECTIONS[d]} {v:.4f}" for d, v in result["map@all"].items())
    print(f"{result['dataset']} ({result['features']}), seed {result['seed']}, {result['bits']} bits "
          f"{result['params']}: validation map@all {scores}; distinct database "
          f"codes image {c['image']} text {c['text']}; fit {result['cpu_seconds']:.0f} CPU s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cmhbench.tools.generator_auc",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--features", default="raw")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--generators", default="coherence,two-tower,mlp,attention",
                        help="similarities to measure (empty: none, e.g. with --fit-bits only)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a uchm parameter (JSON value), e.g. --param gen_epochs=10")
    parser.add_argument("--anchors", type=int, default=ANCHORS)
    parser.add_argument("--fit-bits", default="", help="also fit uchm at these bit lengths (comma-separated)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="a folder caching the generator between --fit-bits fits")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.param:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    generators = [g for g in args.generators.split(",") if g]
    results = []
    for seed in (int(s) for s in args.seeds.split(",")):
        if generators:
            result = measure(args.dataset, data_dir=args.data_dir, features=args.features, seed=seed,
                             generators=generators, overrides=overrides, n_bootstrap=args.bootstrap,
                             n_anchors=args.anchors)
            _print(result)
            results.append(result)
        for bits in (int(b) for b in args.fit_bits.split(",") if b):
            result = fit_on_validation(args.dataset, data_dir=args.data_dir, features=args.features, seed=seed,
                                       bits=bits, overrides=overrides, cache=args.cache)
            _print_fit(result)
            results.append(result)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
