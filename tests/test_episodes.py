"""Episode ends: truncation bootstrapping, episode statistics, the built-in
time limits, with hand-computed values."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from rl8 import Trainer
from rl8.algorithms import Algorithm, RecurrentAlgorithm, RolloutBuffer
from rl8.algorithms.episodes import EpisodeStats
from rl8.env import Env, Step, check_step_output
from rl8.envs import CartPole, Pendulum
from rl8.specs import DiscreteSpec, UnboundedSpec

CPU = torch.device("cpu")


def test_gae_bootstraps_a_truncated_episode_from_its_final_observation() -> None:
    # One sub-env, 4 steps, gamma = lambda = 0.5, reward 1 per step, values of
    # obs_0..obs_4 = 1..5. Step 1 is truncated (the value of the observation it
    # ended on is 10); step 2 is terminated. By hand, from the back:
    #   t=3: 1 + 0.5 * 5 - 4                        = -0.5
    #   t=2: terminated, no bootstrap: 1 - 3        = -2     (recursion cut)
    #   t=1: truncated, bootstraps 10: 1 + 5 - 2    =  4     (recursion cut)
    #   t=0: 1 + 0.5 * 2 - 1 + 0.25 * 4             =  2
    buffer = RolloutBuffer(1, 4, UnboundedSpec(1), DiscreteSpec(2), CPU)
    obs = torch.zeros(1, 1)
    for t in range(4):
        step = Step(
            obs,
            torch.ones(1),
            torch.tensor([t == 2]),
            torch.tensor([t == 1]),
            final_obs=obs,
        )
        buffer.add(t, torch.zeros(1, 1, dtype=torch.int64), torch.zeros(1), step)
    buffer.values.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]]))
    assert buffer.final_values is not None
    buffer.final_values[0, 1] = 10.0
    samples = buffer.compute_returns_and_advantages(
        0.5, 0.5, normalize_rewards=False, normalize_advantages=False
    )
    assert samples.advantages.tolist() == [2.0, 4.0, -2.0, -0.5]
    assert samples.returns.tolist() == [3.0, 6.0, 1.0, 3.5]


class Countdown(Env):
    """Observation: steps left in the episode (3, 2, 1); truncated after 3 steps,
    terminated early when action 1 is taken with 1 step left. Reward: the step
    number in the episode (1, 2, 3)."""

    def __init__(
        self,
        num_envs: int,
        horizon: int | None = None,
        /,
        *,
        config: Any = None,
        device: Any = "cpu",
    ) -> None:
        super().__init__(num_envs, horizon, config=config, device=device)
        self.observation_spec = UnboundedSpec(1)
        self.action_spec = DiscreteSpec(2)

    def reset(self, *, config: Any = None) -> torch.Tensor:
        self.t = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        return self._obs()

    def _obs(self) -> torch.Tensor:
        return (3 - self.t).float().unsqueeze(-1)

    def step(self, action: torch.Tensor) -> Step:
        self.t = self.t + 1
        final_obs = self._obs()
        truncated = self.t >= 3
        terminated = (self.t == 2) & (action.reshape(-1) == 1)
        reward = self.t.float()
        self.t = torch.where(truncated | terminated, 0, self.t)
        return Step(self._obs(), reward, terminated, truncated, final_obs=final_obs)


def test_feedforward_collect_bootstraps_with_the_value_of_the_final_observation() -> None:
    algo = Algorithm(Countdown, num_envs=4, horizon=6)
    algo.collect()
    buffer = algo.buffer
    assert buffer.final_obs is not None and buffer.final_values is not None
    truncated = buffer.truncated
    assert truncated.any()
    # Truncated episodes end on the observation 0 (no step left); the next
    # observation is already the new episode's first, 3.
    assert (buffer.final_obs[truncated] == 0).all()
    assert (buffer.obs[:, 1:][truncated] == 3).all()
    expected = algo.policy.model.value(torch.zeros(1, 1))
    torch.testing.assert_close(
        buffer.final_values[truncated], expected.expand(int(truncated.sum()))
    )
    assert (buffer.final_values[~truncated] == 0).all()


def test_recurrent_collect_computes_final_values_where_episodes_are_cut() -> None:
    algo = RecurrentAlgorithm(Countdown, num_envs=4, horizon=6, seq_len=3)
    algo.collect()
    buffer = algo.buffer
    assert buffer.final_values is not None
    assert (buffer.final_values[buffer.truncated] != 0).all()
    algo.step()  # the update runs on them


def _reference_episodes(rewards: list[torch.Tensor], dones: list[torch.Tensor]) -> list[tuple]:
    """Per step, per sub-env: (end order, return, length) of every finished episode."""
    n = rewards[0].shape[0]
    ret, length, out = [0.0] * n, [0] * n, []
    for r, d in zip(rewards, dones):
        for t in range(r.shape[1]):
            for i in range(n):
                ret[i] += float(r[i, t])
                length[i] += 1
                if d[i, t]:
                    out.append((len(out), ret[i], length[i]))
                    ret[i], length[i] = 0.0, 0
    return out


def test_episode_stats_match_a_step_by_step_count() -> None:
    gen = torch.Generator().manual_seed(0)
    stats = EpisodeStats(5, CPU, window=10)
    assert math.isnan(float(stats.stats()["episodes/return_mean"]))
    rewards = [torch.randn(5, 7, generator=gen) for _ in range(6)]
    dones = [torch.rand(5, 7, generator=gen) < 0.3 for _ in range(6)]
    for r, d in zip(rewards, dones):
        stats.update(r, d)
    episodes = _reference_episodes(rewards, dones)
    last = episodes[-10:]
    got = stats.stats()
    assert int(got["episodes/count"]) == 10
    assert float(got["episodes/return_mean"]) == pytest.approx(sum(e[1] for e in last) / 10)
    assert float(got["episodes/length_mean"]) == pytest.approx(sum(e[2] for e in last) / 10)
    # An env reset drops the running episodes; the window keeps the finished ones.
    stats.reset()
    assert stats.running_length.tolist() == [0] * 5
    assert int(stats.stats()["episodes/count"]) == 10


def test_cartpole_truncates_at_its_time_limit_and_reports_episodes() -> None:
    env = CartPole(3, config={"max_episode_steps": 4})
    env.reset()
    for t in range(8):
        step = env.step(torch.tensor([[0], [1], [0]]))
        check_step_output(env, step)
        assert isinstance(step, Step) and step.truncated is not None
        assert step.truncated.tolist() == [t % 4 == 3] * 3
        assert step.reward.tolist() == [1.0] * 3
        if t % 4 == 3:  # the final observation is the old episode's, obs a new one
            assert step.final_obs is not None
            assert (step.final_obs - step.obs).abs().max() > 0.05
            assert step.obs.abs().max() <= 0.05
    trainer = Trainer(
        CartPole, num_envs=8, horizon=10, env_config={"max_episode_steps": 5}, tracker=None
    )
    stats = trainer.step()
    # Pole and cart cannot fail within 5 steps: every episode is truncated at 5.
    assert stats["episodes/length_mean"] == 5.0
    assert stats["episodes/return_mean"] == 5.0
    assert stats["episodes/count"] == 16.0


def test_pendulum_episodes_last_its_episode_steps() -> None:
    trainer = Trainer(
        Pendulum, num_envs=4, horizon=10, env_config={"episode_steps": 5}, tracker=None
    )
    stats = trainer.step()
    assert stats["episodes/length_mean"] == 5.0
    assert stats["episodes/count"] == 8.0
    assert -16.3 * 5 <= stats["episodes/return_mean"] <= 0.0


def test_envs_without_episodes_report_no_episode_stats() -> None:
    from rl8.env import DiscreteDummyEnv

    stats = Trainer(DiscreteDummyEnv, num_envs=4, horizon=4, tracker=None).step()
    assert not any(k.startswith("episodes/") for k in stats)


def test_eval_reports_the_episodes_that_ended_during_the_evaluation() -> None:
    trainer = Trainer(Countdown, num_envs=4, horizon=6, tracker=None)
    trainer.step()
    stats = trainer.eval()
    # 6 steps of 4 sub-envs: 2 episodes each (deterministic policy, any action).
    assert stats["eval/episodes/count"] == 8.0
    assert stats["eval/episodes/length_mean"] in (2.0, 3.0, 2.5)


def test_env_stats_are_averaged_over_the_horizon() -> None:
    class WithStats(Countdown):
        def step(self, action: torch.Tensor) -> Step:
            out = super().step(action)
            return out._replace(stats={"left": out.obs[:, 0]})

    trainer = Trainer(WithStats, num_envs=2, horizon=3, tracker=None)
    stats = trainer.step()
    # The mean over steps and sub-envs of the observations after each step.
    obs = trainer.algorithm.buffer.obs[:, 1:]
    assert 2.0 <= stats["env/left"] <= 3.0
    assert stats["env/left"] == pytest.approx(float(obs.mean()))


def test_finished_episodes_survive_a_checkpoint_round_trip() -> None:
    torch.manual_seed(0)
    trainer = Trainer(CartPole, num_envs=16, horizon=32, tracker=None)
    for _ in range(3):
        stats = trainer.step()
    restored = Trainer(CartPole, num_envs=16, horizon=32, tracker=None)
    restored.load_state_dict(trainer.state_dict())
    got = {k: float(v) for k, v in restored.algorithm.episodes.stats().items()}
    assert got["episodes/count"] == stats["episodes/count"] > 0
    assert got["episodes/return_mean"] == stats["episodes/return_mean"]
