"""The rollout buffer, the named loss stats and the one policy class, with exact values."""

from __future__ import annotations

import pytest
import torch

from rl8.algorithms import Algorithm, RecurrentAlgorithm, RolloutBuffer
from rl8.algorithms.ppo import STAT_KEYS, LossStats, PPOLoss, normalize_advantages
from rl8.env import ContinuousDummyEnv, DiscreteDummyEnv, Step
from rl8.models import LSTMModel
from rl8.policies import Policy, RecurrentPolicy
from rl8.specs import DiscreteSpec, UnboundedSpec

OBS, ACT = UnboundedSpec(1), DiscreteSpec(2)
CPU = torch.device("cpu")


def _buffer(rewards, values, nonterminal, **kwargs) -> RolloutBuffer:
    n, t = len(rewards), len(rewards[0])
    buffer = RolloutBuffer(n, t, OBS, ACT, CPU, **kwargs)
    buffer.rewards.copy_(torch.tensor(rewards))
    buffer.values.copy_(torch.tensor(values))
    buffer.terminated.copy_(torch.tensor(nonterminal) == 0)
    return buffer


@pytest.mark.parametrize(
    ("gamma", "gae_lambda", "nonterminal", "advantages"),
    [
        # t=2: 3 + 0.5*4 - 0.5 = 4.5; t=1 (terminal): 2 - 1 = 1; t=0: 1 + 0.5*1 - 1 + 0.25*1
        (0.5, 0.5, [1.0, 0.0, 1.0], [0.75, 1.0, 4.5]),
        # no terminal: t=1: 2 + 0.5*0.5 - 1 + 0.25*4.5 = 2.375; t=0: 0.5 + 0.25*2.375
        (0.5, 0.5, [1.0, 1.0, 1.0], [1.09375, 2.375, 4.5]),
        # lambda 0: one-step TD errors
        (0.5, 0.0, [1.0, 1.0, 1.0], [0.5, 1.25, 4.5]),
        # gamma 1, lambda 1, terminal at the end: Monte Carlo return minus value
        (1.0, 1.0, [1.0, 1.0, 0.0], [5.0, 4.0, 2.5]),
    ],
)
def test_gae_and_returns(gamma, gae_lambda, nonterminal, advantages) -> None:
    values = [1.0, 1.0, 0.5, 4.0]
    buffer = _buffer([[1.0, 2.0, 3.0]], [values], [nonterminal])
    samples = buffer.compute_returns_and_advantages(
        gamma, gae_lambda, normalize_rewards=False, normalize_advantages=False
    )
    assert samples.advantages.tolist() == advantages
    assert samples.returns.tolist() == [a + v for a, v in zip(advantages, values)]


def test_reward_scaling_uses_the_running_discounted_return() -> None:
    # Discounted returns with gamma 0.5, restarting after the terminal step 1:
    # 1, 0.5 * 1 + 2 = 2.5, then 3. The last one carries over to the next horizon.
    buffer = _buffer([[1.0, 2.0, 3.0]], [[0.0] * 4], [[1.0, 0.0, 1.0]])
    scaled = buffer.compute_returns_and_advantages(
        0.5, 1.0, normalize_rewards=True, normalize_advantages=False
    )
    scale = torch.tensor([1.0, 2.5, 3.0]).std()
    unscaled = _buffer([[1.0, 2.0, 3.0]], [[0.0] * 4], [[1.0, 0.0, 1.0]])
    unscaled.rewards /= scale
    expected = unscaled.compute_returns_and_advantages(
        0.5, 1.0, normalize_rewards=False, normalize_advantages=False
    )
    assert torch.equal(scaled.advantages, expected.advantages)
    assert buffer.running_return.tolist() == [3.0]
    # The next horizon continues from 3: 0.5 * 3 + 1 = 2.5, ...
    buffer.compute_returns_and_advantages(
        0.5, 1.0, normalize_rewards=True, normalize_advantages=False
    )
    assert buffer.running_return.tolist() == [3.0]  # restarted at the terminal again
    # An environment reset restarts it.
    buffer.start(torch.zeros(1, 1))
    assert buffer.running_return.tolist() == [0.0]


def test_advantage_normalization() -> None:
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    std = torch.tensor(1.8708287477)  # sqrt(17.5 / 5), the sample std of 1..6
    torch.testing.assert_close(normalize_advantages(x), (x - 3.5) / (std + 1e-8))
    buffer = _buffer([[1.0, 2.0, 3.0]], [[0.0] * 4], [[1.0, 1.0, 1.0]])
    samples = buffer.compute_returns_and_advantages(
        1.0, 0.0, normalize_rewards=False, normalize_advantages=True
    )
    torch.testing.assert_close(samples.advantages, torch.tensor([-1.0, 0.0, 1.0]))


