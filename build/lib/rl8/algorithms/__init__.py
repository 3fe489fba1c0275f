"""The PPO core: hyperparameters, the PPO math, feedforward and recurrent PPO."""

from ._base import AlgorithmBase, AlgorithmState
from .config import AlgorithmConfig, RecurrentAlgorithmConfig
from .feedforward import Algorithm
from .ppo import gae, ppo_loss
from .recurrent import RecurrentAlgorithm

__all__ = [
    "Algorithm",
    "AlgorithmBase",
    "AlgorithmConfig",
    "AlgorithmState",
    "RecurrentAlgorithm",
    "RecurrentAlgorithmConfig",
    "gae",
    "ppo_loss",
]
