import io
import json

import numpy as np
import pandas as pd
import pytest

from cmhbench.analysis.leaderboard import (LeaderboardError, build_tables, collapse_warning, select_methods, to_csv,
                                  to_markdown)


def _frame(rows):
    base = dict(dataset="d", protocol="p", database_coding="modality", fidelity="paper", kind="shallow")
    return pd.DataFrame([{**base, **r} for r in rows])


def _ok(method, bits, seed, value, **extra):
    return dict(method=method, bits=bits, seed=seed, status="ok", **{"i2t/map@all": value, "t2i/map@all": value},
                **extra)


def test_mean_and_std_over_seeds_and_best_marked():
    frame = _frame([_ok("a", 16, 0, 0.5), _ok("a", 16, 1, 0.7), _ok("b", 16, 0, 0.2), _ok("b", 16, 1, 0.4)])
    table = build_tables(frame)[0]
    assert table.means.loc["a", 16] == pytest.approx(0.6)
    assert table.stds.loc["a", 16] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert table.text("a", 16) == "0.6000 ± 0.1414"
    assert (table.rank("a", 16), table.rank("b", 16)) == (1, 2)
    assert "| **0.6000 ± 0.1414** |" in to_markdown(frame)


def test_a_partial_entry_shows_its_mean_with_n_and_bold_uses_only_the_shared_seeds():
    frame = _frame([
        _ok("a", 16, 0, 0.5), _ok("a", 16, 1, 0.95),  # mean 0.725, but 0.5 on the shared seed 0
        _ok("b", 16, 0, 0.6), dict(method="b", bits=16, seed=1, status="failed"),
        dict(method="c", bits=16, seed=0, status="failed"),
    ])
    table = build_tables(frame)[0]
    assert table.text("b", 16) == "0.6000 (n=1)"
    assert table.text("a", 16) == f"0.7250 ± {np.std([0.5, 0.95], ddof=1):.4f}"
    assert table.text("c", 16) == "—" and table.rank("c", 16) is None
    assert table.shared[16] == [0]
    assert (table.rank("b", 16), table.rank("a", 16)) == (1, 2)  # compared on seed 0 alone
    text = to_markdown(frame)
    assert "| **0.6000 (n=1)** |" in text and "**0.7250" not in text


def test_disjoint_seeds_show_every_entry_and_bold_nothing():
    frame = _frame([_ok("a", 16, 0, 0.5), _ok("b", 16, 1, 0.7)])  # two folders, different seeds
    table = build_tables(frame)[0]
    assert (table.text("a", 16), table.text("b", 16)) == ("0.5000 (n=1)", "0.7000 (n=1)")
    assert table.shared[16] == [] and "| **" not in to_markdown(frame)


def test_one_entry_in_a_column_is_not_bold():
    assert "| **" not in to_markdown(_frame([_ok("a", 16, 0, 0.5)]))


def test_each_configuration_of_a_method_gets_its_own_labelled_row():
    quick = '{"epochs": 5}'
    frame = _frame([_ok("djsrh", 16, 0, 0.4, params=quick, preset="quick", base="djsrh"),
                    _ok("djsrh", 16, 0, 0.5, params='{"epochs": 2}', preset="paper", base="djsrh"),
                    _ok("random", 16, 0, 0.1, params="{}", preset="paper", base="random")])
    table = build_tables(frame)[0]
    rows = list(table.means.index)
    assert len(rows) == 3 and "random" in rows
    assert sorted(r for r in rows if r != "random") == ["djsrh [paper, epochs=2]", "djsrh [quick, epochs=5]"]
    assert not table.means.isna().any().any()
    assert "| —" not in to_markdown(frame)


def test_collapsed_entry_is_marked_and_never_bold():
    frame = _frame([_ok("a", 16, 0, 0.9, distinct_db_codes=1, n_database=500),
                    _ok("b", 16, 0, 0.5, distinct_db_codes=400, n_database=500),
                    _ok("c", 16, 0, 0.4, distinct_db_codes=300, n_database=500)])
    table = build_tables(frame)[0]
    assert table.text("a", 16) == "0.9000 ⚠" and table.rank("a", 16) is None
    assert table.bold("b", 16)
    text = to_markdown(frame)
    assert "0.9000 ⚠" in text and "**0.9000" not in text and "**0.5000**" in text
    assert collapse_warning(frame).startswith("1 cell(s) collapsed")
    assert collapse_warning(frame[frame["method"] != "a"]) is None


def test_not_applicable_and_reconstructed_are_marked():
    frame = _frame([_ok("a", 16, 0, 0.5, fidelity="reconstructed"),
                    dict(method="b", bits=16, seed=0, status="not-applicable")])
    text = to_markdown(frame)
    assert "| a †" in text and "n/a" in text
    assert "I→T" in text and "T→I" in text


