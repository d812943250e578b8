"""What the harness tests share."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import pytest


def _stored_scores(tmp_path, scores_by_method, crossed=False) -> pd.DataFrame:
    """Stored cells whose per-query AP is given: method -> one array per seed.  ``crossed``: every
    seed answers the same query rows (a fixed split); otherwise each seed has its own."""
    from cmhbench import store

    rows = []
    for method, per_seed in scores_by_method.items():
        for seed, scores in enumerate(per_seed):
            key = f"{method}-{seed}"
            query_idx = np.arange(len(scores)) + (0 if crossed else 1000 * seed)
            store.write_cell(tmp_path, key, {"key": key, "status": "ok"},
                             {"query_idx": query_idx, "i2t_ap@all": scores, "t2i_ap@all": scores})
            rows.append({"key": key, "out": str(tmp_path), "method": method, "dataset": "d", "protocol": "p",
                         "database_coding": "modality", "bits": 16, "seed": seed, "status": "ok", "fidelity": "paper",
                         "i2t/map@all": np.mean(scores), "t2i/map@all": np.mean(scores)})
    return pd.DataFrame(rows)


@pytest.fixture
def stored_scores() -> Callable[..., pd.DataFrame]:
    """``stored_scores(folder, {method: [per-query AP of each seed]}, crossed=False)`` -> the frame
    ``store.load_results`` would give for those cells."""
    return _stored_scores
