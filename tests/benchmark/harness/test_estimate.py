"""The run's time estimate from timings stored in the same folder."""

import pytest

from cmhbench import store
from cmhbench.datasets.synthetic import SyntheticConfig, SyntheticSource
from cmhbench.harness.estimate import duration, estimate
from cmhbench.harness.grid import GridSpec, build_cells
from cmhbench.harness.runner import RunContext, base_record

SMALL = SyntheticSource(SyntheticConfig(n_items=400, n_query=50, n_train=200))


def _store(out, cell, seconds):
    record = base_record(cell, RunContext(out=out))
    record.status, record.timings = "ok", {"total_s": seconds}
    store.write_cell(out, cell.key, record.to_json(), None)


def test_estimate_uses_the_same_configuration_and_counts_the_rest(tmp_path):
    sources = {"synthetic": SMALL}
    done = build_cells(GridSpec(methods=["random"], bits=[16, 32], seeds=[0], preset="quick"), sources)
    for cell, seconds in zip(done, (10.0, 30.0)):
        _store(tmp_path, cell, seconds)
    todo = build_cells(GridSpec(methods=["random", "cca-itq"], bits=[16, 32], seeds=[1], preset="quick"), sources)
    result = estimate(todo, tmp_path)
    assert (result.known, result.unknown) == (2, 2)  # random: same bits stored; cca-itq: nothing stored
    assert result.seconds == pytest.approx(40.0)
    assert estimate(todo, tmp_path, workers=2).seconds == pytest.approx(20.0)
    assert result.line() == ("estimate from stored timings: about 40 s for 2 cells; 2 cells more with no stored "
                             "timing of their configuration")
    assert estimate(todo[2:], tmp_path).line() is None


def test_timings_of_another_preset_or_parameter_are_never_borrowed(tmp_path):
    """Quick-preset timings once estimated a paper-preset run at 27 s; it took 11 minutes (cmfh's quick
    preset has fewer rounds than its paper one)."""
    sources = {"synthetic": SMALL}
    for cell in build_cells(GridSpec(methods=["cmfh"], bits=[16], seeds=[0], preset="quick"), sources):
        _store(tmp_path, cell, 1.0)
    paper = build_cells(GridSpec(methods=["cmfh"], bits=[16], seeds=[1], preset="paper"), sources)
    other = build_cells(GridSpec(methods=["cmfh"], bits=[16], seeds=[1], preset="quick",
                                 params={"cmfh": {"n_iter": 7}}), sources)
    assert estimate(paper, tmp_path).known == 0 and estimate(paper, tmp_path).line() is None
    assert estimate(other, tmp_path).known == 0
    same_at_other_bits = build_cells(GridSpec(methods=["cmfh"], bits=[64], seeds=[1], preset="quick"), sources)
    assert estimate(same_at_other_bits, tmp_path).known == 1


def test_durations_read_naturally():
    assert (duration(40), duration(22 * 60), duration(3.5 * 3600)) == ("40 s", "22 min", "3.5 h")
