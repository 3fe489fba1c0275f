"""Batched CartPole with in-place resets.

The dynamics, reward and time limit are gymnasium's ``CartPole-v1`` (the
classic Barto, Sutton and Anderson cart-pole) with explicit Euler
integration, equation for equation. A sub-environment's episode terminates
when the cart leaves the track (``|x| > 2.4`` m) or the pole leans more than
12 degrees (``|theta| > 12 * 2 * pi / 360`` rad), and is truncated after
``max_episode_steps`` steps (default 500, gymnasium's limit). The reward is 1
for every step, the last one included, so an episode's return is its length:
a solved CartPole shows ``episodes/return_mean`` near 500.

A finished sub-environment restarts in place from a new random initial state
(each of ``x, x_dot, theta, theta_dot`` uniform in ``[-0.05, 0.05]``): the
returned observation is already the new one, and the one the episode ended
on is the step's ``final_obs`` (see :class:`rl8.env.Step`).

:meth:`CartPole.render` draws a sub-environment as gymnasium does (a
400 x 300 frame, gymnasium's 600 x 400 picture at two thirds of its scale
with more room above the pole; see :mod:`rl8.render`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..env import Device, Env, Step
from ..render import canvas, check_index, to_frame
from ..specs import DiscreteSpec, Param, UnboundedSpec

__all__ = ["CartPole"]


class CartPole(Env):
    """``num_envs`` cart-poles stepped together with tensor ops.

    Observation (``UnboundedSpec(4)``, float32): cart position ``x`` (m), cart
    velocity ``x_dot`` (m/s), pole angle ``theta`` (rad, 0 = upright) and pole
    angular velocity ``theta_dot`` (rad/s).

    Action (``DiscreteSpec(2)``, ``[num_envs, 1]`` int64): 0 pushes the cart
    left with ``force_mag`` newtons, 1 pushes it right.

    Reward (``[num_envs]`` float32): 1 for every step (gymnasium's).

    Parameters (``env_config`` keys; each a number or a ``[num_envs]``
    tensor): ``gravity`` (m/s^2, default 9.8), ``masscart`` (kg, 1.0),
    ``masspole`` (kg, 0.1), ``length`` (m, half the pole length, 0.5),
    ``force_mag`` (N, 10.0), ``tau`` (s per step, 0.02),
    ``max_episode_steps`` (steps, a whole number, 500; 0: no time limit).
    See :attr:`params` for their bounds.

    Attributes:
        state: ``[num_envs, 4]`` current state (the last observation).
        episode_steps: ``[num_envs]`` int64, steps taken in each sub-env's
            current episode (0 right after a reset).
        last_episode_steps: ``[num_envs]`` int64, length of each sub-env's
            most recently finished episode (counting its last step);
            0 until one has finished since the last :meth:`reset`.
        fell: ``[num_envs]`` bool, which sub-envs failed (and were reset)
            on the last :meth:`step`, i.e. its ``terminated``.

    Args:
        num_envs: Number of sub-environments.
        horizon: Informational; CartPole has no horizon limit.
        config: Parameter overrides (see above).
        device: Device of the state and every returned tensor.
    """

    #: Cart position beyond which a sub-env fails (m).
    x_threshold: float = 2.4
    #: Pole angle beyond which a sub-env fails (rad), 12 degrees.
    theta_threshold: float = 12 * 2 * math.pi / 360
    #: Half-width of the uniform initial state distribution.
    reset_bound: float = 0.05

    #: Tuned for wall time to solve (60 Optuna trials of 3 seeds, then grids around
    #: the best; 32 seeds: all solved, median ~98k env steps, ~0.8 s on 2 CPU cores):
    #: 4096 transitions per collect in long horizons, 3 passes over minibatches of
    #: 1024, a large learning rate and a tight ratio clip. A collect's time grows with
    #: its horizon, hardly with its sub-envs: a set solving in fewer env steps (32
    #: sub-envs, 5 passes: ~70k) takes ~20 % longer. The library's defaults take
    #: ~80k steps and ~2.4 s.
    hyperparameters = {
        "num_envs": 64,
        "horizon": 64,
        "sgd_minibatch_size": 1024,
        "num_sgd_iters": 3,
        "clip_param": 0.15,
        "lr": 9e-3,
    }

    params = {
        "gravity": Param(9.8, 0.0, 100.0, "gravitational acceleration (m/s^2)"),
        "masscart": Param(1.0, 0.01, 100.0, "mass of the cart (kg)"),
        "masspole": Param(0.1, 0.001, 10.0, "mass of the pole (kg)"),
        "length": Param(0.5, 0.01, 10.0, "half the length of the pole (m), as in gymnasium"),
        "force_mag": Param(10.0, 0.0, 1000.0, "magnitude of the push applied to the cart (N)"),
        "tau": Param(0.02, 1e-4, 0.1, "integration time step, seconds per env step (s)"),
        "max_episode_steps": Param(
            500, 0, 1_000_000_000, "time limit, steps (whole number; 0: none)", integer=True
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
        self.observation_spec = UnboundedSpec(4)
        self.action_spec = DiscreteSpec(2)
        self._reset_state()

    def _apply_config(self, config: Mapping[str, Any] | None) -> None:
        super()._apply_config(config)
        # Per-sub-env constants, contiguous, computed once per reset.
        p = {k: v.contiguous() for k, v in self._p.items()}
        self._gravity = p["gravity"]
        self._masspole = p["masspole"]
        self._length = p["length"]
        self._force_mag = p["force_mag"]
        self._neg_force_mag = -p["force_mag"]
        self._total_mass = p["masscart"] + p["masspole"]
        self._polemass_length = p["masspole"] * p["length"]
        self._tau = p["tau"].unsqueeze(-1)
        #: |x| and |theta| bounds, for the failure check of the state's columns 0 and 2.
        self._bounds = torch.tensor([self.x_threshold, self.theta_threshold], device=self.device)
        limit = p["max_episode_steps"].round().to(torch.int64)
        self._limit = torch.where(limit > 0, limit, torch.iinfo(torch.int64).max)

    def _sample_init(self) -> torch.Tensor:
        b = self.reset_bound
        return torch.empty(self.num_envs, 4, device=self.device).uniform_(-b, b)

    def _reset_state(self) -> None:
        self.state = self._sample_init()
        zeros = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self.episode_steps = zeros
        self.last_episode_steps = zeros.clone()
        self.fell = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)

    def reset(self, *, config: Mapping[str, Any] | None = None) -> torch.Tensor:
        """Apply ``config`` on top of the constructor's, restart every
        sub-env from a random initial state and return ``[num_envs, 4]``."""
        self._apply_config(config)
        self._reset_state()
        return self.state.clone()

    def step(self, action: torch.Tensor) -> Step:
        """Advance every sub-env by ``tau`` seconds.

        Args:
            action: ``[num_envs, 1]`` (or ``[num_envs]``) integers in {0, 1}.

        Returns:
            A :class:`~rl8.env.Step`: ``obs [num_envs, 4]`` (finished
            sub-envs already restarted), ``reward [num_envs]``, ``terminated``
            (the pole fell or the cart left the track), ``truncated`` (the
            time limit) and ``final_obs``.
        """
        state = self.state
        _x, x_dot, theta, theta_dot = state.unbind(-1)
        # Action 1 pushes right with force_mag newtons, 0 left.
        force = torch.where(
            action.reshape(self.num_envs) == 1, self._force_mag, self._neg_force_mag
        )
        costheta = torch.cos(theta)
        sintheta = torch.sin(theta)
        temp = (force + self._polemass_length * theta_dot * theta_dot * sintheta) / self._total_mass
        thetaacc = (self._gravity * sintheta - costheta * temp) / (
            self._length * (4.0 / 3.0 - self._masspole * costheta * costheta / self._total_mass)
        )
        xacc = temp - self._polemass_length * thetaacc * costheta / self._total_mass
        # Explicit Euler: [x, x_dot, theta, theta_dot] += tau * [x_dot, xacc, theta_dot, thetaacc]
        new_state = torch.stack((x_dot, xacc, theta_dot, thetaacc), dim=-1).mul_(self._tau)
        new_state.add_(state)
        # |x| and |theta| within bounds; NaN states count as failed.
        ok = (new_state[:, ::2].abs() <= self._bounds).all(-1)
        steps = self.episode_steps + 1
        self.fell = ~ok
        truncated = steps >= self._limit
        go_on = ok & ~truncated
        self.last_episode_steps = torch.where(go_on, self.last_episode_steps, steps)
        self.episode_steps = torch.where(go_on, steps, 0)
        self.state = torch.where(go_on.unsqueeze(-1), new_state, self._sample_init())
        reward = torch.ones(self.num_envs, device=self.device)
        return Step(self.state.clone(), reward, self.fell, truncated, final_obs=new_state)

    # -- rendering (rl8.render) ------------------------------------------------------

    #: Frame size of :meth:`render`, pixels.
    render_width: int = 400
    render_height: int = 300

    def render(self, index: int = 0) -> np.ndarray:
        """Sub-env ``index`` in its current state, an RGB frame ``[300, 400,
        3]`` uint8: the track spans ``[-x_threshold, x_threshold]`` (the cart
        is half out of the frame where an episode fails), the pole is drawn
        with the sub-env's own ``length``. Draws with Pillow (about half a
        millisecond)."""
        check_index(self, index)
        return self.render_obs(self.state[index], index)

    def render_obs(self, obs: torch.Tensor, index: int = 0) -> np.ndarray:
        """Like :meth:`render`, for the state of the observation ``obs``
        (``[4]``, e.g. a row of a step's ``final_obs``), with the parameters
        of sub-env ``index``."""
        check_index(self, index)
        row = torch.cat((obs.detach().reshape(4), self._length[index : index + 1]))
        x, _, theta, _, length = row.float().cpu().tolist()
        return draw_cartpole(
            x, theta, length, self.x_threshold, self.render_width, self.render_height
        )


def draw_cartpole(
    x: float, theta: float, length: float, x_threshold: float, width: int, height: int
) -> np.ndarray:
    """A cart-pole frame ``[height, width, 3]`` uint8 in gymnasium's colours:
    cart at ``x`` (m), pole at angle ``theta`` (rad, 0 = upright, > 0 leaning
    right) and ``2 * length`` m long, the frame ``2 * x_threshold`` m wide."""
    image, draw = canvas(width, height)
    s = image.width / width  # supersampling
    scale = image.width / (2 * x_threshold)  # pixels per meter
    # Gymnasium's sizes, in meters: cart 0.4 x 0.24, pole 0.08 wide.
    cart_w, cart_h, pole_w = 0.4 * scale, 0.24 * scale, 0.08 * scale
    track_y = 0.75 * image.height
    cart_x = image.width / 2 + x * scale
    draw.line([(0, track_y), (image.width, track_y)], fill=(0, 0, 0), width=round(s))
    tick = 0.04 * scale
    draw.line(
        [(image.width / 2, track_y), (image.width / 2, track_y + tick)],
        fill=(0, 0, 0),
        width=round(s),
    )
    draw.rectangle(
        [cart_x - cart_w / 2, track_y - cart_h / 2, cart_x + cart_w / 2, track_y + cart_h / 2],
        fill=(0, 0, 0),
    )
    # The pole, from just below the axle to its tip: along (sin, -cos) in image
    # coordinates (y down), half its width to either side.
    axle_x, axle_y = cart_x, track_y - cart_h / 4
    ux, uy = math.sin(theta), -math.cos(theta)
    px, py = -uy * pole_w / 2, ux * pole_w / 2
    b, t = -pole_w / 2, 2 * length * scale - pole_w / 2
    draw.polygon(
        [
            (axle_x + ux * b - px, axle_y + uy * b - py),
            (axle_x + ux * t - px, axle_y + uy * t - py),
            (axle_x + ux * t + px, axle_y + uy * t + py),
            (axle_x + ux * b + px, axle_y + uy * b + py),
        ],
        fill=(202, 152, 101),
    )
    r = pole_w / 2
    draw.ellipse([axle_x - r, axle_y - r, axle_x + r, axle_y + r], fill=(129, 132, 203))
    return to_frame(image)
