"""The PPO math, top to bottom: reward scaling, GAE, advantage
normalization, and the loss with its stats.

Everything PPO computes from a collected buffer lives here, each trick a few
lines with its name; :class:`~rl8.algorithms.buffer.RolloutBuffer` applies the
first three to its storage, the update loop (``AlgorithmBase._sgd``) the loss.
Shapes: ``N`` sub-environments, ``T`` horizon, ``B`` samples in a minibatch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..distributions import Distribution

__all__ = [
    "STAT_KEYS",
    "LossStats",
    "PPOLoss",
    "discounted_return_scale",
    "gae",
    "normalize_advantages",
    "ppo_loss",
]


def discounted_return_scale(
    rewards: torch.Tensor, running: torch.Tensor, gamma: float, nonterminal: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reward scaling (Engstrom et al. 2020, "Implementation Matters"):
    rewards are divided by the standard deviation of the running discounted
    return ``R_t = gamma * R_{t-1} + r_t``.

    Args:
        rewards: ``[N, T]``.
        running: ``[N]`` discounted return carried over from earlier horizons.
        gamma: Discount factor.
        nonterminal: ``[N, T]``, 0 after the last step of an episode (the
            return restarts).

    Returns:
        ``(scale, running)``: a 0-dim tensor (>= 1e-8) and the updated ``[N]``.
    """
    returns = torch.empty_like(rewards)
    # Column views taken once (unbind), one fused multiply-add per step: the loop
    # over T costs 3 small kernels per step instead of 7 dispatches.
    out, r, nt = returns.unbind(1), rewards.unbind(1), nonterminal.unbind(1)
    for t in range(rewards.shape[1]):
        running = torch.add(r[t], running, alpha=gamma)
        out[t].copy_(running)
        running = running * nt[t]
    return returns.std().clamp_min(1e-8), running


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    gamma: float,
    gae_lambda: float,
    nonterminal: torch.Tensor | None = None,
    *,
    truncated: torch.Tensor | None = None,
    final_values: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized Advantage Estimation (Schulman et al. 2016).

    The value of the observation after the last step bootstraps every
    sequence. A terminal step (``nonterminal == 0``) stops bootstrapping and
    the advantage recursion there. A truncated step (an episode cut by a time
    limit) stops the recursion too, but bootstraps from ``final_values``, the
    value of the observation the episode ended on (the next observation in
    ``values`` already belongs to the next episode).

    Args:
        rewards: ``[N, T]``.
        values: ``[N, T + 1]`` value estimates of every observation incl. the last.
        nonterminal: ``[N, T]`` floats, 0 where step ``t`` ended an episode in
            a terminal state; ``None`` for environments without terminal states.
        truncated: ``[N, T]`` bool, where step ``t`` cut an episode; ``None``:
            never. Needs ``final_values``.
        final_values: ``[N, T]``, the value of each truncated step's final
            observation (other entries are ignored).

    Returns:
        ``(advantages, returns)``, both ``[N, T]``; returns = advantages + values.
    """
    next_values = values[:, 1:]
    continues = nonterminal
    if truncated is not None:
        assert final_values is not None, "gae(truncated=...) needs final_values"
        next_values = torch.where(truncated, final_values, next_values)
        cut = (~truncated).to(rewards.dtype)
        continues = cut if continues is None else continues * cut
    if nonterminal is not None:
        next_values = next_values * nonterminal
    deltas = rewards + gamma * next_values - values[:, :-1]
    advantages = torch.empty_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    out, d = advantages.unbind(1), deltas.unbind(1)
    c = continues.unbind(1) if continues is not None else None
    for t in reversed(range(rewards.shape[1])):
        if c is not None:
            last = last * c[t]
        last = torch.add(d[t], last, alpha=gamma * gae_lambda)
        out[t].copy_(last)
    return advantages, advantages + values[:, :-1]


def normalize_advantages(advantages: torch.Tensor) -> torch.Tensor:
    """Advantage normalization: zero mean, unit standard deviation."""
    std, mean = torch.std_mean(advantages)
    return (advantages - mean) / (std + 1e-8)


@dataclass
class PPOLoss:
    """The loss terms of one minibatch (0-dim tensors)."""

    total: torch.Tensor
    policy: torch.Tensor
    vf: torch.Tensor
    entropy: torch.Tensor
    kl_div: torch.Tensor
    clip_frac: torch.Tensor

    def stats(self) -> torch.Tensor:
        """The terms stacked (detached), in :data:`STAT_KEYS` order."""
        return torch.stack(
            [self.total, self.policy, self.vf, self.entropy, self.kl_div, self.clip_frac]
        ).detach()


#: Names of :meth:`PPOLoss.stats` entries, as reported in train stats.
STAT_KEYS = (
    "losses/total",
    "losses/policy",
    "losses/vf",
    "losses/entropy",
    "monitors/kl_div",
    "monitors/clip_frac",
)


class LossStats:
    """Weighted sums of :class:`PPOLoss` terms, read by name (a :data:`STAT_KEYS` entry).

    The terms stay on the device as one tensor, so adding a loss costs one
    kernel and no host sync; reading a term returns a 0-dim tensor.
    """

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(len(STAT_KEYS), device=device)

    def add(self, loss: PPOLoss, weight: float) -> None:
        """Add the terms of ``loss`` times ``weight``."""
        self.sums += loss.stats().float() * weight

    def __iadd__(self, other: LossStats) -> LossStats:
        self.sums += other.sums
        return self

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.sums[STAT_KEYS.index(name)]

    def mean(self, count: int) -> dict[str, float]:
        """The sums divided by ``count`` (at least 1), by name (one host sync)."""
        return dict(zip(STAT_KEYS, (self.sums / max(1, count)).tolist()))


def ppo_loss(
    dist: Distribution,
    values: torch.Tensor,
    *,
    actions: torch.Tensor,
    old_logp: torch.Tensor,
    old_values: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    clip_param: float,
    dual_clip_param: float | None,
    vf_clip_param: float | None,
    vf_coeff: float,
    entropy_coeff: float,
) -> PPOLoss:
    """The PPO objective (Schulman et al. 2017) for one minibatch, as a loss.

    ``dist``/``values`` come from the current model; the ``old_*`` tensors
    and ``advantages``/``returns`` from the buffer, all ``[B]``.
    """
    logp = dist.logp(actions)
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()

    # Clipped surrogate objective: take the pessimistic of the unclipped and
    # clipped probability-ratio objectives.
    surrogate = torch.min(
        advantages * ratio, advantages * ratio.clamp(1.0 - clip_param, 1.0 + clip_param)
    )
    # Dual clip (Ye et al. 2020): for negative advantages, bound the objective
    # from below so a huge ratio cannot produce an unbounded update.
    if dual_clip_param is not None:
        surrogate = torch.where(
            advantages < 0, torch.max(surrogate, dual_clip_param * advantages), surrogate
        )
    policy_loss = -surrogate.mean()

    # Value loss with value clipping (PPO2): the new value may move at most
    # vf_clip_param from the value collected with the buffer.
    vf_loss = (values - returns).square()
    if vf_clip_param is not None:
        clipped = old_values + (values - old_values).clamp(-vf_clip_param, vf_clip_param)
        vf_loss = torch.max(vf_loss, (clipped - returns).square())
    vf_loss = 0.5 * vf_loss.mean()

    # Entropy bonus keeps exploration up.
    entropy = dist.entropy().mean()

    total = policy_loss + vf_coeff * vf_loss - entropy_coeff * entropy
    with torch.no_grad():
        # Approximate KL(old || new) (Schulman's k3 estimator) and clip fraction.
        kl_div = ((ratio - 1.0) - log_ratio).mean()
        clip_frac = ((ratio - 1.0).abs() > clip_param).float().mean()
    return PPOLoss(total, policy_loss, vf_loss, entropy, kl_div, clip_frac)
