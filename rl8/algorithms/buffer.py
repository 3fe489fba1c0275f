"""The rollout buffer: one horizon of transitions and what PPO derives from it.

:class:`RolloutBuffer` owns the storage both algorithms collect into and the
running discounted return used for reward scaling, and computes the
advantages and returns (reward scaling, GAE, advantage normalization, from
:mod:`.ppo`) into :class:`RolloutSamples`, which the update draws
minibatches from. The algorithms own collection and the update only.

A sample is a transition (feedforward) or a whole sequence of ``seq_len``
transitions together with the recurrent state at its start (recurrent PPO,
truncated backpropagation through time).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..env import Step
from ..models import State
from ..specs import Spec
from . import ppo

__all__ = ["Minibatch", "RolloutBuffer", "RolloutSamples", "Samples"]


@dataclass
class Samples:
    """PPO samples: observations, recurrent start states, actions, their
    log-probabilities and values when collected, advantages and returns."""

    obs: torch.Tensor
    states: State | None
    actions: torch.Tensor
    logp: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


@dataclass
class Minibatch(Samples):
    """The samples of one minibatch (or of a chunk of one).

    ``obs`` keeps the sample layout the model takes: ``[B, *obs_shape]``, or
    ``[B, seq_len, *obs_shape]`` sequences replayed from ``states``
    (``[layers, B, H]`` each; ``None`` for feedforward). The other tensors are
    flattened to transitions, ``[B * seq_len]`` (``actions`` keeps its trailing
    action shape).
    """


@dataclass
class RolloutSamples(Samples):
    """Every sample of a buffer with its advantage and return, for one update.

    Transitions ``[N * T, ...]``, or sequences ``[N * S, seq_len, ...]`` with
    their start ``states`` (``[layers, N * S, H]`` each; ``None`` for
    feedforward), both env-major.
    """

    def __len__(self) -> int:
        return self.obs.shape[0]

    def minibatch(self, index: torch.Tensor | slice) -> Minibatch:
        """The samples ``index`` selects, sequences flattened to transitions
        (but for ``obs``)."""
        recurrent = self.states is not None

        def pick(x: torch.Tensor) -> torch.Tensor:  # sequences [B, L, ...] -> [B * L, ...]
            return x[index].flatten(0, 1) if recurrent else x[index]

        return Minibatch(
            obs=self.obs[index],
            states=tuple(s[:, index] for s in self.states) if self.states is not None else None,
            actions=pick(self.actions),
            logp=pick(self.logp),
            values=pick(self.values),
            advantages=pick(self.advantages),
            returns=pick(self.returns),
        )


class RolloutBuffer:
    """One horizon from ``num_envs`` sub-environments, stored env-major ``[N, T, ...]``.

    Args:
        num_envs: Sub-environments ``N``.
        horizon: Steps ``T`` per sub-environment per collect.
        observation_spec: The environment's observation spec.
        action_spec: The environment's action spec.
        device: Device of the storage.
        seq_len: Length of the sequences that are the samples of recurrent PPO
            (must divide ``horizon``); ``None`` (feedforward): samples are transitions.
        state: A recurrent state of the model for ``num_envs`` (its shapes and
            dtypes size the stored sequence start states); needs ``seq_len``.
    """

    def __init__(
        self,
        num_envs: int,
        horizon: int,
        observation_spec: Spec,
        action_spec: Spec,
        device: torch.device,
        *,
        seq_len: int | None = None,
        state: State | None = None,
    ) -> None:
        n, t, dev = num_envs, horizon, device
        self.recurrent = seq_len is not None
        #: Transitions per sample: 1, or the sequence length of recurrent PPO.
        self.seq_len = seq_len or 1
        self.obs = torch.zeros(
            (n, t + 1, *observation_spec.shape), dtype=observation_spec.dtype, device=dev
        )
        self.actions = torch.zeros((n, t, *action_spec.shape), dtype=action_spec.dtype, device=dev)
        self.logp = torch.zeros(n, t, device=dev)
        self.rewards = torch.zeros(n, t, device=dev)
        #: Values of all ``T + 1`` observations (the last one bootstraps GAE).
        self.values = torch.zeros(n, t + 1, device=dev)
        #: Where step ``t`` ended an episode in a terminal state / cut it (time limit).
        self.terminated = torch.zeros(n, t, dtype=torch.bool, device=dev)
        self.truncated = torch.zeros(n, t, dtype=torch.bool, device=dev)
        #: Observations truncated episodes ended on, and their values (which
        #: bootstrap those episodes); allocated when an env first truncates.
        self.final_obs: torch.Tensor | None = None
        self.final_values: torch.Tensor | None = None
        #: Whether the environment reports episode ends (``terminated`` or ``truncated``).
        self.has_episodes = False
        #: Sums over the horizon of the env's extra per-step stats (``Step.stats``).
        self.env_stats: dict[str, torch.Tensor] = {}
        #: Recurrent state at the start of each sequence: per state tensor
        #: ``[T // seq_len, layers, N, H]``.
        self.seq_states: list[torch.Tensor] = [
            torch.zeros((t // self.seq_len, *s.shape), dtype=s.dtype, device=dev)
            for s in state or ()
        ]
        #: Discounted return carried over between horizons (reward scaling).
        self.running_return = torch.zeros(n, device=dev)

    # -- collection -----------------------------------------------------------------
    def start(self, first_obs: torch.Tensor | None) -> None:
        """Begin a horizon: from ``first_obs`` after an environment reset (the
        running discounted return restarts), or with ``None`` from the last
        observation of the previous horizon."""
        if first_obs is not None:
            self.obs[:, 0] = first_obs
            self.running_return.zero_()
        else:
            self.obs[:, 0] = self.obs[:, -1]
        self.env_stats = {}

    @property
    def done(self) -> torch.Tensor:
        """``[N, T]`` bool, where step ``t`` ended an episode (terminated or truncated)."""
        return self.terminated | self.truncated

    def add(
        self,
        t: int,
        action: torch.Tensor,
        logp: torch.Tensor,
        step: Step,
        *,
        value: torch.Tensor | None = None,
    ) -> None:
        """Store step ``t`` of every sub-environment: ``action``, its ``logp``,
        what ``env.step(action)`` returned and, when the collector computes it,
        the ``value`` of the observation the action was taken in."""
        self.actions[:, t] = action
        self.logp[:, t] = logp
        if value is not None:
            self.values[:, t] = value
        self.obs[:, t + 1] = step.obs
        self.rewards[:, t] = step.reward.reshape(-1)
        if step.terminated is not None:
            self.terminated[:, t] = step.terminated.reshape(-1)
            self.has_episodes = True
        if step.truncated is not None:
            if self.final_obs is None:
                self.final_obs = torch.zeros_like(self.obs[:, 1:])
                self.final_values = torch.zeros_like(self.rewards)
            self.truncated[:, t] = step.truncated.reshape(-1)
            self.final_obs[:, t] = step.final_obs  # type: ignore[assignment]  # checked
            self.has_episodes = True
        if step.stats:
            for k, v in step.stats.items():
                total = v.detach().reshape(-1).float().sum()
                self.env_stats[k] = total + self.env_stats[k] if k in self.env_stats else total

    def add_state(self, t: int, state: State) -> None:
        """Store the recurrent state ``state`` at step ``t``, the start of a sequence."""
        for stored, s in zip(self.seq_states, state):
            stored[t // self.seq_len] = s

    def stats(self) -> dict[str, torch.Tensor]:
        """Summary stats of the collected rewards as 0-dim tensors (no host
        sync): ``returns/*`` (per-sub-env sum over the horizon), ``rewards/*``
        and the means of the env's extra stats, ``env/<name>``."""
        rewards = self.rewards
        returns = rewards.sum(1)
        r_std, r_mean = torch.std_mean(returns)
        w_std, w_mean = torch.std_mean(rewards)
        stats = {
            "returns/min": returns.min(),
            "returns/max": returns.max(),
            "returns/mean": r_mean,
            "returns/std": r_std,
            "rewards/min": rewards.min(),
            "rewards/max": rewards.max(),
            "rewards/mean": w_mean,
            "rewards/std": w_std,
        }
        for k, total in self.env_stats.items():
            stats[f"env/{k}"] = total / rewards.numel()
        return stats

    # -- what the update uses ---------------------------------------------------------
    @torch.no_grad()
    def compute_returns_and_advantages(
        self,
        gamma: float,
        gae_lambda: float,
        *,
        normalize_rewards: bool,
        normalize_advantages: bool,
    ) -> RolloutSamples:
        """Reward scaling, GAE and advantage normalization over the whole
        buffer (the math is in :mod:`.ppo`), returned with every sample. The
        buffer keeps only the running discounted return, so the samples'
        memory is freed with the update that uses them."""
        rewards = self.rewards
        nonterminal = (~self.terminated).to(rewards.dtype)
        if normalize_rewards:
            scale, self.running_return = ppo.discounted_return_scale(
                rewards, self.running_return, gamma, (~self.done).to(rewards.dtype)
            )
            rewards = rewards / scale
        advantages, returns = ppo.gae(
            rewards,
            self.values,
            gamma,
            gae_lambda,
            nonterminal,
            truncated=self.truncated if self.final_obs is not None else None,
            final_values=self.final_values,
        )
        if normalize_advantages:
            advantages = ppo.normalize_advantages(advantages)

        # [N, T, ...] -> transitions [N * T, ...] or sequences [N * S, L, ...], env-major.
        num_samples, seq = self.num_samples, ((self.seq_len,) if self.recurrent else ())

        def samples(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(num_samples, *seq, *x.shape[2:])

        return RolloutSamples(
            obs=samples(self.obs[:, :-1]),
            # [S, layers, N, H] -> [layers, N * S, H], matching the sequence order.
            states=tuple(
                s.permute(1, 2, 0, 3).reshape(s.shape[1], num_samples, s.shape[3])
                for s in self.seq_states
            )
            if self.recurrent
            else None,
            actions=samples(self.actions),
            logp=samples(self.logp),
            values=samples(self.values[:, :-1]),
            advantages=samples(advantages),
            returns=samples(returns),
        )

    @property
    def num_samples(self) -> int:
        """Samples in the buffer: transitions, or sequences (recurrent)."""
        n, t = self.rewards.shape
        return n * (t // self.seq_len)

    @property
    def num_transitions(self) -> int:
        """Transitions in the buffer, ``N * T``."""
        return self.rewards.numel()
