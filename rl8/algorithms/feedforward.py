"""Feedforward PPO: collect a horizon from every sub-environment, then update."""

from __future__ import annotations

from typing import Any

from ..env import EnvFactory
from ..policies import Policy
from ._base import AlgorithmBase
from ._compat import resolve_config
from .config import AlgorithmConfig

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
        self.buffer = self._new_buffer()

    def _rollout(self, *, reset: bool, deterministic: bool) -> None:
        buffer, env_step = self.buffer, self._env_step_fn()
        obs = buffer.obs[:, 0]
        for t in range(self.config.horizon):
            action, logp = self.policy.sample(obs, deterministic=deterministic)
            step = env_step(action)
            buffer.add(t, action, logp, step)
            obs = step.obs
        self._compute_values()

    def _compute_values(self) -> None:
        """Values of all ``T + 1`` observations in a few large batches (same
        numbers as one call per step, far fewer, larger matmuls)."""
        flat_obs = self.buffer.obs.view(-1, *self.env.observation_spec.shape)
        flat_values = self.buffer.values.view(-1)
        chunk = self.config.update_chunk_size
        for lo in range(0, flat_obs.shape[0], chunk):
            flat_values[lo : lo + chunk] = self.policy.model.value(flat_obs[lo : lo + chunk])
        final_obs, final_values = self.buffer.final_obs, self.buffer.final_values
        if final_obs is not None and final_values is not None:
            # Values of the observations truncated episodes ended on (they
            # bootstrap those episodes): only where episodes were cut, at the
            # cost of one host sync per collect.
            where = self.buffer.truncated.nonzero(as_tuple=True)
            for lo in range(0, where[0].numel(), chunk):
                at = (where[0][lo : lo + chunk], where[1][lo : lo + chunk])
                final_values[at] = self.policy.model.value(final_obs[at])
