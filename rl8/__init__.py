"""rl8: a fast PPO core for batched PyTorch environments, with a Hydra
experiment layer (``python -m rl8.train``)."""

from .algorithms import Algorithm, AlgorithmConfig, RecurrentAlgorithm, RecurrentAlgorithmConfig
from .conditions import (
    And,
    HitsLowerBound,
    HitsUpperBound,
    Plateaus,
    StopsDecreasing,
    StopsIncreasing,
)
from .env import ContinuousDummyEnv, DiscreteDummyEnv, Env, EnvFactory
from .trainers import GenericTrainerBase, RecurrentTrainer, TrainConfig, Trainer

__version__ = "2.0.0.dev0"

__all__ = [
    "Algorithm",
    "AlgorithmConfig",
    "And",
    "ContinuousDummyEnv",
    "DiscreteDummyEnv",
    "Env",
    "EnvFactory",
    "GenericTrainerBase",
    "HitsLowerBound",
    "HitsUpperBound",
    "Plateaus",
    "RecurrentAlgorithm",
    "RecurrentAlgorithmConfig",
    "RecurrentTrainer",
    "StopsDecreasing",
    "StopsIncreasing",
    "TrainConfig",
    "Trainer",
]
