import re

import numpy as np
import pytest

from cmhbench.tools import perf
from cmhbench.evaluation import evaluate


def test_perf_eval_runs_small_and_checks_the_reference(capsys):
    assert perf.main(["eval", "--queries", "6", "--database", "300", "--bits", "8,13", "--repeat", "1",
                      "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "speed-up" in out
    rows = [line for line in out.splitlines() if re.match(r"^\|\s+\d+ \|", line)]
    assert [row.split("|")[1].strip() for row in rows] == ["8", "13"]
    assert all(row.rstrip(" |").endswith("yes") for row in rows)


def test_synthetic_labels_are_multi_hot_with_the_asked_mean():
    labels = perf.synthetic_labels(np.random.default_rng(0), 5000, 24, 3.0)
    assert labels.shape == (5000, 24) and labels.dtype == np.uint8
    assert labels.sum(axis=1).min() >= 1
    assert abs(labels.sum(axis=1).mean() - 3.0) < 0.1


def test_reference_agrees_with_the_engine_on_map():
    rng = np.random.default_rng(1)
    qc = rng.choice([-1, 1], size=(9, 16)).astype(np.int8)
    dc = rng.choice([-1, 1], size=(200, 16)).astype(np.int8)
    ql = perf.synthetic_labels(rng, 9, 6, 1.5)
    dl = perf.synthetic_labels(rng, 200, 6, 1.5)
    got = evaluate(qc, dc, ql, dl, ["map@all", "map@50"])
    assert perf.reference_map(qc, dc, ql, dl) == pytest.approx((got["map@all"], got["map@50"]), abs=1e-12)
