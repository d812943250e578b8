"""Library messages reach the terminal through logging, in the command's format."""

import logging

from cmhbench.cli import main
from cmhbench.logs import configure_cli_logging


def test_a_library_warning_reads_like_the_commands_messages(capsys):
    configure_cli_logging()
    configure_cli_logging()  # idempotent: main() may run many times in one process
    logging.getLogger("cmhbench.harness.runner").warning("device %s was asked for", "cuda:3")
    logging.getLogger("cmhbench.harness.runner").info("plain progress")
    assert capsys.readouterr().err == "cmhbench: warning: device cuda:3 was asked for\nplain progress\n"


def test_a_cpu_fallback_warning_goes_through_logging(tmp_path, capsys, monkeypatch):
    from cmhbench.harness import runner

    monkeypatch.setattr(runner, "cell_device", lambda requested, deep: ("cpu", f"device {requested} is absent"))
    monkeypatch.setattr(runner, "_warned", set())
    assert main(["run", "--methods", "random", "--bits", "16", "--device", "cuda", "--out", str(tmp_path / "o"),
                 "--no-progress"]) == 0
    assert capsys.readouterr().err.count("cmhbench: warning: device cuda is absent\n") == 1
