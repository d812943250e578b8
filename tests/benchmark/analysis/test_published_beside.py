"""Published values beside our leaderboard entries: shown only where everything that changes a
score matches, with our difference and which reproduction rule held."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from cmhbench.analysis.leaderboard import build_tables, published_beside, to_markdown
from cmhbench.published import PublishedResult
from cmhbench.published.compare import Beside, matching

CMFH_16_T2I = 0.595  # DJSRH Table 2, Wikipedia, CMFH, 16 bits, T→I (map@50, unified coding)


def _frame(method="cmfh", coding="unified", features="raw", dataset="wikipedia", protocol="wiki",
           value=0.60, metric="map@50", files="verified", seeds=(0, 1, 2)):
    return pd.DataFrame([dict(key=f"{method}-{coding}-{features}-{s}", dataset=dataset, protocol=protocol,
                              database_coding=coding, features=features,
                              method=method, bits=16, seed=s, status="ok", fidelity="paper", kind="shallow",
                              release_files=files, **{f"i2t/{metric}": value, f"t2i/{metric}": value + 0.01 * s})
                         for s in seeds])


def _t2i(frame, metric="map@50"):
    return next(t for t in build_tables(frame, metric, chance=False) if t.direction == "t2i")


def test_the_matching_entry_gets_the_published_value_and_our_difference():
    found, withheld = published_beside(_t2i(_frame()))
    ((row, bits, beside),) = found
    assert (row, bits, withheld) == ("cmfh", 16, False)
    assert beside.result.value == CMFH_16_T2I and beside.result.table == "Table 2"
    assert beside.difference == pytest.approx(0.61 - CMFH_16_T2I)
    text = to_markdown(_frame(), "map@50", published=True)
    assert "| 0.595 " in text and "+0.0150" in text and "yes: within ±0.03" in text


@pytest.mark.parametrize("change", [dict(method="djsrh"), dict(coding="modality"), dict(features="zscore"),
                                    dict(metric="map@all"), dict(dataset="synthetic", protocol="synthetic"),
                                    dict(dataset="wikipedia:other.mat"), dict(files="differs"),
                                    dict(files="differs,verified")])
def test_nothing_is_put_beside_an_entry_that_differs_in_anything(change):
    frame = _frame(**change)
    metric = change.get("metric", "map@50")
    found, _ = published_beside(_t2i(frame, metric))
    assert found == []
    assert "0.595" not in to_markdown(frame, metric, published=True)


def test_a_cell_from_a_differing_file_withholds_the_value_and_says_why():
    text = to_markdown(_frame(files="differs"), "map@50", published=True)
    assert "withheld" in text and "differs from the community's release file" in text


def test_unverified_files_are_shown_and_marked():
    (_, _, beside), = published_beside(_t2i(_frame(files="unknown")))[0]
    assert not beside.files_verified and "not verified" in beside.verdict()


def test_without_published_nothing_changes():
    assert to_markdown(_frame(), "map@50") == to_markdown(_frame(), "map@50", published=False)
    assert "0.595" not in to_markdown(_frame(), "map@50")


def _result(value=0.60, uncertain=False):
    return PublishedResult("m", "d", "as stated", "p", uncertain, "raw", "map@all", "modality", 16, "i2t", value,
                           "a paper", "Table 9")


@pytest.mark.parametrize("ours, low, high, verdict", [
    (0.62, 0.59, 0.65, "yes: in our 95% interval and within ±0.03"),
    (0.63, 0.59, 0.67, "yes: in our 95% interval and within ±0.03"),  # |0.03| exactly counts
    (0.66, 0.55, 0.70, "yes: in our 95% interval"),
    (0.62, 0.61, 0.63, "yes: within ±0.03"),
    (0.65, 0.64, 0.66, "no"),
    (0.65, None, None, "no"),
    (0.61, None, None, "yes: within ±0.03"),
])
def test_reproduces_says_which_rule_held(ours, low, high, verdict):
    assert Beside(_result(), ours, low, high).verdict() == verdict


def test_an_uncertain_protocol_is_shown_marked_and_never_judged():
    beside = Beside(_result(uncertain=True), 0.60, 0.55, 0.65)
    assert beside.reproduces is None and beside.verdict() == "not judged: protocol uncertain"
    assert beside.published_text() == "0.600 (protocol uncertain)"
    ucch_reported = matching("cvh", "mirflickr25k", "djsrh", "raw", "modality", "map@all", 16, "i2t")
    assert [r.value for r in ucch_reported] == [0.620] and ucch_reported[0].protocol_uncertain


@pytest.fixture(scope="module")
def wikipedia_results(shared_data, tmp_path_factory):
    """cmfh, lssh and djsrh on the real Wikipedia file (16 bits, quick preset): both codings with
    raw features, and cmfh with zscore features too; and a synthetic folder."""
    from cmhbench.cli import main

    out = tmp_path_factory.mktemp("published") / "wiki"
    common = ["--datasets", "wikipedia", "--data-dir", str(shared_data), "--bits", "16", "--seeds", "0",
              "--preset", "quick", "--out", str(out), "--no-progress"]
    assert main(["run", "--methods", "cmfh,lssh,djsrh", "--database-coding", "unified,modality", *common]) == 0
    assert main(["run", "--methods", "cmfh", "--database-coding", "unified", "--features", "zscore", *common]) == 0
    synthetic = out.parent / "synthetic"
    assert main(["run", "--methods", "cmfh,lssh", "--datasets", "synthetic", "--database-coding", "unified",
                 "--bits", "16", "--preset", "quick", "--out", str(synthetic), "--no-progress"]) == 0
    differing = out.parent / "data"
    shutil.copytree(shared_data / "wikipedia", differing / "wikipedia")
    header = differing / "wikipedia" / "wikiData.mat"
    data = bytearray(header.read_bytes())
    data[40] ^= 1  # one byte of the MATLAB header text: the file still reads, its sha256 differs
    header.chmod(0o644)
    header.write_bytes(bytes(data))
    differs = out.parent / "differs"
    assert main(["run", "--methods", "cmfh,lssh", "--database-coding", "unified",
                 *[a if a != str(shared_data) else str(differing) for a in common[:-3]], "--out", str(differs),
                 "--no-progress"]) == 0
    return out, synthetic, differs


def _records(out) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("cells/*/record.json"))]


def _sections(text: str) -> dict[str, str]:
    """Leaderboard title -> its section (table and, when there are any, the published values)."""
    return {part.split("\n", 1)[0]: part for part in text.split("### ")[1:]}


def _board(capsys, *args) -> str:
    from cmhbench.cli import main

    capsys.readouterr()
    assert main(["leaderboard", *map(str, args), "--published"]) == 0
    return capsys.readouterr().out


@pytest.mark.slow
def test_djsrh_table_2_beside_cmfh_and_lssh_on_the_real_wikipedia_file_and_nowhere_else(wikipedia_results, capsys):
    out, synthetic, _ = wikipedia_results
    sections = _sections(_board(capsys, out, "--metric", "map@50"))
    shown = {title: section for title, section in sections.items() if "Published values" in section}
    assert sorted(shown) == [f"wikipedia · protocol wiki · features raw · database unified · preset quick · {d} · "
                             "map@50" for d in ("I→T", "T→I")]
    for title, section in shown.items():
        published = section.split("Published values", 1)[1]
        rows = [line for line in published.splitlines() if line.startswith("| ") and "Su et al." in line]
        assert [r.split("|")[1].strip() for r in rows] == ["cmfh", "lssh"]  # never djsrh, never cvh-style extras
        expected = {"cmfh": 0.251, "lssh": 0.197} if "I→T" in title else {"cmfh": 0.595, "lssh": 0.569}
        for row in rows:
            cells = [c.strip() for c in row.split("|")[1:-1]]
            ours = float(cells[2].split()[0])
            assert float(cells[3]) == expected[cells[0]]
            assert float(cells[4]) == pytest.approx(ours - expected[cells[0]], abs=1e-4)
            assert cells[5].startswith(("yes: ", "no")) and "not verified" not in cells[5]  # the release file
    assert "Published values" not in _board(capsys, out, "--metric", "map@all")
    assert "Published values" not in _board(capsys, synthetic, "--metric", "map@50")


def _page_data(page: str) -> dict:
    import json

    return json.loads(page.split('id="cmh-data">', 1)[1].split("</script>", 1)[0])


def test_the_html_page_carries_the_published_values_only_when_asked():
    from cmhbench.report.html import to_html

    tables = _page_data(to_html(_frame(), metric="map@50", published=True))["tables"]["map@50"]
    rows = [row for t in tables for row in (t["published"] or {}).get("rows", [])]
    assert [(r[0], r[3], r[4]) for r in rows] == [("cmfh", "0.251", "+0.3490"), ("cmfh", "0.595", "+0.0150")]
    plain = _page_data(to_html(_frame(), metric="map@50"))["tables"]["map@50"]
    assert all(t["published"] is None for t in plain)
    withheld = _page_data(to_html(_frame(files="differs"), metric="map@50", published=True))["tables"]["map@50"]
    assert all(t["published"]["rows"] == [] and "withheld" in t["published"]["withheld"] for t in withheld)


def test_published_with_a_format_that_cannot_show_it_is_one_line_and_exit_2(tmp_path, capsys):
    from cmhbench.cli import main

    assert main(["leaderboard", str(tmp_path), "--format", "csv", "--published"]) == 2
    assert "--published works with --format md or html" in capsys.readouterr().err


@pytest.mark.slow
def test_each_record_says_whether_its_file_is_the_release_file_and_a_differing_one_gets_nothing(
        wikipedia_results, capsys):
    out, synthetic, differs = wikipedia_results
    assert {json.dumps(r["data_files"]) for r in _records(out) if r["status"] == "ok"} == {'{"wikiData.mat": "verified"}'}
    assert {json.dumps(r["data_files"]) for r in _records(differs)} == {'{"wikiData.mat": "differs"}'}
    assert all(r["data_files"] == {} for r in _records(synthetic))
    text = _board(capsys, differs, "--metric", "map@50")
    assert "Published values" not in text and "0.595" not in text
    assert "withheld" in text and "differs from the community's release file" in text