def test_unknown_and_unstored_metrics():
    frame = _frame([_ok("a", 16, 0, 0.5)])
    with pytest.raises(LeaderboardError, match="not in the stored records.*cmhbench evaluate .* --metrics map@50"):
        build_tables(frame, "map@50")
    with pytest.raises(Exception, match="unknown metric"):
        build_tables(frame, "ndcg")


def test_csv_is_long():
    frame = _frame([_ok("a", 16, 0, 0.5), _ok("a", 32, 0, 0.6)])
    lines = to_csv(frame).strip().splitlines()
    assert len(lines) == 1 + 4
    assert "direction" in lines[0] and "metric" in lines[0] and "value" in lines[0]


def test_configurations_differing_in_many_parameters_are_told_apart_by_digest():
    a, b = '{"x": 1, "y": 1, "z": 1}', '{"x": 2, "y": 2, "z": 2}'
    frame = _frame([_ok("m", 16, 0, 0.4, params=a, preset="paper"), _ok("m", 16, 0, 0.5, params=b, preset="paper")])
    rows = sorted(build_tables(frame)[0].means.index)
    assert len(rows) == 2 and all(r.startswith("m [paper, ") and len(r) == len("m [paper, 12345678]") for r in rows)


def _versioned(method, seed, value, versions, **extra):
    return _ok(method, 16, seed, value, base=method, method_versions=versions,
               key=f"{method}-{seed}-{versions}-{extra.get('params')}", **extra)


def test_two_versions_of_a_method_get_their_own_rows_and_a_stale_note():
    """A folder run before and after jdsh's bump holds both versions' cells for every seed:
    never averaged into one row; the older one is named stale under every table."""
    from cmhbench.report.html import to_html
    from cmhbench.report.latex import to_latex

    frame = _frame([_versioned("jdsh", 0, 0.40, '{"jdsh": 2}'), _versioned("jdsh", 1, 0.42, '{"jdsh": 2}'),
                    _versioned("jdsh", 0, 0.60, '{"jdsh": 3}'), _versioned("jdsh", 1, 0.62, '{"jdsh": 3}'),
                    _versioned("random", 0, 0.10, '{"random": 1}'), _versioned("random", 1, 0.10, "{}")])
    tables = build_tables(frame)
    for table in tables:
        assert list(table.means.index) == ["jdsh (v2)", "jdsh (v3)", "random"]
        assert table.means.loc["jdsh (v2)", 16] == pytest.approx(0.41)
        assert table.means.loc["jdsh (v3)", 16] == pytest.approx(0.61)
        assert table.bold("jdsh (v3)", 16)
        assert table.stale.startswith("Stale: jdsh (v2) — computed by an older version")
    text = to_markdown(frame)
    assert "| jdsh (v2) " in text and "| jdsh (v3) " in text
    assert text.count("\n\nStale: jdsh (v2) — ") == 2  # under each direction's table
    assert "jdsh (v3) —" not in text and "(vN) = the method's version" in text
    latex = to_latex(frame)
    assert r"jdsh (v2) & " in latex and "Stale: jdsh (v2)" in latex
    assert "jdsh (v2)" in to_html(frame)
    csv = pd.read_csv(io.StringIO(to_csv(frame)))
    assert set(csv.loc[csv["method"] == "jdsh", "method_versions"]) == {'{"jdsh": 2}', '{"jdsh": 3}'}


def test_one_version_keeps_the_plain_label_and_no_note():
    # a record from before versions existed ({}) and one from after ({"jdsh": 1}) share a key: one version
    frame = _frame([_versioned("jdsh", 0, 0.4, "{}"), _versioned("jdsh", 1, 0.5, '{"jdsh": 1}'),
                    _versioned("kdcmh", 0, 0.6, '{"jdsh": 3, "kdcmh": 3}')])
    table = build_tables(frame)[0]
    assert list(table.means.index) == ["jdsh", "kdcmh"] and table.stale is None
    assert table.means.loc["jdsh", 16] == pytest.approx(0.45)
    assert "Stale" not in to_markdown(frame) and "(v" not in to_markdown(frame).split("Mean ±")[0]


def test_a_teachers_version_and_parameters_are_told_apart_too():
    frame = _frame([_versioned("kdcmh", 0, 0.5, '{"jdsh": 2, "kdcmh": 3}', params='{"epochs": 2}', preset="paper"),
                    _versioned("kdcmh", 0, 0.6, '{"jdsh": 3, "kdcmh": 3}', params='{"epochs": 2}', preset="paper"),
                    _versioned("kdcmh", 0, 0.7, '{"jdsh": 3, "kdcmh": 3}', params='{"epochs": 9}', preset="paper")])
    table = build_tables(frame)[0]
    assert sorted(table.means.index) == ["kdcmh (v3, jdsh v2) [paper, epochs=2]", "kdcmh (v3, jdsh v3) [paper, epochs=2]",
                                         "kdcmh (v3, jdsh v3) [paper, epochs=9]"]
    assert table.stale.startswith("Stale: kdcmh (v3, jdsh v2) [paper, epochs=2] — ")


