"""Batched inverted pendulum swing-up (gymnasium ``Pendulum-v1``).

Dynamics and reward are gymnasium's ``Pendulum-v1``: a pole hinged at one
end, angle ``th`` (rad, 0 = upright), angular velocity ``thdot`` (rad/s),
torque ``u`` (N m) clipped to ``[-max_torque, max_torque]``::

    reward  = -(angle_normalize(th)^2 + 0.1 * thdot^2 + 0.001 * u^2)
    thdot' = clip(thdot + (3 g / (2 l) sin(th) + 3 / (m l^2) u) dt, -max_speed, max_speed)
    th'    = th + thdot' dt

with the reward computed from the state before the step. An episode never
terminates; it is truncated after ``episode_steps`` steps (default 200,
gymnasium's time limit), and the sub-environment restarts in place from a
random state (``th`` uniform in ``[-pi, pi]``, ``thdot`` uniform in
``[-1, 1]``): the returned observation is already the new one, and the one
the episode ended on is the step's ``final_obs`` (see :class:`rl8.env.Step`).
A good policy's episode return is about -150 (gymnasium's solved: -200).

One deliberate difference: the stored angle is wrapped to ``[-pi, pi)`` after
every step. Observation and reward only depend on the angle modulo ``2 pi``,
so this changes nothing but float32 rounding, and keeps ``cos``/``sin``
accurate on long episodes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from ..env import Device, Env, Step
from ..specs import BoundedSpec, Param, UnboundedSpec

__all__ = ["Pendulum", "angle_normalize"]


def angle_normalize(x: torch.Tensor) -> torch.Tensor:
    """Wrap angles (rad) to ``[-pi, pi)``."""
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


class Pendulum(Env):
    """``num_envs`` pendulums stepped together with tensor ops.

    Observation (``UnboundedSpec(3)``, float32): ``[cos(th), sin(th), thdot]``
    (thdot in rad/s).

    Action (``BoundedSpec(1, low=-max_torque, high=max_torque)``, float32):
    torque in N m. The spec's bound is taken from the constructor's
    ``max_torque`` (its largest value for a tensor), so it is ``[-2, 2]`` by
    default; a ``max_torque`` set later at :meth:`reset` changes the clipping
    inside :meth:`step`, not the spec. Actions are clipped to
    ``[-max_torque, max_torque]`` of each sub-env.

    Reward (``[num_envs]`` float32): see the module docstring; at most 0,
    at least about ``-16.27`` with the defaults.

    Parameters (``env_config`` keys; each a number or a ``[num_envs]``
    tensor): ``g`` (m/s^2, default 10.0), ``m`` (kg, 1.0), ``l`` (m, 1.0),
    ``max_torque`` (N m, 2.0), ``max_speed`` (rad/s, 8.0), ``dt`` (s per
    step, 0.05), ``episode_steps`` (steps per episode, a whole number,
    200). See :attr:`params` for their bounds.

    Attributes:
        state: ``[num_envs, 2]`` current ``[th, thdot]``.
        episode_steps: ``[num_envs]`` int64, steps taken in each sub-env's
            current episode (0 right after a restart).

    Args:
        num_envs: Number of sub-environments.
        horizon: Informational; Pendulum has no horizon limit.
        config: Parameter overrides (see above).
        device: Device of the state and every returned tensor.
    """

    params = {
        "g": Param(10.0, 0.0, 100.0, "gravitational acceleration (m/s^2)"),
        "m": Param(1.0, 0.01, 100.0, "mass of the pendulum (kg)"),
        "l": Param(1.0, 0.01, 100.0, "length of the pendulum (m)"),
        "max_torque": Param(2.0, 0.0, 100.0, "largest torque magnitude applied (N m)"),
        "max_speed": Param(8.0, 0.1, 1000.0, "largest angular speed magnitude (rad/s)"),
        "dt": Param(0.05, 1e-4, 1.0, "integration time step, seconds per env step (s)"),
        "episode_steps": Param(
            200, 1, 1_000_000, "steps before a sub-env restarts (whole number)", integer=True
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
        self.observation_spec = UnboundedSpec(3)
        max_torque = self.base_config.get("max_torque", self.params["max_torque"].default)
        bound = float(torch.as_tensor(max_torque).max())
        self.action_spec = BoundedSpec(1, low=-bound, high=bound)
        self._reset_state()

    def _apply_config(self, config: Mapping[str, Any] | None) -> None:
        super()._apply_config(config)
        p = {k: v.contiguous() for k, v in self._p.items()}
        self._max_torque = p["max_torque"]
        self._min_torque = -p["max_torque"]
        self._max_speed = p["max_speed"]
        self._min_speed = -p["max_speed"]
        self._dt = p["dt"]
        self._grav_coef = 3 * p["g"] / (2 * p["l"])
        self._torque_coef = 3.0 / (p["m"] * p["l"] ** 2)
        self._limit = p["episode_steps"].round().to(torch.int64)

    def _sample_init(self) -> torch.Tensor:
        u = torch.rand(self.num_envs, 2, device=self.device).mul_(2.0).sub_(1.0)
        u[:, 0].mul_(math.pi)
        return u

    def _reset_state(self) -> None:
        self.state = self._sample_init()
        self.episode_steps = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)

    def _obs(self) -> torch.Tensor:
        th, thdot = self.state.unbind(-1)
        return torch.stack((torch.cos(th), torch.sin(th), thdot), dim=-1)

    def reset(self, *, config: Mapping[str, Any] | None = None) -> torch.Tensor:
        """Apply ``config`` on top of the constructor's, restart every
        sub-env from a random state and return ``[num_envs, 3]``."""
        self._apply_config(config)
        self._reset_state()
        return self._obs()

    def step(self, action: torch.Tensor) -> Step:
        """Apply the torques for ``dt`` seconds.

        Args:
            action: ``[num_envs, 1]`` (or ``[num_envs]``) torques (N m).

        Returns:
            A :class:`~rl8.env.Step`: ``obs [num_envs, 3]`` (sub-envs that
            reached ``episode_steps`` already restarted), ``reward [num_envs]``,
            ``truncated`` (the time limit) and ``final_obs``; never terminated.
        """
        th, thdot = self.state.unbind(-1)
        u = action.reshape(self.num_envs).to(torch.float32)
        u = torch.clamp(u, min=self._min_torque, max=self._max_torque)
        cost = angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * u**2
        newthdot = thdot + (self._grav_coef * torch.sin(th) + self._torque_coef * u) * self._dt
        newthdot = torch.clamp(newthdot, min=self._min_speed, max=self._max_speed)
        newth = angle_normalize(th + newthdot * self._dt)
        steps = self.episode_steps + 1
        truncated = steps >= self._limit
        self.episode_steps = torch.where(truncated, 0, steps)
        new_state = torch.stack((newth, newthdot), dim=-1)
        final_obs = torch.stack((torch.cos(newth), torch.sin(newth), newthdot), dim=-1)
        self.state = torch.where(truncated.unsqueeze(-1), self._sample_init(), new_state)
        return Step(self._obs(), -cost, None, truncated, final_obs=final_obs)
