"""What counts as the user's mistake: one base class, so the CLI can tell it from a bug.

Every error that means "you asked for something wrong" (a file, option, field, method or
parameter) derives from :class:`UserError`, wherever it is raised: the harness, a method's
parameter validation, a dataset loader, or a plugin.  ``cmhbench`` catches this base alone
and prints its message as one line with exit code 2; any other exception is a bug and
keeps its traceback.  A leaf module (it imports nothing from cmhbench), so methods and
datasets can use it without seeing the harness.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user; the message names the file, option or field to fix.

    Subclasses usually also derive from the builtin they replaced (``ValueError``,
    ``KeyError``, ``OSError``), so code that caught that builtin still catches them."""
