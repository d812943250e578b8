"""cmhbench priors: the registry hook, one grid size for every method, stage 1 blind to test
queries, and a generated file that runs with the validation mark."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from cmhbench import store
from cmhbench.harness import priors
from cmhbench.cli import main
from cmhbench.harness.config import run_settings
from cmhbench.datasets.generic import resolve_file
from cmhbench.datasets.synthetic import SyntheticConfig, generate
from cmhbench.datasets.validation import validation_split
from cmhbench.harness.grid import build_cells
from cmhbench.methods import registry
from cmhbench.methods.base import Hasher
from cmhbench.methods.domains import Real
from cmhbench.harness.runner import param_sources
from cmhbench.harness.runner import RunContext
from cmhbench.harness.tune import DEFAULTS, StudyResult, tune_method

#: The methods this repository gives a prior (issue 33): each builds a similarity from features.
WITH_PRIOR = {"djsrh", "jdsh", "dgcpn", "kdcmh", "uchm", "ugach", "ukd"}
#: Priors built without training anything: stage 1 costs no epochs.
UNTRAINED = ["djsrh", "jdsh", "dgcpn", "ugach"]


def _user_file(path: Path, poison_queries: bool = False) -> str:
    """A small labelled file with its own test queries (protocol ``given``), under a name no code
    knows; ``poison_queries`` replaces the test queries' labels by other, random ones."""
    data = generate(SyntheticConfig(n_items=600, n_query=100, n_train=400, image_dim=24, text_dim=12, n_labels=6))
    labels = data.labels.copy()
    labels[labels.sum(axis=1) == 0, 0] = 1  # every row labelled: which rows can be queries does not change
    query = np.arange(500, 600)
    if poison_queries:
        rng = np.random.default_rng(7)
        labels[query] = 0
        labels[query, rng.integers(0, labels.shape[1], query.size)] = 1
    np.savez(path, image=data.image, text=data.text, labels=labels, query_idx=query)
    return str(path)


def _defaults(method: str) -> dict:
    return registry.resolve_params(method, preset="quick")


def test_every_method_that_builds_a_similarity_declares_its_prior_through_the_registry():
    declared = {m for m in registry.available() if registry.get(m).info.prior_params}
    assert WITH_PRIOR <= declared
    for method in declared:
        info = registry.get(method).info
        assert callable(info.prior)
        for name in info.prior_params:
            assert name in registry.get(method).default_params()
            assert registry.prior_domain(method, name).searchable
    # kdcmh's teacher weights are searched over jdsh's own ranges
    assert registry.prior_domain("kdcmh", "teacher_alpha").search == registry.prior_domain("jdsh", "alpha").search


def _throwaway(**register_args):
    class Throwaway(Hasher):
        param_domains = {"w": Real(0.0, 1.0, default=0.5), "v": Real(0.0, 1.0, default=0.5)}

    return registry.register(name="prior-throwaway", title="t", authors="a", venue="v", year=2000, kind="shallow",
                             fidelity="paper", deterministic=True, memory="-", **register_args)(Throwaway)


@pytest.mark.parametrize("args, message", [
    ({"prior_params": ("nope",), "prior": lambda m, t: None}, "unknown"),
    ({"prior_params": ("w",), "prior": lambda m, t: None}, "no search range"),
    ({"prior_params": ("w",), "prior_ranges": {"w": Real(0.0, 1.0, search=(0.1, 0.9))}}, "go together"),
])
def test_a_bad_prior_declaration_is_refused_when_the_method_registers(args, message):
    try:
        with pytest.raises(TypeError, match=message):
            _throwaway(**args)
    finally:
        registry.unregister("prior-throwaway")


def test_prior_ranges_give_a_range_to_a_parameter_whose_domain_has_none():
    try:
        cls = _throwaway(prior_params=("w",), prior_ranges={"w": Real(0.0, 1.0, search=(0.2, 0.4))},
                         prior=lambda m, t: None)
        assert registry.prior_domain(cls, "w").search == (0.2, 0.4)
        grid = priors.prior_grid("prior-throwaway", {"w": 0.5, "v": 0.5})
        assert len(grid) == priors.GRID_POINTS and all(0.2 <= p["w"] <= 0.4 for p in grid)
    finally:
        registry.unregister("prior-throwaway")


