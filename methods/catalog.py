"""Listings of the registered methods, generated from the registry and never kept by hand.

``cmhbench list methods`` prints :func:`table`; README's methods table is
:func:`markdown` (``cmhbench list methods --format md``), and a test fails when the two
disagree, so the README cannot drift from the code.
"""

from __future__ import annotations

from tabulate import tabulate

from cmhbench.methods import registry

KIND_ORDER = ("reference", "shallow", "deep")
MARKDOWN_HEADERS = ["name", "kind", "fidelity", "pair encoder", "paper"]


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def ordered(builtin_only: bool = False) -> list[str]:
    """Method names by kind (reference, shallow, deep), then year, then name."""
    names = registry.available()
    if builtin_only:
        names = [n for n in names if registry.is_builtin(registry.get(n))]
    infos = {n: registry.get(n).info for n in names}
    return sorted(names, key=lambda n: (KIND_ORDER.index(infos[n].kind), infos[n].year, n))


def table() -> str:
    """Every registered method, built-in and plugin, as a plain-text table."""
    rows = []
    for name in ordered():
        cls = registry.get(name)
        info = cls.info
        rows.append([name, info.kind, info.fidelity, _yes(info.pair_encoder), _yes(info.deterministic),
                     f"{info.venue} {info.year}",
                     "built-in" if registry.is_builtin(cls) else f"plugin ({cls.__module__})"])
    return tabulate(rows, headers=["method", "kind", "fidelity", "pair encoder", "deterministic", "venue", "source"])


def markdown() -> str:
    """The built-in methods as README's Markdown table (a reference method shows its title)."""
    lines = ["| " + " | ".join(MARKDOWN_HEADERS) + " |", "| " + " | ".join("---" for _ in MARKDOWN_HEADERS) + " |"]
    for name in ordered(builtin_only=True):
        info = registry.get(name).info
        paper = info.title if info.kind == "reference" else f"{info.authors}, {info.venue} {info.year}"
        lines.append(f"| `{name}` | {info.kind} | {info.fidelity} | {_yes(info.pair_encoder)} | {paper} |")
    return "\n".join(lines) + "\n"
