"""``TrainConfig``: build a trainer from a flat config (Python, JSON or YAML)."""

from __future__ import annotations

import dataclasses
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import yaml

from ..env import EnvFactory
from ..tracking import MlflowTracker
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


@dataclass
class TrainConfig:
    """A helper for building a trainer from a config.

    Every field but ``env_cls`` and ``recurrent`` defaults to ``None``,
    meaning "use the trainer's default" (see
    :class:`~rl8.algorithms.AlgorithmConfig` for the defaults and units).

    Example:
        >>> from rl8 import DiscreteDummyEnv, TrainConfig
        >>> trainer = TrainConfig(DiscreteDummyEnv, num_envs=64, horizon=8).build()
    """

    env_cls: EnvFactory
    env_config: dict[str, Any] | None = None
    model_cls: Any = None
    model_config: dict[str, Any] | None = None
    distribution_cls: Any = None
    horizon: int | None = None
    horizons_per_env_reset: int | None = None
    num_envs: int | None = None
    seq_len: int | None = None
    seqs_per_state_reset: int | None = None
    optimizer_cls: Any = None
    optimizer_config: dict[str, Any] | None = None
    accumulate_grads: bool | None = None
    enable_amp: bool | None = None
    entropy_coeff: float | None = None
    gae_lambda: float | None = None
    gamma: float | None = None
    sgd_minibatch_size: int | Literal["auto"] | None = None
    num_sgd_iters: int | None = None
    shuffle_minibatches: bool | None = None
    clip_param: float | None = None
    vf_clip_param: float | None = None
    dual_clip_param: float | None = None
    vf_coeff: float | None = None
    target_kl_div: float | None = None
    max_grad_norm: float | None = None
    normalize_advantages: bool | None = None
    normalize_rewards: bool | None = None
    device: str | torch.device | Literal["auto"] | None = None
    recurrent: bool = False
    lr_schedule: list[tuple[int, float]] | None = None
    lr_schedule_kind: Literal["step", "interp"] | None = None
    entropy_coeff_schedule: list[tuple[int, float]] | None = None
    entropy_coeff_schedule_kind: Literal["step", "interp"] | None = None
    update_chunk_size: int | None = None

    def build(self, *, tracker: MlflowTracker | None = None) -> Trainer | RecurrentTrainer:
        """Instantiate a :class:`Trainer` (or :class:`RecurrentTrainer` when
        ``recurrent``), dropping ``None`` fields so the trainer's defaults apply.

        Args:
            tracker: Optional MLflow run the trainer logs into.

        Raises:
            ValueError: An invalid field (named), e.g. ``seq_len`` without
                ``recurrent=True``.
        """
        kwargs = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("env_cls", "recurrent") and getattr(self, f.name) is not None
        }
        if self.recurrent:
            return RecurrentTrainer(self.env_cls, tracker=tracker, **kwargs)
        for name in ("seq_len", "seqs_per_state_reset"):
            if name in kwargs:
                raise ValueError(f"{name} is only used by recurrent trainers; set recurrent=True.")
        return Trainer(self.env_cls, tracker=tracker, **kwargs)

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
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown TrainConfig field(s): {', '.join(unknown)}.")
        for name in _CLS_FIELDS:
            if isinstance(data.get(name), str):
                data[name] = import_path(data[name], name)
        return cls(**data)
