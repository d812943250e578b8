"""What the reliability tests share: a refusal is one line, exit 2; a folder left byte-identical."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import pytest

from cmhbench.cli import main


@pytest.fixture
def refused(capsys) -> Callable[..., str]:
    """``refused(argv, *words)``: the command exits 2 with one line naming every word, no traceback."""
    def check(argv: list[str], *words: str) -> str:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("cmhbench: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
        for word in words:
            assert word in err, err
        return err
    return check


def file_tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` → its SHA-256: equal before and after means byte-identical."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def tree() -> Callable[[Path], dict[str, str]]:
    return file_tree
