"""``python -m cmhbench.power``: the name docs/statistics.md's tables were printed by before the
module moved to :mod:`cmhbench.analysis.power`; the same command, kept so that the notes that
cite it still run."""

from cmhbench.analysis.power import main

if __name__ == "__main__":
    raise SystemExit(main())
