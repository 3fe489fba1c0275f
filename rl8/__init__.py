"""rl8: a fast PPO core for batched PyTorch environments, with a Hydra
experiment layer (``python -m rl8.train``).

The top-level names are imported lazily (PEP 562), so importing a light
submodule such as ``rl8.optuna_sweeper`` (which Hydra's plugin discovery
does in every Hydra app) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._removed import RemovedModuleFinder

__version__ = "2.0.0.dev0"

_EXPORTS = {
    "Algorithm": "rl8.algorithms",
    "AlgorithmConfig": "rl8.algorithms",
    "RecurrentAlgorithm": "rl8.algorithms",
    "RecurrentAlgorithmConfig": "rl8.algorithms",
    "And": "rl8.conditions",
    "HitsLowerBound": "rl8.conditions",
    "HitsUpperBound": "rl8.conditions",
    "Plateaus": "rl8.conditions",
    "StopsDecreasing": "rl8.conditions",
    "StopsIncreasing": "rl8.conditions",
    "ContinuousDummyEnv": "rl8.env",
    "DiscreteDummyEnv": "rl8.env",
    "Env": "rl8.env",
    "EnvFactory": "rl8.env",
    "GenericTrainerBase": "rl8.trainers",
    "RecurrentTrainer": "rl8.trainers",
    "TrainConfig": "rl8.trainers",
    "Trainer": "rl8.trainers",
    "load_policy": "rl8.inference",
}

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
    "load_policy",
]

RemovedModuleFinder.install()

if TYPE_CHECKING:
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
    from .inference import load_policy
    from .trainers import GenericTrainerBase, RecurrentTrainer, TrainConfig, Trainer


#: Submodules reachable as attributes of ``rl8`` without importing them first
#: (rl8 1.0.0 imported them eagerly, so ``import rl8; rl8.models.Model`` worked).
_SUBMODULES = frozenset(
    {
        "algorithms",
        "checkpoint",
        "conditions",
        "distributions",
        "env",
        "envs",
        "export",
        "models",
        "policies",
        "randomization",
        "schedulers",
        "specs",
        "tracking",
        "trainers",
    }
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"rl8.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        from ._removed import removed

        raise removed("rl8", name)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS, *_SUBMODULES])
