"""The default statistics hold their promises on simulated per-query AP (cmhbench.analysis.power's model):
false positives at most α and 95% intervals covering at least 95% (within Monte-Carlo error) on
crossed and nested designs, with and without seed variance; the query-only scheme does not."""

import numpy as np
import pytest

from cmhbench.analysis.power import SEED_COUNTS, SEED_SPREADS, Setting, between_method_correlation, nested_power, run
from cmhbench.analysis.stats import ALPHA

N = 2000
FALSE_POSITIVES = ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / N)
COVERAGE = 0.95 - 3 * np.sqrt(0.95 * 0.05 / N)
SETTINGS = [Setting(crossed, seeds, sigma) for crossed in (True, False) for sigma in SEED_SPREADS
            for seeds in SEED_COUNTS]


def test_the_simulated_methods_agree_per_query_as_real_ones_do():
    assert between_method_correlation() == pytest.approx(0.8, abs=0.02)
    assert Setting(True, 3, 0.0).queries == 693 and Setting(False, 3, 0.0).queries == 300


@pytest.mark.slow  # 24 settings × 2,000 simulated benchmarks (about 20 s)
def test_false_positives_and_coverage_hold_in_every_setting():
    failures = []
    for setting in SETTINGS:
        outcome = run(setting, N, queries_scheme=setting.sigma_seed == 0.010)
        if outcome.rejection() > FALSE_POSITIVES or outcome.coverage() < COVERAGE:
            failures.append(f"{setting}: false positives {outcome.rejection():.4f}, coverage {outcome.coverage():.4f}")
        if outcome.p_queries is not None and outcome.query_rejection() <= 2 * ALPHA:
            failures.append(f"{setting}: the query-only scheme's false positives {outcome.query_rejection():.4f} "
                            f"should exceed {2 * ALPHA} when scores move between seeds")
    assert not failures, "; ".join(failures)


@pytest.mark.slow  # 3 settings × 2,000 simulated benchmarks (seconds)
def test_power_grows_with_seeds_and_matches_the_exact_nested_value():
    """On a nested design the per-seed mean differences are normal, so the t-test's power is a
    noncentral t's: the simulation must agree with it (the run header's advice uses it)."""
    powers = []
    for seeds in SEED_COUNTS:
        simulated = run(Setting(False, seeds, 0.010, 0.01), N).rejection()
        exact = nested_power(seeds, 0.01, 0.010)
        assert simulated == pytest.approx(exact, abs=3 * np.sqrt(exact * (1 - exact) / N) + 0.005)
        powers.append(simulated)
    assert powers == sorted(powers) and powers[-1] > 2 * powers[0]


def test_docs_power_table_is_what_the_simulation_gives():
    """docs/statistics.md's numbers come from `python -m cmhbench.power`; one row, recomputed."""
    from pathlib import Path

    from cmhbench.analysis.power import FAMILY

    docs = (Path(__file__).resolve().parents[3] / "docs" / "statistics.md").read_text()
    cells = []
    for delta in (0.005, 0.01, 0.02):
        outcome = run(Setting(True, 3, 0.010, delta), N)
        cells += [f"{outcome.rejection():.2f}", f"{outcome.rejection(ALPHA / FAMILY):.2f}"]
    row = next(line for line in docs.splitlines() if line.replace(" ", "").startswith("|crossed|0.010|3|")
               and line.count("|") == 10)
    assert [c.strip() for c in row.split("|")[4:-1]] == cells
