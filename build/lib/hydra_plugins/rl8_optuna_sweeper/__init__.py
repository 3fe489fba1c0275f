"""Hydra plugin package of rl8's Optuna sweeper.

Hydra discovers plugins by importing every module of the ``hydra_plugins``
namespace package; :mod:`.optuna_sweeper` registers the ``hydra/sweeper: optuna``
config and defines the Sweeper class that config targets. The implementation
lives in :mod:`rl8.optuna_sweeper`.
"""
