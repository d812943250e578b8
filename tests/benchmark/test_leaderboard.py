import numpy as np
import pandas as pd
import pytest

from cmhbench.leaderboard import LeaderboardError, build_tables, to_csv, to_markdown


def _frame(rows):
    base = dict(dataset="d", protocol="p", database_coding="modality", fidelity="paper", kind="shallow")
    return pd.DataFrame([{**base, **r} for r in rows])


def _ok(method, bits, seed, value, **extra):
    return dict(method=method, bits=bits, seed=seed, status="ok", **{"i2t/map@all": value, "t2i/map@all": value},
                **extra)


def test_mean_and_std_over_seeds_and_best_marked():
    frame = _frame([_ok("a", 16, 0, 0.5), _ok("a", 16, 1, 0.7), _ok("b", 16, 0, 0.2), _ok("b", 16, 1, 0.4)])
    table = build_tables(frame)[0]
    assert table.means.loc["a", 16] == pytest.approx(0.6)
    assert table.stds.loc["a", 16] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert table.text("a", 16) == "0.6000 ± 0.1414"
    assert (table.rank("a", 16), table.rank("b", 16)) == (1, 2)
    assert "| **0.6000 ± 0.1414** |" in to_markdown(frame)


def test_a_failed_or_missing_seed_shows_as_missing_not_a_partial_mean():
    frame = _frame([
        _ok("a", 16, 0, 0.5), _ok("a", 16, 1, 0.7),
        _ok("b", 16, 0, 0.9), dict(method="b", bits=16, seed=1, status="failed"),
        _ok("c", 16, 0, 0.9),  # seed 1 never ran
    ])
    table = build_tables(frame)[0]
    assert table.text("b", 16) == "—" and np.isnan(table.means.loc["b", 16])
    assert table.text("c", 16) == "—" and table.rank("c", 16) is None
    assert table.rank("a", 16) == 1  # best among complete entries


def test_not_applicable_and_reconstructed_are_marked():
    frame = _frame([_ok("a", 16, 0, 0.5, fidelity="reconstructed"),
                    dict(method="b", bits=16, seed=0, status="not-applicable")])
    text = to_markdown(frame)
    assert "| a †" in text and "n/a" in text
    assert "I→T" in text and "T→I" in text


def test_unknown_and_unstored_metrics():
    frame = _frame([_ok("a", 16, 0, 0.5)])
    with pytest.raises(LeaderboardError, match="not in the stored records"):
        build_tables(frame, "map@50")
    with pytest.raises(Exception, match="unknown metric"):
        build_tables(frame, "ndcg")


def test_csv_is_long():
    frame = _frame([_ok("a", 16, 0, 0.5), _ok("a", 32, 0, 0.6)])
    lines = to_csv(frame).strip().splitlines()
    assert len(lines) == 1 + 4
    assert "direction" in lines[0] and "metric" in lines[0] and "value" in lines[0]
