import json
import re

import numpy as np
import pandas as pd
import pytest

from cmhbench.analysis.stats import entry_interval, holm, paired_comparison, rank_methods


def test_identical_methods_are_never_called_different():
    rng = np.random.default_rng(0)
    a = [rng.random(300), rng.random(250)]
    result = paired_comparison(a, [x.copy() for x in a])
    assert result.p_value == 1.0
    assert result.difference.estimate == 0.0


def test_a_clearly_better_method_is_called_different():
    rng = np.random.default_rng(1)
    b = [rng.random(200) * 0.8, rng.random(200) * 0.8]
    a = [x + 0.05 for x in b]
    result = paired_comparison(a, b, n_resamples=999)
    assert result.p_value < 0.01
    assert result.difference.low > 0 and result.difference.estimate == pytest.approx(0.05)


def test_noise_alone_is_rarely_significant():
    rng = np.random.default_rng(2)
    rejections = 0
    for trial in range(40):
        a = [rng.random(100)]
        b = [rng.random(100)]
        rejections += paired_comparison(a, b, n_resamples=499, seed=trial).p_value < 0.05
    assert rejections <= 6  # ~5% expected


def test_intervals_cover_the_true_mean_at_about_the_nominal_rate():
    rng = np.random.default_rng(3)
    true_mean, covered, trials = 0.4, 0, 120
    for trial in range(trials):
        samples = [rng.beta(2, 3, size=150) for _ in range(2)]  # Beta(2,3) has mean 0.4
        interval = entry_interval(samples, n_resamples=999, seed=trial)
        covered += interval.low <= true_mean <= interval.high
    assert 0.88 <= covered / trials <= 0.99


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]


def test_pairing_needs_the_same_queries():
    with pytest.raises(ValueError, match="same queries"):
        paired_comparison([np.ones(3)], [np.ones(4)])


def test_rankings_and_friedman_with_missing_method_excluded():
    rows = []
    for d in ("d1", "d2", "d3", "d4"):
        for bits in (16, 32):
            rows.append({"dataset": d, "direction": "i2t", "bits": bits, "best": 0.9, "mid": 0.6, "low": 0.3,
                         "partial": np.nan if d == "d2" else 0.95})
    ranking = rank_methods(pd.DataFrame(rows))
    assert ranking.excluded == ["partial"]
    assert list(ranking.mean_ranks.index) == ["best", "mid", "low"]
    assert ranking.mean_ranks["best"] == 1.0
    assert ranking.friedman_p < 0.05
    assert ranking.critical_difference > 0
    assert ranking.dataset_ranks["low"] == 3.0
    text = ranking.to_markdown("map@all")
    assert "Friedman test over 4 datasets" in text and f"p = {ranking.friedman_p:.4g}" in text
    assert "| best     | 1.00        | 1.00" in text and "No aggregate" in text and "partial" in text


def test_no_friedman_with_fewer_than_three_datasets():
    frame = pd.DataFrame([{"dataset": "d", "direction": "i2t", "bits": 16, "a": 0.5, "b": 0.4, "c": 0.3}])
    ranking = rank_methods(frame)
    assert ranking.friedman_p is None and ranking.mean_ranks["a"] == 1.0


