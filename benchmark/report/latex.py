"""Leaderboards as LaTeX in the papers' layout (booktabs).

One table per dataset, protocol, feature preprocessing and database coding: methods as rows, an I→T block and
a T→I block of bit-length columns; the best mean per column in bold, the second
underlined (both over the seeds a column shares); collapsed entries carry a ×, never bold; the
caption states the metric, tie rule, protocol, database coding, features, preset and chance level.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cmhbench.conventions import DIRECTIONS, VALIDATION_LEGEND, VALIDATION_MARK
from cmhbench.evaluation import TIE_RULE
from cmhbench.analysis.leaderboard import COLLAPSE_BELOW, Table, build_tables

COLLAPSE_LATEX = r"$^{\times}$"

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def escape(text: str) -> str:
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))


def _entry(table: Table, row: str, bits: int) -> str:
    if table.not_applicable.loc[row, bits]:
        return "n/a"
    mean, std = table.means.loc[row, bits], table.stds.loc[row, bits]
    if np.isnan(mean):
        return "--"
    value = f"{mean:.4f}" + (rf"{{\scriptsize$\pm${std:.4f}}}" if not np.isnan(std) else "")
    n = int(table.counts.loc[row, bits])
    marks = (rf"{{\scriptsize{{}} (n={n})}}" if n < len(table.seeds) else "")
    if table.collapsed.loc[row, bits]:
        return value + marks + COLLAPSE_LATEX
    if table.bold(row, bits):
        return rf"\textbf{{{value}}}" + marks
    if table.rank(row, bits) == 2 and len(table.ranked(bits)) > 2:
        return rf"\underline{{{value}}}" + marks
    return value + marks


def to_latex(frame: pd.DataFrame, metric: str = "map@all") -> str:
    """All leaderboards of ``frame`` as booktabs tables (needs \\usepackage{booktabs})."""
    tables = build_tables(frame, metric)
    groups: dict[tuple[str, str, str, str], dict[str, Table]] = {}
    for table in tables:
        groups.setdefault((table.dataset, table.protocol, table.database_coding, table.features),
                          {})[table.direction] = table
    out = []
    for (dataset, protocol, coding, _features), by_direction in groups.items():
        first = next(iter(by_direction.values()))
        bits = list(first.means.columns)
        methods = list(first.means.index)
        seeds = (f"seed {first.seeds[0]}" if len(first.seeds) == 1
                 else f"mean over seeds {', '.join(map(str, first.seeds))}; (n=k): only k of them finished")
        chance = (f" Chance level (expected {escape(metric)} of a random ranking, from the labels): "
                  f"{first.chance:.4f}." if first.chance is not None else "")
        collapsed = any(t.collapsed.to_numpy().any() for t in by_direction.values())
        collapse_note = (rf" $^{{\times}}$: collapsed, fewer than {COLLAPSE_BELOW} distinct database codes "
                         "(never bold)." if collapsed else "")
        stale = f" {escape(first.stale)}" if first.stale else ""
        validated = (" " + escape(VALIDATION_LEGEND).replace(VALIDATION_MARK, r"$\ddagger$", 1) + "."
                     if first.validated else "")
        spec = "l" + "c" * len(bits) * len(by_direction)
        header_blocks = " & ".join(rf"\multicolumn{{{len(bits)}}}{{c}}{{{DIRECTIONS[d]}}}".replace("→", r"$\rightarrow$")
                                   for d in by_direction)
        rules = " ".join(rf"\cmidrule(lr){{{2 + i * len(bits)}-{1 + (i + 1) * len(bits)}}}"
                         for i in range(len(by_direction)))
        bit_header = " & ".join(str(b) for _ in by_direction for b in bits)
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{escape(metric)} on {escape(dataset)} (protocol {escape(protocol)}, database coded by "
            rf"{escape(coding)}, features {escape(first.features)}, "
            rf"preset{'s' if len(first.presets) > 1 else ''} {escape(', '.join(first.presets) or 'unknown')}); "
            rf"{escape(seeds)}. Ties: {escape(TIE_RULE)}. Best in bold (over the seeds a column shares), second "
            rf"underlined; $\dagger$: reconstructed method.{validated}{chance}{collapse_note}{stale}}}",
            rf"\begin{{tabular}}{{{spec}}}",
            r"\toprule",
            rf"Method & {header_blocks} \\",
            rules,
            rf" & {bit_header} \\",
            r"\midrule",
        ]
        for method in methods:
            label = escape(method)
            if method in first.reconstructed:
                label += r"$^\dagger$"
            if method in first.validated:
                label += r"$^\ddagger$"
            entries = [_entry(by_direction[d], method, b) for d in by_direction for b in bits]
            lines.append(f"{label} & " + " & ".join(entries) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
        out.append("\n".join(lines))
    return "\n".join(out)
