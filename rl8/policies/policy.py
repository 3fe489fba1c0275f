"""Policies: a model joined with the distribution built from its features."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast, overload

import torch

from ..distributions import Distribution, default_distribution_cls
from ..models import LSTMModel, MLPModel, Model, RecurrentModel, State
from ..specs import Spec

__all__ = ["Policy", "RecurrentPolicy"]


class Policy:
    """A model and its action distribution.

    The model is feedforward (:class:`~rl8.models.Model`: observations
    ``[B, ...]`` to features and values) or recurrent
    (:class:`~rl8.models.RecurrentModel`: sequences ``[B, T, ...]`` and a
    state); with a recurrent model, pass its state to :meth:`sample` and
    :meth:`evaluate`. :class:`RecurrentPolicy` is this class with an LSTM by
    default.

    Args:
        observation_spec: The environment's observation spec.
        action_spec: The environment's action spec.
        model_cls: Model factory; default :attr:`default_model_cls`.
        model_config: Keyword arguments for ``model_cls``.
        distribution_cls: Action distribution; default from the action spec.
        device: Device of the model's parameters.
    """

    #: The model class used when ``model_cls`` is not given.
    default_model_cls: type = MLPModel
    model: Model | RecurrentModel

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
        model_cls = model_cls or self.default_model_cls
        #: The model's keyword arguments (as given; :meth:`save` stores them).
        self.model_config: dict[str, Any] = dict(model_config or {})
        config = dict(self.model_config)
        if isinstance(model_cls, type) and issubclass(model_cls, MLPModel | LSTMModel):
            config.setdefault("distribution_cls", self.distribution_cls)
        self.model = model_cls(observation_spec, action_spec, **config).to(device)

    def save(self, path: str | os.PathLike[str], /) -> Path:
        """Write the policy to ``path`` (weights, model and distribution
        classes, specs), in plain types: :meth:`load` reads it back with
        ``torch.load(weights_only=True)``, no pickle (rl8 1.0.0 pickled the
        whole object). For a runtime without rl8, export it
        (``python -m rl8.export``, :mod:`rl8.export`)."""
        from .files import save

        return save(self, path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        /,
        *,
        device: str | torch.device = "cpu",
        trusted: bool = False,
    ) -> Policy:
        """The policy :meth:`save` wrote. A file naming a model or
        distribution class outside rl8 loads only with ``trusted=True``
        (importing its module runs code).

        Raises:
            ValueError: Not a policy file.
            PermissionError: A class outside rl8 without ``trusted``.
        """
        from .files import load

        policy: Policy = load(path, device=device, trusted=trusted)
        return policy

    def dist(self, features: torch.Tensor) -> Distribution:
        """The action distribution for ``features`` ``[B, F]``."""
        return self.distribution_cls(features, self.action_spec)

    def _act(
        self, features: torch.Tensor, deterministic: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dist = self.dist(features)
        actions = dist.deterministic_sample() if deterministic else dist.sample()
        return actions, dist.logp(actions)

    @overload
    def sample(
        self, obs: torch.Tensor, state: None = None, *, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]: ...
    @overload
    def sample(
        self, obs: torch.Tensor, state: State, *, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, State]: ...
    @torch.no_grad()
    def sample(
        self, obs: torch.Tensor, state: State | None = None, *, deterministic: bool = False
    ) -> tuple[Any, ...]:
        """Actions and their log-probabilities ``[B]`` for observations ``obs``
        ``[B, ...]``. With a recurrent model's ``state``, one step: also the
        values ``[B]`` and the next state."""
        if state is None:
            return self._act(cast(Model, self.model).policy(obs), deterministic)
        features, values, state = self.model(obs.unsqueeze(1), state)
        return (*self._act(features[:, 0], deterministic), values[:, 0], state)

    def evaluate(
        self, obs: torch.Tensor, state: State | None = None
    ) -> tuple[Distribution, torch.Tensor]:
        """The action distribution and values ``[B]`` of observations ``obs``
        ``[B, ...]`` (with gradients, for the update). With a recurrent model's
        ``state``, of sequences ``obs`` ``[B, L, ...]`` replayed from it, both
        flattened to ``B * L`` transitions."""
        if state is None:
            features, values = self.model(obs)
            return self.dist(features), values
        features, values, _ = self.model(obs, state)
        return self.dist(features.flatten(0, 1)), values.flatten(0, 1)


class RecurrentPolicy(Policy):
    """A :class:`Policy` with a recurrent model, :class:`~rl8.models.LSTMModel`
    by default."""

    default_model_cls = LSTMModel
    model: RecurrentModel
