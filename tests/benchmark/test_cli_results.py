"""What a user sees after a run: rows per configuration, partial seeds, collapse, messages."""

from typing import Any

import numpy as np
import pandas as pd
import pytest

from cmhbench.cli import main
from cmhbench.methods.base import Hasher
from cmhbench.methods.registry import register, unregister

QUICK = ["--bits", "16", "--no-progress"]


def _entries(markdown: str) -> list[str]:
    """The entries of every table row of a Markdown leaderboard."""
    return [cell.strip() for line in markdown.splitlines() if line.startswith("| ") and "bits" not in line
            for cell in line.strip("|").split("|")[1:]]


@pytest.mark.slow
def test_two_configurations_of_a_method_get_their_own_rows_and_no_entry_is_missing(tmp_path, capsys):
    out = str(tmp_path / "R")
    assert main(["run", "--methods", "random,djsrh", "--preset", "quick", "--out", out, *QUICK]) == 0
    capsys.readouterr()
    assert main(["run", "--methods", "random,djsrh", "--param", "djsrh.epochs=2", "--out", out, *QUICK]) == 0
    err = capsys.readouterr().err
    assert "preset paper (the default once --methods" in err and "--preset quick" in err
    # djsrh's stored timing is of the quick preset: never an estimate for another configuration
    assert "estimate from stored timings" not in err
    stored = (tmp_path / "R" / "leaderboard.md").read_text()
    assert main(["leaderboard", out]) == 0
    shown = capsys.readouterr().out
    for text in (stored, shown):
        assert "djsrh [quick, epochs=10, hidden=256]" in text and "djsrh [paper, epochs=2, hidden=4096]" in text
        assert "—" not in _entries(text) and all(_entries(text))
        assert "presets paper, quick" in text and "features raw" in text and "chance level" in text


@pytest.mark.slow
def test_merged_folders_with_different_seeds_show_every_entry_with_n(tmp_path, capsys):
    common = ["--preset", "quick", *QUICK]
    assert main(["run", "--methods", "random,cca-itq", "--seeds", "0", "--out", str(tmp_path / "A"), *common]) == 0
    assert main(["run", "--methods", "cca-itq", "--seeds", "1", "--out", str(tmp_path / "B"), *common]) == 0
    capsys.readouterr()
    assert main(["leaderboard", str(tmp_path / "A"), str(tmp_path / "B")]) == 0
    text = capsys.readouterr().out
    entries = _entries(text)
    assert "seeds: 0, 1" in text
    assert "—" not in entries and all(entries)
    random_rows = [line for line in text.splitlines() if line.startswith("| random")]
    assert random_rows and all("(n=1)" in line for line in random_rows)


@pytest.fixture
def constant_method():
    @register(name="test-constant", title="t", authors="a", venue="v", year=1, kind="shallow", fidelity="paper",
              deterministic=True, memory="O(1)")
    class Constant(Hasher):
        """Codes every item the same: a collapsed model."""

        def __init__(self, *, seed: int = 0, device: str = "auto", cache: Any = None):
            super().__init__(seed=seed, device=device, cache=cache)

        def _fit(self, train, n_bits):
            self.bits_ = n_bits

        def _encode_image(self, image):
            return np.ones((len(image), self.bits_))

        def _encode_text(self, text):
            return np.ones((len(text), self.bits_))

    yield "test-constant"
    unregister("test-constant")


@pytest.mark.slow
def test_identical_codes_are_flagged_in_the_summary_and_the_leaderboard_and_never_bold(constant_method, tmp_path,
                                                                                         capsys):
    out = tmp_path / "C"
    assert main(["run", "--methods", "test-constant,random", "--preset", "quick", "--out", str(out), *QUICK]) == 0
    err = capsys.readouterr().err
    assert "warning: 1 cell(s) collapsed" in err and "test-constant/synthetic/16b/s0 (1 codes)" in err
    board = (out / "leaderboard.md").read_text()
    rows = [line for line in board.splitlines() if line.startswith("| test-constant")]
    assert rows and all("⚠" in row and "**" not in row for row in rows)
    csv = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert {"peak_rss_mb", "n_queries", "n_database", "features", "variant", "config_digest"} <= set(csv.columns)
    assert (csv["error"] == "").all() and (csv["features"] == "raw").all()


@pytest.mark.slow
def test_a_metric_not_stored_names_cmhbench_evaluate(tmp_path, capsys):
    out = str(tmp_path / "R")
    assert main(["run", "--methods", "random", "--preset", "quick", "--out", out, *QUICK]) == 0
    capsys.readouterr()
    assert main(["leaderboard", out, "--metric", "tmap@all"]) == 2
    err = capsys.readouterr().err
    assert f"cmhbench evaluate {out} --metrics tmap@all" in err and "Traceback" not in err


def test_help_texts_say_what_they_mean(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = capsys.readouterr().out
    assert "95% interval" in text and "95%%" not in text
    with pytest.raises(SystemExit):
        main(["list", "methods", "--help"])
    assert "Registered methods" in capsys.readouterr().out


@pytest.mark.slow
def test_leaderboard_and_rank_can_show_only_some_methods(tmp_path, capsys):
    out = str(tmp_path / "R")
    assert main(["run", "--methods", "random,cca-itq,cvh", "--preset", "quick", "--out", out, *QUICK]) == 0
    capsys.readouterr()
    assert main(["leaderboard", out, "--methods", "cca-itq,cvh"]) == 0
    rows = [line.split("|")[1].strip() for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert set(rows) - {"method"} == {"cca-itq", "cvh"}
    assert main(["rank", out, "--methods", "random,cvh"]) == 0
    text = capsys.readouterr().out
    assert "random" in text and "cvh" in text and "cca-itq" not in text
    assert main(["leaderboard", out, "--methods", "cvh,nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope" in err and "cca-itq, cvh, random" in err
