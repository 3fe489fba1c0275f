"""Names rl8 1.0.0 had and this version does not, with what to use instead.

Module ``__getattr__`` hooks raise :func:`removed` for them, so old code
fails with an ``AttributeError`` that names the replacement (see
docs/migration.md).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

__all__ = ["REMOVED", "RemovedModuleFinder", "removed"]

_DOC = "See docs/migration.md."

#: module -> {name: what to use instead}
REMOVED: dict[str, dict[str, str]] = {
    "rl8": {
        "data": (
            "rl8.data (DataKeys, the *Stats TypedDicts, AlgorithmHparams) was removed: "
            "environments return (obs, reward[, terminated]) tuples, so there are no "
            "DataKeys; stats are plain dict[str, float]; hyperparameters are "
            "rl8.AlgorithmConfig (algorithm.config)"
        ),
        "nn": (
            "rl8.nn was removed: the PPO math is rl8.algorithms.gae and "
            "rl8.algorithms.ppo_loss; for layers (MLP, attention, Perceiver) use torch.nn "
            "in a custom model (rl8.models.Model)"
        ),
        "views": (
            "rl8.views (view requirements over TensorDict buffers) was removed: models get "
            "observation tensors; recurrent models (rl8.models.RecurrentModel) are trained "
            "with truncated BPTT over seq_len steps"
        ),
    },
    "rl8.algorithms": {
        "GenericAlgorithmBase": "use rl8.algorithms.AlgorithmBase (not generic)",
    },
    "rl8.models": {
        "DefaultDiscreteModel": "use rl8.models.MLPModel (the default for every action spec)",
        "DefaultContinuousModel": "use rl8.models.MLPModel (the default for every action spec)",
        "DefaultDiscreteRecurrentModel": "use rl8.models.LSTMModel",
        "DefaultContinuousRecurrentModel": "use rl8.models.LSTMModel",
        "GenericModelBase": "subclass rl8.models.Model or rl8.models.RecurrentModel",
        "GenericModel": "subclass rl8.models.Model",
        "GenericRecurrentModel": "subclass rl8.models.RecurrentModel",
    },
    "rl8.policies": {
        "GenericPolicyBase": "use rl8.policies.Policy or rl8.policies.RecurrentPolicy",
        "MLflowPolicyModel": (
            "no replacement: save trainer.state_dict() (rl8.checkpoint) or log the "
            "model with mlflow.pytorch yourself"
        ),
        "MLflowRecurrentPolicyModel": (
            "no replacement: save trainer.state_dict() (rl8.checkpoint) or log the "
            "model with mlflow.pytorch yourself"
        ),
    },
    "rl8.schedulers": {
        name: "use rl8.schedulers.schedule_value(points, env_steps, kind)"
        for name in ("Scheduler", "ConstantScheduler", "InterpScheduler", "StepScheduler")
    },
    "rl8.env": {
        "GenericEnv": "subclass rl8.env.Env (specs are rl8.specs, not generic)",
        "DummyEnv": "use rl8.env.DiscreteDummyEnv or rl8.env.ContinuousDummyEnv",
    },
    "rl8.distributions": {
        "TorchDistributionWrapper": "subclass rl8.distributions.Distribution",
    },
    "rl8.conditions": {
        "TrainStats": "stats are plain dict[str, float]",
        "TrainStatKey": "stats keys are plain str",
    },
}


def removed(module: str, name: str) -> AttributeError:
    """The ``AttributeError`` for ``module.name``: what replaces a name of rl8
    1.0.0, or the usual message for any other name."""
    hint = REMOVED.get(module, {}).get(name)
    if hint is None:
        return AttributeError(f"module {module!r} has no attribute {name!r}")
    return AttributeError(
        f"module {module!r} has no attribute {name!r} (it was in rl8 1.0.0): {hint}. {_DOC}"
    )


class RemovedModuleFinder:
    """Makes ``import rl8.data`` (``rl8.nn``, ``rl8.views``) fail with a
    ``ModuleNotFoundError`` that says what replaces the module. It is last on
    ``sys.meta_path``, so it only sees names no other finder found."""

    @classmethod
    def find_spec(
        cls, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        hint = REMOVED.get(package, {}).get(name) if package == "rl8" else None
        if hint is None:
            return None
        raise ModuleNotFoundError(
            f"No module named {fullname!r} (it was in rl8 1.0.0): {hint}. {_DOC}", name=fullname
        )

    @classmethod
    def install(cls) -> None:
        """Append the finder to ``sys.meta_path`` (once)."""
        if cls not in sys.meta_path:
            sys.meta_path.append(cls)  # type: ignore[arg-type]
