"""``python -m rl8.train``: the Hydra app that trains one PPO policy per job.

Compose a run from ``conf/`` (and ``experiments/``), validate it against the
schema in :mod:`rl8.config`, build the trainer, then loop::

    env_config = schedule.env_config(...)      # at env resets, when a schedule is set
    stats = trainer.step(env_config=...)       # the trainer logs its stats to MLflow
    schedule.update(stats, env_steps)          # + schedule metrics, same batched call
    every eval.every steps: trainer.eval(...)  # + report to an Optuna trial
    every checkpoint.every steps: checkpoint   # <job dir>/checkpoint.pt, atomic
    until a stop rule holds

and return the objective (``objective``, default the last evaluation's
``eval/returns/mean``) to Hydra's sweeper. Examples::

    python -m rl8.train                                   # quick CartPole run
    python -m rl8.train env=pendulum trainer.gamma=0.95 optimizer=sgd
    python -m rl8.train -m trainer.clip_param=0.1,0.2 seed=0,1
    python -m rl8.train +experiment=cartpole
    python -m rl8.train resume=outputs/2025-01-01/12-00-00

See ``docs/experiments.md`` for the tour.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import math
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, ListConfig, OmegaConf

from . import checkpoint as ckpt_lib
from .algorithms.config import resolve_device
from .build import Built, build, core_error, schedule_defaults
from .config import StopMode, TrainAppConf
from .errors import ConfigError, DivergedError, did_you_mean
from .progress import Progress

__all__ = ["CONFIG_PATH", "Job", "main", "run"]

log = logging.getLogger("rl8.train")

#: Where Hydra finds ``train.yaml`` and the config groups: the package ``rl8.conf``
#: (the repository's ``conf/``, with ``experiments/`` as its ``experiment`` group),
#: shipped inside the wheel, so the app works from any directory.
CONFIG_PATH = "pkg://rl8.conf"

#: Keys a resumed run may change; everything else comes from its checkpoint.
RESUMABLE_KEYS = ("stop.", "eval.every", "checkpoint.", "progress.", "mlflow.tracking_uri")
#: The tracker is flushed once per loop iteration by the app, never by count.
_NO_AUTO_FLUSH = 1 << 62


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
        return cls(
            output_dir=Path(output_dir or hc.runtime.output_dir),
            overrides=list(hc.overrides.task if overrides is None else overrides),
            multirun=multirun,
            sweep_dir=str(hc.sweep.dir) if multirun else None,
            job_num=int(hc.job.num) if multirun else None,
            override_dirname=hc.job.override_dirname or None,
        )


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
    stored = OmegaConf.merge(OmegaConf.structured(TrainAppConf), OmegaConf.create(stored_yaml))
    assert isinstance(stored, DictConfig)
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
        listed = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items())
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


def _objective_names(cfg: DictConfig) -> list[str]:
    obj = cfg.objective
    return [obj] if isinstance(obj, str) else list(obj)


def _check_stat_names(
    cfg: DictConfig, stats: Mapping[str, float], collect_names: frozenset[str]
) -> None:
    """Fail (naming the key) when ``objective`` or ``stop.metric`` names a stat
    that neither a train step (``stats``, the first one's) nor an evaluation
    (``eval/`` + the names of a collect's stats) produces. Runs after the first
    step, so a typo never costs a whole run (also with ``eval.every=0``)."""
    eval_names = {f"eval/{k}" for k in collect_names}
    wanted = [("objective", n) for n in _objective_names(cfg)]
    if cfg.stop.metric is not None:
        wanted.append(("stop.metric", cfg.stop.metric))
    for key, name in wanted:
        evaluated = name.startswith("eval/")
        if name not in (eval_names if evaluated else stats):
            kind = "an evaluation" if evaluated else "a train step"
            names = eval_names if evaluated else stats
            raise ConfigError(
                f"{key}={name!r} is not a stat of {kind}{did_you_mean(name, sorted(names))}; "
                f"available: {', '.join(sorted(k for k in names if 'profiling/' not in k))}."
            )


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
    from .tracking import MlflowTracker

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
    try:
        return MlflowTracker(
            tracking_uri=cfg.mlflow.tracking_uri,
            experiment_name=cfg.mlflow.experiment_name,
            run_id=run_id,
            run_name=run_name,
            tags=tags,
            parent_run_id=cfg.mlflow.parent_run_id,
            flush_every=_NO_AUTO_FLUSH,
        )
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        what = f"MLflow run {run_id!r} of the checkpoint" if run_id else "an MLflow run"
        raise ConfigError(
            f"mlflow: cannot open {what} at tracking_uri={cfg.mlflow.tracking_uri!r}: {first}"
        ) from None


def _close(tracker: Any, status: str) -> None:
    if tracker is not None:
        with contextlib.suppress(Exception):
            tracker.close(status)


# -- interruption -------------------------------------------------------------------------------


class Interrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM stopped the run after its checkpoint was saved."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Signals:
    """First SIGINT/SIGTERM: finish the current step, checkpoint, stop.
    A second one raises ``KeyboardInterrupt`` at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        log.warning(
            "%s received: saving a checkpoint after this step (send it again to abort now)",
            signal.Signals(signum).name,
        )

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Signals]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for num, handler in self._old.items():
                signal.signal(num, handler)


def _is_pruned(e: BaseException) -> bool:
    """``optuna.TrialPruned`` (checked by name: optuna is only imported in sweeps)."""
    return any(c.__name__ == "TrialPruned" for c in type(e).__mro__)


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


# -- the loop -----------------------------------------------------------------------------------


class _Stop:
    """The stop rules of ``stop``: budgets, a metric threshold, conditions."""

    def __init__(self, cfg: DictConfig, conditions: list[Any]) -> None:
        self.cfg = cfg.stop
        self.conditions = conditions
        #: The metric's last ``stop.window`` values (refilled after a resume).
        self.recent: collections.deque[float] = collections.deque(maxlen=int(cfg.stop.window))

    def reason(
        self, *, steps: int, env_steps: int, elapsed_s: float, stats: Mapping[str, float]
    ) -> str | None:
        c = self.cfg
        if c.max_env_steps is not None and env_steps >= c.max_env_steps:
            return f"stop.max_env_steps={int(c.max_env_steps)} reached"
        if c.max_steps is not None and steps >= c.max_steps:
            return f"stop.max_steps={int(c.max_steps)} reached"
        if c.max_seconds is not None and elapsed_s >= c.max_seconds:
            return f"stop.max_seconds={c.max_seconds} reached"
        if not stats:
            return None
        if c.metric is not None and c.metric in stats:
            self.recent.append(float(stats[c.metric]))
            value = sum(self.recent) / len(self.recent)
            full = len(self.recent) == self.recent.maxlen
            hit = value >= c.threshold if c.mode == StopMode.max else value <= c.threshold
            if full and hit:
                op = ">=" if c.mode == StopMode.max else "<="
                over = f" (mean of the last {c.window})" if c.window > 1 else ""
                return f"stop.metric {c.metric}={value:.4g}{over} {op} {c.threshold}"
        for i, condition in enumerate(self.conditions):
            try:
                if condition(stats):
                    return f"stop.conditions[{i}] ({type(condition).__name__}) holds"
            except KeyError as e:
                missing = str(e.args[0]) if e.args else str(e)
                if "'eval/" in missing and not any(k.startswith("eval/") for k in stats):
                    continue  # an eval stat: nothing to compare before the first evaluation
                raise ConfigError(f"stop.conditions[{i}]: {missing}") from None
        return None


def _check_diverged(cfg: DictConfig, stats: Mapping[str, float], step: int, env_steps: int) -> None:
    """Raise :class:`DivergedError` when a loss is NaN/inf or a ``guard`` bound is exceeded."""
    where = f"training diverged at step {step} ({env_steps} env steps)"
    lr = cfg.optimizer.get("lr")
    cause = (
        f"Likely cause: the learning rate (optimizer.lr={lr if lr is not None else 'default'}) "
        "is too high for this task; try 3e-4 to 3e-3, or a lower trainer.max_grad_norm"
    )
    for k, v in stats.items():
        if k.startswith("losses/") and not math.isfinite(v):
            raise DivergedError(f"{where}: {k}={v}. {cause}.")
    bounds = (
        ("monitors/kl_div", "guard.max_kl_div", cfg.guard.max_kl_div),
        ("losses/vf", "guard.max_vf_loss", cfg.guard.max_vf_loss),
    )
    for stat, key, bound in bounds:
        value = stats.get(stat)
        if bound is not None and value is not None and value > bound:
            raise DivergedError(
                f"{where}: {stat}={value:.4g} > {key}={bound:g}. {cause} "
                f"(or unnormalized rewards: trainer.normalize_rewards). "
                f"To allow it, raise {key} or set it to null."
            )


def _env_reset_due(algorithm: Any) -> bool:
    """Whether the next collect resets the environment (and uses its env_config)."""
    return bool(algorithm.env_reset_due)


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
    signals = _Signals()
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
        reporter = _reporter(cfg)
        if ckpt is not None:
            _restore(trainer, built, ckpt)
        if cfg.mlflow.enabled and cfg.mlflow.tracking_uri is None:
            import mlflow

            # MLflow's default (MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the cwd), made
            # absolute, so the checkpoint's config finds the same store when resumed elsewhere.
            cfg.mlflow.tracking_uri = mlflow.get_tracking_uri()
        tracker = _open_tracker(cfg, job, ckpt.get("mlflow_run_id") if ckpt else None)
        try:
            if tracker is not None:
                trainer.tracker = tracker
                if ckpt is None:
                    tracker.log_params(trainer.algorithm.params)
                    _log_config(tracker, cfg, job)
        except BaseException:
            _close(tracker, "FAILED")
            raise
        loop = _Loop(cfg, job, built, trainer, tracker, reporter, ckpt, ckpt_path, signals)
        return loop.run()


def _restore(trainer: Any, built: Built, ckpt: Mapping[str, Any]) -> None:
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
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    tracker.log_artifact(path)


class _Loop:
    """The training loop of one job (state kept on ``self`` for checkpoints)."""

    def __init__(
        self,
        cfg: DictConfig,
        job: Job,
        built: Built,
        trainer: Any,
        tracker: Any,
        reporter: Any,
        ckpt: Mapping[str, Any] | None,
        ckpt_path: Path,
        signals: _Signals,
    ) -> None:
        self.cfg, self.job, self.built = cfg, job, built
        self.signals = signals
        self.trainer, self.tracker, self.reporter = trainer, tracker, reporter
        self.ckpt_path = ckpt_path
        loop = dict(ckpt["loop"]) if ckpt else {}
        self.elapsed0 = float(loop.get("elapsed_s", 0.0))
        self.last_eval: dict[str, float] = dict(loop.get("last_eval", {}))
        self.eval_step = int(loop.get("eval_step", -1))
        self.stats: dict[str, float] = {}
        self.t0 = time.perf_counter()
        self.names_checked = False
        self.stop = _Stop(cfg, built.conditions)
        algorithm = trainer.algorithm
        self.hper = int(algorithm.horizons_per_env_reset)
        self.num_envs = int(algorithm.config.num_envs)
        self.env_config: dict[str, Any] | None = None
        self.schedule_defaults = schedule_defaults(built.env_cls, built.env_config)

    @property
    def steps(self) -> int:
        return int(self.trainer.state["algorithm/steps"])

    @property
    def env_steps(self) -> int:
        return int(self.trainer.state["env/steps"])

    @property
    def elapsed_s(self) -> float:
        return self.elapsed0 + time.perf_counter() - self.t0

    def at_reset_boundary(self) -> bool:
        """Evaluation (and so stopping) only starts on an env-reset boundary."""
        return self.hper <= 0 or self.trainer.state["algorithm/collects"] % self.hper == 0

    # -- pieces --------------------------------------------------------------------------
    def train_step(self) -> None:
        schedule = self.built.schedule
        if schedule is not None and _env_reset_due(self.trainer.algorithm):
            drawn = schedule.env_config(
                self.env_steps, self.num_envs, self.trainer.algorithm.device, self.schedule_defaults
            )
            self.env_config = {**self.built.env_config, **drawn} if drawn else None
        self.stats = self.trainer.step(env_config=self.env_config)
        _check_diverged(self.cfg, self.stats, self.steps, self.env_steps)
        extra = {"time/elapsed_s": self.elapsed_s}
        if schedule is not None:
            schedule.update(self.stats, self.env_steps)
            extra.update(schedule.metrics())
        if self.tracker is not None:
            self.tracker.log_metrics(extra, step=self.env_steps)
        if not self.names_checked:
            _check_stat_names(self.cfg, self.stats, self.trainer.collect_stat_names)
            self.names_checked = True

    def evaluate(self) -> None:
        env_config = self.built.eval_env_config
        if self.built.eval_schedule is not None:
            env_config = self.built.eval_schedule.env_config(
                self.env_steps, self.num_envs, self.trainer.algorithm.device, self.schedule_defaults
            )
        self.last_eval = self.trainer.eval(
            env_config=env_config, deterministic=self.cfg.eval.deterministic
        )
        self.eval_step = self.steps
        if self.reporter is not None:
            self.reporter.report(self.objective()[0], self.steps)

    def objective(self) -> list[float]:
        merged = {**self.stats, **self.last_eval}
        names = _objective_names(self.cfg)
        missing = [n for n in names if n not in merged]
        if missing:
            raise ConfigError(
                f"objective={missing[0]!r}: no such stat was produced "
                f"(available: {', '.join(sorted(merged))})."
            )
        return [float(merged[n]) for n in names]

    def save(self) -> None:
        if self.tracker is not None:
            # Metrics go to MLflow asynchronously: have those of every step this
            # checkpoint covers in the store before it claims them (kill -9 safe).
            self.tracker.wait()
        schedule = self.built.schedule
        ckpt_lib.save(
            self.ckpt_path,
            {
                "trainer": self.trainer.state_dict(),
                "schedule": schedule.state_dict() if schedule is not None else None,
                "rng": ckpt_lib.get_rng_state(),
                "mlflow_run_id": self.tracker.run_id if self.tracker is not None else None,
                "config": OmegaConf.to_yaml(self.cfg, resolve=True),
                "loop": {
                    "elapsed_s": self.elapsed_s,
                    "last_eval": dict(self.last_eval),
                    "eval_step": self.eval_step,
                },
            },
        )

    def flush(self) -> None:
        if self.tracker is not None:
            self.tracker.flush()

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> float | tuple[float, ...]:
        cfg, signals = self.cfg, self.signals
        max_env_steps = cfg.stop.max_env_steps
        progress = Progress(
            None if max_env_steps is None else int(max_env_steps),
            initial_env_steps=self.env_steps,
            bar=cfg.progress.bar,
            multirun=self.job.multirun,
            log_every_s=cfg.progress.log_every_s,
        )
        every_eval, every_ckpt = cfg.eval.every, cfg.checkpoint.every
        log.info(
            "%s %s; checkpoint: %s",
            f"resuming at step {self.steps}:" if self.steps else "training",
            self._describe(),
            self.ckpt_path,
        )
        reason = self.stop.reason(
            steps=self.steps, env_steps=self.env_steps, elapsed_s=self.elapsed_s, stats={}
        )
        try:
            if signals.received is not None:  # a signal came while the run was set up
                raise Interrupted(signals.received)
            while not (reason and self.at_reset_boundary()):
                self.train_step()
                evaluated = every_eval > 0 and self.steps % every_eval == 0
                if evaluated:
                    self.evaluate()
                self.flush()
                progress.update(
                    self.steps,
                    self.env_steps,
                    self.stats,
                    self.last_eval if evaluated else None,
                )
                if every_ckpt > 0 and self.steps % every_ckpt == 0:
                    self.save()
                if signals.received is not None:
                    raise Interrupted(signals.received)
                # Stateful conditions (Plateaus, ...) see each evaluation once.
                reason = reason or self.stop.reason(
                    steps=self.steps,
                    env_steps=self.env_steps,
                    elapsed_s=self.elapsed_s,
                    stats={**self.stats, **self.last_eval} if evaluated else self.stats,
                )
            if self.eval_step != self.steps and self.at_reset_boundary():
                self.evaluate()
                self.flush()
            progress.close()
            values = self.objective()
            bad = [v for v in values if not math.isfinite(v)]
            if bad:
                raise DivergedError(f"the objective {cfg.objective} is {bad[0]}.")
            self.save()
            if self.tracker is not None:
                self.tracker.log_artifact(self.ckpt_path)
                self.tracker.close("FINISHED")
            log.info("%s: %s", reason, progress.line(self.steps))
            log.info("objective %s = %s", cfg.objective, ", ".join(f"{v:.6g}" for v in values))
            return values[0] if len(values) == 1 else tuple(values)
        except Interrupted:
            progress.close()
            self.save()
            if self.tracker is not None:
                self.tracker.set_tags({"rl8.interrupted": "true"})
            _close(self.tracker, "KILLED")
            log.warning(
                "interrupted at step %d; checkpoint saved. Continue with: "
                "python -m rl8.train resume=%s",
                self.steps,
                self.ckpt_path.parent,
            )
            raise
        except BaseException as e:
            progress.close()
            if _is_pruned(e):
                self.save()
                if self.tracker is not None:
                    self.tracker.set_tags({"rl8.trial_state": "PRUNED"})
                log.info("trial pruned at step %d", self.steps)
            # A second Ctrl-C aborts mid-step: the state may be torn, so no checkpoint.
            status = "KILLED" if _is_pruned(e) or isinstance(e, KeyboardInterrupt) else "FAILED"
            _close(self.tracker, status)
            raise

    def _describe(self) -> str:
        env = getattr(self.built.env_cls, "__name__", str(self.built.env_cls))
        kind = "RecurrentTrainer" if self.built.train_config.recurrent else "Trainer"
        horizon = self.trainer.algorithm.config.horizon
        return f"{kind} on {env} ({self.num_envs} envs x horizon {horizon})"


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def main(cfg: DictConfig) -> float | tuple[float, ...]:
    """The Hydra app: train one job, return its objective (see :func:`run`)."""
    return run(cfg)


def _cli() -> None:
    try:
        main()
    except KeyboardInterrupt as e:
        sys.exit(128 + getattr(e, "signum", signal.SIGINT))


if __name__ == "__main__":
    _cli()
