"""Names from records, grid files and dataset paths reach Markdown, HTML and file names as data."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from cmhbench import store
from cmhbench.cli import main
from cmhbench.analysis.leaderboard import markdown_text
from cmhbench.report.plots import slug

HOSTILE = {"random": "<!--<script>", "cca-itq": "evil|**0.9999**\n| fake **row** |"}


def _npz(path, seed):
    rng = np.random.default_rng(seed)
    n = 300
    np.savez(path, image=rng.standard_normal((n, 8)).astype(np.float32),
             text=rng.standard_normal((n, 6)).astype(np.float32),
             labels=(rng.random((n, 4)) > 0.5).astype(np.uint8), query_idx=np.arange(40))
    return path


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory):
    """A results folder whose records carry hostile method names (a shared, tampered folder)."""
    out = tmp_path_factory.mktemp("hostile") / "o"
    assert main(["run", "--methods", "random,cca-itq", "--bits", "8", "--preset", "quick", "--out", str(out),
                 "--no-progress"]) == 0
    for folder in store.cells_dir(out).iterdir():
        path = folder / "record.json"
        record = json.loads(path.read_text())
        record["cell"]["method"] = HOSTILE[record["cell"]["method"]]
        record[store.RECORD_CHECKSUM] = store.record_digest(record)  # a deliberate tamperer re-signs
        path.write_text(json.dumps(record))
    return out


def test_names_cannot_add_rows_or_emphasis_to_the_markdown_leaderboard(hostile_folder, capsys):
    assert main(["leaderboard", str(hostile_folder)]) == 0
    text = capsys.readouterr().out
    rows = [line for line in text.splitlines() if line.startswith("|") and "---" not in line and "method" not in line]
    assert len(rows) == 2 * 2  # two methods × two directions, no fake row
    assert "fake" in text and "**0.9999**" not in text and "**row**" not in text
    columns = [len(re.findall(r"(?<!\\)\|", line)) for line in rows]
    assert columns == [3] * 4  # | method | 8 bits |: the name opened no column


@pytest.mark.slow
def test_a_name_cannot_break_the_html_data_block(hostile_folder, tmp_path, capsys):
    assert main(["report", str(hostile_folder), "-o", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "index.html").read_text()
    block = re.search(r'<script type="application/json" id="cmh-data">(.*?)</script>', page, re.S).group(1)
    assert "<" not in block and ">" not in block
    assert "\\u003c!--\\u003cscript\\u003e" in block
    data = json.loads(block)
    assert "<!--<script>" in json.dumps(data, ensure_ascii=False)


def test_markdown_text_escapes_what_markdown_would_read():
    assert markdown_text("a|b\n**x**") == r"a\|b \*\*x\*\*"
    assert markdown_text("[a](http://x)") == r"[a]\(http://x)"
    assert markdown_text("djsrh [quick, epochs=10]") == "djsrh [quick, epochs=10]"


def test_figure_names_differ_by_case_and_fit_the_file_name_limit():
    assert slug("bad/good.npz") != slug("bad/Good.npz")
    long = "/".join(["x" * 60] * 5) + "/data.npz"
    assert len(slug(long)) <= 130 and len(slug(long + "2")) <= 130 and slug(long) != slug(long + "2")


@pytest.mark.slow
def test_datasets_differing_in_case_and_a_long_path_get_their_own_figures(tmp_path, capsys):
    folder = tmp_path / ("d" * 120) / ("e" * 120)
    folder.mkdir(parents=True)
    good, Good = _npz(folder / "good.npz", 0), _npz(folder / "Good.npz", 1)
    out = tmp_path / "o"
    assert main(["run", "--methods", "random", "--bits", "8,16", "--datasets", f"{good},{Good}", "--out", str(out),
                 "--no-progress"]) == 0
    assert main(["report", str(out)]) == 0
    figures = sorted(p.name for p in (out / "report" / "figures").glob("*.png"))
    per_dataset = [f for f in figures if "map-all-vs-bits" in f]
    assert len(per_dataset) == 2 * 2, figures  # 2 datasets × 2 directions (or figures), none overwritten
    assert all(len(name) < 255 for name in figures)