def test_select_methods_keeps_every_row_of_the_named_methods_and_names_unknown_ones():
    frame = _frame([_ok("a", 16, 0, 0.5), _ok("a", 32, 0, 0.6), _ok("b", 16, 0, 0.4), _ok("c", 16, 0, 0.3)])
    assert list(select_methods(frame, ["a", "c"])["method"]) == ["a", "a", "c"]
    with pytest.raises(LeaderboardError, match="no stored results for method.s. z; the folder.s. hold: a, b, c"):
        select_methods(frame, ["a", "z"])


def _stored(out, method, value, tuned=None, params=None):
    """A record of ``method`` on a dataset named wikipedia with its resolved paper parameters, as the
    runner writes it before the cell runs, given scores by hand (no method is trained)."""
    from cmhbench import store
    from cmhbench.methods import registry
    from cmhbench.harness.runner import param_sources
    from cmhbench.schema import Cell, Record

    resolved = registry.resolve_params(method, dataset="wikipedia", params=params)
    cell = Cell(method, method, resolved, {"name": "wikipedia"}, "wiki", 32, 0, tuned=tuned)
    record = Record.start(cell, evaluation={}, environment={}, reproduce={}, started_at="2026-01-01T00:00:00")
    record.param_sources = param_sources(cell) or None
    record.status, record.error, record.finished_at = "ok", None, "2026-01-01T00:01:00"
    record.metrics = {"i2t": {"map@all": value}, "t2i": {"map@all": value}}
    record.method_info = {"fidelity": registry.get(method).info.fidelity, "kind": "deep"}
    store.write_cell(out, cell.key, record.to_json(), None)


def _labels(markdown):
    """The row labels of a Markdown leaderboard."""
    rows = [line.split("|")[1].strip() for line in markdown.splitlines() if line.startswith("| ")]
    return set(rows) - {"method"}


def test_a_row_with_validation_chosen_values_is_marked_in_every_format(tmp_path):
    from cmhbench.report.html import to_html
    from cmhbench.report.latex import to_latex
    from cmhbench.store import load_results

    # kdcmh with its neighbourhood from a validation study (as `cmhbench priors` writes it)
    _stored(tmp_path, "kdcmh", 0.25, params={"knn_fraction": 0.02}, tuned={"study": "s", "searched": ["knn_fraction"]})
    _stored(tmp_path, "djsrh", 0.24)  # Wikipedia: djsrh's override is the authors' own settings
    frame = load_results(tmp_path)
    text = to_markdown(frame)
    assert _labels(text) == {"kdcmh † ‡", "djsrh"}
    assert "‡ = some hyper-parameter values chosen on a validation split" in text
    csv = pd.read_csv(io.StringIO(to_csv(frame)), keep_default_na=False)
    marks = csv.groupby("method")["validation_mark"].first()
    assert (marks["kdcmh"], marks["djsrh"]) == ("‡", "")
    sources = json.loads(csv.loc[csv["method"] == "kdcmh", "param_sources"].iloc[0])
    assert sources["knn_fraction"] == "validation"
    assert json.loads(csv.loc[csv["method"] == "djsrh", "param_sources"].iloc[0])["beta"] == "authors' code"
    latex = to_latex(frame)
    assert r"kdcmh$^\dagger$$^\ddagger$ &" in latex and "djsrh &" in latex
    assert r"$\ddagger$ = some hyper-parameter values" in latex
    page = to_html(frame)
    assert '"label": "kdcmh \\u2020 \\u2021"' in page  # JSON escapes non-ASCII in the page
    assert '"label": "djsrh"' in page and "‡ = some hyper-parameter values chosen on a validation split" in page


def test_kdcmh_at_its_defaults_is_not_marked_and_a_tuned_variant_is(tmp_path):
    from cmhbench.methods import get
    from cmhbench.store import load_results

    defaults = {name: get("kdcmh").default_params()[name] for name in ("knn_fraction", "kappa", "gamma")}
    _stored(tmp_path, "kdcmh", 0.22, params=defaults)
    _stored(tmp_path, "djsrh", 0.24, params={"beta": 0.35}, tuned={"study": "s", "searched": ["beta"]})
    text = to_markdown(load_results(tmp_path))
    assert _labels(text) == {"kdcmh †", "djsrh ‡"}
