"""Tests of rendering (rl8.render): the frames of CartPole, Pendulum and the
gymnasium adapter, recording episodes and writing GIFs."""

from __future__ import annotations

import math
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rl8.env import DiscreteDummyEnv
from rl8.envs import CartPole, Pendulum
from rl8.policies import Policy, RecurrentPolicy
from rl8.render import can_render, check_can_render, record_episodes, save_gif

POLE = (202, 152, 101)  # CartPole's pole
ROD = (204, 77, 77)  # Pendulum's rod


def mask(frame: np.ndarray, colour: tuple[int, int, int], tol: int = 12) -> np.ndarray:
    """Pixels of ``frame`` within ``tol`` of ``colour`` in every channel."""
    return (np.abs(frame.astype(np.int16) - np.array(colour)) <= tol).all(-1)


def centre_column(m: np.ndarray) -> float:
    return float(np.nonzero(m)[1].mean())


def cartpole(num_envs: int = 1, **config: object) -> CartPole:
    env = CartPole(num_envs, config=config)
    env.reset()
    return env


def set_state(env: CartPole, index: int = 0, x: float = 0.0, theta: float = 0.0) -> None:
    env.state[index] = torch.tensor([x, 0.0, theta, 0.0])


def test_cartpole_frame() -> None:
    env = cartpole(2)
    frame = env.render()
    assert frame.shape == (300, 400, 3) and frame.dtype == np.uint8
    assert env.render(1).shape == frame.shape
    with pytest.raises(IndexError, match="num_envs=2"):
        env.render(2)


def test_cartpole_pole_leans_with_theta() -> None:
    env = cartpole()
    set_state(env, theta=0.2)  # theta > 0: leaning right
    right = env.render()
    set_state(env, theta=-0.2)
    left = env.render()
    assert not np.array_equal(left, right)
    assert centre_column(mask(right, POLE)) > 200 + 5  # its middle: 8 px right
    assert centre_column(mask(left, POLE)) < 200 - 5
    set_state(env, theta=0.0)
    assert abs(centre_column(mask(env.render(), POLE)) - 200) < 2


def test_cartpole_cart_moves_with_x() -> None:
    env = cartpole()
    # 400 px for the 4.8 m track: x = 1 m is 83 px right of the centre; the
    # cart is 33 x 20 px around the track (row 225).
    probe = (230, 283)  # below the track line, inside the cart at x = 1
    set_state(env, x=1.0)
    at_right = env.render()
    set_state(env, x=-1.0)
    at_left = env.render()
    assert (at_right[probe] < 30).all()  # black
    assert (at_left[probe] > 225).all()  # white background
    mirrored = (230, 400 - 1 - probe[1])
    assert (at_left[mirrored] < 30).all()


def test_cartpole_longer_pole_has_more_pixels() -> None:
    env = cartpole(2, length=torch.tensor([0.25, 0.75]))
    set_state(env, 0)
    set_state(env, 1)
    short, long = mask(env.render(0), POLE).sum(), mask(env.render(1), POLE).sum()
    assert long > 2.5 * short > 0
    # The parameters of a reset's config are drawn too.
    env.reset(config={"length": 1.0})
    set_state(env, 0)
    assert mask(env.render(0), POLE).sum() > long


def test_pendulum_frame() -> None:
    env = Pendulum(3, config={"l": torch.tensor([0.5, 1.0, 1.5])})
    env.reset()
    env.state[:, 0] = 0.5  # positive angles: counterclockwise, the rod to the left
    frames = [env.render(i) for i in range(3)]
    assert all(f.shape == (300, 300, 3) and f.dtype == np.uint8 for f in frames)
    counts = [mask(f, ROD).sum() for f in frames]
    assert counts[0] < counts[1] < counts[2]
    assert centre_column(mask(frames[1], ROD)) < 150 - 10
    env.state[1, 0] = -0.5
    assert centre_column(mask(env.render(1), ROD)) > 150 + 10


def test_pendulum_draws_the_last_torque() -> None:
    env = Pendulum(3)
    env.reset()
    env.state[:] = torch.tensor([math.pi, 0.0])  # hanging down: the arrow is clear

    def arrow(frame: np.ndarray) -> np.ndarray:
        dark = (frame < 80).all(-1)
        dark[140:160, 140:160] = False  # not the axle
        return dark

    assert arrow(env.render(0)).sum() == 0  # an episode's first state: no torque yet
    env.step(torch.tensor([[2.0], [1.0], [-1.0]]))
    full, half, back = (arrow(env.render(i)) for i in range(3))
    assert full.sum() > half.sum() > 0
    # From the top, counterclockwise (to the left) for a positive torque.
    assert centre_column(half) < 150 - 10
    assert centre_column(back) > 150 + 10


def test_can_render() -> None:
    assert can_render(CartPole(1)) and can_render(Pendulum(1))
    dummy = DiscreteDummyEnv(1)
    assert not can_render(dummy)
    with pytest.raises(TypeError, match="no render"):
        check_can_render(dummy)
    with pytest.raises(TypeError, match="no render"):
        record_episodes(dummy, lambda obs: obs, episodes=1)


