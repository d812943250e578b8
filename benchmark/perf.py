"""``python -m cmhbench.perf``: the name README and scripts used before the perf scripts moved to
:mod:`cmhbench.tools.perf`; the same command, kept so that existing notes and scripts still run."""

from cmhbench.tools.perf import main

if __name__ == "__main__":
    raise SystemExit(main())
