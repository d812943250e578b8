"""Leaderboards as LaTeX in the papers' layout (booktabs).

One table per dataset, protocol, feature preprocessing and database coding: methods as rows, an I→T block and
a T→I block of bit-length columns; the best mean per column in bold, the second
underlined; the caption states the metric, tie rule, protocol, features and database coding.
"""

from __future__ import annotations

import pandas as pd

from cmhbench.conventions import DIRECTIONS
from cmhbench.evaluation import TIE_RULE
from cmhbench.leaderboard import Table, build_tables, is_reconstructed

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def escape(text: str) -> str:
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))


def _entry(table: Table, method: str, bits: int) -> str:
    text = table.text(method, bits)
    if text in ("—", "n/a"):
        return "--" if text == "—" else "n/a"
    mean, _, std = text.partition(" ± ")
    value = f"{mean}" + (rf"{{\scriptsize$\pm${std}}}" if std else "")
    rank = table.rank(method, bits)
    if rank == 1:
        return rf"\textbf{{{value}}}"
    if rank == 2:
        return rf"\underline{{{value}}}"
    return value


def to_latex(frame: pd.DataFrame, metric: str = "map@all") -> str:
    """All leaderboards of ``frame`` as booktabs tables (needs \\usepackage{booktabs})."""
    tables = build_tables(frame, metric)
    groups: dict[tuple[str, str, str, str], dict[str, Table]] = {}
    for table in tables:
        group = (table.dataset, table.protocol, table.features, table.database_coding)
        groups.setdefault(group, {})[table.direction] = table
    out = []
    for (dataset, protocol, features, coding), by_direction in groups.items():
        first = next(iter(by_direction.values()))
        bits = list(first.means.columns)
        methods = list(first.means.index)
        spec = "l" + "c" * len(bits) * len(by_direction)
        header_blocks = " & ".join(rf"\multicolumn{{{len(bits)}}}{{c}}{{{DIRECTIONS[d]}}}".replace("→", r"$\rightarrow$")
                                   for d in by_direction)
        rules = " ".join(rf"\cmidrule(lr){{{2 + i * len(bits)}-{1 + (i + 1) * len(bits)}}}"
                         for i in range(len(by_direction)))
        bit_header = " & ".join(str(b) for _ in by_direction for b in bits)
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{escape(metric)} on {escape(dataset)} (protocol {escape(protocol)}, {escape(features)} features, "
            rf"database coded by "
            rf"{escape(coding)}); mean over seeds {escape(', '.join(map(str, first.seeds)))}. Ties: "
            rf"{escape(TIE_RULE)}. Best in bold, second underlined; $\dagger$: reconstructed method.}}",
            rf"\begin{{tabular}}{{{spec}}}",
            r"\toprule",
            rf"Method & {header_blocks} \\",
            rules,
            rf" & {bit_header} \\",
            r"\midrule",
        ]
        for method in methods:
            label = escape(method)
            if is_reconstructed(frame, method):
                label += r"$^\dagger$"
            entries = [_entry(by_direction[d], method, b) for d in by_direction for b in bits]
            lines.append(f"{label} & " + " & ".join(entries) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
        out.append("\n".join(lines))
    return "\n".join(out)
