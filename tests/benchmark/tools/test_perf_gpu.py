import pytest

from cmhbench.tools import perf, perf_gpu


def test_each_method_trains_the_fraction_of_its_paper_epochs_at_least_one():
    params = perf_gpu.scaled_params(["djsrh", "kdcmh", "uchm", "ucch"], 0.05)
    pairs = dict(p.split("=") for p in params[1::2])
    assert pairs == {"djsrh.epochs": "4", "kdcmh.epochs": "10", "kdcmh.teacher_epochs": "15", "uchm.epochs": "15",
                     "uchm.gen_epochs": "2", "ucch.epochs": "1"}
    assert params[0::2] == ["--param"] * len(pairs)


def test_the_gpu_check_refuses_to_run_without_a_gpu(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert perf.main(["gpu", "--out", "unused"]) == 2
    assert "torch sees no GPU" in capsys.readouterr().err


@pytest.mark.slow
def test_a_grid_is_run_timed_and_tabulated(tmp_path, monkeypatch):
    # a tiny stand-in for the MIRFlickr shape; without a GPU the cells fall back to the CPU
    monkeypatch.setattr(perf_gpu, "MIRFLICKR", "synthetic:n_items=200+n_query=40+n_train=64")
    run = perf_gpu.run_grid(tmp_path / "k1", 1, ["djsrh"], 0.01, timeout_s=300)
    assert not run.timed_out and len(run.records) == 4
    assert {r["status"] for r in run.records} == {"ok"}
    assert {r["fit"]["epochs"] for r in run.records} == {1}  # 1% of 80 epochs, at least one
    table = perf_gpu.method_table(run, 0.01, ["djsrh"])
    djsrh = next(line for line in table.splitlines() if line.startswith("| djsrh"))
    assert djsrh.split("|")[2].strip() == "4"
    assert "| 1 | 4/4 |" in perf_gpu.grid_table([run], 0.01, 4)
