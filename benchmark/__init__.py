"""cmhbench: a benchmark suite for unsupervised cross-modal hashing.

The installed import tree is ``cmhbench`` (this folder, ``benchmark/``), with
``cmhbench.methods`` (``methods/``) and ``cmhbench.datasets`` (``datasets/``).
"""

__version__ = "0.1.0"
