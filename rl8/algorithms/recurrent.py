"""Recurrent PPO with truncated backpropagation through time.

The horizon is cut into sequences of ``seq_len`` steps. While collecting,
the recurrent state at the start of every sequence is stored; the update
replays each sequence from its stored state, so gradients flow through at
most ``seq_len`` steps.
"""

from __future__ import annotations

from typing import Any

import torch

from ..env import EnvFactory
from ..models import State
from ..policies import RecurrentPolicy
from ._base import AlgorithmBase
from ._compat import resolve_config
from .config import AlgorithmConfig, RecurrentAlgorithmConfig

__all__ = ["RecurrentAlgorithm"]


class RecurrentAlgorithm(AlgorithmBase):
    """Recurrent PPO over a batched environment.

    Args:
        env_cls: Environment factory (see :class:`~rl8.algorithms.Algorithm`).
        config: A whole :class:`~rl8.algorithms.RecurrentAlgorithmConfig` (the
            rl8 1.0.0 form; copied; a feedforward ``AlgorithmConfig`` gets the
            recurrent defaults), instead of keywords. Default ``None``.
        **hyperparameters: Any :class:`~rl8.algorithms.RecurrentAlgorithmConfig`
            field (the feedforward ones plus ``seq_len`` and ``seqs_per_state_reset``).

    Raises:
        ValueError: An unknown or invalid hyperparameter (the field is named).
        TypeError: Both ``config`` and keywords given.
        rl8.env.EnvProtocolError: An environment of the rl8 1.0.0 form.
    """

    config: RecurrentAlgorithmConfig

    def __init__(
        self,
        env_cls: EnvFactory,
        /,
        config: AlgorithmConfig | None = None,
        **hyperparameters: Any,
    ) -> None:
        cfg = resolve_config(
            RecurrentAlgorithmConfig, config, hyperparameters, "RecurrentAlgorithm"
        )
        super().__init__(env_cls, cfg, RecurrentPolicy)
        self.recurrent_state: State = self.policy.model.init_state(cfg.num_envs, self.device)
        self.buffer = self._new_buffer(seq_len=cfg.seq_len, state=self.recurrent_state)
        self._seq_count = 0

    def _rollout(self, *, reset: bool, deterministic: bool) -> None:
        """One horizon, carrying the recurrent state; the state is reset with
        the environment and every ``seqs_per_state_reset`` sequences."""
        cfg, buffer, env_step = self.config, self.buffer, self._env_step_fn()
        if reset:
            self.recurrent_state = self.policy.model.init_state(cfg.num_envs, self.device)
            self._seq_count = 0
        obs, state = buffer.obs[:, 0], self.recurrent_state
        for t in range(cfg.horizon):
            if t % cfg.seq_len == 0:
                if cfg.seqs_per_state_reset > 0 and self._seq_count % cfg.seqs_per_state_reset == 0:
                    state = tuple(torch.zeros_like(s) for s in state)
                buffer.add_state(t, state)
                self._seq_count += 1
            action, logp, value, state = self.policy.sample(obs, state, deterministic=deterministic)
            # The recurrent state carries on across episode boundaries: the
            # update replays whole sequences from their stored start state
            # without resets, so collecting must not reset either.
            step = env_step(action)
            buffer.add(t, action, logp, step, value=value)
            obs = step.obs
            if step.final_obs is not None and buffer.final_values is not None:
                # The value of the observation an episode ended on, in the state
                # after this step: it bootstraps a truncated episode.
                _, final_value, _ = self.policy.model(step.final_obs.unsqueeze(1), state)
                buffer.final_values[:, t] = final_value[:, 0]
        # Bootstrap value of the last observation; its state update is
        # discarded (the next horizon processes that observation itself).
        _, last_value, _ = self.policy.model(obs.unsqueeze(1), state)
        buffer.values[:, -1] = last_value[:, 0]
        self.recurrent_state = state
