"""The PPO core: hyperparameters, the PPO math, the rollout buffer, feedforward
and recurrent PPO."""

from typing import TYPE_CHECKING, Any

from ._base import AlgorithmBase, AlgorithmState
from .buffer import Minibatch, RolloutBuffer, RolloutSamples
from .config import AlgorithmConfig, RecurrentAlgorithmConfig
from .feedforward import Algorithm
from .ppo import gae, ppo_loss
from .recurrent import RecurrentAlgorithm

__all__ = [
    "Algorithm",
    "AlgorithmBase",
    "AlgorithmConfig",
    "AlgorithmState",
    "Minibatch",
    "RecurrentAlgorithm",
    "RecurrentAlgorithmConfig",
    "RolloutBuffer",
    "RolloutSamples",
    "gae",
    "ppo_loss",
]


if not TYPE_CHECKING:  # (kept from type checkers, which would accept any name)

    def __getattr__(name: str) -> Any:
        from .._removed import removed

        raise removed(__name__, name)
