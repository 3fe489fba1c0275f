"""Fast learning checks on the built-in environments (CPU, fixed seeds,
default hyperparameters). Thresholds leave margin below what the defaults
reach; the full criteria and timings are in scripts/solve.py."""

from __future__ import annotations

import pytest
import torch

from rl8 import RecurrentTrainer, Trainer
from rl8.envs import CartPole, Memory, Pendulum

pytestmark = pytest.mark.slow


def train_until(trainer, target: float, max_env_steps: int, window: int = 1) -> float:
    """Step until the mean ``rewards/mean`` of the last ``window`` steps
    reaches ``target`` or the budget runs out; return that mean."""
    history: list[float] = []
    while trainer.state["env/steps"] < max_env_steps:
        history.append(trainer.step()["rewards/mean"])
        recent = history[-window:]
        if len(recent) == window and sum(recent) / window >= target:
            break
    return sum(history[-window:]) / len(history[-window:])


def test_cartpole_balances() -> None:
    torch.manual_seed(0)
    trainer = Trainer(CartPole, tracker=None)
    assert train_until(trainer, 0.995, 2_000_000) >= 0.995


def test_pendulum_swings_up() -> None:
    torch.manual_seed(0)
    trainer = Trainer(Pendulum, tracker=None)
    # Pendulum episodes last 200 steps; average over 7 horizons (224 steps).
    assert train_until(trainer, -2.0, 1_500_000, window=7) >= -2.0


def test_memory_needs_recurrence() -> None:
    max_reward = Memory(1).max_mean_reward
    torch.manual_seed(0)
    lstm = RecurrentTrainer(Memory, tracker=None)
    assert train_until(lstm, 0.9 * max_reward, 1_000_000) >= 0.9 * max_reward
    torch.manual_seed(0)
    mlp = Trainer(Memory, tracker=None)
    steps = lstm.state["env/steps"]
    reached = train_until(mlp, 0.9 * max_reward, steps, window=3)
    assert reached <= 0.6 * max_reward  # chance is 0.5 of the maximum
