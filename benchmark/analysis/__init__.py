"""Results analysis: tables and statistics read from stored records, never a re-run method.

``leaderboard`` (tables, ``leaderboard.md``, ``results.csv``), ``chance`` (a random
ranking's expected score), ``stats`` (intervals, paired tests, rankings) and ``power`` (how
well ``stats`` holds on simulated per-query AP).  They read :mod:`cmhbench.store` and never
import :mod:`cmhbench.harness` or a method.
"""
