"""Policy models: the interfaces and the default MLP and LSTM models."""

from typing import TYPE_CHECKING, Any

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


if not TYPE_CHECKING:  # (kept from type checkers, which would accept any name)

    def __getattr__(name: str) -> Any:
        from .._removed import removed

        raise removed(__name__, name)
