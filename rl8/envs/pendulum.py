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

:meth:`Pendulum.render` draws a sub-environment as gymnasium does, in a
300 x 300 frame, with an arc arrow for the last torque (see
:mod:`rl8.render`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..env import Device, Env, Step
from ..render import canvas, check_index, to_frame
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
        last_u: ``[num_envs]`` float32, the torque applied in the last
            :meth:`step` (after clipping; 0 after :meth:`reset`).

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
        self.last_u = torch.zeros(self.num_envs, device=self.device)

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
        self.last_u = u
        steps = self.episode_steps + 1
        truncated = steps >= self._limit
        self.episode_steps = torch.where(truncated, 0, steps)
        new_state = torch.stack((newth, newthdot), dim=-1)
        final_obs = torch.stack((torch.cos(newth), torch.sin(newth), newthdot), dim=-1)
        self.state = torch.where(truncated.unsqueeze(-1), self._sample_init(), new_state)
        return Step(self._obs(), -cost, None, truncated, final_obs=final_obs)

    # -- rendering (rl8.render) ------------------------------------------------------

    #: Frame size of :meth:`render`, pixels (square).
    render_size: int = 300
    #: Half the width of the world a frame shows (m); a rod up to about this
    #: long fits (gymnasium's 2.2).
    render_bound: float = 2.2

    def render(self, index: int = 0) -> np.ndarray:
        """Sub-env ``index`` in its current state, an RGB frame ``[300, 300,
        3]`` uint8: the rod (the sub-env's own length ``l``, 0 = upright,
        positive angles counterclockwise) hinged at the centre, and an arc
        arrow around the hinge for the torque of the last step (its length
        proportional to ``|u| / max_torque``; none in an episode's first
        state). Draws with Pillow (about half a millisecond)."""
        check_index(self, index)
        th = self.state[index, 0]
        first = self.episode_steps[index] == 0  # no torque led to an episode's first state
        return self._draw(torch.cos(th), torch.sin(th), first, index)

    def render_obs(self, obs: torch.Tensor, index: int = 0) -> np.ndarray:
        """Like :meth:`render`, for the state of the observation ``obs``
        (``[cos(th), sin(th), thdot]``, e.g. a row of a step's ``final_obs``)
        with the parameters of sub-env ``index``; the arrow shows sub-env
        ``index``'s last torque (the one that led to a ``final_obs``)."""
        check_index(self, index)
        cos_th, sin_th, _ = obs.detach().reshape(3).unbind()
        return self._draw(cos_th, sin_th, torch.tensor(False), index)

    def _draw(
        self, cos_th: torch.Tensor, sin_th: torch.Tensor, first: torch.Tensor, index: int
    ) -> np.ndarray:
        # One transfer from the device per frame.
        row = [cos_th, sin_th, first, self.last_u[index], self._p["l"][index]]
        row.append(self._max_torque[index])
        values = torch.stack([v.to(self.device, torch.float32) for v in row]).tolist()
        cos_v, sin_v, first_v, u, length, max_torque = values
        torque = 0.0 if first_v or max_torque <= 0 else u / max_torque
        return draw_pendulum(
            math.atan2(sin_v, cos_v), length, torque, self.render_size, self.render_bound
        )


def draw_pendulum(th: float, length: float, torque: float, size: int, bound: float) -> np.ndarray:
    """A pendulum frame ``[size, size, 3]`` uint8 in gymnasium's colours: a
    rod ``length`` m long at angle ``th`` (rad, 0 = upright, counterclockwise
    positive) hinged at the centre of a ``2 * bound`` m wide world, and an arc
    arrow for ``torque`` in ``[-1, 1]`` (a fraction of the largest torque;
    positive counterclockwise, none when 0)."""
    image, draw = canvas(size, size)
    scale = image.width / (2 * bound)  # pixels per meter
    c = image.width / 2
    rod_w = 0.2 * scale
    r = rod_w / 2
    # The rod: along (-sin th, -cos th) in image coordinates (y down).
    ux, uy = -math.sin(th), -math.cos(th)
    px, py = -uy * r, ux * r
    tip_x, tip_y = c + ux * length * scale, c + uy * length * scale
    rod_colour = (204, 77, 77)
    draw.polygon(
        [(c - px, c - py), (tip_x - px, tip_y - py), (tip_x + px, tip_y + py), (c + px, c + py)],
        fill=rod_colour,
    )
    draw.ellipse([c - r, c - r, c + r, c + r], fill=rod_colour)
    draw.ellipse([tip_x - r, tip_y - r, tip_x + r, tip_y + r], fill=rod_colour)
    a = 0.05 * scale
    draw.ellipse([c - a, c - a, c + a, c + a], fill=(0, 0, 0))
    torque = max(-1.0, min(1.0, torque))
    if abs(torque) > 1e-3:
        _draw_torque_arrow(draw, c, 0.45 * scale, torque, 0.04 * scale)
    return to_frame(image)


def _draw_torque_arrow(draw: Any, c: float, radius: float, torque: float, width: float) -> None:
    """An arc around ``(c, c)`` from straight up, ``|torque| * 270`` degrees
    long, counterclockwise for a positive torque, with an arrowhead."""
    sweep = 270.0 * abs(torque)
    # PIL measures angles clockwise from 3 o'clock; straight up is -90.
    start, end = (-90.0 - sweep, -90.0) if torque > 0 else (-90.0, -90.0 + sweep)
    box = [c - radius, c - radius, c + radius, c + radius]
    colour = (40, 40, 40)
    draw.arc(box, start, end, fill=colour, width=max(1, round(width)))
    # Arrowhead at the moving end, pointing along the arc.
    tip_deg = start if torque > 0 else end
    t = math.radians(tip_deg)
    tx, ty = c + radius * math.cos(t), c + radius * math.sin(t)
    # Direction of travel: clockwise in PIL angles for a negative torque.
    sign = -1.0 if torque > 0 else 1.0
    dx, dy = -math.sin(t) * sign, math.cos(t) * sign
    nx, ny = -dy, dx
    h = 3.5 * width
    draw.polygon(
        [
            (tx + dx * h, ty + dy * h),
            (tx + nx * h * 0.7, ty + ny * h * 0.7),
            (tx - nx * h * 0.7, ty - ny * h * 0.7),
        ],
        fill=colour,
    )
