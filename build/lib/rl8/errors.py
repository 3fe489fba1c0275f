"""Exceptions of the experiment layer (``python -m rl8.train``).

:class:`ConfigError` subclasses Hydra's ``CompactHydraException``, so a bad
config raised inside the app is printed by Hydra as its one-line message
(no traceback), exactly like Hydra's own composition errors, and the
process exits with status 1. It is also a ``ValueError`` for library users.
"""

from __future__ import annotations

from hydra.errors import CompactHydraException

__all__ = ["ConfigError", "DivergedError"]


class ConfigError(CompactHydraException, ValueError):
    """A config value is invalid; the message names the key and what it accepts.

    Raised before the first training step (or, for metric names, at the
    first step whose stats can be checked).
    """


class DivergedError(CompactHydraException, RuntimeError):
    """Training diverged: a loss or the objective became NaN or infinite.

    Like :class:`ConfigError`, Hydra prints just its message.
    """
