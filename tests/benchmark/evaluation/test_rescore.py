import numpy as np
import pytest

from cmhbench.evaluation import (
    ARRAY_DEFINITIONS,
    EvaluationInputError,
    evaluate,
    evaluate_cell,
    evaluation_arrays,
    score_cell_arrays,
    score_cell_file,
    score_codes_file,
)

METRICS = ("map@all", "map@50", "tmap@all", "cmap@20", "p@r2", "p@10")


def make_cell(seed=0, n_query=15, n_db=80, bits=20, n_labels=6):
    """Unpacked codes and labels, and the arrays a cell stores for them (as the runner packs them)."""
    rng = np.random.default_rng(seed)
    codes = {key: rng.choice([-1, 1], size=(n, bits)).astype(np.int8)
             for key, n in (("i2t_query", n_query), ("i2t_database", n_db), ("t2i_query", n_query),
                            ("t2i_database", n_db))}
    ql = (rng.random((n_query, n_labels)) < 0.3).astype(np.uint8)
    dl = (rng.random((n_db, n_labels)) < 0.3).astype(np.uint8)
    ql[1] = 0
    arrays = {key: np.packbits(value > 0, axis=1) for key, value in codes.items()}
    arrays.update(query_idx=np.arange(n_query), database_idx=np.arange(n_db),
                  query_labels=np.packbits(ql > 0, axis=1), database_labels=np.packbits(dl > 0, axis=1),
                  n_bits=np.array(bits), n_labels=np.array(n_labels))
    return codes, ql, dl, arrays


def test_cell_arrays_score_like_evaluate():
    codes, ql, dl, arrays = make_cell()
    got = score_cell_arrays(arrays, METRICS)
    for direction in ("i2t", "t2i"):
        want = evaluate(codes[f"{direction}_query"], codes[f"{direction}_database"], ql, dl, METRICS)
        assert got[direction] == pytest.approx(want, abs=1e-12)


def test_cell_file_and_folder(tmp_path):
    _, _, _, arrays = make_cell(1)
    np.savez_compressed(tmp_path / "arrays.npz", **arrays)
    from_folder = score_cell_file(tmp_path, ["map@all"])
    assert from_folder == score_cell_file(tmp_path / "arrays.npz", ["map@all"])
    assert set(from_folder) == {"i2t", "t2i"}


def test_evaluation_arrays_are_consistent_with_the_metrics():
    codes, ql, dl, arrays = make_cell(2, n_db=300)
    metrics, stored = evaluate_cell(arrays, ("map@all", "map@50", "tmap@all", "p@r2", "p@100", "r@100"))
    assert stored.keys() == evaluation_arrays(arrays).keys()
    names = {key.split("_", 1)[1] for key in stored}
    assert names == {"ap@all", "ap@50", "tap@all", "p@r2", "relevant", "pk_k", "pk_precision", "pk_recall",
                     "pr_radius", "pr_precision", "pr_recall"}
    for direction in ("i2t", "t2i"):
        got = metrics[direction]
        assert stored[f"{direction}_ap@all"].shape == (15,)
        assert stored[f"{direction}_ap@all"].mean() == pytest.approx(got["map@all"])
        assert stored[f"{direction}_ap@50"].mean() == pytest.approx(got["map@50"])
        assert stored[f"{direction}_tap@all"].mean() == pytest.approx(got["tmap@all"])
        assert stored[f"{direction}_p@r2"].mean() == pytest.approx(got["p@r2"])
        assert stored[f"{direction}_ap@all"][1] == 0.0  # the query without labels
        ks = stored[f"{direction}_pk_k"]
        assert ks.tolist() == [1, 10, 20, 50, 100, 200, 300]  # the default grid up to the database size
        at100 = ks.tolist().index(100)
        assert stored[f"{direction}_pk_precision"][at100] == pytest.approx(got["p@100"])
        assert stored[f"{direction}_pk_recall"][at100] == pytest.approx(got["r@100"])
        assert stored[f"{direction}_pr_radius"].tolist() == list(range(21))
        assert stored[f"{direction}_pr_precision"][2] == pytest.approx(got["p@r2"])
        assert stored[f"{direction}_pr_recall"][-1] == pytest.approx((ql @ dl.T > 0).any(axis=1).mean())
        assert stored[f"{direction}_relevant"].tolist() == (ql @ dl.T > 0).sum(axis=1).tolist()
    assert {"<dir>_ap@all", "<dir>_pk_k", "<dir>_pr_recall"} <= ARRAY_DEFINITIONS.keys()


def test_evaluation_arrays_options():
    _, _, _, arrays = make_cell(3)
    stored = evaluation_arrays(arrays, ap_cutoffs=(5, 1000), k_grid=(3, 7), radius=1)
    assert {"i2t_ap@5", "i2t_ap@1000", "i2t_p@r1", "t2i_pk_k"} <= stored.keys()
    assert stored["t2i_pk_k"].tolist() == [3, 7]


def test_cell_arrays_errors_name_the_key():
    _, _, _, arrays = make_cell(4)
    broken = dict(arrays)
    del broken["t2i_database"]
    with pytest.raises(EvaluationInputError, match=r"cells/x/arrays.npz: missing key\(s\) 't2i_database'"):
        score_cell_arrays(broken, source="cells/x/arrays.npz")
    broken = dict(arrays, i2t_query=arrays["i2t_query"][:, :2])
    with pytest.raises(EvaluationInputError, match=r"'i2t_query' must be packed bits, uint8 of shape \(rows, 3\)"):
        score_cell_arrays(broken)
    broken = dict(arrays, database_labels=arrays["database_labels"][:-1])
    with pytest.raises(EvaluationInputError, match="'i2t_database' has 80 rows but 'database_labels' has 79"):
        score_cell_arrays(broken)
    broken = dict(arrays, n_bits=np.array([20, 20]))
    with pytest.raises(EvaluationInputError, match="'n_bits' must be one positive integer"):
        score_cell_arrays(broken)


