"""How cmhbench's messages reach a terminal: one handler on the ``cmhbench`` logger.

Library modules log through ``logging.getLogger(__name__)`` and never print; the
``cmhbench`` command installs this handler so that a warning reads
``cmhbench: warning: ...`` on standard error, as the CLI's other messages do.  A program
that imports cmhbench keeps control of its own logging configuration.
"""

from __future__ import annotations

import logging
import sys

LOGGER = "cmhbench"


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"cmhbench: {record.levelname.lower()}: {message}"
        return message


class _StderrHandler(logging.StreamHandler):
    """Writes to the *current* ``sys.stderr`` (which tests and notebooks replace)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(_Formatter())

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # the base class assigns it; the property ignores it
        pass


def configure_cli_logging(level: int = logging.INFO) -> None:
    """Install the command's handler once (idempotent: ``main`` may run many times in one process)."""
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler())
    logger.setLevel(level)
    logger.propagate = False  # the command's own handler prints it once
