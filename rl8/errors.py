"""Exceptions of the experiment layer (``python -m rl8.train``).

:class:`ConfigError` subclasses Hydra's ``CompactHydraException``, so a bad
config raised inside the app is printed by Hydra as its one-line message
(no traceback), exactly like Hydra's own composition errors, and the
process exits with status 1. It is also a ``ValueError`` for library users.
"""

from __future__ import annotations

from typing import Any

from hydra.errors import CompactHydraException

__all__ = [
    "ConfigError",
    "DivergedError",
    "HyperparameterError",
    "TrackingError",
    "did_you_mean",
]


class ConfigError(CompactHydraException, ValueError):
    """A config value is invalid; the message names the key and what it accepts.

    Raised before the first training step (or, for metric names, at the
    first step whose stats can be checked).
    """


class TrackingError(ConfigError):
    """The job cannot open its MLflow run (a store that cannot be reached or
    written). An Optuna sweep stops on it instead of recording a failed trial:
    every later trial would fail the same way (see docs/optuna.md)."""


class HyperparameterError(ConfigError):
    """An invalid field of the library's config (a hyperparameter, or a model
    argument as ``model_config.<name>``). ``field`` names it; ``str()`` says
    what it accepts. The app re-raises it under the config key (:meth:`renamed`)."""

    def __init__(self, field: str, value: Any, accepts: str) -> None:
        self.field, self.value, self.accepts = field, value, accepts
        super().__init__(f"{field}={value!r} is invalid: {accepts}.")

    def renamed(self, key: str) -> HyperparameterError:
        """The same error for the config key ``key`` (e.g. ``trainer.gamma``)."""
        return HyperparameterError(key, self.value, self.accepts)


class DivergedError(CompactHydraException, RuntimeError):
    """Training diverged: a loss or the objective became NaN or infinite.

    Like :class:`ConfigError`, Hydra prints just its message.
    """


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known`` to ``name``, else ``""``."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
