"""Conditions on training stats, used to stop training.

Each condition is a callable ``condition(stats) -> bool`` over the flat stats
dict returned by ``Trainer.step`` (keys such as ``"returns/mean"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

__all__ = [
    "And",
    "Condition",
    "HitsLowerBound",
    "HitsUpperBound",
    "Plateaus",
    "StopsDecreasing",
    "StopsIncreasing",
]

Stats = Mapping[str, float]


class Condition(Protocol):
    """Returns ``True`` when training should stop."""

    def __call__(self, stats: Stats, /) -> bool: ...


def _get(stats: Stats, key: str, owner: object) -> float:
    try:
        return float(stats[key])
    except KeyError:
        raise KeyError(
            f"{type(owner).__name__} watches '{key}', which is not in the stats "
            f"(available: {', '.join(sorted(stats))})."
        ) from None


class And:
    """True when every condition is true."""

    def __init__(self, conditions: Sequence[Condition], /) -> None:
        self.conditions = list(conditions)

    def __call__(self, stats: Stats, /) -> bool:
        return all([c(stats) for c in self.conditions])


class HitsLowerBound:
    """True once ``stats[key] <= lower_bound``."""

    def __init__(self, key: str, lower_bound: float, /) -> None:
        self.key = key
        self.lower_bound = float(lower_bound)

    def __call__(self, stats: Stats, /) -> bool:
        return _get(stats, self.key, self) <= self.lower_bound


class HitsUpperBound:
    """True once ``stats[key] >= upper_bound``."""

    def __init__(self, key: str, upper_bound: float, /) -> None:
        self.key = key
        self.upper_bound = float(upper_bound)

    def __call__(self, stats: Stats, /) -> bool:
        return _get(stats, self.key, self) >= self.upper_bound


class Plateaus:
    """True when ``stats[key]`` changed by at most ``rtol`` (relative) for
    ``patience`` consecutive calls. Defaults: ``patience=5``, ``rtol=1e-3``."""

    def __init__(self, key: str, /, *, patience: int = 5, rtol: float = 1e-3) -> None:
        self.key = key
        self.patience = patience
        self.rtol = rtol
        self.losses = 0
        #: The previous value; ``None`` before the first call (nothing to compare with).
        self.old_value: float | None = None

    def __call__(self, stats: Stats, /) -> bool:
        new_value = _get(stats, self.key, self)
        old = self.old_value
        if old is not None and abs(new_value - old) <= self.rtol * abs(old):
            self.losses += 1
        else:
            self.losses = 0
        self.old_value = new_value
        return self.losses >= self.patience


class StopsDecreasing:
    """True when ``stats[key]`` has not reached a new minimum for ``patience``
    consecutive calls (default 5)."""

    def __init__(self, key: str, /, *, patience: int = 5) -> None:
        self.key = key
        self.patience = patience
        self.losses = 0
        self.min_ = float("inf")

    def __call__(self, stats: Stats, /) -> bool:
        new_value = _get(stats, self.key, self)
        if new_value >= self.min_:
            self.losses += 1
        else:
            self.losses = 0
            self.min_ = new_value
        return self.losses >= self.patience


class StopsIncreasing:
    """True when ``stats[key]`` has not reached a new maximum for ``patience``
    consecutive calls (default 5)."""

    def __init__(self, key: str, /, *, patience: int = 5) -> None:
        self.key = key
        self.patience = patience
        self.losses = 0
        self.max_ = float("-inf")

    def __call__(self, stats: Stats, /) -> bool:
        new_value = _get(stats, self.key, self)
        if new_value <= self.max_:
            self.losses += 1
        else:
            self.losses = 0
            self.max_ = new_value
        return self.losses >= self.patience


if not TYPE_CHECKING:  # (kept from type checkers, which would accept any name)

    def __getattr__(name: str) -> Any:
        from ._removed import removed

        raise removed(__name__, name)
