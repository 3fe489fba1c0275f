"""Policies join a model and an action distribution."""

from typing import TYPE_CHECKING, Any

from .policy import Policy, RecurrentPolicy

__all__ = ["Policy", "RecurrentPolicy"]


if not TYPE_CHECKING:  # (kept from type checkers, which would accept any name)

    def __getattr__(name: str) -> Any:
        from .._removed import removed

        raise removed(__name__, name)