def test_every_method_gets_a_grid_of_the_same_size_inside_its_ranges_and_starting_at_its_own_values():
    sizes = {}
    for method in WITH_PRIOR:
        defaults = _defaults(method)
        grid = priors.prior_grid(method, defaults)
        sizes[method] = len(grid)
        assert grid == priors.prior_grid(method, defaults)  # seeded: the same grid every time
        names = registry.get(method).info.prior_params
        assert all(set(point) == set(names) for point in grid)
        assert all(registry.prior_domain(method, n).in_search(point[n]) for point in grid for n in names)
        assert grid[0] == {n: defaults[n] for n in names}  # every default here lies in its range
    assert set(sizes.values()) == {priors.GRID_POINTS}
    # an own value outside a range is not forced in: the grid is all hypercube, same size
    outside = priors.prior_grid("djsrh", {**_defaults("djsrh"), "beta": 0.99})
    assert len(outside) == priors.GRID_POINTS and outside[0]["beta"] != 0.99


def test_the_hypercube_covers_each_range_once_per_stratum():
    unit = priors.unit_sample(16, 3)
    for column in unit.T:
        assert sorted(np.floor(column * 16).astype(int)) == list(range(16))


def _stage1(path: str, method: str):
    source = resolve_file(path)
    data = priors.validation_rows(source, source.default_protocol, 0, "zscore")
    return priors.stage1(method, _defaults(method), data, seed=0, device="cpu")


def test_stage1_never_reads_a_test_query_label(tmp_path):
    for method in UNTRAINED:
        clean = _stage1(_user_file(tmp_path / "clean.npz"), method)
        poisoned = _stage1(_user_file(tmp_path / "poisoned.npz", poison_queries=True), method)
        assert clean == poisoned, method
        points, top = clean
        assert len(points) == priors.GRID_POINTS and 1 <= len(top) <= priors.TOP_K
        assert [p.auc for p in top] == sorted((p.auc for p in top), reverse=True)
        assert max(p.auc for p in points) > 0.5  # the synthetic set's features carry its labels


def test_stage1_reads_only_the_validation_training_rows(tmp_path):
    source = resolve_file(_user_file(tmp_path / "mine.npz"))
    data = priors.validation_rows(source, "given", 0, "raw")
    dataset = source.load()
    split = source.split(dataset, "given", 0)
    assert data.n == len(validation_split(split, dataset.labels, 0).train) == 400  # 500 rows less 100 validation queries
    assert not np.isin(data.image, dataset.image[split.query]).all(axis=1).any()
    assert set(data.first).isdisjoint(data.second) and len(data.first) + len(data.second) == data.n


def test_stage1_caps_every_set_up_stage_at_the_stated_budget():
    for method in ("kdcmh", "uchm", "ukd"):
        cls = registry.get(method)
        assert cls.setup_epochs
        params = priors.stage1_params(method, registry.resolve_params(method), {})
        assert all(params[name] == min(priors.SETUP_EPOCHS, cls.default_params()[name]) for name in cls.setup_epochs)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["kdcmh", "uchm", "ukd"])
def test_a_prior_with_a_trained_part_trains_it_on_the_rows_and_scores(tmp_path, method):
    source = resolve_file(_user_file(tmp_path / "mine.npz"))
    data = priors.validation_rows(source, "given", 0, "zscore")
    smallest = {**_defaults(method), **registry.get(method).setup_minimum()}  # one set-up epoch, narrow
    auc = priors.prior_auc(method, priors.stage1_params(method, smallest, {}), data, seed=0, device="cpu")
    assert 0.0 <= auc <= 1.0


@pytest.mark.slow
def test_stage2_chooses_among_the_given_points_and_reports_their_values(tmp_path):
    path = _user_file(tmp_path / "mine.npz")
    settings = run_settings({"methods": "cca-itq", "datasets": path, "bits": "16", "out": tmp_path / "study"}, [],
                            DEFAULTS)
    settings.out.mkdir()
    ctx = replace(RunContext.from_settings(settings), out=settings.out / "trials", metrics=("map@all",))
    points = [{"reg": 1e-5}, {"reg": 5e-2}]
    result = tune_method("cca-itq", settings, {path: resolve_file(path)}, ctx, trials=2, search=["corr_power"],
                         points=points)
    assert set(result.best_params) == {"reg", "corr_power"} and {"reg": result.best_params["reg"]} in points
    trials = sorted(store.iter_records(settings.out / "trials"), key=lambda r: r["reproduce"]["config"]["tune"]["trial"])
    assert trials[0]["cell"]["params"]["reg"] == 1e-5  # the first trial: stage 1's best point
    assert all({"reg": r["cell"]["params"]["reg"]} in points for r in trials)