def test_missing_cell_file(tmp_path):
    with pytest.raises(EvaluationInputError, match="no such file"):
        score_cell_file(tmp_path)
    (tmp_path / "arrays.npz").write_text("not a zip")
    with pytest.raises(EvaluationInputError, match="not a readable .npz"):
        score_cell_file(tmp_path)


# ----------------------------------------------------------------- external codes files


@pytest.mark.parametrize("form", ["pm1", "01", "bool", "packed"])
def test_codes_file_forms(tmp_path, form):
    codes, ql, dl, arrays = make_cell(5, bits=13)
    if form == "packed":
        content = {key: arrays[key] for key in codes} | {"n_bits": np.array(13)}
    else:
        convert = {"pm1": lambda c: c, "01": lambda c: (c > 0).astype(np.int64), "bool": lambda c: c > 0}[form]
        content = {key: convert(value) for key, value in codes.items()}
    content.update(query_labels=ql, database_labels=dl)
    np.savez(tmp_path / "codes.npz", **content)
    got = score_codes_file(tmp_path / "codes.npz", METRICS)
    for direction in ("i2t", "t2i"):
        want = evaluate(codes[f"{direction}_query"], codes[f"{direction}_database"], ql, dl, METRICS)
        assert got[direction] == pytest.approx(want, abs=1e-12)


def test_codes_file_one_direction_packed_labels_and_labels_as_arguments(tmp_path):
    codes, ql, dl, arrays = make_cell(6)
    np.savez(tmp_path / "a.npz", t2i_query=codes["t2i_query"], t2i_database=codes["t2i_database"],
             query_labels=arrays["query_labels"], database_labels=arrays["database_labels"], n_labels=np.array(6))
    got = score_codes_file(tmp_path / "a.npz", ["map@all"])
    assert list(got) == ["t2i"]
    want = evaluate(codes["t2i_query"], codes["t2i_database"], ql, dl, ["map@all"])
    assert got["t2i"] == pytest.approx(want)
    np.savez(tmp_path / "b.npz", t2i_query=codes["t2i_query"], t2i_database=codes["t2i_database"])
    assert score_codes_file(tmp_path / "b.npz", ["map@all"], query_labels=ql, database_labels=dl) == got


@pytest.mark.parametrize("content, message", [
    ({}, "no codes found; expected keys i2t_query and i2t_database"),
    ({"i2t_query": "q"}, "key 'i2t_database' is missing"),
    ({"i2t_query": "q", "i2t_database": "d"}, "key 'query_labels' is missing and no query_labels were given"),
    ({"i2t_query": "q", "i2t_database": "d16", "query_labels": "ql", "database_labels": "dl"},
     "key 'i2t_query' has 8 bits but 'i2t_database' has 16"),
    ({"i2t_query": "q", "i2t_database": "d", "query_labels": "ql", "database_labels": "ql"},
     "key 'i2t_database' has 5 rows but the database labels have 4"),
    ({"i2t_query": "q", "i2t_database": "d", "query_labels": "ql", "database_labels": "dl3"},
     "query labels have 2 classes, database labels 3"),
    ({"i2t_query": "packed", "i2t_database": "d", "query_labels": "ql", "database_labels": "dl"},
     "key 'i2t_query' holds values other than ±1 and 0/1; packed codes .* need the scalar key 'n_bits'"),
    ({"i2t_query": "packed", "i2t_database": "packed5", "query_labels": "ql", "database_labels": "dl",
      "n_bits": 12}, r"key 'i2t_query' must be packed bits, uint8 of shape \(rows, 2\)"),
    ({"i2t_query": "q", "i2t_database": "d", "query_labels": "ql", "database_labels": "dl2"},
     "key 'database_labels' must be multi-hot 0/1 labels"),
    ({"i2t_query": "mixed", "i2t_database": "d", "query_labels": "ql", "database_labels": "dl"},
     "key 'i2t_query' mixes -1 and 0"),
    ({"i2t_query": "float", "i2t_database": "d", "query_labels": "ql", "database_labels": "dl"},
     "key 'i2t_query' must hold integer ±1 or 0/1 codes, got float64"),
])
def test_codes_file_errors_name_file_and_key(tmp_path, content, message):
    rng = np.random.default_rng(0)
    values = {
        "q": rng.choice([-1, 1], size=(4, 8)), "d": rng.choice([-1, 1], size=(5, 8)),
        "d16": rng.choice([-1, 1], size=(5, 16)), "ql": np.eye(2, dtype=np.uint8)[[0, 1, 0, 1]],
        "dl": np.eye(2, dtype=np.uint8)[[0, 1, 0, 1, 1]], "dl3": np.eye(3, dtype=np.uint8)[[0, 1, 0, 1, 2]],
        "dl2": np.full((5, 2), 2), "packed": np.packbits(rng.random((4, 8)) > 0.5, axis=1) | 0x80,
        "packed5": np.packbits(rng.random((5, 8)) > 0.5, axis=1), "mixed": np.array([[-1, 0, 1, 1]] * 4),
        "float": rng.choice([-1.0, 1.0], size=(4, 8)), 12: np.array(12),
    }
    path = tmp_path / "codes.npz"
    np.savez(path, **{key: values[value] for key, value in content.items()})
    with pytest.raises(EvaluationInputError, match=message) as info:
        score_codes_file(path, ["map@all"])
    if content:
        assert str(info.value).startswith(str(path))
