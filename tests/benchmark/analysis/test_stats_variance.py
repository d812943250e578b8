"""Which variance the statistics cover: training runs (seeds) and queries by default, queries
only on request or with fewer than three seeds; crossed designs read from the stored query rows."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from cmhbench.analysis.stats import (
    compare_methods,
    compare_text,
    crossed_design,
    crossed_moments,
    entry_interval,
    leaderboard_statistics,
    paired_comparison,
)


def _one_lucky_run(rng, queries=300, crossed=False):
    """B per seed, and A = B + a per-seed shift of 0.04, −0.02, 0.01 (one training run's luck) plus
    small per-query noise: on these queries A is better, across runs that is not established."""
    shared = rng.random(queries)
    b = [shared if crossed else rng.random(queries) for _ in range(3)]
    a = [x + shift + rng.normal(0, 0.01, queries) for x, shift in zip(b, (0.04, -0.02, 0.01))]
    return a, b


def test_the_design_is_read_from_the_stored_query_rows():
    rows = np.array([3, 5, 8])
    assert crossed_design([rows, rows.copy(), rows.copy()])
    assert not crossed_design([rows, rows + 1, rows])
    assert not crossed_design([rows])  # one seed: nothing is crossed


def test_a_difference_that_one_training_run_makes_is_not_called_real_by_default():
    a, b = _one_lucky_run(np.random.default_rng(0))
    by_queries = paired_comparison(a, b, variance="queries", n_resamples=999)
    by_seeds = paired_comparison(a, b)
    assert by_queries.p_value < 0.01 and by_queries.difference.low > 0
    assert by_seeds.p_value > 0.05 and by_seeds.difference.low < 0 < by_seeds.difference.high
    assert by_seeds.difference.estimate == pytest.approx(by_queries.difference.estimate)
    assert by_seeds.scheme.label() == "seeds + queries" and by_queries.scheme.label() == "queries"
    # a t-test on the three per-seed mean differences, df = 2
    expected = scipy_stats.ttest_1samp([np.mean(x - y) for x, y in zip(a, b)], 0.0)
    assert by_seeds.p_value == pytest.approx(expected.pvalue)


def test_identical_seeds_on_a_fixed_split_leave_only_the_query_term():
    """A deterministic method on a fixed split scores every query the same at every seed: no seed
    variance, and the test is the one-sample t-test over the shared queries (df = Q − 1)."""
    rng = np.random.default_rng(1)
    a_scores, b_scores = rng.random(400), rng.random(400) * 0.95
    result = paired_comparison([a_scores] * 3, [b_scores] * 3, crossed=True)
    expected = scipy_stats.ttest_1samp(a_scores - b_scores, 0.0)
    assert result.p_value == pytest.approx(expected.pvalue)
    low, high = expected.confidence_interval(0.95)
    assert (result.difference.low, result.difference.high) == pytest.approx((low, high))
    assert crossed_moments(np.stack([a_scores - b_scores] * 3))[2] == pytest.approx(399)


def test_shared_queries_are_resampled_jointly_on_a_crossed_design():
    """Three seeds answering the same 300 queries hold 300 queries' worth of evidence, not 900:
    resampling each seed's queries independently would shrink the interval by about √3."""
    rng = np.random.default_rng(2)
    scores = [rng.random(300)] * 3
    joint = entry_interval(scores, variance="queries", crossed=True, n_resamples=999)
    one_seed = entry_interval(scores[:1], variance="queries", n_resamples=999)
    independent = entry_interval(scores, variance="queries", crossed=False, n_resamples=999)
    width = lambda i: i.high - i.low  # noqa: E731
    assert width(joint) == pytest.approx(width(one_seed), rel=0.15)
    assert width(independent) == pytest.approx(width(one_seed) / np.sqrt(3), rel=0.15)


def test_compare_names_the_design_and_the_variance_it_covers(tmp_path, stored_scores):
    rng = np.random.default_rng(3)
    a, b = _one_lucky_run(rng, queries=200, crossed=True)
    frame = stored_scores(tmp_path, {"a": a, "b": b}, crossed=True)
    table = compare_methods(frame, "a", "b")
    assert list(table["design"]) == ["crossed", "crossed"] and list(table["queries"]) == [200, 200]
    assert list(table["covers"]) == ["seeds + queries"] * 2
    text = compare_text(table, "map@all")
    assert "Intervals and p cover seeds + queries (retraining and other queries): every seed answered the same" \
           " queries (crossed design)" in text
    assert "p not shown" not in text and (table["p (Holm)"] > 0.05).all()
    queries = compare_methods(frame, "a", "b", variance="queries")
    assert list(queries["covers"]) == ["queries"] * 2 and (queries["p (Holm)"] < 0.05).all()
    assert "one set of query indices resampled jointly for every seed" in compare_text(queries, "map@all")

    nested = compare_methods(stored_scores(tmp_path / "n", {"a": a, "b": b}, crossed=False), "a", "b")
    assert list(nested["design"]) == ["nested"] * 2 and list(nested["queries"]) == [600, 600]


def test_two_seeds_fall_back_to_the_query_scheme_and_say_so(tmp_path, stored_scores):
    rng = np.random.default_rng(4)
    frame = stored_scores(tmp_path, {"a": [rng.random(100) + 0.1, rng.random(100) + 0.1],
                              "b": [rng.random(100), rng.random(100)]}, crossed=False)
    table = compare_methods(frame, "a", "b")
    assert list(table["covers"]) == ["queries (2 seeds)"] * 2
    assert "Intervals and p cover queries (only 2 seeds, too few for seed variance (needs 3)" in compare_text(
        table, "map@all")


def test_a_p_that_cannot_reach_alpha_after_holm_is_replaced_by_one_line(tmp_path, stored_scores):
    rng = np.random.default_rng(5)
    frame = stored_scores(tmp_path, {"a": [rng.random(100) + 0.3], "b": [rng.random(100)]}, crossed=False)
    coarse = compare_methods(frame, "a", "b", variance="queries", n_resamples=39)  # p ≥ 1/40, Holm over 2: 0.05
    text = compare_text(coarse, "map@all")
    lines = [line for line in text.splitlines() if line.startswith("p not shown")]
    assert len(lines) == 1 and "cannot go below 0.05" in lines[0] and "2 rows" in lines[0]
    assert "p (Holm)" not in text.splitlines()[0]
    fine = compare_text(compare_methods(frame, "a", "b", variance="queries", n_resamples=999), "map@all")
    assert "p not shown" not in fine and "p (Holm)" in fine.splitlines()[0]


def test_the_leaderboard_says_which_variance_its_intervals_cover(tmp_path, stored_scores):
    from cmhbench.analysis.leaderboard import to_markdown

    rng = np.random.default_rng(6)
    a, b = _one_lucky_run(rng, queries=200, crossed=True)
    frame = stored_scores(tmp_path, {"a": a, "b": b}, crossed=True)
    seeds = to_markdown(frame, "map@all", leaderboard_statistics(frame, progress=False))
    assert "Intervals and ≈ cover seeds + queries (retraining and other queries)" in seeds
    assert seeds.count("≈ cover") == 2  # one line per table (I→T, T→I)
    queries = leaderboard_statistics(frame, progress=False, variance="queries")
    text = to_markdown(frame, "map@all", queries)
    assert "Intervals and ≈ cover queries (these trained models; retraining is not covered)" in text
    key = ("d", "p", "raw", "modality", "i2t", "b", 16)
    assert queries[key].p_vs_best < 0.05 < leaderboard_statistics(frame, progress=False)[key].p_vs_best


@pytest.mark.slow  # a stored three-seed run (seconds)
def test_the_commands_take_variance_and_default_to_seeds(tmp_path, capsys):
    from cmhbench.cli import main

    out = str(tmp_path / "o")
    assert main(["run", "--methods", "random,cca-itq", "--bits", "16", "--seeds", "0,1,2", "--out", out,
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["compare", out, "--methods", "cca-itq,random"]) == 0
    printed = capsys.readouterr().out
    assert "seeds + queries" in printed and "nested design" in printed and "df = seeds − 1" in printed
    assert main(["compare", out, "--methods", "cca-itq,random", "--variance", "queries"]) == 0
    printed = capsys.readouterr().out
    assert "Intervals and p cover queries (these trained models" in printed and "seeds + queries" not in printed
    assert main(["leaderboard", out, "--ci", "--variance", "queries"]) == 0
    assert "Intervals and ≈ cover queries (these trained models" in capsys.readouterr().out
    assert main(["leaderboard", out, "--ci"]) == 0
    assert "Intervals and ≈ cover seeds + queries" in capsys.readouterr().out


@pytest.mark.slow  # a quick deep cell and a shallow one (15-30 s)
def test_run_gives_seed_advice_only_when_the_grid_compares_deep_methods(tmp_path, capsys):
    from cmhbench.cli import main

    common = ["run", "--bits", "16", "--seeds", "0", "--preset", "quick", "--no-progress"]
    assert main(common + ["--methods", "random,cca-itq", "--out", str(tmp_path / "shallow")]) == 0
    assert "seed advice" not in capsys.readouterr().err
    assert main(common + ["--methods", "random,djsrh", "--out", str(tmp_path / "deep")]) == 0
    advice = [line for line in capsys.readouterr().err.splitlines() if line.startswith("seed advice")]
    assert len(advice) == 1 and "1 seed cannot test a difference across training runs (3+ needed)" in advice[0]
    assert "with 10 seeds" in advice[0] and "docs/statistics.md" in advice[0]
