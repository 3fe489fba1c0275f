"""Policy models: the interfaces and the default MLP and LSTM models."""

from .base import Model, ModelFactory, RecurrentModel, RecurrentModelFactory, State
from .lstm import LSTMModel
from .mlp import MLPModel

__all__ = [
    "LSTMModel",
    "MLPModel",
    "Model",
    "ModelFactory",
    "RecurrentModel",
    "RecurrentModelFactory",
    "State",
]
