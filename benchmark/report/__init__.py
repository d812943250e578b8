"""``cmhbench report``: figures, a LaTeX table and a self-contained HTML page, from records only."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from cmhbench import store
from cmhbench.analysis.leaderboard import stored_metrics
from cmhbench.report.html import to_html
from cmhbench.report.latex import to_latex
from cmhbench.report.plots import Figure, curves, map_vs_bits
from cmhbench.conventions import PER_QUERY_METRICS
from cmhbench.analysis.stats import leaderboard_statistics


@dataclass
class Report:
    folder: Path
    index: Path
    latex: Path
    figures: list[Figure] = field(default_factory=list)


def build_report(outs: list[Path], dest: Path, metric: str = "map@all") -> Report:
    """Write ``dest/index.html``, ``dest/leaderboard.tex`` and ``dest/figures/*`` for ``outs``."""
    frame = store.load_results(*outs)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise store.StoreError(f"cannot write the report to {dest}: {exc.strerror or exc}") from None
    metrics = stored_metrics(frame) or [metric]
    tested = [m for m in metrics if m in PER_QUERY_METRICS]
    figures: list[Figure] = []
    statistics = {}
    # one step per stage, so that a report of many cells (minutes of bootstrap) shows where it is
    with tqdm(total=len(metrics) + 2 + len(tested), desc="report", unit="step", disable=None) as bar:
        for m in metrics:
            bar.set_postfix_str(f"figures of {m}")
            figures += map_vs_bits(frame, dest / "figures", m)
            bar.update()
        bar.set_postfix_str("precision-recall and P@K curves")
        figures += curves(frame, dest / "figures")
        bar.update()
        latex = dest / "leaderboard.tex"
        store.write_text_atomic(latex, to_latex(frame, metric))
        for m in tested:
            bar.set_postfix_str(f"intervals and tests of {m}")
            statistics[m] = leaderboard_statistics(frame, m, progress=False)
            bar.update()
        bar.set_postfix_str("HTML page")
        index = dest / "index.html"
        store.write_text_atomic(index, to_html(frame, [f.png for f in figures], metric=metric, statistics=statistics,
                                                   published=True))
        bar.update()
    return Report(dest, index, latex, figures)
