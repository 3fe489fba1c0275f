"""Structured configs of rl8's Optuna sweeper, registered in Hydra's ConfigStore.

Importing this module registers:

* ``hydra/sweeper: optuna`` -- :class:`OptunaSweeperConf`;
* ``hydra/sweeper/sampler``: ``tpe`` (default), ``random``, ``cmaes``, ``grid``,
  ``nsgaii``, ``qmc``;
* ``hydra/sweeper/pruner``: ``median`` (default), ``percentile``, ``hyperband``,
  ``successive_halving``, ``none``.

This module stays cheap to import (no Optuna): Hydra imports it through
``hydra_plugins.rl8_optuna_sweeper`` every time any Hydra app starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

__all__ = [
    "CmaEsSamplerConfig",
    "GridSamplerConfig",
    "HyperbandPrunerConfig",
    "MedianPrunerConfig",
    "NSGAIISamplerConfig",
    "NopPrunerConfig",
    "OptunaSweeperConf",
    "PercentilePrunerConfig",
    "QMCSamplerConfig",
    "RandomSamplerConfig",
    "SamplerConfig",
    "SuccessiveHalvingPrunerConfig",
    "TPESamplerConfig",
    "register_configs",
]

SWEEPER_TARGET = "hydra_plugins.rl8_optuna_sweeper.optuna_sweeper.OptunaSweeper"


# --------------------------------------------------------------------------- samplers
@dataclass
class SamplerConfig:
    """Any ``optuna.samplers.*`` class; every other key is passed to its constructor.

    ``seed: null`` lets the sweeper take the seed from the app's ``seed`` node (0
    when absent). Either way trial N samples with ``seed + N`` (the QMC and grid
    samplers keep one seed), so workers sharing a study, and a resumed study, never replay
    each other's samples.
    """

    _target_: str = MISSING
    seed: int | None = None


@dataclass
class TPESamplerConfig(SamplerConfig):
    """https://optuna.readthedocs.io/en/stable/reference/samplers/generated/optuna.samplers.TPESampler.html"""

    _target_: str = "optuna.samplers.TPESampler"
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool = False
    group: bool = False
    constant_liar: bool = True


@dataclass
class RandomSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.RandomSampler"


@dataclass
class CmaEsSamplerConfig(SamplerConfig):
    """CMA-ES (needs the ``cmaes`` package); float and int parameters only."""

    _target_: str = "optuna.samplers.CmaEsSampler"
    x0: dict[str, Any] | None = None
    sigma0: float | None = None
    n_startup_trials: int = 1
    warn_independent_sampling: bool = True
    consider_pruned_trials: bool = False
    restart_strategy: str | None = None
    popsize: int | None = None
    inc_popsize: int = -1
    use_separable_cma: bool = False
    with_margin: bool = False
    lr_adapt: bool = False


@dataclass
class GridSamplerConfig(SamplerConfig):
    """Grid search over the search space (which must be discrete: ``choice``/``range``).

    The sweeper passes ``search_space`` itself and caps ``n_trials`` at the grid size.
    """

    _target_: str = "optuna.samplers.GridSampler"


@dataclass
class NSGAIISamplerConfig(SamplerConfig):
    """NSGA-II, the usual choice for multi-objective studies."""

    _target_: str = "optuna.samplers.NSGAIISampler"
    population_size: int = 50
    mutation_prob: float | None = None
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5


@dataclass
class QMCSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.QMCSampler"
    qmc_type: str = "sobol"
    scramble: bool = False


# --------------------------------------------------------------------------- pruners
@dataclass
class MedianPrunerConfig:
    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class PercentilePrunerConfig:
    _target_: str = "optuna.pruners.PercentilePruner"
    percentile: float = 25.0
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class HyperbandPrunerConfig:
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "auto"  # int or "auto"
    reduction_factor: int = 3
    bootstrap_count: int = 0


@dataclass
class SuccessiveHalvingPrunerConfig:
    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = "auto"  # int or "auto"
    reduction_factor: int = 4
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0


@dataclass
class NopPrunerConfig:
    """Never prune."""

    _target_: str = "optuna.pruners.NopPruner"


