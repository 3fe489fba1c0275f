"""``hydra/sweeper=optuna``: registers the configs and exposes the Sweeper to Hydra.

Hydra only instantiates plugin classes defined inside the ``hydra_plugins``
package, hence this thin subclass of :class:`rl8.optuna_sweeper.sweeper.OptunaSweeper`.
"""

from rl8.optuna_sweeper import config as _config
from rl8.optuna_sweeper import sweeper as _sweeper

_config.register_configs()


class OptunaSweeper(_sweeper.OptunaSweeper):
    """rl8's Optuna sweeper (see docs/optuna.md)."""
