"""A published value beside one of our leaderboard entries, and whether ours reproduces it.

A published value is put beside an entry only when everything that changes a score is the
same: method, dataset, protocol, features, database coding, metric, bits and direction.
Rows whose protocol the source leaves uncertain are shown, marked, and never judged.
Nothing is put beside an entry computed from a file that differs from the community's
release file: the leaderboard withholds those (:data:`WITHHELD`).

"Reproduces" is one of two rules, and the verdict says which held: the published value
lies inside our 95 % interval (the seeds' or the queries' variance, as the leaderboard's
intervals say), or ours is within :data:`TOLERANCE` of it — three decimals are what papers
print, and 0.03 is the gap docs/shallow-baselines.md explains case by case.
"""

from __future__ import annotations

from dataclasses import dataclass

from cmhbench.datasets.real import DIFFERS, VERIFIED
from cmhbench.published import PublishedResult, load

TOLERANCE = 0.03
_ROUNDING = 1e-9  # |difference| = 0.03 up to float noise counts as within the tolerance

WITHHELD = ("published values withheld: some cells of this table were computed from a file that differs from "
            "the community's release file (cmhbench list datasets says which)")
UNVERIFIED = "files not verified as release files"


def matching(method: str, dataset: str, protocol: str, features: str, coding: str, metric: str, bits: int,
             direction: str) -> list[PublishedResult]:
    """The published values measured in exactly this setting (uncertain protocols included)."""
    return [r for r in load()
            if (r.method, r.dataset, r.protocol, r.features, r.database_coding, r.metric, r.bits, r.direction)
            == (method, dataset, protocol, features, coding, metric, bits, direction) and r.protocol]


@dataclass(frozen=True)
class Beside:
    """One published value next to our mean and 95 % interval (None when there is none)."""

    result: PublishedResult
    ours: float
    low: float | None = None
    high: float | None = None
    files_verified: bool = True  # every cell's data files were verified as release files

    @property
    def difference(self) -> float:
        """Ours − published."""
        return self.ours - self.result.value

    @property
    def in_interval(self) -> bool:
        return self.low is not None and self.high is not None and self.low <= self.result.value <= self.high

    @property
    def in_tolerance(self) -> bool:
        return abs(self.difference) <= TOLERANCE + _ROUNDING

    @property
    def reproduces(self) -> bool | None:
        """True / False; None when the source's protocol is uncertain (not judged)."""
        if self.result.protocol_uncertain:
            return None
        return self.in_interval or self.in_tolerance

    def verdict(self) -> str:
        """'yes: in our 95% interval', 'yes: within ±0.03', both, 'no', or why it is not judged
        (no '|': the text goes into Markdown tables)."""
        if self.reproduces is None:
            return "not judged: protocol uncertain"
        held = [text for ok, text in ((self.in_interval, "in our 95% interval"),
                                      (self.in_tolerance, f"within ±{TOLERANCE:.2f}")) if ok]
        verdict = f"yes: {' and '.join(held)}" if held else "no"
        return verdict if self.files_verified else f"{verdict}; {UNVERIFIED}"

    def ours_text(self) -> str:
        interval = f" [{self.low:.4f}, {self.high:.4f}]" if self.low is not None and self.high is not None else ""
        return f"{self.ours:.4f}{interval}"

    def published_text(self) -> str:
        mark = " (protocol uncertain)" if self.result.protocol_uncertain else ""
        return f"{self.result.value:.3f}{mark}"

    def difference_text(self) -> str:
        return f"{self.difference:+.4f}"