# --------------------------------------------------------------------------- sweeper
@dataclass
class OptunaSweeperConf:
    """``hydra/sweeper=optuna``: an Optuna study driven through Hydra's launcher.

    Same shape as the published ``hydra-optuna-sweeper`` (``sampler``, ``direction``,
    ``storage``, ``study_name``, ``n_trials``, ``n_jobs``, ``params``,
    ``custom_search_space``) plus ``pruner``, ``timeout``, ``seeds_per_trial``,
    ``aggregate``, ``mlflow`` and ``plots``. See docs/optuna.md.
    """

    _target_: str = SWEEPER_TARGET
    # the sweeper instantiates sampler/pruner itself (it needs the seed and grid space)
    _recursive_: bool = False
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "median"}])

    # optuna.samplers.* config (``_target_`` + constructor kwargs)
    sampler: Any = MISSING
    # optuna.pruners.* config, or null for no pruning
    pruner: Any = MISSING
    # "minimize" | "maximize" | a list of them (multi-objective: the app returns a list)
    direction: Any = "minimize"
    # Optuna storage: null -> journal file <hydra.sweep.dir>/optuna.journal; an RDB URL
    # (sqlite:///..., postgresql://..., mysql://...); "journal:PATH" or a plain file path
    # (journal file); "redis://..." (journal on Redis, needs the redis package)
    storage: str | None = None
    # null -> the Hydra job name (e.g. "train")
    study_name: str | None = None
    # total number of finished trials the study should hold (resumes count)
    n_trials: int = 20
    # trials kept running at once, each launched on its own through the Hydra launcher
    # as soon as a slot is free (parallel with a launcher that runs jobs elsewhere,
    # e.g. hydra/launcher=joblib)
    n_jobs: int = 1
    # seconds; no new trial starts after this much time (running ones finish)
    timeout: float | None = None
    # each trial runs this many seeds (jobs with seed=<base>+k), all in one launch
    seeds_per_trial: int = 1
    # how seed results (and intermediate reports) are combined: mean, median, min,
    # max, or qNN (NN-th percentile, e.g. q25)
    aggregate: str = "mean"
    # search space, in Hydra's override grammar: {"trainer.clip_param": "interval(0.1, 0.3)"}
    # (untyped: OmegaConf cannot merge a dict into a typed node that is None, so a typed
    # field would break 'hydra.sweeper.params={x: "interval(0, 1)"}' on the command line;
    # the sweeper checks that it is a mapping of strings)
    params: Any = None
    # "module.function" called as fn(cfg, trial) for conditional spaces (see docs)
    custom_search_space: str | None = None
    # create an MLflow parent run (when the app config has an ``mlflow`` node)
    mlflow: bool = True
    # save optimization-history / param-importance PNGs in the sweep dir
    plots: bool = True
    # seconds between the heartbeats a sweeper writes on its running trials
    heartbeat_interval: float = 10.0
    # seconds without a heartbeat after which other workers fail a running trial and
    # run a replacement; null -> 3 * heartbeat_interval
    grace_period: float | None = None


_REGISTERED = False


def _untyped(node: type) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(node))  # type: ignore[return-value]


def register_configs() -> None:
    """Register the sweeper, sampler and pruner configs (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    cs = ConfigStore.instance()
    provider = "rl8_optuna_sweeper"
    cs.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider=provider)
    # Sampler/pruner options are stored untyped (the dataclasses document their
    # fields): an experiment that tunes e.g. the median pruner's n_warmup_steps
    # then still composes with hydra/sweeper/pruner=hyperband, and the sweeper
    # drops (with a warning) the keys the chosen class does not accept.
    for name, node in {
        "tpe": TPESamplerConfig,
        "random": RandomSamplerConfig,
        "cmaes": CmaEsSamplerConfig,
        "grid": GridSamplerConfig,
        "nsgaii": NSGAIISamplerConfig,
        "qmc": QMCSamplerConfig,
    }.items():
        cs.store(group="hydra/sweeper/sampler", name=name, node=_untyped(node), provider=provider)
    for name, node in {
        "median": MedianPrunerConfig,
        "percentile": PercentilePrunerConfig,
        "hyperband": HyperbandPrunerConfig,
        "successive_halving": SuccessiveHalvingPrunerConfig,
        "none": NopPrunerConfig,
    }.items():
        cs.store(group="hydra/sweeper/pruner", name=name, node=_untyped(node), provider=provider)
    _REGISTERED = True


register_configs()
