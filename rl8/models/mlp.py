"""The default feedforward model: separate policy and value MLPs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..distributions import Categorical, Distribution, default_distribution_cls
from ..specs import Spec
from ._layers import flat_obs, mlp, widths
from .base import Model

__all__ = ["MLPModel"]


class MLPModel(Model):
    """Separate policy and value MLPs over the flattened observation.

    Args:
        observation_spec: The environment's observation spec.
        action_spec: The environment's action spec.
        hiddens: Hidden layer widths of each MLP. Default ``(64, 64)``.
        activation: ``"tanh"`` (default), ``"relu"``, ``"elu"``, ``"gelu"``
            or ``"silu"``.
        init_log_std: Initial log standard deviation of continuous actions
            (a state-independent parameter). Default ``-0.5``.
        distribution_cls: Distribution the features are for (decides their
            number). Default: the one for the action spec.
    """

    def __init__(
        self,
        observation_spec: Spec,
        action_spec: Spec,
        /,
        *,
        hiddens: Sequence[int] = (64, 64),
        activation: str = "tanh",
        init_log_std: float = -0.5,
        distribution_cls: type[Distribution] | None = None,
    ) -> None:
        super().__init__(observation_spec, action_spec)
        dist_cls = distribution_cls or default_distribution_cls(action_spec)
        n_features = dist_cls.num_features(action_spec)
        self.discrete = issubclass(dist_cls, Categorical)
        n_policy_out = n_features if self.discrete else n_features // 2
        n_in = observation_spec.numel
        hid = widths("hiddens", hiddens)
        self.policy_net = mlp(n_in, hid, activation, n_policy_out, out_gain=0.01)
        self.value_net = mlp(n_in, hid, activation, 1, out_gain=1.0)
        self.log_std = (
            None
            if self.discrete
            else nn.Parameter(torch.full((n_policy_out,), float(init_log_std)))
        )

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.policy_net(flat_obs(obs, 1))
        if self.log_std is None:
            return out
        return torch.cat([out, self.log_std.expand_as(out)], dim=-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value_net(flat_obs(obs, 1)).squeeze(-1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.policy(obs), self.value(obs)
