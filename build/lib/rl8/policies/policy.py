"""Policies: a model joined with the distribution built from its features."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..distributions import Distribution, default_distribution_cls
from ..models import LSTMModel, MLPModel, Model, RecurrentModel, State
from ..specs import Spec

__all__ = ["Policy", "RecurrentPolicy"]


def _build_model(
    default_cls: type,
    model_cls: Any,
    observation_spec: Spec,
    action_spec: Spec,
    model_config: Mapping[str, Any] | None,
    distribution_cls: type[Distribution],
) -> Any:
    model_cls = model_cls or default_cls
    config = dict(model_config or {})
    if isinstance(model_cls, type) and issubclass(model_cls, MLPModel | LSTMModel):
        config.setdefault("distribution_cls", distribution_cls)
    return model_cls(observation_spec, action_spec, **config)


class Policy:
    """A feedforward model and its action distribution.

    Args:
        observation_spec: The environment's observation spec.
        action_spec: The environment's action spec.
        model_cls: Model factory; default :class:`~rl8.models.MLPModel`.
        model_config: Keyword arguments for ``model_cls``.
        distribution_cls: Action distribution; default from the action spec.
        device: Device of the model's parameters.
    """

    def __init__(
        self,
        observation_spec: Spec,
        action_spec: Spec,
        /,
        *,
        model_cls: Any = None,
        model_config: Mapping[str, Any] | None = None,
        distribution_cls: type[Distribution] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.observation_spec = observation_spec
        self.action_spec = action_spec
        self.distribution_cls = distribution_cls or default_distribution_cls(action_spec)
        self.model: Model = _build_model(
            MLPModel, model_cls, observation_spec, action_spec, model_config, self.distribution_cls
        ).to(device)

    def dist(self, features: torch.Tensor) -> Distribution:
        """The action distribution for ``features``."""
        return self.distribution_cls(features, self.action_spec)

    @torch.no_grad()
    def sample(
        self, obs: torch.Tensor, *, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions and their log-probabilities ``[B]`` for observations ``obs``."""
        dist = self.dist(self.model.policy(obs))
        actions = dist.deterministic_sample() if deterministic else dist.sample()
        return actions, dist.logp(actions)


class RecurrentPolicy:
    """A recurrent model and its action distribution (see :class:`Policy`)."""

    def __init__(
        self,
        observation_spec: Spec,
        action_spec: Spec,
        /,
        *,
        model_cls: Any = None,
        model_config: Mapping[str, Any] | None = None,
        distribution_cls: type[Distribution] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.observation_spec = observation_spec
        self.action_spec = action_spec
        self.distribution_cls = distribution_cls or default_distribution_cls(action_spec)
        self.model: RecurrentModel = _build_model(
            LSTMModel, model_cls, observation_spec, action_spec, model_config, self.distribution_cls
        ).to(device)

    def dist(self, features: torch.Tensor) -> Distribution:
        """The action distribution for ``features`` ``[B, F]``."""
        return self.distribution_cls(features, self.action_spec)

    @torch.no_grad()
    def sample(
        self, obs: torch.Tensor, state: State, *, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, State]:
        """One step: actions, log-probabilities ``[B]``, values ``[B]`` and the next state."""
        features, values, state = self.model(obs.unsqueeze(1), state)
        dist = self.dist(features[:, 0])
        actions = dist.deterministic_sample() if deterministic else dist.sample()
        return actions, dist.logp(actions), values[:, 0], state
