"""Optuna hyperparameter search for Hydra apps (``hydra/sweeper=optuna``).

* :mod:`rl8.optuna_sweeper.config` -- structured configs (``hydra/sweeper: optuna``,
  ``hydra/sweeper/sampler: tpe|random|cmaes|grid|nsgaii|qmc``,
  ``hydra/sweeper/pruner: median|percentile|hyperband|successive_halving|none``);
* :mod:`rl8.optuna_sweeper.sweeper` -- the Sweeper (study, batches, results);
* :mod:`rl8.optuna_sweeper.reporter` -- :class:`TrialReporter`, the job side
  (intermediate values, pruning).

User guide: docs/optuna.md. Importing this package is cheap (Optuna is
imported lazily).
"""

from .reporter import TrialReporter, aggregate, open_storage

__all__ = ["TrialReporter", "aggregate", "open_storage"]
