import numpy as np
import torch

from cmhbench.methods.kdcmh import Similarity, knn_count, knn_thresholds, target_rows
from cmhbench.tools.kdcmh_targets import target_matrix


def test_the_diagnostic_scores_the_target_the_student_is_trained_on():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(40, 6))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    params = {"distill": "knn", "knn_fraction": 0.1}
    sim = Similarity(factor=torch.from_numpy(z))
    s = sim.matrix().numpy()  # what KDCMH.training_similarity hands the diagnostic
    k = knn_count(40, 0.1)
    student = target_rows(sim, torch.arange(40), "knn", kappa=5.0, thresholds=knn_thresholds(sim, k)).numpy()
    assert np.array_equal(target_matrix(s, params), student)
    assert (student.sum(axis=1) >= k + 1).all()  # k neighbours and the own pair, at least
    assert target_matrix(s, {"distill": "graded", "knn_fraction": 0.1}) is s  # σ(κ·s) ranks as s
