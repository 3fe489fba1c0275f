"""Optuna hyperparameter search for Hydra apps (``hydra/sweeper=optuna``).

* :mod:`rl8.optuna_sweeper.config` -- structured configs (``hydra/sweeper: optuna``,
  ``hydra/sweeper/sampler: tpe|random|cmaes|grid|nsgaii|qmc``,
  ``hydra/sweeper/pruner: median|percentile|hyperband|successive_halving|none``);
* :mod:`rl8.optuna_sweeper.sweeper` -- the Sweeper: the ask-launch-tell loop;
* :mod:`rl8.optuna_sweeper.space` -- the search space (override grammar ->
  Optuna distributions, validation);
* :mod:`rl8.optuna_sweeper.settings` -- the other settings, sampler and pruner;
* :mod:`rl8.optuna_sweeper.study` -- the study in its storage, bookkeeping;
* :mod:`rl8.optuna_sweeper.jobs` -- a trial's jobs: overrides out, outcome back;
* :mod:`rl8.optuna_sweeper.results` -- ``optimization_results.yaml`` and plots;
* :mod:`rl8.optuna_sweeper.parent_run` -- the MLflow parent run;
* :mod:`rl8.optuna_sweeper.errors` -- the errors raised before any trial;
* :mod:`rl8.optuna_sweeper.reporter` -- :class:`TrialReporter`, the job side
  (intermediate values, pruning).

User guide: docs/optuna.md. Importing this package is cheap (Optuna is
imported lazily).
"""

from .reporter import TrialReporter, aggregate, open_storage

__all__ = ["TrialReporter", "aggregate", "open_storage"]
