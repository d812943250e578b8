"""Hyper-parameter domains: what values a method accepts, and which of them are worth searching.

One declaration serves two jobs.  The registry refuses a value outside its domain
(``n_iter=-5``, ``reg=nan``) before any cell runs, and ``cmhbench tune`` searches the
``search`` range inside it.  A method declares a mapping from parameter name to domain as
the class attribute ``param_domains``; the domain also carries the default, so each
hyper-parameter is written once and the base class builds the constructor::

    class CVH(Hasher):
        param_domains = {"reg": Real(0.0, search=(1e-6, 1e-1), log=True, default=1e-4)}

    CVH(reg=1e-3, seed=1)      # keyword-only; unknown names are refused

(A method may instead write its own constructor with the defaults, as before; then its
domains carry none.)  A parameter without a declared domain is checked only against its
default's type; a domain without ``search`` is validated but never tuned, and a method with
no searchable parameter cannot be tuned at all.  Plugins declare theirs the same way.

Searching relies on an Optuna-style ``trial`` (``suggest_float``, ``suggest_int``,
``suggest_categorical``); this module does not import Optuna.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any, Mapping


class _NoDefault:
    """The marker of a domain that declares no default (its method's constructor holds it)."""

    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()


class Domain(ABC):
    """The valid values of one hyper-parameter, and optionally a range worth searching."""

    optional: bool = False  # None is accepted (e.g. "estimate it from the data")
    default: Any = NO_DEFAULT  # the method's default value, when the domain declares it

    @property
    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT

    def with_default(self, value: Any) -> "Domain":
        """This domain with ``value`` as the parameter's default (for the shared domains below:
        ``"epochs": EPOCHS.with_default(30)``)."""
        return replace(self, default=value)

    def contains(self, value: Any) -> bool:
        if value is None:
            return self.optional
        return self._contains(value)

    @abstractmethod
    def _contains(self, value: Any) -> bool: ...

    @abstractmethod
    def describe(self) -> str:
        """The domain in words, for error messages ('a real number in (0, 1)')."""

    @property
    @abstractmethod
    def searchable(self) -> bool: ...

    def in_search(self, value: Any) -> bool:
        """Whether ``value`` is a point of the search range (a study can start from it)."""
        return False

    @abstractmethod
    def suggest(self, trial: Any, name: str) -> Any:
        """Draw a value from the search range through an Optuna trial."""

    @abstractmethod
    def search_text(self) -> str:
        """The search range in words (for docs and listings)."""

    def _or_none(self, text: str) -> str:
        return f"{text}, or none" if self.optional else text


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if math.isinf(high) and not math.isinf(low):
        return f"{'>' if low_open else '≥'} {low:g}"
    if math.isinf(low) and math.isinf(high):
        return ""
    if math.isinf(low):
        return f"{'<' if high_open else '≤'} {high:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


class _NumericRange:
    """What Real and Int share: an optional ``search`` interval (log scale with ``log``) that
    must lie inside the domain."""

    search: tuple[float, float] | None
    log: bool

    def __post_init__(self) -> None:
        _check_search(self, self.search, self.log)

    @property
    def searchable(self) -> bool:
        return self.search is not None

    def search_text(self) -> str:
        return _range_text(self.search, self.log)

    def in_search(self, value: Any) -> bool:
        return (self.search is not None and _number(value)
                and self.search[0] <= value <= self.search[1])  # type: ignore[index]


@dataclass(frozen=True)
class Real(_NumericRange, Domain):
    """A finite real number between ``low`` and ``high`` (ends included unless ``*_open``)."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    search: tuple[float, float] | None = None
    log: bool = False
    optional: bool = False
    default: Any = NO_DEFAULT

    def _contains(self, value: Any) -> bool:
        if not _number(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def describe(self) -> str:
        return self._or_none(f"a real number {_interval(self.low, self.high, self.low_open, self.high_open)}".rstrip())

    def suggest(self, trial: Any, name: str) -> float:
        low, high = self.search  # type: ignore[misc]
        return float(trial.suggest_float(name, low, high, log=self.log))


#: The largest integer hyper-parameter any domain accepts unless it names its own bound: an
#: integer domain always has an upper end, since ``n_iter=99999999999999999999`` is a typo that
#: would otherwise run for ever.  No iteration count, width or sample size of a hashing
#: method comes near it.
INT_CEILING = 1_000_000


@dataclass(frozen=True)
class Int(_NumericRange, Domain):
    """An integer between ``low`` and ``high`` (both included; ``high`` is never unbounded)."""

    low: float = -math.inf
    high: float = INT_CEILING
    search: tuple[int, int] | None = None
    log: bool = False
    optional: bool = False
    default: Any = NO_DEFAULT

    def __post_init__(self) -> None:
        if not math.isfinite(self.high):
            raise TypeError("an integer domain needs a finite upper bound (leave high out for INT_CEILING)")
        super().__post_init__()

    def _contains(self, value: Any) -> bool:
        return (isinstance(value, int) and not isinstance(value, bool)) and self.low <= value <= self.high

    def describe(self) -> str:
        low = f"in [{int(self.low)}, " if math.isfinite(self.low) else "≤ "
        return self._or_none(f"an integer {low}{int(self.high)}" + ("]" if math.isfinite(self.low) else ""))

    def suggest(self, trial: Any, name: str) -> int:
        low, high = self.search  # type: ignore[misc]
        return int(trial.suggest_int(name, int(low), int(high), log=self.log))


@dataclass(frozen=True)
class Bool(Domain):
    """true or false; ``search=True`` tries both."""

    search: bool = False
    optional: bool = False
    default: Any = NO_DEFAULT

    def _contains(self, value: Any) -> bool:
        return isinstance(value, bool)

    def describe(self) -> str:
        return self._or_none("true or false")

    @property
    def searchable(self) -> bool:
        return self.search

    def suggest(self, trial: Any, name: str) -> bool:
        return bool(trial.suggest_categorical(name, [False, True]))

    def in_search(self, value: Any) -> bool:
        return self.search and isinstance(value, bool)

    def search_text(self) -> str:
        return "false, true" if self.search else "—"


@dataclass(frozen=True)
class Choice(Domain):
    """One of ``options``; ``search`` lists the options worth trying (all of them with ``True``)."""

    options: tuple[Any, ...] = ()
    search: tuple[Any, ...] | bool = False
    optional: bool = False
    default: Any = NO_DEFAULT

    def __post_init__(self) -> None:
        if not self.options:
            raise ValueError("Choice needs at least one option")
        if isinstance(self.search, tuple) and not set(self.search) <= set(self.options):
            raise ValueError(f"Choice search {self.search} is not a subset of its options {self.options}")

    def _contains(self, value: Any) -> bool:
        return any(value == o and type(value) is type(o) for o in self.options)

    def describe(self) -> str:
        return self._or_none("one of " + ", ".join(repr(o) for o in self.options))

    @property
    def searchable(self) -> bool:
        return bool(self.search)

    def _searched(self) -> list[Any]:
        return list(self.options if self.search is True else self.search or ())

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, self._searched())

    def in_search(self, value: Any) -> bool:
        return value in self._searched()

    def search_text(self) -> str:
        return ", ".join(repr(o) for o in self._searched()) or "—"


def _check_search(domain: _NumericRange, search: tuple[float, float] | None, log: bool) -> None:
    """A search range lies inside its domain, low < high, and is positive on a log scale."""
    if search is None:
        return
    low, high = search
    if not low < high:
        raise ValueError(f"search range {search} must have low < high")
    if not (domain._contains(low) and domain._contains(high)):
        raise ValueError(f"search range {search} is not inside the domain {domain.describe()}")
    if log and low <= 0:
        raise ValueError(f"a log-scale search range must be positive, got {search}")


def _range_text(search: tuple[float, float] | None, log: bool) -> str:
    if search is None:
        return "—"
    return f"{search[0]:g} … {search[1]:g}" + (" (log)" if log else "")


#: Domains that many methods share (the deep core's optimiser and network settings).
POSITIVE = Real(0.0, low_open=True)
NON_NEGATIVE = Real(0.0)
UNIT = Real(0.0, 1.0)
EPOCHS = Int(1, 10_000)
BATCH = Int(2, 2**20)
HIDDEN = Int(1, 2**16)
ITERATIONS = Int(1, 100_000)  # rounds of an iterative solver (ITQ, alternating updates, FISTA)
MOMENTUM = Real(0.0, 1.0, high_open=True)
WEIGHT_DECAY = Real(0.0)


def learning_rate(low: float = 1e-4, high: float = 1e-1) -> Real:
    """A positive learning rate, searched on a log scale."""
    return Real(0.0, low_open=True, search=(low, high), log=True)


def weight(low: float = 0.01, high: float = 10.0) -> Real:
    """A non-negative loss weight, searched on a log scale."""
    return Real(0.0, search=(low, high), log=True)


def search_space(domains: Mapping[str, Domain]) -> dict[str, Domain]:
    """The declared domains that have a search range."""
    return {name: d for name, d in domains.items() if d.searchable}


def suggest(domains: Mapping[str, Domain], trial: Any) -> dict[str, Any]:
    """One value per searchable parameter, drawn through an Optuna trial (in declaration order)."""
    return {name: d.suggest(trial, name) for name, d in search_space(domains).items()}