@pytest.mark.slow  # a stored two-seed run, then bootstrap and permutation tests (multi-second)
def test_compare_and_intervals_from_a_stored_run(tmp_path, capsys):
    from cmhbench import store
    from cmhbench.cli import main
    from cmhbench.analysis.stats import compare_methods, leaderboard_statistics

    out = tmp_path / "o"
    assert main(["run", "--methods", "random,cca-itq", "--bits", "16", "--seeds", "0,1", "--out", str(out),
                 "--no-progress"]) == 0
    frame = store.load_results(out)
    table = compare_methods(frame, "cca-itq", "random")
    assert len(table) == 2 and (table["p (Holm)"] < 0.01).all() and (table["low"] > 0).all()
    same = compare_methods(frame, "random", "random")
    assert (same["p"] == 1.0).all()
    statistics = leaderboard_statistics(frame)
    best = statistics[("synthetic", "synthetic", "raw", "modality", "i2t", "cca-itq", 16)]
    assert best.interval.low <= best.interval.estimate <= best.interval.high
    assert best.best and best.tied_with_best and best.p_vs_best is None
    worse = statistics[("synthetic", "synthetic", "raw", "modality", "i2t", "random", 16)]
    assert not worse.best and not worse.tied_with_best and worse.p_vs_best < 0.05
    capsys.readouterr()
    assert main(["leaderboard", str(out), "--ci"]) == 0
    printed = capsys.readouterr().out
    table = next(part for part in printed.split("\n\n") if part.startswith("| method"))
    assert "95% interval" in printed and "≈" not in table  # random is clearly worse
    assert "Intervals and ≈ cover queries (only 2 seeds, too few for seed variance" in printed  # the fallback, said
    assert main(["leaderboard", str(out), "--ci", "--metric", "map@5000"]) == 2
    assert "per-query scores are stored for" in capsys.readouterr().err
    assert main(["compare", str(out), "--methods", "cca-itq,random"]) == 0
    printed = capsys.readouterr().out
    assert "cca-itq − random" in printed and "queries (2 seeds)" in printed and "nested" in printed
    assert "Intervals and p cover queries (only 2 seeds" in printed
    assert main(["compare", str(out), "--methods", "cca-itq,nope"]) == 2
    assert "no stored cells of nope" in capsys.readouterr().err


def test_entries_are_marked_when_not_significantly_different_from_the_best(tmp_path, stored_scores):
    from cmhbench.analysis.leaderboard import to_markdown
    from cmhbench.analysis.stats import leaderboard_statistics

    rng = np.random.default_rng(5)
    base = [rng.random(200), rng.random(200)]
    frame = stored_scores(tmp_path, {
        "best": [b + 0.02 for b in base],
        "twin": [b + 0.02 + rng.normal(0, 0.001, 200) for b in base],  # the same up to noise
        "far": [b - 0.2 for b in base]})
    statistics = leaderboard_statistics(frame, n_resamples=999)
    mark = {m: statistics[("d", "p", "raw", "modality", "i2t", m, 16)] for m in ("best", "twin", "far")}
    top = max(mark, key=lambda m: mark[m].interval.estimate)
    assert mark[top].best and mark[top].tied_with_best
    assert sum(e.best for e in mark.values()) == 1
    assert mark["twin" if top == "best" else "best"].tied_with_best
    assert not mark["far"].tied_with_best and mark["far"].p_vs_best < 0.01
    text = to_markdown(frame, "map@all", statistics)
    far_row = next(line for line in text.splitlines() if line.startswith("| far"))
    assert "≈" not in far_row and "[" in far_row
    assert text.count("≈") == 2 + text.count("≈ = ") + text.count("and ≈ cover")  # the twin twice, legend, notes


