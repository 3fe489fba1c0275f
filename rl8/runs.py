"""A trained job, loaded back: its checkpoint, its config, and the trainer
(environment and policy) they describe.

``python -m rl8.evaluate``, ``python -m rl8.export`` and :func:`rl8.load_policy`
start here. A run is named by its job output dir (``outputs/<date>/<time>``),
its ``checkpoint.pt``, or its MLflow run id (the checkpoint is then fetched
from the run's artifacts). Checkpoints are read with
``torch.load(weights_only=True)``: loading one runs no code of its own.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from . import checkpoint as ckpt_lib
from .config import TrainAppConf
from .errors import ConfigError

__all__ = ["TrainedRun", "open_run", "stored_config"]

#: An MLflow run id: 32 hexadecimal digits.
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class TrainedRun:
    """What :func:`open_run` found."""

    #: Where the checkpoint was read from.
    checkpoint_path: Path
    #: The checkpoint (plain types; see :mod:`rl8.checkpoint`).
    checkpoint: dict[str, Any]
    #: The job's composed config, as stored in the checkpoint.
    cfg: DictConfig

    @property
    def mlflow_run_id(self) -> str | None:
        """The job's MLflow run (``None`` when it was not tracked)."""
        run_id = self.checkpoint.get("mlflow_run_id")
        return str(run_id) if run_id else None

    def build_trainer(
        self,
        *,
        env: Mapping[str, Any] | None = None,
        num_envs: int | None = None,
        device: str | None = None,
        trusted: bool = False,
    ) -> Any:
        """The job's trainer (its environment and policy, with the checkpoint's
        weights), built as training built it, without tracking.

        Args:
            env: Overrides merged onto the job's ``env`` node, e.g.
                ``{"config": {"length": 1.5}}`` (generalization tests); with
                another ``_target_``, they replace the node.
            num_envs: Sub-environments (default: the job's ``trainer.num_envs``).
            device: ``auto``, ``cpu``, ``cuda``, ... (default: the job's).
            trusted: Build callables the stored config names even when rl8's
                configs and ``env`` do not (:mod:`rl8.targets`); only for
                checkpoints you trust.

        Raises:
            ConfigError: An invalid override (named), a stored callable that
                is not allowed, or a policy that does not fit the environment
                the overrides describe.
        """
        from .build import build, core_error
        from .targets import check_stored_targets

        cfg = self.cfg.copy()
        if env:
            override = OmegaConf.create(dict(env))
            if override.get("_target_", cfg.env._target_) != cfg.env._target_:
                # Another environment class: none of the job's env settings apply.
                cfg.env = OmegaConf.merge({"_partial_": True, "config": {}}, override)
            else:
                cfg.env = OmegaConf.merge(cfg.env, override)
        if not trusted:
            check_stored_targets(cfg, {"env": dict(env or {})}, f"run {self.checkpoint_path}")
        if num_envs is not None:
            cfg.trainer.num_envs = num_envs
        if device is not None:
            cfg.device = device
        built = build(cfg)
        try:
            trainer = built.train_config.build(tracker=None)
        except (ValueError, TypeError, ImportError) as e:
            raise core_error(e) from None
        weights = self.checkpoint["trainer"]["algorithm"]["model"]
        try:
            trainer.algorithm.policy.model.load_state_dict(weights)
        except RuntimeError as e:
            detail = str(e).strip().splitlines()
            raise ConfigError(
                f"the policy of {self.checkpoint_path} does not fit this environment "
                f"(observation or action shapes changed by the overrides?): "
                f"{'; '.join(line.strip() for line in detail[1:3]) or detail[0]}"
            ) from None
        return trainer


def open_run(run: str | Path, *, tracking_uri: str | None = None) -> TrainedRun:
    """Load a trained job: a job output dir, its ``checkpoint.pt``, or an
    MLflow run id (``tracking_uri``: the store; default MLflow's).

    Raises:
        ConfigError: Nothing readable there; the message lists the accepted forms.
    """
    text = str(run)
    path = Path(text).expanduser()
    if path.exists():
        ckpt_path = ckpt_lib.find(path)
    elif _RUN_ID.match(text):
        ckpt_path = _download_checkpoint(text, tracking_uri)
    else:
        raise ConfigError(
            f"run={text!r} is neither a job output dir (outputs/<date>/<time>, holding "
            f"{ckpt_lib.CHECKPOINT_NAME}), a checkpoint file, nor an MLflow run id "
            "(32 hex digits)."
        )
    ckpt = ckpt_lib.load(ckpt_path)
    stored = stored_config(ckpt["config"], f"run={text}")
    return TrainedRun(checkpoint_path=ckpt_path, checkpoint=ckpt, cfg=stored)


def stored_config(stored_yaml: str, what: str) -> DictConfig:
    """A checkpoint's stored config, checked against the app's schema.

    Raises:
        ConfigError: The stored config does not fit the schema (a checkpoint
            of another rl8 version, or one edited by hand).
    """
    try:
        stored = OmegaConf.merge(OmegaConf.structured(TrainAppConf), OmegaConf.create(stored_yaml))
    except OmegaConfBaseException as e:
        raise ConfigError(
            f"{what}: the checkpoint's stored config does not fit this rl8's config "
            f"({e.full_key or '?'}: {str(e).splitlines()[0]})."
        ) from None
    assert isinstance(stored, DictConfig)
    return stored


def _download_checkpoint(run_id: str, tracking_uri: str | None) -> Path:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    target = Path(tempfile.mkdtemp(prefix=f"rl8-run-{run_id[:8]}-"))
    try:
        local = client.download_artifacts(run_id, ckpt_lib.CHECKPOINT_NAME, str(target))
    except MlflowException as e:
        raise ConfigError(
            f"run={run_id!r}: no {ckpt_lib.CHECKPOINT_NAME} among the artifacts of that "
            f"MLflow run in {client.tracking_uri} ({str(e).splitlines()[0]}). Runs log it "
            "when they end; pass the job's output dir instead, or set "
            "MLFLOW_TRACKING_URI to the run's store."
        ) from None
    return Path(local)
