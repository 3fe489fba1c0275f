"""Hydra Sweeper running an Optuna study (optuna>=4) through Hydra's launcher.

Selected with ``hydra/sweeper=optuna`` (config: :mod:`rl8.optuna_sweeper.config`;
Hydra instantiates the thin subclass
``hydra_plugins.rl8_optuna_sweeper.optuna_sweeper.OptunaSweeper``). User guide:
docs/optuna.md.

One sweep:

1. validates everything before any trial (search space grammar and bounds,
   sampler/pruner targets, directions, that the overrides compose);
2. opens (or resumes) the study in its storage -- by default a journal file in
   the sweep directory -- and records the command line and base config on it;
3. keeps ``n_jobs`` trials running: each slot asks a trial, launches its jobs
   (``seeds_per_trial`` per trial) with one ``launcher.launch()`` call and tells
   Optuna the outcome -- COMPLETE (aggregated return values), PRUNED (a job
   raised ``optuna.TrialPruned``) or FAIL (a job raised or returned NaN; the
   reason is the trial user attribute ``fail_reason``) -- then asks the next, with
   no wait for the other slots. Other sweepers ("workers") may share the study:
   trial numbers (and Hydra job numbers) come from the study, each trial samples
   with its own seed, running trials heartbeat and stale ones are failed and
   replaced (:mod:`.study`);
4. stops when the study holds ``n_trials`` finished trials (counting every
   worker's; while the running ones would reach it, a slot waits) or after
   ``timeout``;
5. writes ``optimization_results.yaml`` and plots in the sweep directory and logs
   them to an MLflow parent run whose id every job receives as
   ``mlflow.parent_run_id``.

This module is the ask-launch-tell loop; the other steps live in
:mod:`.space` (1: search space), :mod:`.settings` (1: other settings, sampler,
pruner), :mod:`.study` (2: storage and bookkeeping), :mod:`.results` (5: results
file, plots) and :mod:`.parent_run` (5: MLflow).
"""

from __future__ import annotations

import inspect
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from . import jobs, parent_run, results, settings
from .errors import SearchSpaceError, SweeperConfigError, SweepStopped
from .space import (
    SearchParam,
    check_composition,
    check_values,
    format_value,
    parse_override,
    parse_search_space,
)
from .study import MAX_REASON, SweepStudy, job_storage_spec, safe_storage, storage_spec

if TYPE_CHECKING:
    import optuna

__all__ = [
    "OptunaSweeper",
    "SearchParam",
    "SearchSpaceError",
    "SweeperConfigError",
    "format_value",
    "parse_search_space",
]

log = logging.getLogger(__name__)