def _fake_choice(method: str, values: dict) -> priors.PriorChoice:
    points = [priors.ScoredPoint(values, 0.8, start=True)]
    study = StudyResult(method=method, study=f"{method}-abc", best_value=0.5, best_params=values, fixed_params={},
                        completed=2, failed=0, validation={"mine.npz/s0": {"hash": "h", "queries": 100, "database": 400}})
    return priors.PriorChoice(method, points, points, study)


def test_the_generated_file_is_a_run_config_whose_rows_carry_the_validation_mark(tmp_path):
    path = _user_file(tmp_path / "mine.npz")
    settings = run_settings({"methods": "djsrh", "datasets": path, "out": tmp_path / "out"}, [], DEFAULTS)
    data = priors.ValidationRows(np.zeros((4, 1)), np.zeros((4, 1)), np.zeros((4, 1)), np.arange(2), np.arange(2, 4),
                                 "h")
    target = tmp_path / priors.PRIORS_FILE
    priors.write_priors(target, settings, [_fake_choice("djsrh", {"beta": 0.25, "eta": 0.5, "lr_text": 0.02})],
                        data, "map@all", "cmhbench priors ...")
    written = tomllib.loads(target.read_text())
    assert written["methods"] == ["djsrh", "djsrh-val"]  # the paper row stays a row of its own
    tuned = written["variants"]["djsrh-val"]["tuned"]
    assert tuned["grid_points"] == priors.GRID_POINTS and tuned["trials"] == 2
    assert tuned["validation_labels"] == {"mine.npz/s0": 500} and tuned["command"] == "cmhbench priors ..."

    again = run_settings({"config": str(target), "out": tmp_path / "results"}, [])
    source = resolve_file(path)
    cells = build_cells(again.grid, {path: source})
    chosen = [c for c in cells if c.method == "djsrh-val"]
    assert chosen and chosen[0].params["beta"] == 0.25 and chosen[0].params["lr_text"] == 0.02
    assert param_sources(chosen[0]) == {name: {"from": "cmhbench tune", "provenance": "validation"}
                                        for name in ("beta", "eta", "lr_text")}
    assert not any(p["provenance"] == "validation" for c in cells if c.method == "djsrh"
                   for p in param_sources(c).values())


def test_a_method_without_a_prior_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["priors", "--methods", "djsrh,cca-itq", "--trials", "2", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cmhbench: error: method(s) cca-itq declare no prior") and "\n" not in err


def test_two_datasets_at_once_are_refused_in_one_line(tmp_path, capsys):
    path = _user_file(tmp_path / "mine.npz")
    assert main(["priors", "--methods", "djsrh", "--datasets", f"synthetic,{path}", "--trials", "2",
                 "--out", str(tmp_path / "x")]) == 2
    assert "one dataset and one seed at a time" in capsys.readouterr().err


@pytest.mark.slow
def test_one_command_chooses_on_a_user_file_and_its_output_runs_with_the_mark(tmp_path, capsys):
    path = _user_file(tmp_path / "someones-own-data.npz")
    out, results = tmp_path / "priors", tmp_path / "results"
    assert main(["priors", "--methods", "djsrh,ugach", "--datasets", path, "--features", "zscore", "--preset",
                 "quick", "--trials", "2", "--out", str(out)]) == 0
    written = tomllib.loads((out / priors.PRIORS_FILE).read_text())
    assert written["datasets"] == [path] and written["features"] == "zscore"
    for method in ("djsrh", "ugach"):
        variant = written["variants"][f"{method}-val"]
        names = registry.get(method).info.prior_params
        assert set(names) <= set(variant["tuned"]["searched"]) and variant["tuned"]["trials"] == 2
        assert len(variant["tuned"]["stage1_top_auc"]) <= priors.TOP_K
    trials = list(store.iter_records(out / "trials"))
    assert trials and {r["split"]["role"] for r in trials} == {"validation"}

    assert main(["run", "--config", str(out / priors.PRIORS_FILE), "--out", str(results), "--no-progress"]) == 0
    board = capsys.readouterr().out
    assert "djsrh-val ‡" in board and "ugach-val ‡" in board
    records = {r["cell"]["method"]: r for r in store.iter_records(results)}
    assert set(records) == {"djsrh", "djsrh-val", "ugach", "ugach-val"}
    assert records["djsrh-val"]["param_sources"]["beta"]["provenance"] == "validation"
