"""Tests of the gymnasium adapter (rl8.envs.Gymnasium): spaces, the same-step
autoreset protocol, errors, seeding, training and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

gymnasium = pytest.importorskip("gymnasium")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from conftest import TINY  # noqa: E402
from gymnasium import spaces  # noqa: E402
from gymnasium.vector import AutoresetMode, SyncVectorEnv  # noqa: E402

from rl8.env import check_reset_output, check_step_output  # noqa: E402
from rl8.envs import Gymnasium  # noqa: E402
from rl8.specs import BoundedSpec, DiscreteSpec, UnboundedSpec  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
COUNTER_ID = "rl8_test/Counter-v0"


class Counter(gymnasium.Env):
    """Observation ``[t, episode, last action]``: ``t`` counts the steps of the
    episode (0 after a reset), ``episode`` the resets. Reward ``t``. The episode
    terminates after ``terminate_at`` steps, or never (``max_episode_steps``
    or ``truncate_at`` truncate it)."""

    observation_space = spaces.Box(-np.inf, np.inf, (3,), np.float64)
    action_space = spaces.Discrete(2)

    def __init__(self, terminate_at: int | None = None, truncate_at: int | None = None) -> None:
        self.terminate_at, self.truncate_at = terminate_at, truncate_at
        self.episode = -1

    def _obs(self, action: float) -> np.ndarray:
        return np.array([self.t, self.episode, action], dtype=np.float64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.episode = 0, self.episode + 1
        return self._obs(-1.0), {}

    def step(self, action):
        self.t += 1
        terminated = self.t == self.terminate_at
        truncated = self.t == self.truncate_at
        return self._obs(float(action)), float(self.t), terminated, truncated, {}


if COUNTER_ID not in gymnasium.registry:
    gymnasium.register(COUNTER_ID, entry_point=Counter)


class Spaces(gymnasium.Env):
    """Random observations from ``observation_space``; remembers the last
    observation and action."""

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space
        self.last_obs = self.last_action = None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        self.last_obs = self.observation_space.sample()
        return self.last_obs, {}

    def step(self, action):
        self.last_action = action
        self.last_obs = self.observation_space.sample()
        return self.last_obs, 0.0, False, False, {}


def vector_fn(make_env, mode=AutoresetMode.SAME_STEP):
    """An ``env_fn``: a SyncVectorEnv of ``make_env(i)`` for sub-env ``i``."""
    return lambda n: SyncVectorEnv([partial(make_env, i) for i in range(n)], autoreset_mode=mode)


def spaces_env(obs_space, act_space, num_envs=3) -> Gymnasium:
    return Gymnasium(num_envs, env_fn=vector_fn(lambda i: Spaces(obs_space, act_space)))


# ------------------------------------------------------------------ import


def test_import_rl8_envs_does_not_import_gymnasium() -> None:
    code = "import sys, rl8, rl8.envs; assert 'gymnasium' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ------------------------------------------------------------------ spaces


@pytest.mark.parametrize(
    ("id", "obs_spec", "action_spec"),
    [
        ("CartPole-v1", UnboundedSpec(4), DiscreteSpec(2)),
        ("Pendulum-v1", UnboundedSpec(3), BoundedSpec(1, low=-2.0, high=2.0)),
        ("FrozenLake-v1", UnboundedSpec(16), DiscreteSpec(4)),  # Discrete(16) obs, one-hot
    ],
)
def test_specs_of_registered_envs(id, obs_spec, action_spec) -> None:
    env = Gymnasium(2, id=id)
    try:
        assert env.observation_spec == obs_spec
        assert env.action_spec == action_spec
        assert env.autoreset_mode is AutoresetMode.SAME_STEP
    finally:
        env.close()


def test_box_observations_become_float32_of_their_shape() -> None:
    env = spaces_env(spaces.Box(-1, 1, (2, 3), np.float64), spaces.Discrete(2))
    assert env.observation_spec == UnboundedSpec(2, 3)
    obs = env.reset()
    assert obs.shape == (3, 2, 3) and obs.dtype == torch.float32
    expected = np.stack([e.last_obs for e in env.vec_env.envs])
    np.testing.assert_allclose(obs.numpy(), expected, rtol=1e-6)


def test_discrete_observations_are_one_hot() -> None:
    env = spaces_env(spaces.Discrete(5, start=2), spaces.Discrete(2), num_envs=16)
    assert env.observation_spec == UnboundedSpec(5)
    for k in range(2):
        obs = env.step(torch.zeros(16, 1, dtype=torch.int64)).obs if k else env.reset()
        assert obs.dtype == torch.float32 and obs.shape == (16, 5)
        assert torch.equal(obs.sum(-1), torch.ones(16))
        assert (obs.argmax(-1) + 2).tolist() == [e.last_obs for e in env.vec_env.envs]


def test_discrete_actions_go_to_each_sub_env_with_their_start() -> None:
    env = spaces_env(spaces.Box(-1, 1, (1,)), spaces.Discrete(3, start=-1))
    assert env.action_spec == DiscreteSpec(3)
    env.reset()
    env.step(torch.tensor([[0], [1], [2]]))
    assert [e.last_action for e in env.vec_env.envs] == [-1, 0, 1]


def test_multidiscrete_with_one_size_is_a_discrete_spec_of_its_shape() -> None:
    env = spaces_env(spaces.Box(-1, 1, (1,)), spaces.MultiDiscrete([4, 4], start=[0, 10]))
    assert env.action_spec == DiscreteSpec(4, shape=(2,))
    env.reset()
    env.step(torch.tensor([[0, 1], [2, 3], [3, 0]]))
    actions = [e.last_action.tolist() for e in env.vec_env.envs]
    assert actions == [[0, 11], [2, 13], [3, 10]]


def test_multidiscrete_with_different_sizes_is_refused() -> None:
    with pytest.raises(ValueError, match=r"different sizes \[2, 3\]"):
        spaces_env(spaces.Box(-1, 1, (1,)), spaces.MultiDiscrete([2, 3]))


def test_multibinary_actions() -> None:
    env = spaces_env(spaces.MultiBinary(4), spaces.MultiBinary(3))
    assert env.observation_spec == UnboundedSpec(4)
    assert env.action_spec == DiscreteSpec(2, shape=(3,))
    env.reset()
    env.step(torch.tensor([[0, 1, 1]] * 3))
    assert env.vec_env.envs[0].last_action.tolist() == [0, 1, 1]


@pytest.mark.parametrize(
    ("space", "spec"),
    [
        (spaces.Box(-2.0, 2.0, (2,), np.float32), BoundedSpec(2, low=-2.0, high=2.0)),
        (spaces.Box(-np.inf, np.inf, (2,), np.float32), UnboundedSpec(2)),
        (spaces.Box(np.float32([-np.inf, 0]), 1, dtype=np.float32), UnboundedSpec(2)),
        # Bounds that differ per element: the policy acts in [-1, 1], rescaled.
        (spaces.Box(np.float32([0, -4]), np.float32([1, 4])), BoundedSpec(2, low=-1, high=1)),
    ],
)
def test_box_actions(space, spec) -> None:
    env = spaces_env(spaces.Box(-1, 1, (1,)), space)
    assert env.action_spec == spec
    env.reset()
    env.step(torch.ones(3, 2))
    sent = env.vec_env.envs[0].last_action
    assert sent.dtype == space.dtype
    expected = [1.0, 4.0] if spec == BoundedSpec(2, low=-1, high=1) else [1.0, 1.0]
    np.testing.assert_allclose(sent, expected)


@pytest.mark.parametrize(
    ("obs_space", "act_space", "match"),
    [
        (spaces.Dict({"a": spaces.Box(0, 1)}), spaces.Discrete(2), "observation space Dict"),
        (spaces.Box(0, 1), spaces.Tuple([spaces.Discrete(2)] * 2), "action space Tuple"),
        (spaces.Box(0, 1), spaces.Text(4), "action space Text"),
        (spaces.Box(0, 1), spaces.Box(0, 5, (2,), np.int64), "action space Box"),
    ],
)
def test_unsupported_spaces_are_named(obs_space, act_space, match) -> None:
    with pytest.raises(ValueError, match=match) as info:
        spaces_env(obs_space, act_space)
    assert "supported" in str(info.value)


def test_a_single_discrete_choice_is_refused() -> None:
    with pytest.raises(ValueError, match=r"Discrete\(1\) offers 1 choice"):
        spaces_env(spaces.Box(0, 1), spaces.Discrete(1))


# ------------------------------------------------------------------ steps


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("id", ["CartPole-v1", "Pendulum-v1"])
def test_step_output_follows_the_protocol(id, device) -> None:
    n = 5
    env = Gymnasium(n, 16, id=id, device=device)
    obs = env.reset()
    check_reset_output(env, obs)
    assert obs.device.type == device
    spec = env.action_spec
    ended = 0
    for _ in range(60):
        if isinstance(spec, DiscreteSpec):
            action = torch.randint(0, spec.n, (n, *spec.shape), device=device)
        else:
            action = torch.rand(n, *spec.shape, device=device) * 4 - 2
        step = env.step(action)
        check_step_output(env, step)
        assert step.obs.dtype == step.final_obs.dtype == step.reward.dtype == torch.float32
        assert step.reward.shape == step.terminated.shape == step.truncated.shape == (n,)
        assert step.terminated.dtype == step.truncated.dtype == torch.bool
        for x in (step.obs, step.reward, step.terminated, step.truncated, step.final_obs):
            assert x.device.type == device
        done = step.terminated | step.truncated
        assert torch.equal(step.final_obs[~done], step.obs[~done])
        ended += int(done.sum())
    if id == "CartPole-v1":
        assert ended > 0  # random pushes drop the pole within ~20 steps
    env.close()


def run_counter(env: Gymnasium, lengths: list[int], steps: int, *, terminal: bool) -> None:
    """Step ``env`` (sub-env ``i`` ends its episodes after ``lengths[i]`` steps) and
    check every output against the same-step protocol, with no junk transitions."""
    n = env.num_envs
    obs = env.reset()
    assert obs[:, 0].tolist() == [0.0] * n
    episode = torch.zeros(n)
    for k in range(1, steps + 1):
        action = torch.tensor([(k + i) % 2 for i in range(n)]).reshape(n, 1)
        step = env.step(action)
        t = torch.tensor([float((k - 1) % length + 1) for length in lengths])  # steps taken
        ended = t == torch.tensor(lengths, dtype=torch.float32)
        # The reward is always the step's own (a junk reset transition would give 0).
        assert torch.equal(step.reward, t), k
        assert torch.equal(step.terminated if terminal else step.truncated, ended), k
        assert not (step.truncated if terminal else step.terminated).any(), k
        # The finished episode's last observation, with the action that led there ...
        assert torch.equal(step.final_obs[:, 0], t), k
        assert torch.equal(step.final_obs[:, 1], episode), k
        assert torch.equal(step.final_obs[:, 2], action.reshape(n).float()), k
        # ... and the next episode's first observation where one ended.
        episode += ended
        assert torch.equal(step.obs[:, 0], torch.where(ended, 0.0, t)), k
        assert torch.equal(step.obs[:, 1], episode), k
        assert torch.equal(step.obs[ended, 2], torch.full((int(ended.sum()),), -1.0)), k


@pytest.mark.parametrize("terminal", [False, True])
def test_same_step_autoreset_of_make_vec(terminal) -> None:
    # Truncated by gymnasium's TimeLimit (max_episode_steps), or terminated by the env.
    kwargs = {"terminate_at": 3} if terminal else {"max_episode_steps": 3}
    env = Gymnasium(4, id=COUNTER_ID, kwargs=kwargs)
    assert env.autoreset_mode is AutoresetMode.SAME_STEP
    run_counter(env, [3] * 4, 10, terminal=terminal)


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.DISABLED])
def test_user_vector_env_with_episodes_of_different_lengths(mode) -> None:
    lengths = [1, 2, 3, 5]
    env_fn = vector_fn(lambda i: Counter(truncate_at=lengths[i]), mode)
    env = Gymnasium(4, env_fn=env_fn)
    assert env.autoreset_mode is mode
    run_counter(env, lengths, 12, terminal=False)


def test_disabled_mode_resets_only_the_finished_sub_envs() -> None:
    env = Gymnasium(2, env_fn=vector_fn(lambda i: Counter(terminate_at=2 + i), "Disabled"))
    env.reset()
    env.step(torch.zeros(2, 1, dtype=torch.int64))
    step = env.step(torch.zeros(2, 1, dtype=torch.int64))
    assert step.terminated.tolist() == [True, False]
    assert [e.episode for e in env.vec_env.envs] == [1, 0]


def test_next_step_vector_env_is_refused_naming_the_fix() -> None:
    with pytest.raises(ValueError, match="NEXT_STEP") as info:
        Gymnasium(2, env_fn=vector_fn(lambda i: Counter(), AutoresetMode.NEXT_STEP))
    assert "SAME_STEP" in str(info.value)
    # CartPole-v1's own vectorized implementation autoresets in the next step too.
    with pytest.raises(ValueError, match="vectorization_mode='sync'"):
        Gymnasium(2, id="CartPole-v1", vectorization_mode="vector_entry_point")


def test_wrap_an_existing_vector_env() -> None:
    vec_env = gymnasium.make_vec(
        "CartPole-v1",
        num_envs=3,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
    )
    with pytest.raises(ValueError, match="num_envs=3"):
        Gymnasium.wrap(vec_env)(4)
    env = Gymnasium.wrap(vec_env)(3)
    assert env.vec_env is vec_env
    env.reset()
    check_step_output(env, env.step(torch.zeros(3, 1, dtype=torch.int64)))
    env.close()


def test_async_vectorization() -> None:
    env = Gymnasium(2, id="CartPole-v1", vectorization_mode="async")
    try:
        assert env.autoreset_mode is AutoresetMode.SAME_STEP
        env.reset()
        for _ in range(30):
            check_step_output(env, env.step(torch.randint(0, 2, (2, 1))))
    finally:
        env.close()


def test_first_reset_is_seeded_from_torch() -> None:
    def rollout(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        env = Gymnasium(3, id="CartPole-v1")
        obs = [env.reset()]
        obs += [env.step(torch.randint(0, 2, (3, 1))).obs for _ in range(30)]
        obs.append(env.reset())  # later resets continue the generators
        env.close()
        return torch.stack(obs)

    assert torch.equal(rollout(0), rollout(0))
    assert not torch.equal(rollout(0), rollout(1))


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one of id= .* and env_fn="),
        ({"id": "CartPole-v1", "env_fn": lambda n: None}, "exactly one of"),
        ({"id": "NoSuchEnv-v0"}, r"id='NoSuchEnv-v0'.*doesn't exist"),
        ({"id": "CartPole-v1", "kwargs": {"bogus": 1}}, "bogus"),
        ({"id": "CartPole-v1", "vectorization_mode": "threads"}, "threads"),
        ({"env_fn": lambda n: None}, "must return a gymnasium.vector.VectorEnv"),
        ({"env_fn": vector_fn(lambda i: Counter()), "kwargs": {"x": 1}}, "only used with id="),
    ],
)
def test_construction_errors(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        Gymnasium(2, **kwargs)


def test_env_fn_with_the_wrong_number_of_sub_envs() -> None:
    with pytest.raises(ValueError, match=r"3 sub-environments, but num_envs=2"):
        Gymnasium(2, env_fn=lambda n: vector_fn(lambda i: Counter())(3))


def test_rl8_config_must_be_empty_and_points_to_kwargs() -> None:
    with pytest.raises(ValueError, match=r"env\.kwargs"):
        Gymnasium(2, config={"gravity": 9.8}, id="CartPole-v1")
    with pytest.raises(ValueError, match="no rl8 parameters"):
        Gymnasium.validate_config({"gravity": 9.8})
    assert Gymnasium.validate_config({}) == {}
    env = Gymnasium(2, config={}, id="CartPole-v1")
    with pytest.raises(ValueError, match="no rl8 parameters"):
        env.reset(config={"gravity": 9.8})
    env.reset(config={})
    env.close()


# ------------------------------------------------------------------ training and CLI


def test_trainer_runs_on_a_gymnasium_env() -> None:
    from rl8 import Trainer

    trainer = Trainer(partial(Gymnasium, id="CartPole-v1"), num_envs=8, horizon=16, tracker=None)
    for _ in range(2):
        stats = trainer.step()
    assert stats["env/steps"] == 2 * 8 * 16
    assert np.isfinite(stats["losses/total"])
    trainer.algorithm.env.close()


def rl8_train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR",)}
    return subprocess.run(
        [sys.executable, "-m", "rl8.train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


# Episodes of 5 steps end within TINY's 16 steps per sub-env, so the episode statistics
# (and an objective built on them) have values.
@pytest.mark.parametrize(
    "overrides",
    [
        ["env.id=CartPole-v1", "+env.kwargs.max_episode_steps=5"],
        ["env.id=Pendulum-v1", "+env.kwargs.g=9.81", "+env.kwargs.max_episode_steps=5"],
    ],
)
def test_cli_trains_a_gymnasium_env(tmp_path, overrides) -> None:
    out = tmp_path / "run"
    args = ["env=gymnasium", *overrides, *TINY, "mlflow.enabled=false", f"hydra.run.dir={out}"]
    proc = rl8_train(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Trainer on Gymnasium" in proc.stdout + proc.stderr
    assert (out / "checkpoint.pt").is_file()


def test_cli_rejects_rl8_env_parameters(tmp_path) -> None:
    args = ["env=gymnasium", "+env.config.gravity=9.8", *TINY, "mlflow.enabled=false"]
    proc = rl8_train(*args, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode != 0
    assert "env.config: Gymnasium has no rl8 parameters" in proc.stderr
    assert "+env.kwargs.NAME=VALUE" in proc.stderr
