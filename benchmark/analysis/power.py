"""How well the statistics of :mod:`cmhbench.analysis.stats` hold, by simulated per-query AP: false
positives, interval coverage and power, for crossed and nested designs.

``python -m cmhbench.analysis.power`` prints docs/statistics.md's tables; the calibration test
(tests/benchmark/analysis/test_stats_calibration.py) runs the same simulation.

The model (Gaussian, so that a true difference is exactly what is set): method m's AP on
query q at seed s is

    AP_m(s, q) = μ + δ_m + σ_q z_m(q) + o_m(s) + e_m(s, q)

- z_A(q), z_B(q): standard normal, correlated ``RHO_LATENT`` between the methods (hard
  queries are hard for both); on a crossed design every seed answers the same queries (one
  z per query), on a nested one each seed draws its own;
- o_m(s) ~ N(0, σ_s²): the (method, seed) offset — a training run's luck, independent for
  each method and seed; zero for deterministic methods on a fixed split;
- e_m(s, q) ~ N(0, σ_e²): a retrained model answering one query differently.

The defaults are measured on Wikipedia's I→T 32-bit cells of cca-itq and cmfh (raw features,
seeds 0–2): per-query AP spread 0.21 within a seed, of which 0.05–0.06 changes between seeds
(the interaction), and a between-method per-query correlation of 0.81–0.83 within a seed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from cmhbench.analysis.stats import ALPHA, CONFIDENCE, crossed_moments, nested_moments, query_resampling, t_inference

SIGMA_QUERY = 0.20  # spread of the query effect (with the interaction: 0.21 per query within a seed)
SIGMA_INTERACTION = 0.06  # per-(seed, query) spread of a retrained model's AP
RHO_LATENT = 0.88  # between-method correlation of the query effects z_A, z_B (0.81 with the interaction)
CROSSED_QUERIES, NESTED_QUERIES = 693, 300  # Wikipedia's fixed query set; a small seeded split's
SEED_SPREADS = (0.0, 0.005, 0.010, 0.020)  # σ_s, map@all
SEED_COUNTS = (3, 5, 10)
DIFFERENCES = (0.005, 0.01, 0.02)  # true A − B, map@all
FAMILY = 8  # "Holm over 8": a comparison's power as one of eight (the others without a true difference)
_CHUNK = 250  # simulations held in memory at once


@dataclass(frozen=True)
class Setting:
    crossed: bool
    seeds: int
    sigma_seed: float
    difference: float = 0.0

    @property
    def queries(self) -> int:
        return CROSSED_QUERIES if self.crossed else NESTED_QUERIES


def between_method_correlation() -> float:
    """The per-query correlation of the two methods' AP within one seed, under the defaults."""
    shared = RHO_LATENT * SIGMA_QUERY ** 2
    return shared / (SIGMA_QUERY ** 2 + SIGMA_INTERACTION ** 2)


