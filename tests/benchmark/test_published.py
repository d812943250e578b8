"""Published results: every value taken from a source agrees with that source's text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cmhbench import published

REPO = Path(__file__).resolve().parents[2]
UCCH_TEXT = REPO.parent / "shared" / "published" / "ucch-tpami-tables-1-2.txt"
BITS = (16, 32, 64, 128)
UCCH_DATASETS = {"TABLE 1": ("mirflickr25k", "iapr-tc12"), "TABLE 2": ("nuswide", "mscoco")}


def ucch_tables(text: str) -> dict[tuple[str, str, str, int], float | None]:
    """(method, dataset, direction, bits) -> value ('/' = not reported: None), read from the
    PDF extraction: a row is a method name, an optional [ref], then 16 values."""
    values: dict[tuple[str, str, str, int], float | None] = {}
    datasets = None
    for line in text.splitlines():
        heading = line.strip()
        if heading in UCCH_DATASETS:
            datasets = UCCH_DATASETS[heading]
            continue
        found = re.fullmatch(r"\s*([A-Z]+)\s*(?:\[\d+\])?((?:\s+(?:\d\.\d{3}|/)){16})\s*", line)
        if not found or datasets is None:
            continue
        for k, token in enumerate(found.group(2).split()):
            key = (found.group(1).lower(), datasets[k // 8], ("i2t", "t2i")[(k % 8) // 4], BITS[k % 4])
            values[key] = None if token == "/" else float(token)
    return values


def from_ucch() -> list[published.PublishedResult]:
    return [r for r in published.load() if "TPAMI 2023" in r.paper]


def test_every_value_taken_from_ucch_tables_1_and_2_is_the_papers():
    if not UCCH_TEXT.is_file():
        pytest.skip(f"{UCCH_TEXT} is absent")
    paper = ucch_tables(UCCH_TEXT.read_text(encoding="utf-8"))
    assert len(paper) == 14 * 16 * 2  # 14 methods, 2 tables, 16 columns each
    ours = {(r.method, r.dataset, r.direction, r.bits): r.value for r in from_ucch()}
    assert ours == {key: value for key, value in paper.items() if value is not None}
    assert sum(v is None for v in paper.values()) == 4 + 8 + 2  # UCH's '/' entries: left out, not zero


def test_ucchs_own_rows_map_to_the_ucch_protocol_and_the_baselines_are_uncertain():
    rows = from_ucch()
    own = [r for r in rows if r.method == "ucch"]
    assert len(own) == 32 and all(r.protocol == "ucch" and not r.protocol_uncertain and r.comparable for r in own)
    baselines = [r for r in rows if r.method != "ucch"]
    assert baselines and all(r.protocol_uncertain and not r.comparable for r in baselines)
    assert {r.paper for r in baselines} == {"reported by UCCH (TPAMI 2023, Table 1)",
                                            "reported by UCCH (TPAMI 2023, Table 2)"}
    assert all(r.paper.endswith(f"{r.table})") for r in baselines)
    assert {r.metric for r in rows} == {"map@all"}


def docs_djsrh_quotes() -> dict[tuple[str, str, str, int], float]:
    """(method, coding, direction, bits) -> the published value docs/shallow-baselines.md quotes
    in its 'Measured vs published' table as '(published; difference)'."""
    text = (REPO / "docs" / "shallow-baselines.md").read_text(encoding="utf-8")
    section = text.split("### Measured vs published", 1)[1].split("###", 1)[0]
    quotes = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 7 or cells[2] not in ("I→T", "T→I"):
            continue
        for bits, cell in zip(BITS, cells[3:]):
            found = re.search(r"\((\d\.\d{3});", cell)
            if found:
                quotes[(cells[0], cells[1].split()[0], "i2t" if cells[2] == "I→T" else "t2i", bits)] = \
                    float(found.group(1))
    return quotes


def test_djsrh_table_2_is_what_the_docs_quote():
    quoted = docs_djsrh_quotes()
    assert len(quoted) == 4 * 2 * 4
    ours = {(r.method, r.database_coding, r.direction, r.bits): r.value for r in published.load()
            if r.table == "Table 2" and r.paper.startswith("Su et al.")}
    assert ours == quoted
    cmfh = [r for r in published.load() if r.method == "cmfh" and r.dataset == "wikipedia"]
    assert all(r.comparable and r.protocol == "wiki" and r.metric == "map@50" for r in cmfh)


def test_djsrhs_own_rows_used_raw_images_so_no_cell_can_match_them():
    own = [r for r in published.load() if r.method == "djsrh" and r.paper.startswith("Su et al.")]
    assert {r.dataset for r in own} == {"mirflickr25k", "nuswide", "wikipedia"}
    assert not any(r.comparable for r in own)


def test_every_row_is_well_formed():
    rows = published.load()
    assert rows
    for r in rows:
        assert r.direction in ("i2t", "t2i") and r.bits in BITS and 0 < r.value < 1
        assert r.database_coding in ("modality", "unified") and r.source_protocol and r.paper and r.table
    keys = [(r.method, r.dataset, r.protocol, r.features, r.metric, r.database_coding, r.bits, r.direction,
             r.paper) for r in rows]
    assert len(keys) == len(set(keys))


def test_list_datasets_names_the_protocols_with_published_values():
    assert published.protocols_by_dataset() == {"iapr-tc12": ["ucch"], "mirflickr25k": ["ucch"],
                                                "mscoco": ["ucch"], "nuswide": ["ucch"], "wikipedia": ["wiki"]}
