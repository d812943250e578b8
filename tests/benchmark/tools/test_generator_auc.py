import numpy as np

from cmhbench.methods.registry import resolve_params
from cmhbench.tools import generator_auc


def test_every_target_is_measured_on_pairs_of_distinct_training_rows():
    rng = np.random.default_rng(0)
    image, text = rng.random((60, 6)).astype(np.float32), rng.random((60, 4)).astype(np.float32)
    params = resolve_params("uchm", params={"gen_epochs": 1, "gen_hidden": 8, "gen_width": 4, "gen_batch_size": 20,
                                            "calibration_pairs": 500, "coherence_share": 0.1})
    anchors, others = np.arange(0, 60, 3), np.setdiff1d(np.arange(60), np.arange(0, 60, 3))
    sims, seconds = generator_auc.similarity_matrices(image, text, params, ["coherence", "two-tower"], anchors,
                                                      others, seed=0)
    assert set(sims) == {"fused", "coherence", "coherence+prior", "two-tower", "two-tower+prior"}
    assert all(s.shape == (20, 40) and np.isfinite(s).all() for s in sims.values())
    assert set(seconds) == {"coherence", "two-tower"}
    pairs = generator_auc.comparisons(["coherence", "two-tower", "attention"])
    assert ("attention", "coherence") in pairs and ("attention+prior", "two-tower+prior") in pairs
    assert ("two-tower", "coherence") in pairs and ("coherence", "two-tower") not in pairs
