"""Trainers (abstractions over the PPO algorithms, with MLflow tracking)
and ``TrainConfig``."""

from .base import GenericTrainerBase, RecurrentTrainer, Trainer, TrainerState
from .config import TrainConfig

__all__ = ["GenericTrainerBase", "RecurrentTrainer", "TrainConfig", "Trainer", "TrainerState"]
