"""Frames of environments, and GIFs of them.

Rendering is an optional part of the environment protocol (:mod:`rl8.env`).
An environment *can render* when it has a method::

    def render(self, index: int = 0) -> numpy.ndarray: ...

returning an RGB image ``[H, W, 3]`` (``uint8``) of sub-environment
``index`` in its current state (the state after the last :meth:`reset` or
:meth:`step`: where an episode ended in that step, the new episode's first
state). Every frame of one environment has the same size. Following
gymnasium's convention, an environment with a ``render_mode`` attribute
(:class:`rl8.envs.Gymnasium`) can render only when it is ``"rgb_array"``.
:func:`can_render` tells.

A second, optional method draws the state an observation describes::

    def render_obs(self, obs: torch.Tensor, index: int = 0) -> numpy.ndarray: ...

``obs`` is one observation ``[*observation_spec.shape]``, drawn with the
parameters of sub-environment ``index``. Environments that reset finished
sub-environments in the step (all of rl8's) have already replaced the state
an episode ended on when :meth:`step` returns; with ``render_obs``,
:func:`record_episodes` draws it from ``Step.final_obs``, so a recording shows
how each episode ended. :class:`~rl8.envs.CartPole` and
:class:`~rl8.envs.Pendulum` have both methods; :class:`~rl8.envs.Gymnasium`
only ``render`` (its sub-environments reset themselves inside gymnasium).

Recording a policy and writing a GIF::

    from rl8.envs import CartPole
    from rl8.render import record_episodes, save_gif

    env = CartPole(1)
    frames = record_episodes(env, trainer.algorithm.policy, episodes=2)
    save_gif(frames, "cartpole.gif", fps=50)

The drawing is done with Pillow, imported when the first frame is drawn:
``import rl8`` (and ``import rl8.envs``) do not import it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ._files import atomic_write
from .env import as_step

if TYPE_CHECKING:
    from PIL import Image, ImageDraw

__all__ = [
    "can_render",
    "check_can_render",
    "policy_act",
    "record_episodes",
    "save_gif",
]

#: What :func:`record_episodes` calls to act: observations ``[num_envs, ...]``
#: to actions ``[num_envs, *action_spec.shape]``.
ActFn = Callable[[torch.Tensor], torch.Tensor]


def can_render(env: Any) -> bool:
    """Whether ``env`` can draw frames: it has a ``render`` method and, if it
    has a ``render_mode`` attribute (gymnasium's convention), that is
    ``"rgb_array"``."""
    if not callable(getattr(env, "render", None)):
        return False
    return getattr(env, "render_mode", "rgb_array") == "rgb_array"


def check_can_render(env: Any) -> None:
    """Raise unless :func:`can_render`; the message says why and what to do.

    Raises:
        TypeError: ``env`` has no ``render`` method.
        ValueError: ``env.render_mode`` is not ``"rgb_array"``.
    """
    name = type(env).__name__
    if not callable(getattr(env, "render", None)):
        raise TypeError(
            f"{name} cannot render: it has no render(index) method returning an RGB frame "
            "[H, W, 3] uint8 (see rl8.render)."
        )
    mode = getattr(env, "render_mode", "rgb_array")
    if mode != "rgb_array":
        raise ValueError(
            f"{name} cannot render: it was built with render_mode={mode!r}; frames need "
            "render_mode='rgb_array' (rl8.envs.Gymnasium(..., render_mode='rgb_array'); on "
            "the command line +env.render_mode=rgb_array)."
        )


def policy_act(policy: Any, *, deterministic: bool = True) -> ActFn:
    """An action function for :func:`record_episodes` from an rl8
    :class:`~rl8.policies.Policy`.

    A recurrent policy's state starts from its model's initial state at the
    first call and then carries on across episode ends, as in training (rl8
    does not reset it when an episode ends).

    Args:
        policy: A :class:`~rl8.policies.Policy` or
            :class:`~rl8.policies.RecurrentPolicy`.
        deterministic: Act with the distribution's deterministic action (its
            mode or mean, as evaluation does) instead of sampling.
    """
    from .models import RecurrentModel

    if not isinstance(policy.model, RecurrentModel):

        def act(obs: torch.Tensor) -> torch.Tensor:
            return policy.sample(obs, deterministic=deterministic)[0]  # type: ignore[no-any-return]

        return act

    state: Any = None

    def act_recurrent(obs: torch.Tensor) -> torch.Tensor:
        nonlocal state
        if state is None:
            state = policy.model.init_state(obs.shape[0], obs.device)
        action, _, _, state = policy.sample(obs, state, deterministic=deterministic)
        return action  # type: ignore[no-any-return]

    return act_recurrent


def record_episodes(
    env: Any,
    act: ActFn | Any,
    *,
    episodes: int | None = 1,
    index: int = 0,
    max_steps: int = 1000,
    every: int = 1,
    config: Mapping[str, Any] | None = None,
    final_frames: bool = True,
) -> list[np.ndarray]:
    """Reset ``env``, step it with ``act`` and collect frames of sub-environment
    ``index`` until ``episodes`` of its episodes have ended.

    The frames are: one after the reset; one after every ``every``-th step;
    and, where an episode of sub-environment ``index`` ended, the state it
    ended on (when ``final_frames`` and the env has ``render_obs``, see the
    module docstring; otherwise a recording shows the state before the last
    step, and then the next episode's first state). Recording stops at the
    end of the ``episodes``-th episode or after ``max_steps`` steps,
    whichever comes first. All sub-environments are stepped (the env is
    batched); only ``index`` is drawn and counted.

    Args:
        env: An environment that can render (:func:`can_render`).
        act: Observations ``[num_envs, ...]`` -> actions, called under
            ``torch.no_grad()``; for a recurrent policy a closure carrying
            its state. An rl8 :class:`~rl8.policies.Policy` is accepted too
            (turned into ``policy_act(policy)``, deterministic actions).
        episodes: Episodes of sub-environment ``index`` to record; ``None``:
            record ``max_steps`` steps.
        index: The sub-environment drawn.
        max_steps: Most steps taken.
        every: Draw every ``every``-th step only (a shorter GIF of a long
            episode); the frames of episode ends are always drawn.
        config: Environment config for the reset (``env.reset(config=...)``).
        final_frames: Draw the states episodes ended on, where the env can.

    Returns:
        The frames, ``[H, W, 3]`` uint8 arrays, in order.

    Raises:
        TypeError, ValueError: The env cannot render (see
            :func:`check_can_render`) or an argument is out of range.
    """
    check_can_render(env)
    if episodes is not None and episodes < 1:
        raise ValueError(f"record_episodes: episodes must be >= 1 or None, got {episodes}.")
    if max_steps < 1 or every < 1:
        raise ValueError(
            f"record_episodes: max_steps and every must be >= 1, got {max_steps} and {every}."
        )
    check_index(env, index)
    if not callable(act) and hasattr(act, "sample"):
        act = policy_act(act)
    render_obs = getattr(env, "render_obs", None) if final_frames else None

    obs = env.reset(config=config)
    frames = [env.render(index)]
    ended = 0
    for t in range(1, max_steps + 1):
        with torch.no_grad():
            action = act(obs)
        step = as_step(env.step(action))
        obs = step.obs
        done = False
        for flag in (step.terminated, step.truncated):
            if flag is not None and bool(flag.reshape(-1)[index]):
                done = True
        if done:
            ended += 1
            if callable(render_obs) and step.final_obs is not None:
                frames.append(render_obs(step.final_obs[index], index))
            if episodes is not None and ended >= episodes:
                break
        if t % every == 0:
            frames.append(env.render(index))
    return frames


def save_gif(frames: Sequence[np.ndarray], path: str | os.PathLike[str], fps: int = 30) -> Path:
    """Write ``frames`` as an animated GIF that loops forever.

    The file is written next to ``path`` under a temporary name and then
    renamed, so ``path`` never holds a partial GIF. Its parent folders are
    created. GIF stores frame durations in hundredths of a second, so
    ``fps`` above 50 plays at most at 50 frames per second in most viewers;
    Pillow merges identical consecutive frames into one, longer frame.

    Args:
        frames: RGB images ``[H, W, 3]`` uint8, all of one size.
        path: Where to write the GIF.
        fps: Frames per second.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: No frames, frames that are not ``[H, W, 3]`` uint8 or
            differ in size, or ``fps < 1``.
    """
    from PIL import Image

    if fps < 1:
        raise ValueError(f"save_gif: fps must be >= 1, got {fps}.")
    if len(frames) == 0:
        raise ValueError("save_gif: no frames to write.")
    shape = None
    images = []
    for i, frame in enumerate(frames):
        a = np.asarray(frame)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(
                f"save_gif: frame {i} has shape {a.shape} and dtype {a.dtype}; frames must be "
                "RGB [H, W, 3] uint8."
            )
        if shape is None:
            shape = a.shape
        elif a.shape != shape:
            raise ValueError(f"save_gif: frame {i} has shape {a.shape}, frame 0 {shape}.")
        images.append(Image.fromarray(a, "RGB"))
    return atomic_write(
        path,
        lambda f: images[0].save(
            f,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=max(1, round(1000 / fps)),
            loop=0,
            optimize=True,
        ),
    )


# -- helpers for the environments' render methods -----------------------------------


def check_index(env: Any, index: int) -> None:
    """Raise ``IndexError`` unless ``0 <= index < env.num_envs``."""
    n = env.num_envs
    if not 0 <= index < n:
        raise IndexError(
            f"{type(env).__name__}: cannot render sub-environment {index}; index must be in "
            f"[0, num_envs={n})."
        )


#: Drawn at this multiple of a frame's size, then reduced: smooth edges.
SUPERSAMPLE = 2


def canvas(width: int, height: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """A white RGB image ``SUPERSAMPLE`` times ``width`` x ``height`` and a
    drawing context on it (Pillow imported here, on first use)."""
    from PIL import Image, ImageDraw

    s = SUPERSAMPLE
    image = Image.new("RGB", (width * s, height * s), (255, 255, 255))
    return image, ImageDraw.Draw(image)


def to_frame(image: Image.Image) -> np.ndarray:
    """A :func:`canvas` image reduced to its frame size, as ``[H, W, 3]`` uint8."""
    return np.asarray(image.reduce(SUPERSAMPLE) if SUPERSAMPLE > 1 else image)
