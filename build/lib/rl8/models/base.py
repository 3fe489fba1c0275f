"""Model interfaces.

A feedforward :class:`Model` maps observations ``[B, *obs_shape]`` to
``(features [B, F], values [B])``; the policy's distribution is built from
the features. A :class:`RecurrentModel` maps ``[B, T, *obs_shape]`` and a
state to ``(features [B, T, F], values [B, T], new_state)``.

Custom models are passed as ``model_cls`` and built as
``model_cls(observation_spec, action_spec, **model_config)``.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from ..specs import Spec

__all__ = ["Model", "ModelFactory", "RecurrentModel", "RecurrentModelFactory", "State"]

#: Recurrent state: a tuple of tensors whose dim 1 is the batch (LSTM layout).
State = tuple[torch.Tensor, ...]


class Model(nn.Module):
    """Base feedforward model. Subclasses implement :meth:`forward`.

    Override :meth:`policy` / :meth:`value` when a model can compute one
    without the other (the default MLP does: collection only needs the
    policy; values are computed in one batch during the update).
    """

    def __init__(self, observation_spec: Spec, action_spec: Spec, /, **config: Any) -> None:
        super().__init__()
        self.observation_spec = observation_spec
        self.action_spec = action_spec
        self.config = config

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        """Distribution features ``[B, F]`` only."""
        return self(obs)[0]

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """Value estimates ``[B]`` only."""
        return self(obs)[1]


class RecurrentModel(nn.Module):
    """Base recurrent model. Subclasses implement :meth:`init_state` and
    :meth:`forward`."""

    def __init__(self, observation_spec: Spec, action_spec: Spec, /, **config: Any) -> None:
        super().__init__()
        self.observation_spec = observation_spec
        self.action_spec = action_spec
        self.config = config

    def init_state(self, batch_size: int, device: torch.device | str) -> State:
        """Zero state for ``batch_size`` sequences."""
        raise NotImplementedError

    def forward(self, obs: torch.Tensor, state: State) -> tuple[torch.Tensor, torch.Tensor, State]:
        raise NotImplementedError


class ModelFactory(Protocol):
    def __call__(self, observation_spec: Spec, action_spec: Spec, /, **config: Any) -> Model: ...


class RecurrentModelFactory(Protocol):
    def __call__(
        self, observation_spec: Spec, action_spec: Spec, /, **config: Any
    ) -> RecurrentModel: ...
