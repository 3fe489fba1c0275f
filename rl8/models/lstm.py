"""The default recurrent model: MLP encoder, LSTM, policy and value heads."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..distributions import Categorical, Distribution, default_distribution_cls
from ..specs import Spec
from ._layers import activation as make_activation
from ._layers import flat_obs, linear, widths
from .base import RecurrentModel, State

__all__ = ["LSTMModel"]


class LSTMModel(RecurrentModel):
    """Observation encoder -> LSTM -> linear policy and value heads.

    Args:
        observation_spec: The environment's observation spec.
        action_spec: The environment's action spec.
        hidden_size: LSTM hidden units. Default ``64``.
        num_layers: Stacked LSTM layers. Default ``1``.
        encoder_hiddens: Widths of the MLP before the LSTM. Default ``(64,)``.
        activation: Encoder activation. Default ``"tanh"``.
        init_log_std: Initial log std of continuous actions. Default ``-0.5``.
        distribution_cls: Distribution the features are for.
    """

    def __init__(
        self,
        observation_spec: Spec,
        action_spec: Spec,
        /,
        *,
        hidden_size: int = 64,
        num_layers: int = 1,
        encoder_hiddens: Sequence[int] = (64,),
        activation: str = "tanh",
        init_log_std: float = -0.5,
        distribution_cls: type[Distribution] | None = None,
    ) -> None:
        super().__init__(observation_spec, action_spec)
        dist_cls = distribution_cls or default_distribution_cls(action_spec)
        n_features = dist_cls.num_features(action_spec)
        self.discrete = issubclass(dist_cls, Categorical)
        n_policy_out = n_features if self.discrete else n_features // 2
        layers: list[nn.Module] = []
        prev = observation_spec.numel
        for h in widths("encoder_hiddens", encoder_hiddens):
            layers += [linear(prev, h), make_activation(activation)]
            prev = h
        (hidden_size, num_layers) = widths("hidden_size", [hidden_size]) + widths(
            "num_layers", [num_layers]
        )
        self.encoder = nn.Sequential(*layers)
        self.lstm = nn.LSTM(prev, hidden_size, num_layers=num_layers, batch_first=True)
        self.policy_head = linear(hidden_size, n_policy_out, gain=0.01)
        self.value_head = linear(hidden_size, 1, gain=1.0)
        self.log_std = (
            None
            if self.discrete
            else nn.Parameter(torch.full((n_policy_out,), float(init_log_std)))
        )
        self.hidden_size = hidden_size
        self.num_layers = num_layers

    def init_state(self, batch_size: int, device: torch.device | str) -> State:
        z = torch.zeros(self.num_layers, batch_size, self.hidden_size, device=device)
        return (z, z.clone())

    def forward(self, obs: torch.Tensor, state: State) -> tuple[torch.Tensor, torch.Tensor, State]:
        x = self.encoder(flat_obs(obs, 2))
        h0, c0 = state
        y, (h, c) = self.lstm(x, (h0.contiguous(), c0.contiguous()))
        out = self.policy_head(y)
        if self.log_std is not None:
            out = torch.cat([out, self.log_std.expand_as(out)], dim=-1)
        return out, self.value_head(y).squeeze(-1), (h, c)
