"""``cmhbench report``: figures, a LaTeX table and a self-contained HTML page, from records only."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cmhbench import store
from cmhbench.leaderboard import stored_metrics
from cmhbench.report.html import to_html
from cmhbench.report.latex import to_latex
from cmhbench.report.plots import Figure, curves, map_vs_bits
from cmhbench.conventions import PER_QUERY_METRICS
from cmhbench.stats import leaderboard_statistics


@dataclass
class Report:
    folder: Path
    index: Path
    latex: Path
    figures: list[Figure] = field(default_factory=list)


def build_report(outs: list[Path], dest: Path, metric: str = "map@all") -> Report:
    """Write ``dest/index.html``, ``dest/leaderboard.tex`` and ``dest/figures/*`` for ``outs``."""
    frame = store.load_results(*outs)
    dest.mkdir(parents=True, exist_ok=True)
    metrics = stored_metrics(frame) or [metric]
    figures: list[Figure] = []
    for m in metrics:
        figures += map_vs_bits(frame, dest / "figures", m)
    figures += curves(frame, dest / "figures")
    latex = dest / "leaderboard.tex"
    store.write_text_atomic(latex, to_latex(frame, metric))
    index = dest / "index.html"
    statistics = {m: leaderboard_statistics(frame, m) for m in metrics if m in PER_QUERY_METRICS}
    store.write_text_atomic(index, to_html(frame, [f.png for f in figures], metric=metric, statistics=statistics))
    return Report(dest, index, latex, figures)