def test_add_and_start_carry_the_last_observation() -> None:
    buffer = RolloutBuffer(2, 2, OBS, ACT, CPU)
    buffer.start(torch.tensor([[1.0], [2.0]]))
    for t in range(2):
        obs = torch.tensor([[10.0 + t], [20.0 + t]])
        reward, terminated = torch.tensor([t, -t]), torch.tensor([False, t == 1])
        step = Step(obs, reward, terminated)
        buffer.add(t, torch.tensor([[1], [0]]), torch.tensor([-0.5, -0.7]), step)
    assert buffer.obs[:, :, 0].tolist() == [[1.0, 10.0, 11.0], [2.0, 20.0, 21.0]]
    assert buffer.rewards.tolist() == [[0.0, 1.0], [0.0, -1.0]]
    assert buffer.terminated.tolist() == [[False, False], [False, True]]
    assert buffer.has_episodes and buffer.final_obs is None
    assert buffer.actions.tolist() == [[[1], [1]], [[0], [0]]]
    buffer.start(None)
    assert buffer.obs[:, 0, 0].tolist() == [11.0, 21.0]


def test_recurrent_minibatches_are_whole_sequences_with_their_start_state() -> None:
    # 2 envs, horizon 4, sequences of 2: samples (env, seq) in env-major order
    # 0 = (0, 0), 1 = (0, 1), 2 = (1, 0), 3 = (1, 1).
    state = (torch.zeros(1, 2, 3),)
    buffer = RolloutBuffer(2, 4, OBS, ACT, CPU, seq_len=2, state=state)
    steps = torch.arange(8.0).reshape(2, 4)  # env * 4 + t
    buffer.obs[:, :-1, 0] = steps
    buffer.logp.copy_(steps)
    for t in (0, 2):  # state [layers 1, envs 2, hidden 3]: 10 * env + t
        buffer.add_state(t, (torch.tensor([0.0, 10.0])[None, :, None].expand(1, 2, 3) + t,))
    samples = buffer.compute_returns_and_advantages(
        1.0, 1.0, normalize_rewards=False, normalize_advantages=False
    )
    assert buffer.num_samples == len(samples) == 4
    mb = samples.minibatch(torch.tensor([1, 2]))
    assert mb.obs[..., 0].tolist() == [[2.0, 3.0], [4.0, 5.0]]
    assert mb.logp.tolist() == [2.0, 3.0, 4.0, 5.0]  # flattened to transitions
    assert mb.states is not None
    # Sequence (0, 1) started at t=2 of env 0; (1, 0) at t=0 of env 1.
    assert mb.states[0][0, :, 0].tolist() == [2.0, 10.0]


def test_feedforward_minibatches_are_transitions() -> None:
    buffer = RolloutBuffer(2, 3, OBS, ACT, CPU)
    buffer.logp.copy_(torch.arange(6.0).reshape(2, 3))
    samples = buffer.compute_returns_and_advantages(
        1.0, 1.0, normalize_rewards=False, normalize_advantages=False
    )
    assert len(samples) == 6
    mb = samples.minibatch(slice(2, 5))
    assert mb.states is None
    assert mb.logp.tolist() == [2.0, 3.0, 4.0]
    assert mb.obs.shape == (3, 1)


def test_loss_stats_are_read_by_name() -> None:
    def loss(*terms: float) -> PPOLoss:
        return PPOLoss(*(torch.tensor(x) for x in terms))

    mb = LossStats(CPU)
    mb.add(loss(1.0, 2.0, 3.0, 4.0, 0.5, 0.25), 0.75)
    mb.add(loss(3.0, 2.0, 3.0, 4.0, 1.5, 0.25), 0.25)
    assert mb["monitors/kl_div"].item() == 0.75
    assert mb["losses/total"].item() == 1.5
    totals = LossStats(CPU)
    totals += mb
    totals += mb
    assert totals.mean(2) == dict(zip(STAT_KEYS, [1.5, 2.0, 3.0, 4.0, 0.75, 0.25]))


def test_one_policy_class_for_both_kinds_of_model() -> None:
    assert issubclass(RecurrentPolicy, Policy)
    assert isinstance(RecurrentPolicy(OBS, ACT).model, LSTMModel)
    policy = Policy(OBS, ACT, model_cls=LSTMModel)  # recurrent with the base class too
    state = policy.model.init_state(4, "cpu")
    torch.manual_seed(0)
    actions, logp, values, state = policy.sample(torch.zeros(4, 1), state)
    assert (actions.shape, logp.shape, values.shape) == ((4, 1), (4,), (4,))
    dist, values = policy.evaluate(torch.zeros(4, 3, 1), state)
    assert values.shape == (12,)
    assert dist.logp(torch.zeros(12, 1, dtype=torch.long)).shape == (12,)
    actions, logp = Policy(OBS, ACT).sample(torch.zeros(4, 1), deterministic=True)
    assert (actions.shape, logp.shape) == ((4, 1), (4,))


@pytest.mark.parametrize("env_cls", [DiscreteDummyEnv, ContinuousDummyEnv])
@pytest.mark.parametrize("algorithm_cls", [Algorithm, RecurrentAlgorithm])
def test_both_algorithms_fill_the_buffer(algorithm_cls, env_cls) -> None:
    algorithm = algorithm_cls(env_cls, num_envs=4, horizon=8, device="cpu")
    stats = algorithm.collect()
    buffer = algorithm.buffer
    assert stats["env/steps"] == buffer.num_transitions == 32
    # The value of every observation, including the bootstrap one, is filled in.
    assert (buffer.values != 0).all()
    assert stats["rewards/mean"] == torch.std_mean(buffer.rewards)[1].item()
    last = buffer.obs[:, -1].clone()
    algorithm.step()
    algorithm.collect()  # continues from the last observation (no reset)
    assert torch.equal(buffer.obs[:, 0], last)