def alternate(obs: torch.Tensor) -> torch.Tensor:
    """Push left, right, left, ... (keeps a cart-pole up for many steps)."""
    alternate.t = getattr(alternate, "t", 0) + 1  # type: ignore[attr-defined]
    return torch.full((obs.shape[0], 1), alternate.t % 2)  # type: ignore[attr-defined]


def test_record_episodes_stops_after_n_episodes() -> None:
    env = CartPole(3, config={"max_episode_steps": 5})
    frames = record_episodes(env, alternate, episodes=2, index=1)
    # reset, steps 1-4, the state episode 1 ended on, its restart, steps 6-9,
    # the state episode 2 ended on.
    assert len(frames) == 1 + 4 + 2 + 4 + 1
    assert all(f.shape == (300, 400, 3) for f in frames)
    assert int(env.episode_steps[1]) == 0  # stopped right after an episode end
    without_finals = record_episodes(env, alternate, episodes=2, final_frames=False)
    assert len(without_finals) == 1 + 4 + 1 + 4
    # Every other step; the end frames are always there.
    # (steps 2, 4, 6 and 8, counted from the reset: no frame of the restart at 5).
    assert len(record_episodes(env, alternate, episodes=2, every=2)) == 1 + 2 + 1 + 2 + 1
    # A step budget, and no episode count.
    assert len(record_episodes(env, alternate, episodes=None, max_steps=3)) == 1 + 3
    assert len(record_episodes(env, alternate, episodes=10, max_steps=7)) == 1 + 4 + 2 + 2


def test_record_episodes_end_frame_is_the_final_state() -> None:
    env = CartPole(1, config={"max_episode_steps": 3})
    seen = []

    def act(obs: torch.Tensor) -> torch.Tensor:
        seen.append(obs.clone())
        return torch.ones(1, 1, dtype=torch.int64)

    frames = record_episodes(env, act, episodes=1)
    assert len(frames) == 1 + 2 + 1 and len(seen) == 3
    # The last frame is the state the third step reached, not the restart.
    probe = CartPole(1)  # no time limit
    probe.reset()
    probe.state[0] = seen[-1][0]
    final = probe.step(torch.ones(1, 1, dtype=torch.int64)).obs[0]
    assert np.array_equal(frames[-1], env.render_obs(final))
    assert not np.array_equal(frames[-1], env.render())


def test_record_episodes_with_pendulum_and_policies() -> None:
    env = Pendulum(2, config={"episode_steps": 4})
    policy = Policy(env.observation_spec, env.action_spec)
    frames = record_episodes(env, policy, episodes=1)  # an rl8 Policy acts itself
    assert len(frames) == 1 + 3 + 1 and frames[0].shape == (300, 300, 3)
    recurrent = RecurrentPolicy(env.observation_spec, env.action_spec)
    assert len(record_episodes(env, recurrent, episodes=2)) == 1 + 3 + 2 + 3 + 1


def test_record_episodes_checks_arguments() -> None:
    env = CartPole(2)
    with pytest.raises(IndexError):
        record_episodes(env, alternate, index=2)
    with pytest.raises(ValueError, match="episodes"):
        record_episodes(env, alternate, episodes=0)
    with pytest.raises(ValueError, match="every"):
        record_episodes(env, alternate, every=0)


def frames_of(n: int, size: tuple[int, int] = (24, 32)) -> list[np.ndarray]:
    """``n`` distinct frames: a bar moving right."""
    frames = []
    for i in range(n):
        f = np.full((*size, 3), 255, np.uint8)
        f[:, i * 3 : i * 3 + 3] = (200, 30, 30)
        frames.append(f)
    return frames


def test_save_gif(tmp_path: Path) -> None:
    from PIL import Image

    path = save_gif(frames_of(5), tmp_path / "sub" / "run.gif", fps=25)
    assert path == tmp_path / "sub" / "run.gif"
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 5 and im.size == (32, 24)
        assert im.info["loop"] == 0 and im.info["duration"] == 40
        im.seek(4)
        assert np.abs(np.asarray(im.convert("RGB"), np.int16) - frames_of(5)[4]).max() < 8
    assert sorted(p.name for p in path.parent.iterdir()) == ["run.gif"]  # no temporary file
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # as any new file


def test_save_gif_of_an_env(tmp_path: Path) -> None:
    from PIL import Image

    env = CartPole(1, config={"max_episode_steps": 4})
    frames = record_episodes(env, alternate, episodes=1)
    with Image.open(save_gif(frames, tmp_path / "cartpole.gif")) as im:
        assert im.size == (400, 300) and 2 <= im.n_frames <= len(frames)


def test_save_gif_errors_keep_the_old_file(tmp_path: Path) -> None:
    path = save_gif(frames_of(2), tmp_path / "a.gif")
    before = path.read_bytes()
    with pytest.raises(ValueError, match="no frames"):
        save_gif([], path)
    with pytest.raises(ValueError, match=r"frame 1 .*uint8"):
        save_gif([frames_of(1)[0], np.zeros((24, 32, 3), np.float32)], path)
    with pytest.raises(ValueError, match="frame 1 has shape"):
        save_gif([frames_of(1)[0], np.zeros((8, 8, 3), np.uint8)], path)
    with pytest.raises(ValueError, match="fps"):
        save_gif(frames_of(2), path, fps=0)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif"]


