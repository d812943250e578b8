"""Figures from stored results (matplotlib, Agg): mAP against code length, with seed spread.

Each function writes PNG and SVG and returns the written paths plus the plotted series,
so tests can check what was drawn without comparing pixels.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cmhbench.conventions import DIRECTIONS  # noqa: E402
from cmhbench.analysis.leaderboard import build_tables, with_rows  # noqa: E402


@dataclass
class Figure:
    title: str
    png: Path
    svg: Path
    series: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # label -> {"x","y","spread"}


SLUG_CHARS = 120  # figure names stay far below the 255-byte file-name limit, with .png/.svg


def slug(text: str) -> str:
    """A file name for ``text``: its readable part (lower case, at most ``SLUG_CHARS``) plus a
    short hash of the exact text, so names that differ only in case or in dropped
    characters (``bad/good.npz``, ``bad/Good.npz``) never share a file, and long dataset
    paths still fit the file-name limit."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.").lower()[:SLUG_CHARS].rstrip("-.")
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{readable}-{digest}" if readable else digest


def _save(fig: plt.Figure, dest: Path, name: str) -> tuple[Path, Path]:
    dest.mkdir(parents=True, exist_ok=True)
    png, svg = dest / f"{name}.png", dest / f"{name}.svg"
    fig.savefig(png, dpi=120, bbox_inches="tight")
    fig.savefig(svg, bbox_inches="tight")
    plt.close(fig)
    return png, svg


_MARKERS = "osD^vP*Xph<>"
_LINESTYLES = ("-", "--", "-.", ":")


def method_styles(methods) -> dict[str, dict]:
    """One look per method, the same in every figure of a report: ten colours, and past
    ten methods a second line style and another marker, so no two lines look alike."""
    colours = plt.get_cmap("tab10").colors
    return {m: {"color": colours[i % 10], "marker": _MARKERS[i % len(_MARKERS)],
                "linestyle": _LINESTYLES[(i // 10) % len(_LINESTYLES)]}
            for i, m in enumerate(sorted(set(methods)))}


def _features(features: str, sep: str = " · ") -> str:
    """The feature preprocessing in a title or file name; nothing for the files as given."""
    return "" if features == "raw" else f"{sep}{features}"


def _legend(ax) -> None:
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)


def map_vs_bits(frame: pd.DataFrame, dest: Path, metric: str = "map@all") -> list[Figure]:
    """One figure per dataset, protocol, features, coding and direction: a line per method over bit
    lengths, with a band of ± one standard deviation over seeds where there are several."""
    figures = []
    styles = method_styles(with_rows(frame)["row"])  # a row is a method, or one configuration of it
    for table in build_tables(frame, metric):
        fig, ax = plt.subplots(figsize=(5.2, 3.6))
        series = {}
        bits = np.array(table.means.columns, dtype=float)
        for method in table.means.index:
            means = table.means.loc[method].to_numpy(dtype=float)
            if np.isnan(means).all():
                continue
            stds = np.nan_to_num(table.stds.loc[method].to_numpy(dtype=float))
            ax.plot(bits, means, label=method, **styles[method])
            if (stds > 0).any():
                ax.fill_between(bits, means - stds, means + stds, color=styles[method]["color"], alpha=0.15)
            series[method] = {"x": bits.tolist(), "y": means.tolist(), "spread": stds.tolist()}
        ax.set_xscale("log", base=2)
        ax.set_xticks(bits, [str(int(b)) for b in bits])
        ax.set_xlabel("code length (bits)")
        ax.set_ylabel(metric)
        title = f"{table.dataset}{_features(table.features)} · {DIRECTIONS[table.direction]} · {table.database_coding}"
        ax.set_title(title)
        ax.grid(alpha=0.3)
        _legend(ax)
        name = slug(f"{metric}-vs-bits-{table.dataset}-{table.protocol}{_features(table.features, '-')}-"
                    f"{table.database_coding}-{table.direction}")
        png, svg = _save(fig, dest, name)
        figures.append(Figure(title, png, svg, series))
    return figures


CURVES = {"pr": ("pr_recall", "pr_precision", "recall", "precision", "precision–recall by Hamming radius"),
          "pk": ("pk_k", "pk_precision", "K (retrieved items)", "precision@K", "precision@K")}


def curves(frame: pd.DataFrame, dest: Path) -> list[Figure]:
    """Precision–recall (by Hamming radius) and precision@K curves per dataset, protocol,
    features, coding, direction and bit length: one line per method, averaged over its seeds."""
    from cmhbench import store

    figures = []
    frame = with_rows(frame)
    styles = method_styles(frame["row"])
    ok = frame[frame["status"] == "ok"]
    if "features" not in ok.columns:
        ok = ok.assign(features="raw")
    for (dataset, protocol, features, coding, bits), cells in ok.groupby(["dataset", "protocol", "features",
                                                                           "database_coding", "bits"]):
        stored = {row.key: store.read_arrays(row.out, row.key) for row in cells.itertuples()}
        for direction in DIRECTIONS:
            for kind, (xkey, ykey, xlabel, ylabel, what) in CURVES.items():
                xname, yname = f"{direction}_{xkey}", f"{direction}_{ykey}"
                fig, ax = plt.subplots(figsize=(5.2, 3.6))
                series = {}
                for method, runs in cells.groupby("row"):
                    arrays = [stored[k] for k in runs["key"] if xname in stored[k] and yname in stored[k]]
                    if not arrays or len({a[xname].shape for a in arrays}) != 1:
                        continue
                    x = np.mean([a[xname] for a in arrays], axis=0)
                    y = np.mean([a[yname] for a in arrays], axis=0)
                    style = dict(styles[method], marker=styles[method]["marker"] if kind == "pr" else None)
                    ax.plot(x, y, label=method, markersize=4, **style)
                    series[method] = {"x": x.tolist(), "y": y.tolist()}
                if not series:
                    plt.close(fig)
                    continue
                if kind == "pk":
                    ax.set_xscale("log")
                title = f"{dataset}{_features(features)} · {DIRECTIONS[direction]} · {bits} bits · {coding}"
                ax.set(xlabel=xlabel, ylabel=ylabel, title=f"{what}\n{title}")
                ax.grid(alpha=0.3)
                _legend(ax)
                png, svg = _save(fig, dest, slug(f"{kind}-{dataset}-{protocol}{_features(features, '-')}-{coding}-"
                                                 f"{direction}-{bits}bits"))
                figures.append(Figure(title, png, svg, series))
    return figures
