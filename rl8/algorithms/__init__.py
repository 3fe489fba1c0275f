"""The PPO core: hyperparameters, the PPO math, the rollout buffer, feedforward
and recurrent PPO.

The names are imported lazily (PEP 562): ``rl8.algorithms.config`` (the
hyperparameter declaration, which the app's config schema is built from)
does not import torch, so composing a config does not either.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._base import AlgorithmBase, AlgorithmState
    from .buffer import Minibatch, RolloutBuffer, RolloutSamples
    from .config import AlgorithmConfig, RecurrentAlgorithmConfig
    from .feedforward import Algorithm
    from .ppo import gae, ppo_loss
    from .recurrent import RecurrentAlgorithm

#: Exported name -> the submodule defining it.
_EXPORTS = {
    "Algorithm": ".feedforward",
    "AlgorithmBase": "._base",
    "AlgorithmConfig": ".config",
    "AlgorithmState": "._base",
    "Minibatch": ".buffer",
    "RecurrentAlgorithm": ".recurrent",
    "RecurrentAlgorithmConfig": ".config",
    "RolloutBuffer": ".buffer",
    "RolloutSamples": ".buffer",
    "gae": ".ppo",
    "ppo_loss": ".ppo",
}

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
        if name in _EXPORTS:
            value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
            globals()[name] = value
            return value
        from .._removed import removed

        raise removed(__name__, name)

    def __dir__() -> list[str]:
        return sorted({*globals(), *_EXPORTS})