def test_ranking_entries_and_the_rank_command(tmp_path, capsys):
    from cmhbench.cli import main
    from cmhbench.analysis.stats import ranking_entries

    out = tmp_path / "o"
    assert main(["run", "--methods", "random,cca-itq", "--bits", "8,16", "--out", str(out), "--no-progress"]) == 0
    from cmhbench import store

    entries = ranking_entries(store.load_results(out))
    assert len(entries) == 4 and list(entries.columns[-2:]) == ["cca-itq", "random"]
    assert (entries["cca-itq"] > entries["random"]).all()
    capsys.readouterr()
    assert main(["rank", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| cca-itq  | 1.00" in printed and "No Friedman test" in printed and "1 dataset(s)" in printed


def _one_line_error(err: str) -> str:
    assert err.startswith("cmhbench: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


RUN = ["run", "--bits", "16", "--seeds", "0", "--no-progress"]


@pytest.mark.slow  # four small stored runs (seconds)
def test_compare_refuses_two_configurations_of_one_method_and_names_them(tmp_path, capsys):
    from cmhbench.cli import main

    out = str(tmp_path / "o")
    assert main(RUN + ["--methods", "cca-itq,random", "--out", out]) == 0
    assert main(RUN + ["--methods", "cca-itq", "--out", out]) == 0  # the same cells again: not a second configuration
    capsys.readouterr()
    assert main(["compare", out, "--methods", "cca-itq,random"]) == 0
    assert "cca-itq − random" in capsys.readouterr().out

    assert main(RUN + ["--methods", "cca-itq", "--param", "cca-itq.n_iter=5", "--out", out]) == 0
    capsys.readouterr()
    assert main(["compare", out, "--methods", "cca-itq,random"]) == 2
    captured = capsys.readouterr()
    err = _one_line_error(captured.err)
    assert captured.out == ""  # no table that mixes or picks one of them
    assert "cca-itq has 2 configurations in synthetic" in err and "16 bits" in err
    assert "n_iter: 50 vs 5" in err or "n_iter: 5 vs 50" in err
    assert "[variants.NAME]" in err and 'base = "cca-itq"' in err and "separate output folders" in err
    assert main(["compare", out, "--methods", "random,cca-itq"]) == 2  # either side
    capsys.readouterr()
    # the leaderboard gives each configuration its own row, so its statistics stay well defined
    assert main(["leaderboard", out, "--ci"]) == 0
    assert "cca-itq [paper, n\\_iter=5]" in capsys.readouterr().out
    assert main(["compare", out, "--methods", "random,random"]) == 0  # a method with one configuration


@pytest.mark.slow  # two small stored runs (seconds)
def test_named_variants_and_feature_settings_compare_fine(tmp_path, capsys):
    from cmhbench.cli import main

    config = tmp_path / "grid.toml"
    config.write_text('methods = ["cca-itq", "cca-short"]\nbits = [16]\nseeds = [0]\n'
                      '[variants.cca-short]\nbase = "cca-itq"\nn_iter = 5\n')
    out = str(tmp_path / "o")
    assert main(["run", "--config", str(config), "--out", out, "--no-progress"]) == 0
    assert main(RUN + ["--methods", "cca-itq,cca-short", "--config", str(config), "--features", "zscore",
                       "--out", out]) == 0
    capsys.readouterr()
    assert main(["compare", out, "--methods", "cca-short,cca-itq"]) == 0
    printed = capsys.readouterr().out
    assert "cca-short − cca-itq" in printed
    rows = [line.split() for line in printed.splitlines() if line.startswith("synthetic")]
    assert sorted((r[2], r[4]) for r in rows) == [("raw", "I→T"), ("raw", "T→I"), ("zscore", "I→T"),
                                                  ("zscore", "T→I")]


def _copy_cell(out: str, method: str, key: str, edit) -> None:
    """Store a copy of ``method``'s cell under ``key`` with its record's cell edited by ``edit``."""
    from cmhbench import store

    frame = store.load_results(out)
    source = frame.loc[frame["method"] == method, "key"].iloc[0]
    record = store.read_record(out, source)
    edit(record["cell"])
    store.write_cell(out, key, {**record, "key": key}, store.read_arrays(out, source))


@pytest.mark.slow  # one small stored run and a report (seconds)
def test_two_versions_of_a_method_are_two_rows_for_the_statistics_and_compare_refuses_them(tmp_path, capsys):
    """A cell's key holds its method's version, so a run after a bump stores a second cell of
    one seed beside the old one: the leaderboard, --ci, rank and report show each version as a
    row (the older flagged stale); compare names methods, so it stops and says how to separate them."""
    from cmhbench.cli import main
    from cmhbench.store import load_results

    out = str(tmp_path / "o")
    assert main(RUN + ["--methods", "cca-itq,random", "--out", out]) == 0
    capsys.readouterr()
    assert main(["leaderboard", out]) == 0
    one_version = capsys.readouterr().out
    assert re.search(r"\| random +\|", one_version) and "(v1)" not in one_version and "Stale" not in one_version

    _copy_cell(out, "random", "random-version-2", lambda cell: cell.update(versions={"random": 2}))
    stale = "Stale: random (v1) — computed by an older version of the method"
    assert main(RUN + ["--methods", "cca-itq,random", "--out", out]) == 0  # nothing to run; rewrites leaderboard.md
    written = (tmp_path / "o" / "leaderboard.md").read_text()
    assert "| random (v1) " in written and "| random (v2) " in written and stale in written
    assert not re.search(r"\| random +\|", written)  # no row pools the two versions
    capsys.readouterr()
    for command in (["leaderboard", out, "--ci"], ["rank", out]):
        assert main(command) == 0, command
        printed = capsys.readouterr().out
        assert "random (v1)" in printed and "random (v2)" in printed
    assert main(["report", out, "-o", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    data = json.loads(re.search(r'id="cmh-data">(.*?)</script>', page, re.S).group(1))
    tables = data["tables"]["map@all"]
    assert all({"random (v1)", "random (v2)"} <= {r["label"] for r in t["rows"]} for t in tables)
    assert all(t["stale"].startswith(stale) for t in tables)
    assert stale in (tmp_path / "report" / "leaderboard.tex").read_text()

    capsys.readouterr()
    assert main(["compare", out, "--methods", "cca-itq,random"]) == 2
    err = _one_line_error(capsys.readouterr().err)
    assert "random has cells of 2 method versions in synthetic" in err
    assert "versions.random: 1 vs 2" in err or "versions.random: 2 vs 1" in err
    assert "delete the older version's cells (`cmhbench prune OUT` lists them" in err and "own output folder" in err
    assert main(["prune", out, "--yes"]) == 0  # the older version's cell goes; compare then has one per name
    assert list(load_results(out).query("method == 'random'")["key"]) == ["random-version-2"]
    assert main(["compare", out, "--methods", "cca-itq,random"]) == 0


@pytest.mark.slow  # one small stored run (seconds)
def test_two_cells_of_one_seed_in_one_row_stop_the_leaderboard_statistics_and_rank(tmp_path, capsys):
    """The same method, parameters and version over a changed dataset file give a second cell of
    one seed in one leaderboard row: --ci, rank and report must not pool or pick them."""
    from cmhbench.cli import main

    out = str(tmp_path / "o")
    assert main(RUN + ["--methods", "cca-itq,random", "--out", out]) == 0
    _copy_cell(out, "random", "random-other-data", lambda cell: cell["dataset"].update(generator=2))
    capsys.readouterr()
    for command in (["leaderboard", out, "--ci"], ["rank", out], ["compare", out, "--methods", "cca-itq,random"],
                    ["report", out, "-o", str(tmp_path / "report")]):
        assert main(command) == 2, command
        err = _one_line_error(capsys.readouterr().err)
        assert "random has 2 configurations in synthetic" in err and "seed 0" in err
        assert "dataset.generator: 1 vs 2" in err or "dataset.generator: 2 vs 1" in err


def test_one_name_with_two_parameter_sets_on_different_seeds_is_refused(tmp_path, stored_scores):
    """Seeds pooled from two configurations would average them: refused even without a shared seed."""
    from cmhbench.analysis.stats import MixedConfigurationsError, check_one_configuration

    frame = stored_scores(tmp_path, {"m": [np.ones(5), np.ones(5)]})
    frame["params"] = ['{"epochs": 1}', '{"epochs": 2}']
    with pytest.raises(MixedConfigurationsError, match=r"m has 2 configurations in d .* \(epochs: 1 vs 2\)"):
        check_one_configuration(frame)
    frame["params"] = '{"epochs": 1}'
    check_one_configuration(frame)
    check_one_configuration(pd.concat([frame, frame]))  # one cell read twice is one cell
