"""The harness: everything that runs cells or changes a results folder.

From options to stored records: ``config`` (run settings), ``grid`` (cells), ``tune``
(Optuna studies of validation cells), ``executor`` with ``pool``, ``gpu_slots``,
``progress`` and ``estimate`` (many cells), ``runner`` with ``provenance`` (one cell), and
the two commands that change a folder after a run: ``rescoring`` (``evaluate OUT``) and
``pruning`` (``prune OUT``).  It writes through :mod:`cmhbench.store`; :mod:`cmhbench.analysis`
and :mod:`cmhbench.report` read what it wrote and never import it.
"""
