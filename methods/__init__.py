"""Hashing methods: the contract (:mod:`.base`), the registry, and one module per method.

Importing this package is cheap: method modules (some import torch) load on the first
registry lookup.
"""

from cmhbench.methods.base import (
    Hasher,
    InputError,
    OutputError,
    MethodInfo,
    NotFittedError,
    PairedFeatures,
    ResourceError,
)
from cmhbench.methods.registry import (
    ParameterError,
    UnknownMethodError,
    available,
    create,
    get,
    plugin_errors,
    register,
    resolve_params,
)

__all__ = [
    "Hasher",
    "InputError",
    "OutputError",
    "MethodInfo",
    "NotFittedError",
    "PairedFeatures",
    "ParameterError",
    "ResourceError",
    "UnknownMethodError",
    "available",
    "create",
    "get",
    "plugin_errors",
    "register",
    "resolve_params",
]
