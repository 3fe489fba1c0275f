"""A recall task that only a policy with memory can solve.

Each episode lasts ``delay + 1`` steps. The first observation shows a random
cue bit, the following ones show nothing, and the last one asks for it::

    step      0         1 .. delay-1      delay
    obs    [cue, 0]      [0, 0]          [0, 1]      cue = +1 or -1
    reward    0             0        1 if action == (cue > 0) else 0

After the query step the sub-environment starts a new episode with a new cue.
At most one step in ``delay + 1`` pays, so the best mean per-step reward is
``1 / (delay + 1)`` (:attr:`Memory.max_mean_reward`). A feedforward policy
sees nothing at the query step that tells it the cue and can do no better
than chance, ``0.5 / (delay + 1)``; a recurrent policy can reach the maximum.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..env import Device, Env
from ..specs import DiscreteSpec, Param, UnboundedSpec

__all__ = ["Memory"]


class Memory(Env):
    """``num_envs`` cue-recall tasks stepped together with tensor ops.

    Observation (``UnboundedSpec(2)``, float32): ``[cue, query]``; ``cue`` is
    +1 or -1 on an episode's first step and 0 otherwise, ``query`` is 1 on its
    last step (the one that is scored) and 0 otherwise.

    Action (``DiscreteSpec(2)``, ``[num_envs, 1]`` int64): the guess of the
    cue, 1 for +1 and 0 for -1. Only the action taken on the query step
    matters.

    Reward (``[num_envs]`` float32): 1 for a correct answer on the query step,
    0 otherwise.

    Sub-envs are staggered: :meth:`reset` puts each one at a random step of
    its episode, so every batch holds every phase. A sub-env that starts in
    the middle of an episode has not seen its cue; its first answer is a
    guess.

    Parameters (``env_config`` keys): ``delay`` (steps between the cue and
    the query, a whole number in ``[1, 64]``, default 4; a number or a
    ``[num_envs]`` tensor).

    Attributes:
        phase: ``[num_envs]`` int64, current step within the episode
            (``0 .. delay``) of the observation last returned.
        cue: ``[num_envs]`` bool, the current episode's cue (True for +1).

    Args:
        num_envs: Number of sub-environments.
        horizon: Informational; Memory has no horizon limit.
        config: Parameter overrides.
        device: Device of every returned tensor.
    """

    params = {
        "delay": Param(
            4, 1, 64, "steps from the cue to the query (whole number of steps)", integer=True
        ),
    }

    def __init__(
        self,
        num_envs: int,
        horizon: int | None = None,
        /,
        *,
        config: Mapping[str, Any] | None = None,
        device: Device = "cpu",
    ) -> None:
        super().__init__(num_envs, horizon, config=config, device=device)
        self.observation_spec = UnboundedSpec(2)
        self.action_spec = DiscreteSpec(2)
        self._reset_state()

    def _apply_config(self, config: Mapping[str, Any] | None) -> None:
        super()._apply_config(config)
        self._delay = self.param("delay").round().to(torch.int64).contiguous()

    @property
    def max_mean_reward(self) -> float:
        """Best achievable mean per-step reward, ``1 / (delay + 1)`` (averaged
        over sub-envs when ``delay`` is a per-sub-env tensor)."""
        delay = self.config.get("delay", self.params["delay"].default)
        if isinstance(delay, torch.Tensor):
            return float((1.0 / (delay.double() + 1.0)).mean())
        return 1.0 / (float(delay) + 1.0)

    def _random_cue(self) -> torch.Tensor:
        return torch.rand(self.num_envs, device=self.device) < 0.5

    def _obs(self) -> torch.Tensor:
        cue = torch.where(self.phase == 0, self.cue.to(torch.float32) * 2.0 - 1.0, 0.0)
        query = (self.phase == self._delay).to(torch.float32)
        return torch.stack((cue, query), dim=-1)

    def _reset_state(self) -> None:
        u = torch.rand(self.num_envs, device=self.device)
        self.phase = torch.minimum((u * (self._delay + 1)).to(torch.int64), self._delay)
        self.cue = self._random_cue()

    def reset(self, *, config: Mapping[str, Any] | None = None) -> torch.Tensor:
        """Apply ``config`` on top of the constructor's, start every sub-env at
        a random phase with a new cue and return ``[num_envs, 2]``."""
        self._apply_config(config)
        self._reset_state()
        return self._obs()

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score the query steps and move every sub-env one step on.

        Args:
            action: ``[num_envs, 1]`` (or ``[num_envs]``) integers in {0, 1}.

        Returns:
            ``(obs [num_envs, 2], reward [num_envs])``.
        """
        query = self.phase == self._delay
        correct = (action.reshape(self.num_envs) == 1) == self.cue
        reward = (query & correct).to(torch.float32)
        self.phase = torch.where(query, 0, self.phase + 1)
        self.cue = torch.where(query, self._random_cue(), self.cue)
        return self._obs(), reward
