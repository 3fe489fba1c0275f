"""Errors of rl8's Optuna sweeper: raised before any trial starts, printed as one line."""

from __future__ import annotations

from ..errors import ConfigError

__all__ = ["SearchSpaceError", "SweeperConfigError", "one_line"]


class SweeperConfigError(ConfigError):
    """Invalid ``hydra.sweeper`` settings (raised before any trial starts).

    A :class:`~rl8.errors.ConfigError`: Hydra prints its one-line message, no traceback."""


class SearchSpaceError(SweeperConfigError):
    """Invalid search space (raised before any trial starts, naming the parameter)."""


def one_line(e: BaseException) -> str:
    """``str(e)`` on one line (Hydra's lookup errors span several)."""
    return " ".join(line.strip() for line in str(e).splitlines() if line.strip())
