"""``TrainConfig``: build a trainer from a flat config (Python, JSON or YAML)."""

from __future__ import annotations

import dataclasses
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..algorithms.config import RECURRENT_FIELDS, AlgorithmConfig, RecurrentAlgorithmConfig
from ..env import EnvFactory
from ..errors import HyperparameterError, did_you_mean
from ..tracking import AUTO, TrackerArg
from .base import RecurrentTrainer, Trainer

__all__ = ["TrainConfig", "import_path"]

_CLS_FIELDS = ("env_cls", "model_cls", "distribution_cls", "optimizer_cls")


def import_path(path: str, field: str = "path") -> Any:
    """Import ``"package.module.Name"``.

    Raises:
        ImportError: naming ``field`` and ``path`` when it cannot be imported.
    """
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ImportError(f"{field}={path!r} is not a dotted path like 'package.module.Name'.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ImportError(f"{field}={path!r}: cannot import module {module_name!r} ({e}).") from e
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ImportError(f"{field}={path!r}: module {module_name!r} has no {attr!r}.") from None


@dataclass(kw_only=True)
class TrainConfig(RecurrentAlgorithmConfig):
    """Everything needed to build a trainer: the environment class, whether
    the policy is recurrent, and every hyperparameter of
    :class:`~rl8.algorithms.RecurrentAlgorithmConfig` (the one declaration of
    the hyperparameters, their defaults and units).

    ``env_cls`` is the only positional argument. A field set to ``None`` gets
    its default. ``seq_len`` and ``seqs_per_state_reset`` are for
    ``recurrent=True`` only.

    Example:
        >>> from rl8 import DiscreteDummyEnv, TrainConfig
        >>> trainer = TrainConfig(DiscreteDummyEnv, num_envs=64, horizon=8).build()
    """

    #: Environment class (or factory), built as
    #: ``env_cls(num_envs, horizon, config=env_config, device=device)``.
    env_cls: EnvFactory = field(kw_only=False)
    #: Build a :class:`RecurrentTrainer` (truncated BPTT) instead of a :class:`Trainer`.
    #: Default false.
    recurrent: bool = False
    #: rl8 1.0.0 form: hyperparameters as one mapping, merged into the fields
    #: (a name also set as a field, to another value, is an error). Default None.
    algorithm_config: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        known = RecurrentAlgorithmConfig.fields()
        defaults = RecurrentAlgorithmConfig()
        for name, value in (self.algorithm_config or {}).items():
            if name not in known:
                raise TypeError(
                    f"algorithm_config has no field {name!r}{did_you_mean(name, known)}."
                )
            if getattr(self, name) not in (getattr(defaults, name), value):
                raise TypeError(f"{name} is set both as a field and in algorithm_config.")
            setattr(self, name, value)
            if value is not None:
                self.unset_fields = self.unset_fields - {name}

    def validate(self) -> TrainConfig:
        """Check every field (the trainer's own checks, run before anything is built).

        Raises:
            HyperparameterError: naming the first invalid field.
        """
        if not callable(self.env_cls):
            raise HyperparameterError(
                "env_cls", self.env_cls, "must be an environment class (or a factory)"
            )
        if self.recurrent:
            RecurrentAlgorithmConfig.validate(self)
            return self
        AlgorithmConfig.validate(self)
        defaults = RecurrentAlgorithmConfig()
        for name in RECURRENT_FIELDS:
            if getattr(self, name) != getattr(defaults, name):
                raise HyperparameterError(
                    name, getattr(self, name), "only recurrent models use it: set recurrent=True"
                )
        return self

    def algorithm_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the trainer's algorithm (every hyperparameter;
        ``None`` for those left to the environment or the library default)."""
        cls = RecurrentAlgorithmConfig if self.recurrent else AlgorithmConfig
        given = self.given()
        return {name: given[name] for name in cls.fields()}

    def build(  # type: ignore[override]  # not AlgorithmConfig.build(env_cls)
        self, *, tracker: TrackerArg = AUTO
    ) -> Trainer | RecurrentTrainer:
        """Validate, then instantiate a :class:`Trainer` (or a
        :class:`RecurrentTrainer` when ``recurrent``).

        Args:
            tracker: ``"auto"`` (default): a new MLflow run of the trainer's own
                on MLflow's default store; ``None``: no tracking; or the
                :class:`~rl8.tracking.MlflowTracker` run to log into.

        Raises:
            HyperparameterError: an invalid field (named).
        """
        self.validate()
        trainer_cls = RecurrentTrainer if self.recurrent else Trainer
        return trainer_cls(self.env_cls, tracker=tracker, **self.algorithm_kwargs())

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Read a JSON (``.json``) or YAML (anything else) file whose
        ``*_cls`` fields are dotted import paths.

        Raises:
            ImportError: A ``*_cls`` path cannot be imported (the path is named).
            ValueError: Unknown fields or a file that is not a mapping.
        """
        path = Path(path)
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of TrainConfig fields.")
        known = [f.name for f in dataclasses.fields(cls)]
        for name in data:
            if name not in known:
                raise ValueError(
                    f"{path}: TrainConfig has no field {name!r}{did_you_mean(name, known)}."
                )
        nested = data.get("algorithm_config") or {}
        for name in _CLS_FIELDS:
            if isinstance(data.get(name), str):
                data[name] = import_path(data[name], name)
            if isinstance(nested.get(name), str):
                nested[name] = import_path(nested[name], f"algorithm_config.{name}")
        return cls(**data)
