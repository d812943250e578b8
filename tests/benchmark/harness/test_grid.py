import dataclasses

import pytest

from cmhbench import datasets
from cmhbench.harness.grid import Cell, GridError, GridSpec, build_cells
from cmhbench.methods import ParameterError, UnknownMethodError


@pytest.fixture(scope="module")
def sources():
    return {"synthetic": datasets.resolve("synthetic")}


def _cell(**changes):
    fields = dict(method="cca-itq", base="cca-itq", params={"n_iter": 50}, dataset={"name": "synthetic", "x": 1},
                  protocol="synthetic", bits=16, seed=0, database_coding="modality", preset="paper")
    fields.update(changes)
    return Cell(**fields)


def test_key_depends_on_every_result_defining_field_but_not_the_preset_name():
    base = _cell().key
    assert _cell().key == base
    assert _cell(preset="quick").key == base
    for change in [dict(params={"n_iter": 49}), dict(dataset={"name": "synthetic", "x": 2}), dict(bits=32),
                   dict(seed=1), dict(database_coding="unified"), dict(protocol="other"), dict(method="v")]:
        assert _cell(**change).key != base, change


def test_grid_expands_methods_bits_seeds_codings(sources):
    spec = GridSpec(methods=["random", "cca-itq"], bits=[16, 20], seeds=[0, 1], database_coding=["modality", "unified"])
    cells = build_cells(spec, sources)
    assert len(cells) == 2 * 2 * 2 * 2
    assert len({c.key for c in cells}) == len(cells)


def test_variants_are_rows_of_their_own_with_their_parameters(sources):
    spec = GridSpec(methods=["cca-itq", "cca-scaled"], bits=[16],
                    variants={"cca-scaled": {"base": "cca-itq", "corr_power": 4}},
                    params={"cca-itq": {"n_iter": 10}})
    plain, scaled = build_cells(spec, sources)
    assert (plain.method, plain.base, plain.params["n_iter"], plain.params["corr_power"]) == ("cca-itq", "cca-itq", 10, 0.0)
    assert (scaled.method, scaled.base, scaled.params["n_iter"], scaled.params["corr_power"]) == (
        "cca-scaled", "cca-itq", 10, 4.0)


@pytest.mark.parametrize(
    "spec, error, message",
    [
        (GridSpec(methods=["cca_itq"]), UnknownMethodError, "did you mean 'cca-itq'"),
        (GridSpec(methods=["cca-itq"], bits=[0]), GridError, "positive integers"),
        (GridSpec(methods=["cca-itq"], seeds=[-1]), GridError, "non-negative"),
        (GridSpec(methods=["cca-itq"], database_coding=["both"]), GridError, "modality, unified"),
        (GridSpec(methods=["v"], variants={"v": {"corr_power": 1}}), GridError, "needs a 'base'"),
        (GridSpec(methods=["random"], variants={"random": {"base": "cca-itq"}}), GridError, "registered method"),
        (GridSpec(methods=["cca-itq"], params={"cca-itq": {"n_itr": 3}}), ParameterError, "did you mean 'n_iter'"),
        (GridSpec(methods=["cca-itq"], params={"random": {"x": 1}}), GridError, "not in the grid: random"),
    ],
)
def test_bad_grids_are_refused_with_a_reason(sources, spec, error, message):
    with pytest.raises(error, match=message):
        build_cells(spec, sources)


def test_cell_command_reproduces_its_parameters():
    command = _cell(params={"n_iter": 50, "reg": 0.001}).command()
    assert "--methods cca-itq" in command and "--bits 16" in command and "--seeds 0" in command
    assert "--param cca-itq.n_iter=50" in command and "--param cca-itq.reg=0.001" in command


def test_method_versions_enter_the_key_only_once_a_version_is_bumped():
    before_versions = _cell().key  # a cell stored before methods declared versions
    assert _cell(versions={"cca-itq": 1}).key == before_versions
    assert _cell(versions={"cca-itq": 2}).key != before_versions
    student = _cell(method="kdcmh", base="kdcmh", versions={"kdcmh": 1, "jdsh": 1})
    assert _cell(method="kdcmh", base="kdcmh", versions={"kdcmh": 1, "jdsh": 2}).key != student.key


def test_cells_carry_their_method_and_teacher_versions(sources):
    spec = GridSpec(methods=["cca-itq", "kdcmh"], bits=[16], preset="quick")
    plain, student = build_cells(spec, sources)
    assert plain.versions == {"cca-itq": 1}
    assert plain.key == _cell(params=plain.params, dataset=plain.dataset, preset="quick").key
    assert student.versions == {"kdcmh": 4, "jdsh": 3}


def test_a_new_jdsh_version_gives_kdcmh_cells_new_keys(sources, monkeypatch):
    # kdcmh's teacher is jdsh: a jdsh change must not let a stored kdcmh cell be reused
    from cmhbench.methods.jdsh import JDSH
    spec = GridSpec(methods=["kdcmh"], bits=[16], preset="quick")
    (now,) = build_cells(spec, sources)
    monkeypatch.setattr(JDSH, "info", dataclasses.replace(JDSH.info, version=JDSH.info.version + 1))
    (bumped,) = build_cells(spec, sources)
    assert bumped.params == now.params
    assert bumped.versions["jdsh"] == now.versions["jdsh"] + 1
    assert bumped.key != now.key


def test_raw_version_one_cells_keep_the_keys_stored_before_versions_and_features_existed():
    # the key this cell had before method versions and feature preprocessing (commit 685cb04)
    assert _cell(versions={"cca-itq": 1}, features="raw").key == "cf5a62c2e114913862a0"
    assert _cell(features="zscore").key != _cell(features="l2").key != _cell().key


def test_the_keys_of_known_cells_are_pinned():
    # keys stored by the code of commit 110533d: a change here recomputes every stored cell (on purpose only)
    assert _cell(versions={"cca-itq": 1}, features="l2").key == "29c0e3cca74ae9076547"
    every_field_set = _cell(method="kdcmh", base="kdcmh", database_coding="unified", versions={"kdcmh": 3, "jdsh": 3},
                            features="zscore", split="validation", tuned={"study": "s"})
    assert every_field_set.key == "41ac3755eb0d8344fee2"


def test_unknown_features_are_refused(sources):
    with pytest.raises(GridError, match="features must be one of raw, zscore, l2, got 'standard'"):
        build_cells(GridSpec(methods=["cca-itq"], features="standard"), sources)


def test_methods_narrowing_a_config_drop_its_params_for_rows_left_out(tmp_path):
    """--methods picks rows of a config file; the file's [params] for the other rows no longer
    apply (the shipped ablation grids set jdsh's epochs), while a --param naming a method
    outside the grid is still refused."""
    from cmhbench.harness.config import run_settings

    path = tmp_path / "grid.toml"
    path.write_text('methods = ["cca-itq", "random", "cca-short"]\n'
                    '[variants.cca-short]\nbase = "cca-itq"\nn_iter = 5\n'
                    '[params.random]\nbits_seed = 1\n[params.cca-itq]\nn_iter = 7\n')
    settings = run_settings({"config": str(path), "methods": "cca-short"}, ["cca-itq", "random"])
    assert set(settings.grid.params) == {"cca-itq"}  # the variant's base keeps its params
    settings.grid.validate()
    with pytest.raises(GridError, match="not in the grid: random"):
        run_settings({"config": str(path), "methods": "cca-short", "param": ["random.bits_seed=2"]},
                     ["cca-itq", "random"]).grid.validate()
