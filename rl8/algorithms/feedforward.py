"""Feedforward PPO: collect a horizon from every sub-environment, then update."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch

from ..env import EnvFactory
from ..policies import Policy
from ._base import AlgorithmBase
from ._compat import resolve_config
from .config import AlgorithmConfig
from .ppo import discounted_return_scale, gae, ppo_loss

__all__ = ["Algorithm"]


class Algorithm(AlgorithmBase):
    """Feedforward PPO over a batched environment.

    Args:
        env_cls: Environment factory, built as
            ``env_cls(num_envs, horizon, config=env_config, device=device)``.
        config: A whole :class:`~rl8.algorithms.AlgorithmConfig` (the rl8
            1.0.0 form; copied), instead of keywords. Default ``None``.
        **hyperparameters: Any :class:`~rl8.algorithms.AlgorithmConfig` field.

    Raises:
        ValueError: An unknown or invalid hyperparameter (the field is named).
        TypeError: Both ``config`` and keywords given.
        rl8.env.EnvProtocolError: An environment of the rl8 1.0.0 form.
    """

    def __init__(
        self, env_cls: EnvFactory, /, config: AlgorithmConfig | None = None, **hyperparameters: Any
    ) -> None:
        cfg = resolve_config(AlgorithmConfig, config, hyperparameters, "Algorithm")
        super().__init__(env_cls, cfg, Policy)
        n, t = self.config.num_envs, self.config.horizon
        obs_spec, act_spec = self.env.observation_spec, self.env.action_spec
        dev = self.device
        self.obs = torch.zeros((n, t + 1, *obs_spec.shape), dtype=obs_spec.dtype, device=dev)
        self.actions = torch.zeros((n, t, *act_spec.shape), dtype=act_spec.dtype, device=dev)
        self.logp = torch.zeros(n, t, device=dev)
        self.rewards = torch.zeros(n, t, device=dev)
        self.values = torch.zeros(n, t + 1, device=dev)
        self.nonterminal = torch.ones(n, t, device=dev)

    @torch.no_grad()
    def collect(
        self, *, env_config: Mapping[str, Any] | None = None, deterministic: bool = False
    ) -> dict[str, float]:
        """Step every sub-environment ``horizon`` times with the current policy.

        The environment is reset (with ``env_config``) on the first call and
        every ``horizons_per_env_reset`` horizons; otherwise it continues from
        the last observation. ``env_config`` is ignored between resets.

        Returns:
            Collect stats: ``returns/*`` (per-sub-env sum over the horizon),
            ``rewards/*``, ``env/steps``, ``env/resets``, ``profiling/collect_ms``.
        """
        t0 = time.perf_counter()
        reset = self.env_reset_due
        if reset:
            self.obs[:, 0] = self._env_reset(env_config)
            self._running_return.zero_()
            self._force_reset = False
        else:
            self.obs[:, 0] = self.obs[:, -1]
        model, dist_cls, spec = (
            self.policy.model,
            self.policy.distribution_cls,
            self.env.action_spec,
        )
        env_step = self._env_step_fn()
        obs = self.obs[:, 0]
        for t in range(self.config.horizon):
            dist = dist_cls(model.policy(obs), spec)
            action = dist.deterministic_sample() if deterministic else dist.sample()
            self.actions[:, t] = action
            self.logp[:, t] = dist.logp(action)
            obs, reward, *terminated = env_step(action)
            self.obs[:, t + 1] = obs
            self.rewards[:, t] = reward.reshape(-1)
            if terminated:
                self.nonterminal[:, t] = ~terminated[0].reshape(-1)
        self._compute_values()
        self._env_checked = True
        self.state.horizons += 1
        self.state.buffered = True
        stats = self._collect_stats(self.rewards)
        stats["env/steps"] = float(self.rewards.numel())
        stats["env/resets"] = float(self.config.num_envs if reset else 0)
        stats["profiling/collect_ms"] = (time.perf_counter() - t0) * 1e3
        return stats

    def _compute_values(self) -> None:
        """Values of all ``T + 1`` observations in a few large batches (same
        numbers as one call per step, far fewer, larger matmuls)."""
        flat_obs = self.obs.view(-1, *self.env.observation_spec.shape)
        flat_values = self.values.view(-1)
        chunk = self.config.update_chunk_size
        for lo in range(0, flat_obs.shape[0], chunk):
            flat_values[lo : lo + chunk] = self.policy.model.value(flat_obs[lo : lo + chunk])

    def step(self) -> dict[str, float]:
        """Update the policy with the collected buffer (GAE, then
        ``num_sgd_iters`` passes of minibatch SGD on the PPO loss).

        Raises:
            RuntimeError: When called without a new :meth:`collect`.
        """
        if not self.state.buffered:
            raise RuntimeError("Algorithm.step() needs a new collect() first.")
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
        num_samples = self.rewards.numel()
        obs = self.obs[:, :-1].reshape(num_samples, *self.env.observation_spec.shape)
        actions = self.actions.reshape(num_samples, *self.env.action_spec.shape)
        old_logp, old_values = self.logp.reshape(-1), self.values[:, :-1].reshape(-1)
        advantages, returns = advantages.reshape(-1), returns.reshape(-1)
        model, policy = self.policy.model, self.policy
        coeff = self.entropy_scheduler.coeff

        def loss_fn(i: torch.Tensor | slice) -> Any:
            features, values = model(obs[i])
            return ppo_loss(
                policy.dist(features),
                values.float(),
                actions=actions[i],
                old_logp=old_logp[i],
                old_values=old_values[i],
                advantages=advantages[i],
                returns=returns[i],
                clip_param=cfg.clip_param,
                dual_clip_param=cfg.dual_clip_param,
                vf_clip_param=cfg.vf_clip_param,
                vf_coeff=cfg.vf_coeff,
                entropy_coeff=coeff,
            )

        minibatch = cfg.minibatch_size
        stats = self._sgd(num_samples, minibatch, cfg.update_chunk_size, loss_fn)
        return self._finish_step(stats, t0)

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["running_return"] = self._running_return.cpu()
        return sd

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self._running_return.copy_(state["running_return"])
