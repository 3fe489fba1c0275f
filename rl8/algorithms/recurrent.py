"""Recurrent PPO with truncated backpropagation through time.

The horizon is cut into sequences of ``seq_len`` steps. While collecting,
the recurrent state at the start of every sequence is stored; the update
replays each sequence from its stored state, so gradients flow through at
most ``seq_len`` steps.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch

from ..env import EnvFactory
from ..models import State
from ..policies import RecurrentPolicy
from ._base import AlgorithmBase
from ._compat import resolve_config
from .config import AlgorithmConfig, RecurrentAlgorithmConfig
from .ppo import discounted_return_scale, gae, ppo_loss

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
        n, t = self.config.num_envs, self.config.horizon
        obs_spec, act_spec = self.env.observation_spec, self.env.action_spec
        dev = self.device
        self.num_seqs = t // self.config.seq_len
        self.obs = torch.zeros((n, t + 1, *obs_spec.shape), dtype=obs_spec.dtype, device=dev)
        self.actions = torch.zeros((n, t, *act_spec.shape), dtype=act_spec.dtype, device=dev)
        self.logp = torch.zeros(n, t, device=dev)
        self.rewards = torch.zeros(n, t, device=dev)
        self.values = torch.zeros(n, t + 1, device=dev)
        self.nonterminal = torch.ones(n, t, device=dev)
        self.recurrent_state: State = self.policy.model.init_state(n, dev)
        # Stored state at the start of each sequence: per state tensor
        # [num_seqs, layers, N, H].
        self.seq_states: list[torch.Tensor] = [
            torch.zeros((self.num_seqs, *s.shape), dtype=s.dtype, device=dev)
            for s in self.recurrent_state
        ]
        self._seq_count = 0

    @torch.no_grad()
    def collect(
        self, *, env_config: Mapping[str, Any] | None = None, deterministic: bool = False
    ) -> dict[str, float]:
        """Like :meth:`Algorithm.collect`, carrying the recurrent state; the
        state is reset with the environment and every ``seqs_per_state_reset``
        sequences."""
        t0 = time.perf_counter()
        cfg = self.config
        reset = self.env_reset_due
        if reset:
            self.obs[:, 0] = self._env_reset(env_config)
            self._running_return.zero_()
            self.recurrent_state = self.policy.model.init_state(cfg.num_envs, self.device)
            self._seq_count = 0
            self._force_reset = False
        else:
            self.obs[:, 0] = self.obs[:, -1]
        env_step = self._env_step_fn()
        obs, state = self.obs[:, 0], self.recurrent_state
        for t in range(cfg.horizon):
            if t % cfg.seq_len == 0:
                if cfg.seqs_per_state_reset > 0 and self._seq_count % cfg.seqs_per_state_reset == 0:
                    state = tuple(torch.zeros_like(s) for s in state)
                for stored, s in zip(self.seq_states, state):
                    stored[t // cfg.seq_len] = s
                self._seq_count += 1
            action, logp, value, state = self.policy.sample(obs, state, deterministic=deterministic)
            self.actions[:, t] = action
            self.logp[:, t] = logp
            self.values[:, t] = value
            obs, reward, *terminated = env_step(action)
            self.obs[:, t + 1] = obs
            self.rewards[:, t] = reward.reshape(-1)
            if terminated:
                # The recurrent state carries on across episode boundaries: the
                # update replays whole sequences from their stored start state
                # without resets, so collecting must not reset either.
                self.nonterminal[:, t] = ~terminated[0].reshape(-1)
        # Bootstrap value of the last observation; its state update is
        # discarded (the next horizon processes that observation itself).
        _, last_value, _ = self.policy.model(obs.unsqueeze(1), state)
        self.values[:, -1] = last_value[:, 0]
        self.recurrent_state = state
        self._env_checked = True
        self.state.horizons += 1
        self.state.buffered = True
        stats = self._collect_stats(self.rewards)
        stats["env/steps"] = float(self.rewards.numel())
        stats["env/resets"] = float(cfg.num_envs if reset else 0)
        stats["profiling/collect_ms"] = (time.perf_counter() - t0) * 1e3
        return stats

    def step(self) -> dict[str, float]:
        """Update the policy on whole sequences (see the module docstring).

        Raises:
            RuntimeError: When called without a new :meth:`collect`.
        """
        if not self.state.buffered:
            raise RuntimeError("RecurrentAlgorithm.step() needs a new collect() first.")
        t0 = time.perf_counter()
        cfg = self.config
        self.state.env_steps += self.rewards.numel()
        with torch.no_grad():
            rewards = self.rewards
            if cfg.normalize_rewards:
                scale, self._running_return = discounted_return_scale(
                    rewards, self._running_return, cfg.gamma, self.nonterminal
                )
                rewards = rewards / scale
            advantages, returns = gae(
                rewards, self.values, cfg.gamma, cfg.gae_lambda, self.nonterminal
            )
            if cfg.normalize_advantages:
                std, mean = torch.std_mean(advantages)
                advantages = (advantages - mean) / (std + 1e-8)
        n, length = cfg.num_envs, cfg.seq_len
        num_samples = n * self.num_seqs  # sequences, ordered env-major

        def seqs(x: torch.Tensor) -> torch.Tensor:  # [N, T, ...] -> [N * S, L, ...]
            return x.reshape(num_samples, length, *x.shape[2:])

        obs, actions = seqs(self.obs[:, :-1]), seqs(self.actions)
        old_logp, old_values = seqs(self.logp), seqs(self.values[:, :-1])
        advantages, returns = seqs(advantages), seqs(returns)
        # [S, layers, N, H] -> [layers, N * S, H], matching the sequence order.
        init_states = [
            s.permute(1, 2, 0, 3).reshape(s.shape[1], num_samples, s.shape[3])
            for s in self.seq_states
        ]
        model, policy = self.policy.model, self.policy
        coeff = self.entropy_scheduler.coeff

        def loss_fn(i: torch.Tensor | slice) -> Any:
            state = tuple(s[:, i] for s in init_states)
            features, values, _ = model(obs[i], state)
            flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
            return ppo_loss(
                policy.dist(flat(features)),
                flat(values).float(),
                actions=flat(actions[i]),
                old_logp=flat(old_logp[i]),
                old_values=flat(old_values[i]),
                advantages=flat(advantages[i]),
                returns=flat(returns[i]),
                clip_param=cfg.clip_param,
                dual_clip_param=cfg.dual_clip_param,
                vf_clip_param=cfg.vf_clip_param,
                vf_coeff=cfg.vf_coeff,
                entropy_coeff=coeff,
            )

        minibatch = cfg.minibatch_size // length
        chunk = max(1, cfg.update_chunk_size // length)
        stats = self._sgd(num_samples, minibatch, chunk, loss_fn)
        return self._finish_step(stats, t0)

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["running_return"] = self._running_return.cpu()
        return sd

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self._running_return.copy_(state["running_return"])