def simulate(setting: Setting, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-query AP of methods A and B, each ``(n, S, Q)``: n simulated benchmarks."""
    s, q = setting.seeds, setting.queries
    shape = (n, 1, q) if setting.crossed else (n, s, q)
    z_a = rng.standard_normal(shape)
    z_b = RHO_LATENT * z_a + np.sqrt(1 - RHO_LATENT ** 2) * rng.standard_normal(shape)
    ap = []
    for z, delta in ((z_a, setting.difference), (z_b, 0.0)):
        offsets = setting.sigma_seed * rng.standard_normal((n, s, 1))
        ap.append(0.5 + delta + SIGMA_QUERY * z + offsets + SIGMA_INTERACTION * rng.standard_normal((n, s, q)))
    return ap[0], ap[1]


@dataclass(frozen=True)
class Outcome:
    """One setting's simulated results: p-values and interval bounds of A − B, both schemes."""

    setting: Setting
    p_seeds: np.ndarray
    low: np.ndarray
    high: np.ndarray
    p_queries: np.ndarray | None = None

    def rejection(self, alpha: float = ALPHA) -> float:
        return float(np.mean(self.p_seeds < alpha))

    def coverage(self) -> float:
        d = self.setting.difference
        return float(np.mean((self.low <= d) & (d <= self.high)))

    def query_rejection(self, alpha: float = ALPHA) -> float:
        return float(np.mean(self.p_queries < alpha))


def run(setting: Setting, n: int = 2000, seed: int = 0, queries_scheme: bool = False,
        n_resamples: int = 999) -> Outcome:
    """``n`` simulated comparisons of A and B under ``setting``: the seeds scheme's p-values and
    intervals (exactly as :func:`cmhbench.analysis.stats.paired_comparison` computes them, vectorised), and
    with ``queries_scheme`` the query-only scheme's permutation p-values."""
    rng = np.random.default_rng([seed, setting.crossed, setting.seeds, int(setting.sigma_seed * 1e4),
                                 int(setting.difference * 1e4)])
    p, low, high, p_queries = [], [], [], []
    for start in range(0, n, _CHUNK):
        a, b = simulate(setting, min(_CHUNK, n - start), rng)
        d = a - b
        moments = crossed_moments(d) if setting.crossed else nested_moments(d.mean(axis=-1))
        lo, hi, pv = t_inference(*moments, confidence=CONFIDENCE)
        p.append(pv), low.append(lo), high.append(hi)
        if queries_scheme:
            strata = [d.mean(axis=1).T] if setting.crossed else list(np.moveaxis(d, 0, -1))
            p_queries.append(query_resampling(strata, n_resamples=n_resamples, seed=start, test=True)[3])
    return Outcome(setting, np.concatenate(p), np.concatenate(low), np.concatenate(high),
                   np.concatenate(p_queries) if queries_scheme else None)


def power_rows(n: int = 2000, sigma_seeds: tuple[float, ...] = (0.005, 0.010, 0.020)) -> list[list]:
    """Rows of the power table: design, σ_s, seeds, then per true difference the power of one
    comparison and of one among :data:`FAMILY` under Holm."""
    rows = []
    for crossed in (True, False):
        for sigma in sigma_seeds:
            for seeds in SEED_COUNTS:
                row = ["crossed" if crossed else "nested", f"{sigma:.3f}", seeds]
                for delta in DIFFERENCES:
                    outcome = run(Setting(crossed, seeds, sigma, delta), n)
                    row += [outcome.rejection(), outcome.rejection(ALPHA / FAMILY)]
                rows.append(row)
    return rows


def nested_power(seeds: int, difference: float = 0.01, sigma_seed: float = 0.010, queries: int = NESTED_QUERIES,
                 alpha: float = ALPHA) -> float:
    """The seeds scheme's power on a nested design, exactly for the Gaussian model: the per-seed
    mean differences are N(δ, 2σ_s² + var(d)/Q), so t has a noncentral t distribution."""
    per_query = 2 * SIGMA_QUERY ** 2 * (1 - RHO_LATENT) + 2 * SIGMA_INTERACTION ** 2
    spread = np.sqrt(2 * sigma_seed ** 2 + per_query / queries)
    df, nc = seeds - 1, difference * np.sqrt(seeds) / spread
    critical = scipy_stats.t.ppf(1 - alpha / 2, df)
    return float(scipy_stats.nct.sf(critical, df, nc) + scipy_stats.nct.cdf(-critical, df, nc))


def seed_advice(seeds: int, difference: float = 0.01, sigma_seed: float = 0.010) -> str:
    """One line for ``run``'s header when a grid compares deep methods: how often its seeds find
    a true difference of ``difference`` map@all between two methods whose scores move by
    ``sigma_seed`` (standard deviation) between seeds — deep methods' typical spread."""
    found = ", ".join(f"{nested_power(s, difference, sigma_seed):.0%} with {s} seeds" + (" (this grid)" if s == seeds
                                                                                        else "")
                      for s in sorted({max(seeds, 3), 5, 10}))
    head = (f"{seeds} seed{'s' if seeds > 1 else ''} cannot test a difference across training runs (3+ needed); "
            if seeds < 3 else "")
    return (f"seed advice: {head}the chance of finding a true {difference} map@all difference, scores moving "
            f"±{sigma_seed} between seeds: {found} (docs/statistics.md)")


def markdown(n: int = 2000) -> str:
    """docs/statistics.md's calibration and power tables."""
    from tabulate import tabulate

    calibration = []
    for crossed in (True, False):
        for sigma in SEED_SPREADS:
            for seeds in SEED_COUNTS:
                outcome = run(Setting(crossed, seeds, sigma), n, queries_scheme=True)
                calibration.append(["crossed" if crossed else "nested", f"{sigma:.3f}", seeds,
                                    f"{outcome.rejection():.3f}", f"{outcome.coverage():.3f}",
                                    f"{outcome.query_rejection():.3f}"])
    power = [[*row[:3], *(f"{v:.2f}" for v in row[3:])] for row in power_rows(n)]
    headers = ["design", "σ_s", "seeds"] + [f"δ = {d}{' (Holm/8)' if h else ''}"
                                            for d in DIFFERENCES for h in (False, True)]
    return (f"Calibration under no true difference ({n} simulations per row; α = {ALPHA}):\n\n"
            + tabulate(calibration, headers=["design", "σ_s", "seeds", "false positives (seeds)",
                                             "95% coverage (seeds)", "false positives (queries only)"],
                       tablefmt="pipe", disable_numparse=True)
            + f"\n\nPower (share of {n} simulations with p < α; Holm/8: p < α/8):\n\n"
            + tabulate(power, headers=headers, tablefmt="pipe", disable_numparse=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    print(markdown(int(args[0]) if args else 2000), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
