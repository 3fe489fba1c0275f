"""Errors of rl8's Optuna sweeper, printed as one line: raised before any trial
starts, or when the sweep cannot go on."""

from __future__ import annotations

from hydra.errors import CompactHydraException

from ..errors import ConfigError

__all__ = ["SearchSpaceError", "SweepStopped", "SweeperConfigError", "one_line"]


class SweeperConfigError(ConfigError):
    """Invalid ``hydra.sweeper`` settings (raised before any trial starts).

    A :class:`~rl8.errors.ConfigError`: Hydra prints its one-line message, no traceback."""


class SearchSpaceError(SweeperConfigError):
    """Invalid search space (raised before any trial starts, naming the parameter)."""


class SweepStopped(CompactHydraException, RuntimeError):
    """A problem every later trial would hit too (a job could not open its MLflow
    run): the sweep stops, loudly, instead of failing trial after trial."""


def one_line(e: BaseException) -> str:
    """``str(e)`` on one line (Hydra's lookup errors span several)."""
    return " ".join(line.strip() for line in str(e).splitlines() if line.strip())