def _container(cfg: Any) -> Any:
    if isinstance(cfg, DictConfig | ListConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


class Terminated(KeyboardInterrupt):
    """SIGTERM stopped the sweep (handled like Ctrl-C: running trials are marked
    FAIL ``interrupted``, the MLflow parent run is closed as KILLED)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While the sweep runs, SIGTERM raises :class:`Terminated` in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    old = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@dataclass
class _Plan:
    """A sweep's checked settings: what :meth:`OptunaSweeper._optimize` runs."""

    space: dict[str, SearchParam]
    fixed: list[str]
    custom_fn: Callable[..., Any] | None
    directions: list[str]
    n_trials: int
    n_jobs: int
    seeds: int
    how: str
    storage: str  # as shown to users (no password)
    job_storage: str  # as passed to jobs
    parent_run_id: str | None
    mlflow_node: Any  # the app's mlflow node (closing runs of dead workers), or None


_WAIT = "wait"  # a slot's answer while the running trials would complete the study
_POLL_S = 2.0  # seconds between a waiting slot's looks at the study


class OptunaSweeper(Sweeper):
    """Optuna hyperparameter search as a Hydra Sweeper (see module docstring)."""

    def __init__(
        self,
        sampler: Any = None,
        pruner: Any = None,
        direction: Any = "minimize",
        storage: str | None = None,
        study_name: str | None = None,
        n_trials: int = 20,
        n_jobs: int = 1,
        timeout: float | None = None,
        seeds_per_trial: int = 1,
        aggregate: str = "mean",
        params: Any = None,
        custom_search_space: str | None = None,
        mlflow: bool = True,
        plots: bool = True,
        heartbeat_interval: float = 10.0,
        grace_period: float | None = None,
        **unknown: Any,
    ) -> None:
        # Keys the sweeper does not take fail in sweep(), as one line naming the key
        # (a TypeError here would reach the user wrapped in Hydra's instantiation error).
        self._unknown = sorted(unknown)
        self.sampler_cfg: dict[str, Any] | None = _container(sampler)
        self.pruner_cfg: dict[str, Any] | None = _container(pruner)
        self.direction = _container(direction)
        self.storage = storage
        self.study_name = study_name
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.timeout = timeout
        self.seeds_per_trial = seeds_per_trial
        self.aggregate = aggregate
        self.params = _container(params) or {}
        self.custom_search_space = custom_search_space
        self.use_mlflow = mlflow
        self.plots = plots
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None
        self.task_function: TaskFunction | None = None
        self._lock = threading.Lock()  # the study's books, the sampler, the results file
        self._told = threading.Condition(self._lock)  # a slot of this sweeper ended a trial

    # ------------------------------------------------------------------ Hydra API
    def setup(
        self,
        *,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()

    def sweep(self, arguments: list[str]) -> Any:
        import optuna

        from ..redact import redact_log_records

        assert self.config is not None and self.launcher is not None
        redact_log_records()  # the launchers echo every job's overrides
        # ---- 1. validate everything before touching the storage
        known = inspect.signature(type(self).__init__).parameters
        settings.check_known(self._unknown, [k for k in known if k not in ("self", "unknown")])
        directions = settings.check_directions(self.direction)
        settings.check_counts(
            {
                "n_trials": self.n_trials,
                "n_jobs": self.n_jobs,
                "seeds_per_trial": self.seeds_per_trial,
            },
            {
                "timeout": self.timeout,
                "heartbeat_interval": self.heartbeat_interval,
                "grace_period": self.grace_period,
            },
        )
        n_trials, seeds = self.n_trials, self.seeds_per_trial
        how = settings.check_aggregate_setting(self.aggregate)
        space, fixed = parse_search_space(self.params, arguments)
        if seeds > 1:
            if "seed" in space:
                raise SearchSpaceError("seed: cannot be searched when seeds_per_trial > 1")
            fixed = [f for f in fixed if parse_override(f).key_or_group != "seed"]
        custom_fn = settings.custom_search_space(self.custom_search_space)
        pruner, self.pruner_cfg = settings.build_pruner(self.pruner_cfg, len(directions) > 1)
        sampler_cls = settings.sampler_class(self.sampler_cfg)
        grid_space: dict[str, list[Any]] | None = None
        if issubclass(sampler_cls, optuna.samplers.GridSampler):
            grid_space = {name: p.grid_values() for name, p in space.items()}
            if not grid_space:
                raise SearchSpaceError("the grid sampler needs a non-empty hydra.sweeper.params")
            size = math.prod(len(v) for v in grid_space.values())
            if size < n_trials:
                log.info(f"Grid of {size} points: n_trials {n_trials} -> {size}")
                n_trials = size
        mlflow_node = OmegaConf.select(self.config, "mlflow") if self.use_mlflow else None
        extras = jobs.job_extras(
            "/validation",
            "validation",
            0,
            0,
            seed=0 if seeds > 1 else None,
            parent_run_id="validation" if isinstance(mlflow_node, DictConfig) else None,
        )
        check_composition(space, fixed, extras, self.validate_batch_is_legal)
        # an app can check a job's config as it would at run time (rl8.train does):
        # every bound of the search space is checked with it
        app_check = getattr(self.task_function, "check_config", None)
        if callable(app_check):
            check_values(space, fixed, extras, self._job_config, app_check)

        # ---- 2. open / resume the study
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        spec = storage_spec(self.storage, self.sweep_dir)
        study_name = self.study_name or str(self.config.hydra.job.name)
        self._study = SweepStudy(spec, study_name, directions, pruner)
        study = self._study.study
        # what sweepers killed on this host left behind: their trials, their runs
        for owner in self._study.fail_stale_trials():
            parent_run.close_left_running(mlflow_node, owner.get("parent_run_id"))
        parent_run.close_dead_sweepers_runs(mlflow_node, study_name)
        n_existing = len(study.trials)
        if spec.startswith("sqlite") and (self.n_jobs > 1 or self._study.counts()[1]):
            log.warning(
                "hydra.sweeper.storage is SQLite and several processes write to it (n_jobs > 1, "
                "or other workers on this study). Optuna: 'We would never recommend SQLite3 "
                "for parallel optimization' (SQLite locks the whole file on every write). "
                "Use the default journal file or PostgreSQL (docs/optuna.md)."
            )
        # trial N samples with seed + N: no two trials share a stream, in any worker
        study.sampler = settings.build_sampler(
            sampler_cls, self.sampler_cfg, self._base_seed(), grid_space
        )
        sweep_settings = self._settings(directions)
        search_space = {p.key: p.text for p in space.values()}
        self._study.record_invocation(
            self.config,
            arguments,
            {
                "search_space": search_space,
                "fixed_overrides": fixed,
                "sweeper": sweep_settings,
                "sweep_dir": str(self.sweep_dir),
                "storage": safe_storage(spec),
            },
        )
        self._study.record_pruner(self.pruner_cfg)
        log.info(
            f"Optuna study {study_name!r} in {safe_storage(spec)}: "
            f"{self._study.n_finished()}/{n_trials} trials finished"
            + (" (resumed)" if n_existing else "")
        )
        log.info(
            f"Sampler: {study.sampler}, pruner: {type(pruner).__name__}, "
            f"directions: {directions}, n_jobs: {self.n_jobs}, seeds_per_trial: {seeds}"
        )
        for key, text in search_space.items():
            log.info(f"  {key}: {text}")

        tracker = None
        if self.use_mlflow:
            tracker = parent_run.start_parent_run(
                mlflow_node,
                study,
                sweep_settings,
                search_space,
                tags={
                    "rl8.optuna.study_name": study_name,
                    "rl8.optuna.storage": safe_storage(spec),
                    "rl8.optuna.sweep_dir": str(self.sweep_dir),
                },
            )
        plan = _Plan(
            space,
            fixed,
            custom_fn,
            directions,
            n_trials,
            self.n_jobs,
            seeds,
            how,
            storage=safe_storage(spec),
            job_storage=job_storage_spec(OmegaConf.select(self.config, "hydra.sweeper"), spec),
            parent_run_id=tracker.run_id if tracker is not None else None,
            mlflow_node=mlflow_node,
        )
        status = "FAILED"
        try:
            with _sigterm_interrupts():
                self._optimize(plan, tracker)
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            self._finalize(directions, plan.storage, tracker, status)
        return study

    # ------------------------------------------------------------------ settings
    def _job_config(self, overrides: list[str]) -> DictConfig:
        """The config a job with ``overrides`` gets (without the ``hydra`` node)."""
        assert self.hydra_context is not None and self.config is not None
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    def _base_seed(self) -> int:
        """The app's ``seed`` (0 when absent or not an integer)."""
        assert self.config is not None  # set by setup()
        base = OmegaConf.select(self.config, "seed", default=0)
        return base if isinstance(base, int) else 0

    def _settings(self, directions: list[str]) -> dict[str, Any]:
        """The sweep's settings, as recorded on the study and the MLflow parent run."""
        return {
            "direction": directions,
            "n_trials": self.n_trials,
            "n_jobs": self.n_jobs,
            "timeout": self.timeout,
            "seeds_per_trial": self.seeds_per_trial,
            "aggregate": self.aggregate,
            "sampler": self.sampler_cfg,
            "pruner": self.pruner_cfg,
            "custom_search_space": self.custom_search_space,
            "heartbeat_interval": self.heartbeat_interval,
            "grace_period": self.grace_period,
        }

    # ------------------------------------------------------------------ the loop
    def _optimize(self, plan: _Plan, tracker: Any) -> None:
        """Run ``n_jobs`` slots (threads when the launcher runs jobs elsewhere) until
        the study holds ``n_trials`` finished trials or ``timeout`` has passed."""
        from hydra._internal.core_plugins.basic_launcher import BasicLauncher

        slots = plan.n_jobs
        if slots > 1 and isinstance(self.launcher, BasicLauncher):
            log.warning(
                f"hydra.sweeper.n_jobs={slots}: Hydra's basic launcher runs jobs in this "
                "process, one trial at a time; for parallel trials use hydra/launcher=joblib"
            )
            slots = 1
        self._deadline = None if self.timeout is None else time.monotonic() + self.timeout
        self._started = 0
        self._timeout_logged = False
        stop = threading.Event()
        beating = threading.Thread(
            target=self._heartbeat, args=(stop,), name="rl8-heartbeat", daemon=True
        )
        beating.start()
        try:
            if slots == 1:
                self._slot(plan, tracker, stop)
                return
            with ThreadPoolExecutor(slots, thread_name_prefix="rl8-trial") as pool:
                futures = [pool.submit(self._slot, plan, tracker, stop) for _ in range(slots)]
                try:
                    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                    for f in done:
                        f.result()  # the first error, raised here
                finally:
                    stop.set()  # the other slots end after their running trial
        finally:
            stop.set()
            beating.join()

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_interval):
            self._study.beat()

    def _slot(self, plan: _Plan, tracker: Any, stop: threading.Event) -> None:
        """One slot: ask a trial, launch its jobs, tell the outcome; again."""
        while not stop.is_set():
            with self._told:
                nxt = self._next_trial(plan)
                if isinstance(nxt, str):  # _WAIT: for a trial here, or a look at the others
                    self._told.wait(_POLL_S)
                    continue
            if nxt is None:
                return
            trial, job_overrides = nxt
            try:
                returns = self.launcher.launch(
                    job_overrides, initial_job_idx=trial.number * plan.seeds
                )
            except BaseException as e:
                with self._told:
                    self._study.fail(
                        trial.number, f"interrupted: {type(e).__name__}: {e}", interrupted=True
                    )
                    self._study.release(trial.number)
                    self._told.notify_all()
                raise
            with self._told:
                self._tell(plan, trial, list(returns))
                self._study.release(trial.number)
                self._told.notify_all()
                self._write_results(plan.directions, plan.storage, None)
                if tracker is not None:
                    parent_run.log_progress(tracker, self._study.study, plan.directions)

    def _next_trial(self, plan: _Plan) -> tuple[optuna.Trial, list[list[str]]] | str | None:
        """The next trial and its jobs' overrides; ``_WAIT`` while the running trials
        (of any worker) would complete the study; None when done. Fails stale trials
        of other workers first, closing the MLflow runs they left RUNNING."""
        grace = self.grace_period or 3 * self.heartbeat_interval
        for owner in self._study.fail_stale_trials(grace):
            parent_run.close_left_running(plan.mlflow_node, owner.get("parent_run_id"))
        finished, running = self._study.counts()
        if finished >= plan.n_trials:
            return None
        if self._deadline is not None and self._started and time.monotonic() >= self._deadline:
            if not self._timeout_logged:
                log.info(f"Timeout of {self.timeout}s reached: no new trials")
                self._timeout_logged = True
            return None
        if finished + running >= plan.n_trials:
            return _WAIT
        distributions = {name: p.distribution for name, p in plan.space.items()}
        trial = self._study.study.ask(fixed_distributions=distributions)
        self._started += 1
        try:
            return trial, self._ask_jobs(plan, trial, trial.number * plan.seeds)
        except BaseException as e:
            self._study.fail(
                trial.number, f"interrupted: {type(e).__name__}: {e}", interrupted=True
            )
            self._study.release(trial.number)
            raise

    def _ask_jobs(self, plan: _Plan, trial: optuna.Trial, job_idx: int) -> list[list[str]]:
        """Record a new trial's overrides and owner; its jobs' overrides (one per seed)."""
        searched = jobs.searched_overrides(
            trial, plan.space, plan.custom_fn, self.config, self.custom_search_space
        )
        trial.set_user_attr("overrides", searched)
        self._study.claim(
            trial.number,
            plan.seeds,
            plan.how,
            list(range(job_idx, job_idx + plan.seeds)),
            plan.parent_run_id,
        )
        base_seed = self._base_seed()
        if plan.seeds > 1:
            trial.set_user_attr("seeds", [base_seed + k for k in range(plan.seeds)])
        return [
            [
                *plan.fixed,
                *searched,
                *jobs.job_extras(
                    plan.job_storage,
                    self._study.study.study_name,
                    trial.number,
                    k,
                    seed=base_seed + k if plan.seeds > 1 else None,
                    parent_run_id=plan.parent_run_id,
                ),
            ]
            for k in range(plan.seeds)
        ]

    def _tell(self, plan: _Plan, trial: optuna.Trial, returns: list[JobReturn]) -> None:
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        out = jobs.outcome(trial.number, returns, len(plan.directions), plan.how)
        if out.untracked is not None:
            self._study.fail(
                trial.number, f"interrupted: a job could not track: {out.untracked}", True
            )
            self._study.release(trial.number)
            raise SweepStopped(
                f"Trial {trial.number}: {out.untracked}. The sweep stops (every trial "
                "would fail the same way; the trial does not count): fix the MLflow store, "
                "then run the same command again to resume the study."
            )
        study = self._study.study
        try:
            if out.job_dirs:
                trial.set_user_attr("job_dirs", out.job_dirs)
            if out.seed_values:
                trial.set_user_attr("seed_values", out.seed_values)
            if out.failure is not None:
                trial.set_user_attr("fail_reason", out.failure[:MAX_REASON])
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            elif out.pruned is not None:
                trial.set_user_attr("pruned_reason", str(out.pruned)[:MAX_REASON])
                study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
            else:
                assert out.values is not None
                values = out.values[0] if len(out.values) == 1 else out.values
                study.tell(trial, values, skip_if_finished=True)
        except UpdateFinishedTrialError:
            # another worker took it for stale (no heartbeat for the grace period)
            log.warning(
                f"Trial {trial.number} was already marked finished by another worker; "
                "its outcome is not recorded (raise hydra.sweeper.grace_period?)"
            )
        except RuntimeError as e:
            if "Study.stop" not in str(e):  # GridSampler asks to stop once the grid is done
                raise
        done = self._study.storage.get_trial(self._study.trial_id(trial.number))
        n_obj = len(plan.directions)
        shown = done.values if done.values is None or n_obj > 1 else done.values[0]
        msg = f"Trial {trial.number} {done.state.name}: value {shown}"
        if out.failure is not None:
            msg += f" ({out.failure})"
        log.info(f"{msg}; {' '.join(done.user_attrs.get('overrides', []))}")

    # ------------------------------------------------------------------ the end
    def _write_results(
        self, directions: list[str], storage: str, plots: list[Path] | None
    ) -> dict[str, Any]:
        assert self.config is not None  # set by setup()
        choices = OmegaConf.select(self.config, "hydra.runtime.choices", default=None)
        groups = choices.keys() if choices is not None else ()
        return results.write_results(
            self._study.study, self.sweep_dir, storage, directions, groups, plots
        )

    def _finalize(self, directions: list[str], storage: str, tracker: Any, status: str) -> None:
        """Results file and plots; the parent run's last metrics, artifacts and status."""
        study = self._study.study
        plots: list[Path] = []
        if self.plots and status == "FINISHED":
            plots = results.save_plots(study, self.sweep_dir, directions)
        path = self.sweep_dir / results.RESULTS_FILE
        try:
            res = self._write_results(directions, storage, plots)
        except Exception as e:
            log.warning(f"Could not write {results.RESULTS_FILE}: {e}")
            res = {}
        if status == "FINISHED":
            if res.get("best_params") is not None:
                log.info(f"Best value {res['best_value']} (trial {res['best_trial']})")
                log.info("Best overrides: " + " ".join(res.get("best_overrides", [])))
            log.info(f"Results: {path}")
        if tracker is not None:
            parent_run.finish_parent_run(tracker, study, directions, res, [path, *plots], status)
