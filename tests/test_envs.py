"""Tests of the built-in environments (rl8.envs)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

from rl8.envs import CartPole, Memory, Pendulum
from rl8.envs.pendulum import angle_normalize
from rl8.specs import BoundedSpec, DiscreteSpec, UnboundedSpec

# ../shared/anchors beside the checkout (as in CI): the reference CartPole.
ANCHOR = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "cartpole_env.py"
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def random_action(env, n: int) -> torch.Tensor:
    spec = env.action_spec
    if isinstance(spec, DiscreteSpec):
        return torch.randint(0, spec.n, (n, *spec.shape), device=env.device)
    return torch.empty(n, *spec.shape, device=env.device).uniform_(spec.low, spec.high)


def load_anchor():
    spec = importlib.util.spec_from_file_location("_anchor_cartpole_env", ANCHOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return module


# ------------------------------------------------------------------ generic


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("cls", "obs_dim", "action_spec"),
    [
        (CartPole, 4, DiscreteSpec(2)),
        (Pendulum, 3, BoundedSpec(1, low=-2.0, high=2.0)),
        (Memory, 2, DiscreteSpec(2)),
    ],
)
def test_shapes_and_dtypes(cls, obs_dim, action_spec, device):
    n = 7
    env = cls(n, 32, device=device)
    assert env.observation_spec == UnboundedSpec(obs_dim)
    assert env.action_spec == action_spec
    obs = env.reset()
    assert obs.shape == (n, obs_dim) and obs.dtype == torch.float32
    assert obs.device.type == device
    for _ in range(5):
        obs, reward, *_ = env.step(random_action(env, n))
        assert obs.shape == (n, obs_dim) and obs.dtype == torch.float32
        assert reward.shape == (n,) and reward.dtype == torch.float32
        assert obs.device.type == device and reward.device.type == device
        assert torch.isfinite(obs).all() and torch.isfinite(reward).all()
    # Flat [num_envs] actions work too.
    env.step(random_action(env, n).reshape(n))


@pytest.mark.parametrize("cls", [CartPole, Pendulum, Memory])
def test_params_documented_and_valid(cls):
    assert cls.params
    for name, p in cls.params.items():
        assert p.doc, name
        p.validate(name, p.default)


@pytest.mark.parametrize("cls", [CartPole, Pendulum, Memory])
def test_unknown_param_raises(cls):
    with pytest.raises(ValueError, match="bogus"):
        cls(4, config={"bogus": 1.0})
    env = cls(4)
    with pytest.raises(ValueError, match="bogus"):
        env.reset(config={"bogus": 1.0})


@pytest.mark.parametrize(
    ("cls", "name", "value"),
    [
        (CartPole, "length", -1.0),
        (CartPole, "tau", 5.0),
        (Pendulum, "dt", 0.0),
        (Pendulum, "episode_steps", 0),
        (Memory, "delay", 0),
        (Memory, "delay", 65),
    ],
)
def test_out_of_bounds_param_raises(cls, name, value):
    with pytest.raises(ValueError, match=name):
        cls(4, config={name: value})
    env = cls(4)
    with pytest.raises(ValueError, match=name):
        env.reset(config={name: value})
    with pytest.raises(ValueError, match=name):
        env.reset(config={name: torch.full((4,), float(value))})


@pytest.mark.parametrize(
    ("cls", "name"),
    [(Pendulum, "episode_steps"), (Memory, "delay"), (CartPole, "max_episode_steps")],
)
def test_integer_params_reject_fractions(cls, name):
    with pytest.raises(ValueError, match=name):
        cls(4, config={name: 3.5})
    with pytest.raises(ValueError, match=name):
        cls(4, config={name: torch.tensor([2.0, 3.0, 3.5, 4.0])})
    cls(4, config={name: torch.tensor([2.0, 3.0, 3.0, 4.0])})


# ----------------------------------------------------------------- CartPole


@pytest.mark.skipif(not ANCHOR.exists(), reason="anchor cartpole_env.py not available")
def test_cartpole_matches_anchor_dynamics():
    anchor = load_anchor()
    n = 64
    torch.manual_seed(0)
    env = CartPole(n)
    env.reset()
    # gymnasium's reward (1 on the failing step too) and time limit.
    ref = anchor.BatchedCartPole(n, seed=0, max_episode_steps=500, fail_reward=1.0)
    ref.state = env.state.clone()
    gen = torch.Generator().manual_seed(1)
    falls = 0
    for _ in range(150):
        action = torch.randint(0, 2, (n, 1), generator=gen)
        ref_obs, ref_reward, terminated, truncated, ref_final = ref.step_with_final(action)
        obs, reward, term, trunc, final_obs, _ = env.step(action)
        assert torch.equal(reward, ref_reward)
        assert torch.equal(env.fell, terminated) and torch.equal(term, terminated)
        assert torch.equal(trunc, truncated)
        torch.testing.assert_close(obs[~terminated], ref_obs[~terminated], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(final_obs, ref_final, rtol=1e-6, atol=1e-6)
        falls += int(terminated.sum())
        ref.state = env.state.clone()  # resync the sub-envs both reset (differently)
    assert falls > 0  # random actions do make poles fall


def test_cartpole_fall_terminates_and_resets_in_place():
    env = CartPole(3)
    env.reset()
    env.state = torch.tensor(
        [[0.0, 0.0, 0.0, 0.0], [2.39, 1.0, 0.0, 0.0], [0.0, 0.0, 0.2, 1.0]]
    )  # sub-env 1 leaves the track, sub-env 2 falls over
    env.episode_steps = torch.tensor([5, 10, 20])
    obs, reward, terminated, truncated, final_obs, _ = env.step(torch.tensor([[1], [1], [1]]))
    assert reward.tolist() == [1.0, 1.0, 1.0]  # gymnasium's: the failing step counts
    assert env.fell.tolist() == terminated.tolist() == [False, True, True]
    assert truncated.tolist() == [False, False, False]
    assert final_obs[1, 0] > 2.4 and final_obs[2, 2] > 0.2  # where they failed
    assert env.episode_steps.tolist() == [6, 0, 0]
    assert env.last_episode_steps.tolist() == [0, 11, 21]
    assert obs[1:].abs().max() <= CartPole.reset_bound  # fresh initial states
    assert obs[0, 0] == 0.0 and obs[0, 1] > 0  # sub-env 0 just moves on
    torch.testing.assert_close(obs, env.state)


def test_cartpole_time_limit_truncates_at_500_steps_and_can_be_lifted():
    env = CartPole(4)
    env.reset()
    for t in range(600):
        env.state = torch.zeros(4, 4)  # hold the pole upright
        _, reward, terminated, truncated, *_ = env.step(torch.tensor([[0], [1], [0], [1]]))
        assert bool((reward == 1).all()) and not terminated.any()
        assert truncated.tolist() == [t == 499] * 4
    assert env.episode_steps.tolist() == [100] * 4
    assert env.last_episode_steps.tolist() == [500] * 4
    env = CartPole(4, config={"max_episode_steps": 0})  # no time limit
    env.reset()
    for _ in range(600):
        env.state = torch.zeros(4, 4)
        *_, truncated, _, _ = env.step(torch.tensor([[0], [1], [0], [1]]))
        assert not truncated.any()
    assert env.episode_steps.tolist() == [600] * 4


def test_cartpole_per_env_tensor_params():
    n = 4
    torch.manual_seed(0)
    config = {"gravity": torch.tensor([9.8, 9.8, 1.0, 20.0]), "force_mag": 5.0}
    env = CartPole(n, config=config)
    env.reset()
    assert env.param("gravity").tolist() == pytest.approx([9.8, 9.8, 1.0, 20.0])
    start = torch.tensor([0.01, 0.0, 0.03, 0.0]).expand(n, 4).clone()
    env.state = start.clone()
    for _ in range(10):
        obs, *_ = env.step(torch.ones(n, 1, dtype=torch.int64))
    assert torch.equal(obs[0], obs[1])  # same params, same trajectory
    assert not torch.allclose(obs[1], obs[2]) and not torch.allclose(obs[2], obs[3])
    # The pole starts tilted right (theta > 0): more gravity pulls it further over.
    assert obs[3, 2] > obs[1, 2] > obs[2, 2]
    # A reset config overrides one key on top of the constructor's config.
    env.reset(config={"gravity": 9.8})
    assert env.param("gravity").tolist() == pytest.approx([9.8] * n)
    assert env.param("force_mag").tolist() == pytest.approx([5.0] * n)


def test_cartpole_shape_mismatch_raises():
    with pytest.raises(ValueError, match="gravity"):
        CartPole(4, config={"gravity": torch.full((3,), 9.8)})


# ----------------------------------------------------------------- Pendulum


def test_pendulum_reward_and_dynamics_match_formula():
    n = 6
    env = Pendulum(n)
    env.reset()
    th = torch.tensor([0.0, 0.5, -3.0, 3.1, 1.0, -1.0])
    thdot = torch.tensor([0.0, -2.0, 7.9, 1.0, -8.0, 3.0])
    u = torch.tensor([0.0, 1.5, -2.0, 5.0, -7.0, 0.3])  # 5 and -7 get clipped to +-2
    env.state = torch.stack((th, thdot), dim=-1)
    obs, reward, *_ = env.step(u.unsqueeze(-1))
    uc = u.clamp(-2.0, 2.0)
    norm = ((th + math.pi) % (2 * math.pi)) - math.pi
    expected = -(norm**2 + 0.1 * thdot**2 + 0.001 * uc**2)
    torch.testing.assert_close(reward, expected)
    g, m, length, dt = 10.0, 1.0, 1.0, 0.05
    newthdot = (
        thdot + (3 * g / (2 * length) * torch.sin(th) + 3.0 / (m * length**2) * uc) * dt
    ).clamp(-8.0, 8.0)
    newth = th + newthdot * dt
    expected_obs = torch.stack((torch.cos(newth), torch.sin(newth), newthdot), dim=-1)
    torch.testing.assert_close(obs, expected_obs, rtol=1e-5, atol=1e-5)
    assert obs[:, 2].abs().max() <= 8.0
    assert (reward <= 0).all()


def test_pendulum_angle_normalize():
    x = torch.tensor([0.0, math.pi - 0.01, math.pi + 0.01, -7.0, 20.0])
    y = angle_normalize(x)
    assert (y >= -math.pi).all() and (y < math.pi).all()
    torch.testing.assert_close(torch.cos(y), torch.cos(x))
    torch.testing.assert_close(torch.sin(y), torch.sin(x), rtol=1e-5, atol=1e-5)


def test_pendulum_restarts_after_episode_steps():
    n = 3
    env = Pendulum(n, config={"episode_steps": torch.tensor([2.0, 3.0, 200.0])})
    obs = env.reset()
    assert obs[:, 2].abs().max() <= 1.0  # thdot starts in [-1, 1]
    phase = env.episode_steps.clone()
    assert ((phase >= 0) & (phase < torch.tensor([2, 3, 200]))).all()  # staggered start
    env.episode_steps = torch.zeros(n, dtype=torch.int64)  # count from 0 to test the limit
    zero = torch.zeros(n, 1)
    env.step(zero)
    assert env.episode_steps.tolist() == [1, 1, 1]
    env.step(zero)
    assert env.episode_steps.tolist() == [0, 2, 2]
    env.step(zero)
    assert env.episode_steps.tolist() == [1, 0, 3]


def test_pendulum_custom_max_torque_sets_spec():
    env = Pendulum(2, config={"max_torque": 1.0})
    assert env.action_spec == BoundedSpec(1, low=-1.0, high=1.0)
    env.reset()
    env.state = torch.zeros(2, 2)
    _, reward, *_ = env.step(torch.tensor([[3.0], [-3.0]]))
    torch.testing.assert_close(reward, torch.full((2,), -0.001))


# ------------------------------------------------------------------- Memory


def test_memory_episode_structure():
    env = Memory(1, config={"delay": 3})
    env.reset()
    env.phase = torch.tensor([0])
    env.cue = torch.tensor([True])
    obs = env._obs()
    assert obs.tolist() == [[1.0, 0.0]]
    rewards = []
    for t in range(1, 4):
        obs, r, *_ = env.step(torch.tensor([[0]]))
        rewards.append(float(r))
        assert obs.tolist() == ([[0.0, 1.0]] if t == 3 else [[0.0, 0.0]])
    obs, r, *_ = env.step(torch.tensor([[1]]))  # the right answer, at the query step
    assert rewards == [0.0, 0.0, 0.0] and float(r) == 1.0
    assert obs[0, 0].abs() == 1.0 and obs[0, 1] == 0.0  # new episode, new cue shown
    assert env.max_mean_reward == pytest.approx(0.25)


@pytest.mark.parametrize("delay", [1, 4, 7])
def test_memory_oracle_gets_max_reward_and_constant_gets_half(delay):
    torch.manual_seed(0)
    n = 512
    period = delay + 1
    env = Memory(n, config={"delay": delay})
    assert env.max_mean_reward == pytest.approx(1 / period)
    obs = env.reset()
    assert len(set(env.phase.tolist())) == period  # staggered phases
    remembered = torch.zeros(n, dtype=torch.bool)
    oracle, constant = [], []
    const_env = Memory(n, config={"delay": delay})
    const_env.reset()
    for t in range(period * 11):
        remembered = torch.where(obs[:, 0] != 0, obs[:, 0] > 0, remembered)
        obs, r, *_ = env.step(remembered.long().unsqueeze(-1))
        _, rc = const_env.step(torch.ones(n, 1, dtype=torch.int64))
        if t >= period:  # after one full period every sub-env has seen its cue
            oracle.append(r)
            constant.append(rc)
    assert torch.stack(oracle).mean().item() == pytest.approx(env.max_mean_reward)
    assert torch.stack(constant).mean().item() == pytest.approx(0.5 / period, rel=0.1)


def test_memory_per_env_delay():
    env = Memory(2, config={"delay": torch.tensor([1.0, 3.0])})
    assert env.max_mean_reward == pytest.approx((1 / 2 + 1 / 4) / 2)
    env.reset()
    env.phase = torch.tensor([0, 0])
    queries = []
    for _ in range(8):
        obs, *_ = env.step(torch.zeros(2, 1, dtype=torch.int64))
        queries.append(obs[:, 1].tolist())
    assert [q[0] for q in queries] == [1.0, 0.0] * 4
    assert [q[1] for q in queries] == [0.0, 0.0, 1.0, 0.0] * 2
