"""Policies join a model and an action distribution."""

from .policy import Policy, RecurrentPolicy

__all__ = ["Policy", "RecurrentPolicy"]
