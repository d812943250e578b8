"""``perf cost``: the plumbing on a tiny shape (the numbers themselves are docs/performance.md's)."""

import math

import pytest

from cmhbench.methods import base
from cmhbench.tools import perf
from cmhbench.tools.perf_cost import Job, growth_exponent, measure, train_sizes


def test_growth_exponents_are_log_log_slopes():
    sizes = [100, 200, 400]
    assert growth_exponent(sizes, [3.0 * n for n in sizes]) == pytest.approx(1.0)
    assert growth_exponent(sizes, [0.5 * n * n for n in sizes]) == pytest.approx(2.0)
    assert growth_exponent(sizes, [7.0, 7.0, 7.0]) == pytest.approx(0.0)
    assert math.isnan(growth_exponent(sizes, [1.0, math.nan, 0.0]))  # fewer than two usable points


def test_training_sizes_name_the_papers_set_and_the_whole_retrieval_set():
    assert train_sizes("paper,all,100", "mirflickr25k") == [5000, 18_015, 100]
    assert train_sizes("10000000", "wikipedia") == [2173]  # never more than the retrieval set
    with pytest.raises(ValueError, match="'1' is not a pair count"):
        train_sizes("1", "wikipedia")


def test_a_shallow_fit_is_timed_encoded_and_scored_at_full_database_size():
    cost = measure(Job("cca-itq", "wikipedia", 200, 16, encode_rows=300))
    assert not cost.error
    assert cost.fit_s > 0 and cost.encode_s > 0 and cost.eval_s > 0
    assert math.isnan(cost.setup_s)  # a shallow fit has no epochs to separate from its set-up
    assert cost.fit_peak_mb >= 0


def test_a_deep_fit_times_one_epoch_apart_from_its_set_up():
    cost = measure(Job("djsrh", "wikipedia", 64, 8, preset="quick", score=False))
    assert not cost.error
    assert cost.fit_s > 0 and cost.setup_s >= 0
    assert math.isnan(cost.encode_s) and math.isnan(cost.eval_s)  # growth points only fit


def test_a_fit_refused_for_memory_is_a_row_that_says_so(monkeypatch):
    monkeypatch.setattr(base, "available_memory_bytes", lambda: 2**20)
    cost = measure(Job("imh", "wikipedia", 200, 16, encode_rows=300))
    assert cost.error.startswith("refused: imh's 200 x 200 graph") and "GiB" in cost.error
    assert math.isnan(cost.fit_s)


@pytest.mark.parametrize("argv, message", [
    (["--methods", "cca_itqq"], "cca_itqq"),
    (["--train", "1"], "--train"),
    (["--growth", "1"], "--growth"),
    (["--shapes", "flickr"], "unknown shape 'flickr'"),
])
def test_bad_options_are_refused_in_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        perf.main(["cost", "--methods", "cca-itq", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_the_command_prints_the_cost_and_growth_tables(capsys):
    code = perf.main(["cost", "--methods", "cca-itq", "--shapes", "wikipedia", "--train", "100", "--growth", "50",
                      "--encode-rows", "200", "--bits", "8"])
    out = capsys.readouterr().out
    assert code == 0
    assert "load average before" in out and "load average after" in out
    assert "| cca-itq | shallow | wikipedia |" in out
    assert "time exponent" in out and "50 / 100 / 200" in out