def test_import_does_not_import_pillow() -> None:
    code = (
        "import sys, rl8, rl8.envs, rl8.render; "
        "env = rl8.envs.CartPole(1); env.reset(); assert 'PIL' not in sys.modules; "
        "env.render(); assert 'PIL' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- the gymnasium adapter ---------------------------------------------------------------

PAINTED_ID = "rl8_test/Painted-v0"


def _painted_cls() -> type:
    """A gymnasium environment drawing its step count as a grey level (no
    pygame), 8 x 6 pixels; episodes end after 3 steps."""
    import gymnasium
    from gymnasium import spaces

    class Painted(gymnasium.Env):  # type: ignore[misc]
        metadata = {"render_modes": ["rgb_array"], "render_fps": 30}
        observation_space = spaces.Box(0, 10, (1,), np.float32)
        action_space = spaces.Discrete(2)

        def __init__(self, render_mode: str | None = None) -> None:
            self.render_mode = render_mode
            self.t = 0

        def reset(self, *, seed=None, options=None):  # type: ignore[no-untyped-def]
            super().reset(seed=seed)
            self.t = int(self.np_random.integers(0, 2))  # sub-envs differ
            return np.array([self.t], np.float32), {}

        def step(self, action):  # type: ignore[no-untyped-def]
            self.t += 1
            return np.array([self.t], np.float32), 1.0, self.t >= 3, False, {}

        def render(self) -> np.ndarray:
            return np.full((6, 8, 3), 40 * self.t, np.uint8)

    return Painted


@pytest.fixture
def gymnasium_env_cls() -> type:
    gymnasium = pytest.importorskip("gymnasium")
    from rl8.envs import Gymnasium

    if PAINTED_ID not in gymnasium.registry:
        gymnasium.register(PAINTED_ID, entry_point=_painted_cls())
    return Gymnasium  # type: ignore[no-any-return]


def test_gymnasium_renders_its_sub_environments(gymnasium_env_cls: type) -> None:
    env = gymnasium_env_cls(4, id=PAINTED_ID, render_mode="rgb_array")
    try:
        assert env.render_mode == "rgb_array" and can_render(env)
        with pytest.raises(RuntimeError, match=r"reset\(\)"):
            env.render()
        obs = env.reset()
        for i in range(4):
            frame = env.render(i)
            assert frame.shape == (6, 8, 3) and frame.dtype == np.uint8
            assert frame[0, 0, 0] == 40 * int(obs[i, 0])
        with pytest.raises(IndexError):
            env.render(4)
        frames = record_episodes(env, lambda o: torch.zeros(4, 1, dtype=torch.int64), index=2)
        assert 2 <= len(frames) <= 4  # no end frame: gymnasium resets inside its step
    finally:
        env.close()
    # Async vector environments render all their sub-environments at once.
    env = gymnasium_env_cls(2, id=PAINTED_ID, render_mode="rgb_array", vectorization_mode="async")
    try:
        obs = env.reset()
        assert env.render(1)[0, 0, 0] == 40 * int(obs[1, 0])
    finally:
        env.close()


def test_gymnasium_without_render_mode_fails_clearly(gymnasium_env_cls: type) -> None:
    env = gymnasium_env_cls(2, id=PAINTED_ID)
    try:
        env.reset()
        assert env.render_mode is None and not can_render(env)
        with pytest.raises(RuntimeError, match=r"render_mode='rgb_array'.*\+env\.render_mode"):
            env.render()
        with pytest.raises(ValueError, match=r"render_mode='rgb_array'"):
            record_episodes(env, lambda o: torch.zeros(2, 1, dtype=torch.int64))
    finally:
        env.close()
    with pytest.raises(ValueError, match="render_mode"):
        gymnasium_env_cls(
            2, id=PAINTED_ID, render_mode="rgb_array", kwargs={"render_mode": "human"}
        )
    import gymnasium

    def env_fn(n: int) -> object:
        return gymnasium.make_vec(PAINTED_ID, num_envs=n)

    with pytest.raises(ValueError, match="only used with id="):
        gymnasium_env_cls(2, env_fn=env_fn, render_mode="rgb_array")


def test_gymnasium_cartpole_v1(gymnasium_env_cls: type) -> None:
    env = gymnasium_env_cls(2, id="CartPole-v1", render_mode="rgb_array")
    try:
        env.reset()
        try:
            import pygame  # noqa: F401
        except ImportError:
            pytest.skip(
                "gymnasium draws CartPole-v1 with pygame, which is not installed "
                '(pip install "gymnasium[classic-control]")'
            )
        frame = env.render(1)
        assert frame.shape == (400, 600, 3) and frame.dtype == np.uint8
        assert len(record_episodes(env, alternate, episodes=1, max_steps=20)) >= 2
    finally:
        env.close()
