"""The training loop of one ``python -m rl8.train`` job: step, evaluate, report,
checkpoint, until a stop rule holds; and what ends a job early (signals, a
divergence guard, a pruned trial). :mod:`rl8.train` builds a job and runs it here.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from . import checkpoint as ckpt_lib
from .build import Built, schedule_defaults
from .config import StopMode
from .errors import ConfigError, DivergedError, did_you_mean
from .progress import Progress
from .redact import redact

if TYPE_CHECKING:
    from .train import Job

__all__ = ["Interrupted", "Loop", "Signals", "close_tracker"]

log = logging.getLogger("rl8.train")


def _objective_names(cfg: DictConfig, stats: Mapping[str, float]) -> list[str]:
    """``cfg.objective`` as a list; ``auto``: the mean return of the last 100
    training episodes when the env reports episodes (``stats`` has it), else
    the evaluation's mean horizon return."""
    obj = cfg.objective
    if obj == "auto":
        return ["episodes/return_mean" if "episodes/return_mean" in stats else "eval/returns/mean"]
    return [obj] if isinstance(obj, str) else list(obj)


def _check_stat_names(
    cfg: DictConfig, stats: Mapping[str, float], collect_names: frozenset[str]
) -> None:
    """Fail (naming the key) when ``objective`` or ``stop.metric`` names a stat
    that neither a train step (``stats``, the first one's) nor an evaluation
    (``eval/`` + the names of a collect's stats) produces. Runs after the first
    step, so a typo never costs a whole run (also with ``eval.every=0``)."""
    eval_names = {f"eval/{k}" for k in collect_names}
    wanted = [("objective", n) for n in _objective_names(cfg, stats)]
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


def close_tracker(tracker: Any, status: str) -> None:
    """End the MLflow run with ``status`` (never raises)."""
    if tracker is not None:
        with contextlib.suppress(Exception):
            tracker.close(status)


# -- interruption -------------------------------------------------------------------------------


class Interrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM stopped the run after its checkpoint was saved."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Signals:
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
    def installed(self) -> Iterator[Signals]:
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


# -- stop rules and guards ---------------------------------------------------------------------


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


class Loop:
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
        signals: Signals,
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
        #: A one-sub-env copy of the env to record the policy in (``record.at_end``).
        self.record_env: Any = None
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
        names = _objective_names(self.cfg, self.stats)
        missing = [n for n in names if n not in merged]
        if missing:
            raise ConfigError(
                f"objective={missing[0]!r}: no such stat was produced "
                f"(available: {', '.join(sorted(merged))})."
            )
        return [float(merged[n]) for n in names]

    def record(self) -> Path:
        """A GIF of the trained policy in :attr:`record_env` (``record.*``)."""
        from .evaluate import record_gif

        path = record_gif(
            self.record_env,
            self.trainer.algorithm.policy,
            self.job.output_dir / "policy.gif",
            episodes=self.cfg.record.episodes,
            fps=self.cfg.record.fps,
        )
        log.info("recorded %d episode(s) of the policy: %s", self.cfg.record.episodes, path)
        return path

    def save(self) -> None:
        if self.tracker is not None:
            # Metrics go to MLflow asynchronously (sent about once a second): have
            # those of every step this checkpoint covers in the store before it
            # claims them (kill -9 safe).
            self.tracker.wait()
        schedule = self.built.schedule
        ckpt_lib.save(
            self.ckpt_path,
            {
                "trainer": self.trainer.state_dict(),
                "schedule": schedule.state_dict() if schedule is not None else None,
                "rng": ckpt_lib.get_rng_state(),
                "mlflow_run_id": self.tracker.run_id if self.tracker is not None else None,
                "config": redact(OmegaConf.to_yaml(self.cfg, resolve=True)),
                "loop": {
                    "elapsed_s": self.elapsed_s,
                    "last_eval": dict(self.last_eval),
                    "eval_step": self.eval_step,
                },
            },
        )

    # -- stop rules and guards ------------------------------------------------------------------------
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
        every_ckpt_s = cfg.checkpoint.every_s
        saved_at = time.perf_counter()
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
                progress.update(
                    self.steps,
                    self.env_steps,
                    self.stats,
                    self.last_eval if evaluated else None,
                )
                if (every_ckpt > 0 and self.steps % every_ckpt == 0) or (
                    every_ckpt_s > 0 and time.perf_counter() - saved_at >= every_ckpt_s
                ):
                    self.save()
                    saved_at = time.perf_counter()
                if signals.received is not None:
                    raise Interrupted(signals.received)
                # Stateful conditions (Plateaus, ...) see each evaluation once.
                reason = reason or self.stop.reason(
                    steps=self.steps,
                    env_steps=self.env_steps,
                    elapsed_s=self.elapsed_s,
                    stats={**self.stats, **self.last_eval} if evaluated else self.stats,
                )
            # The time the stop rule held, before the final evaluation, checkpoint and upload.
            summary = progress.line(self.steps)
            if self.eval_step != self.steps and self.at_reset_boundary():
                self.evaluate()
            progress.close()
            values = self.objective()
            names = _objective_names(cfg, self.stats)
            for name, v in zip(names, values):
                if math.isfinite(v):
                    continue
                if "episodes/" in name and math.isnan(v):
                    log.warning(
                        "objective %s is NaN: no episode ended (episodes/count is 0). Train "
                        "longer (stop.max_env_steps) or pick another objective, e.g. "
                        "objective=eval/returns/mean.",
                        name,
                    )
                    continue
                raise DivergedError(f"the objective {name} is {v}.")
            self.save()
            gif = self.record() if self.record_env is not None else None
            if self.tracker is not None:
                self.tracker.log_artifact(self.ckpt_path)
                if gif is not None:
                    self.tracker.log_artifact(gif)
                self.tracker.close("FINISHED")
            log.info("%s: %s", reason, summary)
            log.info("objective %s = %s", ", ".join(names), ", ".join(f"{v:.6g}" for v in values))
            return values[0] if len(values) == 1 else tuple(values)
        except Interrupted:
            progress.close()
            self.save()
            if self.tracker is not None:
                self.tracker.set_tags({"rl8.interrupted": "true"})
            close_tracker(self.tracker, "KILLED")
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
            close_tracker(self.tracker, status)
            raise

    def _describe(self) -> str:
        env = getattr(self.built.env_cls, "__name__", str(self.built.env_cls))
        kind = "RecurrentTrainer" if self.built.train_config.recurrent else "Trainer"
        horizon = self.trainer.algorithm.config.horizon
        return f"{kind} on {env} ({self.num_envs} envs x horizon {horizon})"
