"""Tools run by hand that print numbers: nothing in the harness imports them.

- ``perf`` (``python -m cmhbench.tools.perf eval|jobs|train|gpu``): the evaluation engine's
  speed, ``--jobs`` scaling, deep training throughput (``perf_train``) and the GPU check
  (``perf_gpu``); ``python -m cmhbench.perf`` is the same command.
- ``generator_auc``: how well uchm's similarity generators separate same-label pairs on the
  validation split, before any hashing.

They ask each method about itself (its kind, its set-up, its steps per epoch) through the
registry and never list method names.
"""
