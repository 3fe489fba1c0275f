"""A sampler wrapper that seeds every trial on its own (imports Optuna: import lazily).

Workers that share a study each build their own sampler. Seeded once, they would
all draw the same samples (the same seed, the same study); seeded per worker, a
study would depend on how many workers ran it. Trial numbers are handed out by the
storage, one per trial, so seeding trial N with ``seed + N`` gives every trial of
the study its own random stream, in any worker, and a study is reproducible for a
given order of finished trials.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

__all__ = ["TrialSeededSampler"]


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """Delegates trial N to ``build(seed + N)``, built when the trial starts.

    Args:
        build: Builds the real sampler for a seed (e.g. ``TPESampler(seed=s, ...)``).
            Samplers that keep their state in the study (TPE, CMA-ES, NSGA-II,
            grid, random) lose nothing by being rebuilt per trial.
        seed: The base seed.
    """

    def __init__(self, build: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._build = build
        self._seed = int(seed)
        self._default = build(self._seed)  # checks the arguments before any trial
        self._by_trial: dict[int, optuna.samplers.BaseSampler] = {}

    @property
    def inner(self) -> optuna.samplers.BaseSampler:
        """The wrapped sampler, as built for the base seed."""
        return self._default

    def __str__(self) -> str:
        return f"{type(self._default).__name__}(seed={self._seed} + trial number)"

    def _for(self, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        return self._by_trial.get(trial.number, self._default)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        sampler = self._build(self._seed + trial.number)
        self._by_trial[trial.number] = sampler
        sampler.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._by_trial.pop(trial.number, self._default).after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._default.reseed_rng()
