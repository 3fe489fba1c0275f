"""The config schema of ``python -m rl8.train``.

:class:`TrainAppConf` is registered in Hydra's ConfigStore as
``rl8_train_schema`` and is the first entry of ``conf/train.yaml``'s defaults
list, so an unknown key or a value of the wrong type fails while the config
is composed. Its ``trainer`` node is generated from the library's one
declaration of the PPO hyperparameters
(:class:`rl8.algorithms.RecurrentAlgorithmConfig`). Validation and building
are in :mod:`rl8.build`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, make_dataclass
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

__all__ = [
    "SCHEMA_NAME",
    "TRAINER_FIELDS",
    "CheckpointConf",
    "EnvConf",
    "EvalConf",
    "GuardConf",
    "MlflowConf",
    "ModelConf",
    "ProgressConf",
    "RecordConf",
    "StopConf",
    "StopMode",
    "TrainAppConf",
    "TrainerConf",
    "TrialConf",
    "register",
]

#: Name of the schema in Hydra's ConfigStore (first entry of train.yaml's defaults).
SCHEMA_NAME = "rl8_train_schema"


@dataclass
class EnvConf:
    """``env``: an environment factory. The algorithm builds the env itself as
    ``env_cls(num_envs, horizon, config=..., device=...)``, so the node is
    instantiated as a factory (``_partial_: true``), and ``config`` (the env's
    physical parameters, checked against the class's ``params``) becomes
    ``TrainConfig.env_config``. Any other key is a keyword argument of the
    factory (e.g. ``id`` of ``rl8.envs.Gymnasium``), checked against its
    signature when the job is built."""

    _target_: str = MISSING
    _partial_: bool = True
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConf:
    """``model``: the model class (``_target_``; null for the trainer's
    default) and its keyword arguments (``config``). ``recurrent`` picks the
    recurrent trainer; null infers it from the class
    (an ``rl8.models.RecurrentModel`` subclass)."""

    _target_: str | None = None
    _partial_: bool = True
    recurrent: bool | None = None
    config: dict[str, Any] = field(default_factory=dict)


def _schema_type(tp: Any) -> Any:
    """An annotation of :class:`~rl8.algorithms.RecurrentAlgorithmConfig` as an
    optional type OmegaConf can check (``null`` means the default; Literal -> str)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in (int, float, bool, str):
        return typing.Optional[tp]  # noqa: UP045 - OmegaConf 2.3 reads typing.Optional
    if origin is typing.Literal:
        return typing.Optional[str]  # noqa: UP045
    if origin is list:
        return typing.Optional[list[Any]]  # noqa: UP045
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return _schema_type(rest[0]) if len(rest) == 1 else Any
    return Any


def _trainer_schema() -> type:
    from .algorithms.config import ENV_TUNABLE_FIELDS, _default, field_types, trainer_fields

    hints = field_types()
    specs: list[tuple[str, Any, Any]] = []
    for f in trainer_fields():
        kind = _schema_type(hints[f.name])
        if f.name == "distribution_cls":
            kind = typing.Optional[str]  # noqa: UP045 - a dotted path here
        # null for the env-tunable fields: the env's tuned value, else the library's.
        default = None if f.name in ENV_TUNABLE_FIELDS else _default(f)
        specs.append((f.name, kind, field(default=default)))
    cls = make_dataclass("TrainerConf", specs)
    cls.__doc__ = (
        "``trainer``: the PPO hyperparameters, generated from "
        ":class:`rl8.algorithms.RecurrentAlgorithmConfig` (the one declaration of "
        "their names, defaults, meanings and units). ``null`` means the default: "
        "for the env-tunable fields, the env's ``hyperparameters``, else the "
        "library's. ``distribution_cls`` is a dotted path."
    )
    return cls


#: The schema of the ``trainer`` node (see :func:`_trainer_schema`).
TrainerConf = _trainer_schema()


class StopMode(Enum):
    """How ``stop.metric`` is compared with ``stop.threshold``."""

    max = "max"  # stop once metric >= threshold
    min = "min"  # stop once metric <= threshold


@dataclass
class StopConf:
    """``stop``: training stops when any rule holds (never without one)."""

    #: Environment transitions (summed over sub-envs, ``env/steps``); ``2e6`` is accepted.
    max_env_steps: int | float | None = None
    #: Trainer steps (one collect + one update each).
    max_steps: int | float | None = None
    #: Wall-clock seconds of training (summed over resumes).
    max_seconds: float | None = None
    #: A train or eval stat (e.g. ``eval/returns/mean``) compared with ``threshold``.
    metric: str | None = None
    threshold: float | None = None
    mode: StopMode = StopMode.max
    #: Compare the mean of the metric's last ``window`` values (train steps, or
    #: evaluations for an ``eval/`` stat) with ``threshold``. Default 1.
    window: int = 1
    #: More conditions: ``_target_`` nodes building ``rl8.conditions`` callables.
    conditions: list[Any] = field(default_factory=list)


@dataclass
class GuardConf:
    """``guard``: fail a run that produces garbage, with a message naming the
    likely cause (``null`` turns a rule off)."""

    #: Largest approximate KL divergence of one update (nats); healthy PPO stays ~0.01.
    max_kl_div: float | None = 5.0
    #: Largest value loss; with ``trainer.normalize_rewards`` (the default) it stays O(1).
    max_vf_loss: float | None = 1.0e6


@dataclass
class EvalConf:
    """``eval``: evaluate every ``every`` trainer steps (0: only at the end)."""

    every: int = 10
    #: Env parameters during evaluation (needs ``trainer.horizons_per_env_reset > 0``).
    env_config: dict[str, Any] = field(default_factory=dict)
    deterministic: bool = True


@dataclass
class CheckpointConf:
    """``checkpoint``: write ``checkpoint.pt`` once ``every_s`` wall seconds
    passed since the last one, or every ``every`` trainer steps, and at the end
    (0 turns a rule off; with both off, only at the end)."""

    every: int = 0
    every_s: float = 60.0


@dataclass
class RecordConf:
    """``record``: a GIF of the trained policy, ``episodes`` episodes of one
    sub-env at ``fps`` frames per second, written to the job's output dir
    (``policy.gif``) and logged to its MLflow run at the end (``at_end``). The
    env must draw itself (the built-in CartPole and Pendulum; gymnasium envs
    with ``env.render_mode=rgb_array``); that is checked before training."""

    at_end: bool = False
    episodes: int = 1
    fps: int = 30


@dataclass
class MlflowConf:
    """``mlflow``: one run per job. ``tracking_uri: null`` is MLflow's default
    (``MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db`` in the cwd)."""

    enabled: bool = True
    tracking_uri: str | None = None
    experiment_name: str | None = "rl8"
    run_name: str | None = None
    parent_run_id: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrialConf:
    """``trial``: filled by the Optuna sweeper for each job; null outside a sweep."""

    storage: str | None = None
    study_name: str | None = None
    number: int | None = None
    #: Which of the trial's seeds this job runs (``hydra.sweeper.seeds_per_trial``).
    seed_index: int | None = None


@dataclass
class ProgressConf:
    """``progress``: a tqdm bar (``bar: null`` = on a TTY outside multiruns),
    otherwise a log line every ``log_every_s`` seconds."""

    bar: bool | None = None
    log_every_s: float = 10.0


@dataclass
class TrainAppConf:
    """The whole composed config of ``python -m rl8.train``."""

    #: An :class:`EnvConf`, plus the factory's own keyword arguments (checked at build).
    env: Any = MISSING
    model: ModelConf = field(default_factory=ModelConf)
    #: ``_target_`` (a ``torch.optim.Optimizer`` class), ``_partial_: true`` and its kwargs.
    optimizer: Any = MISSING
    trainer: TrainerConf = field(default_factory=TrainerConf)  # type: ignore[valid-type]
    #: A ``_target_`` node building an ``rl8.randomization.Schedule`` (``schedule=none``: empty).
    schedule: Any = None
    seed: int = 0
    #: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
    device: str = "auto"
    #: The stat returned to a sweeper; a list of stats for multi-objective.
    #: ``auto``: ``episodes/return_mean`` (the mean return of the last 100
    #: training episodes) when the env reports episodes, else ``eval/returns/mean``.
    objective: Any = "auto"
    #: An earlier job's output dir (or its ``checkpoint.pt``) to continue.
    resume: str | None = None
    stop: StopConf = field(default_factory=StopConf)
    guard: GuardConf = field(default_factory=GuardConf)
    eval: EvalConf = field(default_factory=EvalConf)
    checkpoint: CheckpointConf = field(default_factory=CheckpointConf)
    record: RecordConf = field(default_factory=RecordConf)
    mlflow: MlflowConf = field(default_factory=MlflowConf)
    trial: TrialConf = field(default_factory=TrialConf)
    progress: ProgressConf = field(default_factory=ProgressConf)


def register() -> None:
    """Store :class:`TrainAppConf` in Hydra's ConfigStore as ``rl8_train_schema``."""
    ConfigStore.instance().store(name=SCHEMA_NAME, node=TrainAppConf)


register()

#: The names of the ``trainer`` node's fields (the PPO hyperparameters).
TRAINER_FIELDS = tuple(f.name for f in dataclasses.fields(TrainerConf))
