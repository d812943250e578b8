"""Report files hold the expected series and tables (no pixel comparisons)."""

import pandas as pd
import pytest

from cmhbench.cli import main
from cmhbench.report.latex import escape, to_latex
from cmhbench.report.plots import map_vs_bits


def _frame():
    rows = []
    for method, base_value in (("a_b", 0.5), ("c", 0.3), ("d", 0.4)):
        for bits in (16, 32):
            for seed in (0, 1):
                value = base_value + bits / 1000 + seed / 100
                rows.append(dict(method=method, dataset="d", protocol="p", database_coding="modality", bits=bits,
                                 seed=seed, status="ok", fidelity="reconstructed" if method == "c" else "paper",
                                 **{"i2t/map@all": value, "t2i/map@all": value - 0.1}))
    return pd.DataFrame(rows)


def test_latex_marks_best_and_second_and_escapes():
    text = to_latex(_frame())
    assert r"\toprule" in text and r"\bottomrule" in text and r"\midrule" in text
    assert r"a\_b & \textbf{0.5210" in text
    assert r"d & \underline{0.4210" in text
    assert r"c$^\dagger$" in text
    assert "protocol p" in text and "modality" in text and "stable" in text
    assert escape("50%_&") == r"50\%\_\&"


def test_map_vs_bits_plots_one_series_per_method(tmp_path):
    figures = map_vs_bits(_frame(), tmp_path)
    assert len(figures) == 2  # I→T and T→I
    first = figures[0]
    assert first.png.stat().st_size > 0 and first.svg.read_text().startswith("<?xml")
    assert set(first.series) == {"a_b", "c", "d"}
    assert first.series["a_b"]["x"] == [16.0, 32.0]
    assert first.series["a_b"]["y"] == pytest.approx([0.521, 0.537])
    assert first.series["a_b"]["spread"][0] > 0


@pytest.mark.slow  # end to end: a grid, then the whole report (multi-second)
def test_report_command_writes_every_file(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["run", "--methods", "random,cca-itq", "--bits", "8,16", "--preset", "quick", "--out", str(out),
                 "--no-progress"]) == 0
    assert main(["report", str(out)]) == 0
    folder = out / "report"
    page = (folder / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "http://" not in page and "https://" not in page
    assert 'src="data:image/png;base64,' in page
    assert (folder / "leaderboard.tex").read_text().count(r"\begin{table}") == 1
    assert len(list((folder / "figures").glob("*.png"))) == len(list((folder / "figures").glob("*.svg"))) >= 4
    # precision–recall and precision@K curves: per direction and bit length, one series per method
    pr = sorted((folder / "figures").glob("pr-*.png"))
    pk = sorted((folder / "figures").glob("pk-*.png"))
    assert len(pr) == len(pk) == 4  # 2 directions × 2 bit lengths

    capsys.readouterr()
    assert main(["leaderboard", str(out), "--format", "latex"]) == 0
    assert r"\begin{tabular}" in capsys.readouterr().out
    assert main(["leaderboard", str(out), "--format", "html"]) == 0
    assert "<table id=\"provenance\">" in capsys.readouterr().out


@pytest.mark.slow  # end to end: a grid, then the whole report (multi-second)
def test_curves_hold_one_series_per_method(tmp_path):
    from cmhbench import store
    from cmhbench.report.plots import curves

    out = tmp_path / "o"
    assert main(["run", "--methods", "random,cca-itq", "--bits", "16", "--seeds", "0,1", "--out", str(out),
                 "--no-progress"]) == 0
    figures = curves(store.load_results(out), tmp_path / "fig")
    assert len(figures) == 4  # (PR, P@K) × (I→T, T→I)
    for figure in figures:
        assert set(figure.series) == {"cca-itq", "random"}
        assert all(0 <= v <= 1 for s in figure.series.values() for v in s["y"])
