"""``python -m rl8.train``: the Hydra app that trains one PPO policy per job.

Compose a run from ``conf/`` (and ``experiments/``), validate it against the
schema in :mod:`rl8.config` and build its parts (:mod:`rl8.build`), create the
trainer and its MLflow run (here), then loop (:mod:`rl8.loop`)::

    env_config = schedule.env_config(...)      # at env resets, when a schedule is set
    stats = trainer.step(env_config=...)       # the trainer logs its stats to MLflow
    schedule.update(stats, env_steps)          # + schedule metrics, same batched call
    every eval.every steps: trainer.eval(...)  # + report to an Optuna trial
    every checkpoint.every_s seconds (or .every steps): checkpoint   # <job dir>/checkpoint.pt, atomic
    until a stop rule holds

and return the objective (``objective``, default the last evaluation's
``eval/returns/mean``) to Hydra's sweeper. Examples::

    python -m rl8.train                                   # CartPole, until solved
    python -m rl8.train env=pendulum trainer.gamma=0.95 optimizer=sgd
    python -m rl8.train -m trainer.clip_param=0.1,0.2 seed=0,1
    python -m rl8.train +experiment=cartpole
    python -m rl8.train resume=outputs/2025-01-01/12-00-00

See ``docs/experiments.md`` for the tour.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import secrets
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from .algorithms.config import resolve_device
from .build import Built, build, core_error
from .config import TrainAppConf
from .errors import ConfigError, TrackingError
from .redact import is_redacted, redact

# torch (and what imports it: checkpoint, env, loop, runs) is imported when a job
# runs, not when Hydra composes its config: `--help` and `--cfg` need none of it,
# and a job starts its MLflow worker before paying for it (see `run`).

__all__ = ["CONFIG_PATH", "Job", "main", "run"]

log = logging.getLogger("rl8.train")

#: Where Hydra finds ``train.yaml`` and the config groups: the package ``rl8.conf``
#: (the repository's ``conf/``, with ``experiments/`` as its ``experiment`` group),
#: shipped inside the wheel, so the app works from any directory.
CONFIG_PATH = "pkg://rl8.conf"

#: Keys a resumed run may change; everything else comes from its checkpoint.
RESUMABLE_KEYS = ("stop.", "eval.every", "checkpoint.", "progress.", "mlflow.tracking_uri")


@dataclass
class Job:
    """Where and how this job runs (from Hydra's runtime config, when there is one)."""

    output_dir: Path
    overrides: list[str] = field(default_factory=list)
    multirun: bool = False
    sweep_dir: str | None = None
    job_num: int | None = None
    override_dirname: str | None = None

    @classmethod
    def current(
        cls, output_dir: str | Path | None = None, overrides: list[str] | None = None
    ) -> Job:
        """The running Hydra job, or a plain job in ``output_dir`` (default: cwd)."""
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not HydraConfig.initialized():
            return cls(Path(output_dir or Path.cwd()), list(overrides or []))
        hc = HydraConfig.get()
        multirun = hc.mode == RunMode.MULTIRUN
        if hc.output_subdir is not None:
            _redact_files(Path(hc.runtime.output_dir) / str(hc.output_subdir))
        return cls(
            output_dir=Path(output_dir or hc.runtime.output_dir),
            overrides=list(hc.overrides.task if overrides is None else overrides),
            multirun=multirun,
            sweep_dir=str(hc.sweep.dir) if multirun else None,
            job_num=int(hc.job.num) if multirun else None,
            override_dirname=hc.job.override_dirname or None,
        )


def _write_bytes(f: Any, data: bytes) -> None:
    f.write(data)


def _redact_files(folder: Path) -> None:
    """Mask credentials in the YAML files Hydra saved for this job (``hydra.yaml``
    holds the sweeper's storage URL, ``overrides.yaml`` the command line)."""
    from ._files import atomic_write

    for path in sorted(folder.glob("*.yaml")):
        try:
            text = path.read_text()
        except OSError:
            continue
        data = redact(text).encode()
        if data != text.encode():
            atomic_write(path, functools.partial(_write_bytes, data=data))


# -- config helpers ----------------------------------------------------------------------------


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _resumable(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUMABLE_KEYS)


def _differences(new: Any, old: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(key, old, new)`` for every leaf where two plain configs differ."""
    if isinstance(new, dict) and isinstance(old, dict):
        out = []
        for k in dict.fromkeys([*old, *new]):
            out += _differences(new.get(k), old.get(k), f"{prefix}{k}.")
        return out
    return [] if new == old else [(prefix.rstrip("."), old, new)]


def resume_config(cfg: DictConfig, stored_yaml: str, overrides: list[str]) -> DictConfig:
    """The stored config of a checkpoint, with the overrides a resume may change.

    The original command's overrides may be repeated unchanged: only an override
    that changes a stored value outside :data:`RESUMABLE_KEYS` is refused. An
    override of a ``_global_`` group (``+experiment=...``) is compared on the
    whole config.

    Raises:
        ConfigError: naming every stored value the overrides would change.
    """
    from .runs import stored_config
    from .targets import check_stored_targets

    stored = stored_config(stored_yaml, f"resume={cfg.resume}")
    check_stored_targets(stored, cfg, f"resume={cfg.resume}")
    _unredact(stored, cfg)
    schema_keys = {f.name for f in dataclasses.fields(TrainAppConf)}
    new_plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    old_plain = OmegaConf.to_container(stored, resolve=True, enum_to_str=True)
    assert isinstance(new_plain, dict) and isinstance(old_plain, dict)
    if new_plain.get("device") == "auto":
        new_plain["device"] = str(resolve_device("auto"))
    changes: dict[str, tuple[Any, Any]] = {}
    for override in overrides:
        key = _override_key(override)
        if key == "resume" or key.startswith("hydra.") or _resumable(key):
            continue
        head = key.split(".", 1)[0]
        if head in schema_keys:
            new, old = OmegaConf.select(cfg, key), OmegaConf.select(stored, key)
            new_v = OmegaConf.to_container(new) if isinstance(new, DictConfig | ListConfig) else new
            old_v = OmegaConf.to_container(old) if isinstance(old, DictConfig | ListConfig) else old
            found = _differences({key: new_v}, {key: old_v})
            if key == "device":
                found = [d for d in found if str(resolve_device(d[2])) != d[1]]
        else:  # a _global_ overlay (e.g. +experiment=...) may set any key
            found = _differences(new_plain, old_plain)
            found = [d for d in found if d[0] != "resume" and not _resumable(d[0])]
        for k, old_value, new_value in found:
            changes[k] = (old_value, new_value)
    if changes:
        listed = "; ".join(
            f"{k}: {_shown(old)} -> {_shown(new)}" for k, (old, new) in changes.items()
        )
        raise ConfigError(
            f"resume: the overrides change the config stored in the checkpoint ({listed}). "
            "A resumed run keeps its config; only stop.*, eval.every, checkpoint.*, "
            "progress.* and mlflow.tracking_uri may change. Start a new run for other changes."
        )
    for override in overrides:
        key = _override_key(override)
        if _resumable(key):
            OmegaConf.update(stored, key, OmegaConf.select(cfg, key), merge=False)
    stored.resume = cfg.resume
    OmegaConf.set_struct(stored, True)
    return stored


def _shown(value: Any) -> str:
    """A config value as the command line writes it (``null`` for None)."""
    return "null" if value is None else repr(value)


def _unredact(stored: DictConfig, cfg: DictConfig) -> None:
    """Checkpoints keep URLs with their passwords masked (:mod:`rl8.redact`):
    take those values from this command's config where it has them in full."""
    from .tracking import flatten

    plain = OmegaConf.to_container(stored, resolve=False)
    assert isinstance(plain, dict)
    for key, value in flatten({str(k): v for k, v in plain.items()}).items():
        actual = OmegaConf.select(cfg, key, default=None)
        if is_redacted(value, actual):
            OmegaConf.update(stored, key, actual, merge=False)


# -- MLflow -------------------------------------------------------------------------------------


def _git_commit() -> str | None:
    """The commit of the git checkout the job is launched from (the user's project)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def _run_name(cfg: DictConfig, job: Job) -> str:
    """``<env>-<model>-seed<N>`` (a multirun job: its override string), plus a
    random suffix that seeding cannot repeat, so every run's name is unique."""
    if job.multirun and job.override_dirname:
        base = job.override_dirname
    else:
        env = str(cfg.env._target_).rsplit(".", 1)[-1]
        model = str(cfg.model._target_ or "default").rsplit(".", 1)[-1]
        base = f"{env}-{model}-seed{cfg.seed}"
    return f"{base}-{secrets.token_hex(2)}"


def _open_tracker(cfg: DictConfig, job: Job, run_id: str | None) -> Any:
    """One MLflow run for this job (``run_id``: continue that run)."""
    if not cfg.mlflow.enabled:
        return None
    from .tracking import MlflowTracker, prepared_store

    tags: dict[str, Any] = {"rl8.output_dir": str(job.output_dir.resolve())}
    if job.overrides:
        tags["rl8.overrides"] = " ".join(job.overrides)
    commit = _git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    if job.multirun:
        tags["rl8.sweep_dir"] = str(Path(job.sweep_dir or ".").resolve())
        tags["rl8.job_num"] = job.job_num
    if cfg.trial.number is not None:
        tags["rl8.trial_number"] = cfg.trial.number
        if cfg.trial.study_name:
            tags["rl8.study_name"] = cfg.trial.study_name
    tags.update(cfg.mlflow.tags or {})
    run_name = cfg.mlflow.run_name or _run_name(cfg, job)
    if len(run_name) > 250:  # MLflow's limit for run names
        run_name = run_name[:247] + "..."
    prepared = prepared_store(cfg.mlflow.tracking_uri)
    tracker = MlflowTracker(
        tracking_uri=cfg.mlflow.tracking_uri,
        experiment_name=cfg.mlflow.experiment_name,
        run_id=run_id,
        run_name=run_name,
        tags=tags,
        parent_run_id=cfg.mlflow.parent_run_id,
    )
    try:
        # MLflow's default (MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the cwd), made
        # absolute, so the checkpoint's config finds the same store when resumed elsewhere.
        # A new run in a new local store is created while training starts (its schema
        # takes ~1 s); elsewhere the run is waited for, so that a store that cannot be
        # opened, or a run not found, fails before the first step.
        new_run = run_id is None and cfg.mlflow.parent_run_id is None
        if new_run and prepared is not None and prepared.new:
            cfg.mlflow.tracking_uri = prepared.uri
        else:
            cfg.mlflow.tracking_uri = tracker.tracking_uri
    except TrackingError as e:
        what = f"MLflow run {run_id!r} of the checkpoint" if run_id else "an MLflow run"
        where = f"tracking_uri={cfg.mlflow.tracking_uri!r}"
        if cfg.mlflow.tracking_uri is None and prepared is not None:
            where = f"MLflow's default store {prepared.uri!r} (mlflow.tracking_uri=null)"
        raise TrackingError(f"mlflow: cannot open {what} at {where}: {e}") from None
    return tracker


def _reporter(cfg: DictConfig) -> Any:
    """The Optuna trial reporter of a sweep job (None outside a sweep)."""
    if all(v is None for v in cfg.trial.values()):
        return None
    try:
        from .optuna_sweeper.reporter import TrialReporter
    except ImportError:
        raise ConfigError(
            "trial is set (a job of an Optuna sweep), but rl8.optuna_sweeper.reporter "
            "cannot be imported."
        ) from None
    return TrialReporter.from_config(cfg.trial)


def run(
    cfg: DictConfig,
    *,
    output_dir: str | Path | None = None,
    overrides: list[str] | None = None,
) -> float | tuple[float, ...]:
    """Train one job described by the composed ``cfg``; return its objective.

    Args:
        cfg: The composed config (``conf/train.yaml`` and overrides).
        output_dir: Where the checkpoint and config go (default: the Hydra
            job's output dir, or the cwd outside Hydra).
        overrides: The command-line overrides (default: the Hydra job's).
            They are logged as a tag, and with ``resume`` they say which
            keys (``stop.*``, ...) replace the stored config's.

    Returns:
        The objective: ``cfg.objective`` of the merged last train and eval
        stats (a tuple for a list of objectives).

    Raises:
        ConfigError: An invalid config (before the first step).
        DivergedError: A loss or the objective became NaN/inf.
        Interrupted: SIGINT/SIGTERM, after the checkpoint was saved.
    """
    if cfg.mlflow.enabled:
        # The MLflow worker imports MLflow and opens the store on another core
        # while this process imports torch and builds the trainer.
        from .tracking import prepare

        prepare(cfg.mlflow.tracking_uri)
    from . import checkpoint as ckpt_lib
    from .env import close_env
    from .loop import Loop, Signals, close_tracker

    signals = Signals()
    # Installed before anything is created: a SIGTERM from here on ends with the
    # MLflow run closed (KILLED), never left RUNNING.
    with signals.installed():
        job = Job.current(output_dir, overrides)
        ckpt: dict[str, Any] | None = None
        ckpt_path = job.output_dir / ckpt_lib.CHECKPOINT_NAME
        if cfg.resume:
            ckpt_path = ckpt_lib.find(cfg.resume)
            ckpt = ckpt_lib.load(ckpt_path)
            cfg = resume_config(cfg, ckpt["config"], job.overrides)
        built = build(cfg)
        # "auto" becomes the device it resolves to: that is what is logged and checkpointed.
        cfg.device = built.train_config.device = str(resolve_device(cfg.device))
        ckpt_lib.seed_everything(cfg.seed)
        try:  # the model and optimizer are checked here, before any MLflow run exists
            trainer = built.train_config.build(tracker=None)
        except (ValueError, TypeError, ImportError) as e:
            raise core_error(e) from None
        tuned = built.train_config.env_defaults(built.env_cls)
        if tuned:
            log.info(
                "tuned for %s (its hyperparameters; trainer.* and optimizer.lr override them): %s",
                type(trainer.algorithm.env).__name__,
                ", ".join(f"{k}={v}" for k, v in tuned.items()),
            )
        reporter = _reporter(cfg)
        record_env = _record_env(cfg, built, trainer) if cfg.record.at_end else None
        if ckpt is not None:
            _restore(trainer, built, ckpt)
        tracker = _open_tracker(cfg, job, ckpt.get("mlflow_run_id") if ckpt else None)
        try:
            if tracker is not None:
                trainer.attach(tracker, log_params=ckpt is None)
                if ckpt is None:
                    _log_config(tracker, cfg, job)
        except BaseException:
            close_tracker(tracker, "FAILED")
            raise
        loop = Loop(cfg, job, built, trainer, tracker, reporter, ckpt, ckpt_path, signals)
        loop.record_env = record_env
        try:
            return loop.run()
        finally:
            close_env(trainer.algorithm.env)
            close_env(record_env)


def _record_env(cfg: DictConfig, built: Built, trainer: Any) -> Any:
    """A one-sub-env copy of the job's env to record the policy in
    (``record.at_end``), checked to draw itself before training starts."""
    from .env import close_env, make_env
    from .render import check_can_render

    tc = built.train_config
    env = make_env(tc.env_cls, 1, tc.horizon, config=tc.env_config, device=trainer.algorithm.device)
    try:
        check_can_render(env)
    except (TypeError, ValueError) as e:
        close_env(env)
        raise ConfigError(f"record.at_end=true: {e}") from None
    return env


def _restore(trainer: Any, built: Built, ckpt: Mapping[str, Any]) -> None:
    from . import checkpoint as ckpt_lib

    trainer.load_state_dict(ckpt["trainer"])
    if built.schedule is not None and ckpt.get("schedule") is not None:
        built.schedule.load_state_dict(ckpt["schedule"])
    ckpt_lib.set_rng_state(ckpt["rng"])


def _log_config(tracker: Any, cfg: DictConfig, job: Job) -> None:
    """The composed config as params (flattened) and as a YAML artifact."""
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    assert isinstance(container, dict)
    tracker.log_params(container)
    job.output_dir.mkdir(parents=True, exist_ok=True)
    path = job.output_dir / "config.yaml"
    path.write_text(redact(OmegaConf.to_yaml(cfg, resolve=True)))
    tracker.log_artifact(path)


def check_config(cfg: DictConfig) -> None:
    """Check a composed config as :func:`run` does before training (keys, types,
    ranges, targets), building nothing heavy. The Optuna sweeper runs it on every
    bound of a search space before the study opens.

    Raises:
        ConfigError: naming the first invalid key.
    """
    build(cfg)


def _main(cfg: DictConfig) -> float | tuple[float, ...]:
    """The Hydra app: train one job, return its objective (see :func:`run`)."""
    return run(cfg)


_main.check_config = check_config  # type: ignore[attr-defined]  # read by the sweeper
main = hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")(_main)


def _cli() -> None:
    try:
        main()
    except KeyboardInterrupt as e:
        sys.exit(128 + getattr(e, "signum", signal.SIGINT))


if __name__ == "__main__":
    _cli()
