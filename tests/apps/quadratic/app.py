"""Tiny Hydra app for the Optuna sweeper tests (stands in for ``python -m rl8.train``).

A cheap deterministic objective that honours the nodes the sweeper relies on
exactly like the real app: ``seed``, ``objective``, ``eval.every``, ``stop``,
``mlflow`` (child run of ``mlflow.parent_run_id`` when ``tracking_uri`` is set)
and ``trial`` (a :class:`~rl8.optuna_sweeper.reporter.TrialReporter` reports every
evaluation and the job stops with ``optuna.TrialPruned`` when pruned).

"Training" takes ``stop.max_steps`` steps of ``sleep`` seconds (``slow_sleep`` in
the trials listed in ``slow_trials``); at step t the objective is
``shape.scale * ((x - 0.3)**2 + (y + 0.2)**2) + 0.01 * seed + 1 / t`` (minimize).
``calls.log`` in the sweep dir gets a line per job when it starts and ends.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from rl8.optuna_sweeper.reporter import TrialReporter


def value_at(cfg: DictConfig, step: int) -> float:
    bowl = (cfg.x - 0.3) ** 2 + (cfg.y + 0.2) ** 2
    return cfg.shape.scale * bowl + 0.01 * cfg.seed + 1.0 / step


def _log_call(cfg: DictConfig, event: str = "start") -> None:
    try:
        sweep_dir = Path(HydraConfig.get().sweep.dir)
    except Exception:
        return
    t = cfg.trial
    line = f"{t.number} {t.seed_index} {cfg.seed} {cfg.x} {cfg.y} {os.getpid()}"
    name = "calls.log" if event == "start" else "ends.log"
    with open(sweep_dir / name, "a") as f:
        f.write(f"{line} {time.time()}\n")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | list[float]:
    _log_call(cfg)
    if cfg.fail_above is not None and cfg.x > cfg.fail_above:
        raise RuntimeError(f"x={cfg.x} is above fail_above={cfg.fail_above}")
    tracker = None
    if cfg.mlflow.tracking_uri:
        from rl8.tracking import MlflowTracker

        tracker = MlflowTracker(
            tracking_uri=cfg.mlflow.tracking_uri,
            experiment_name=cfg.mlflow.experiment_name,
            parent_run_id=cfg.mlflow.parent_run_id,
            run_name=cfg.mlflow.run_name,
        )
    reporter = TrialReporter.from_config(cfg.trial)
    value = math.nan
    step = 0
    sleep = cfg.slow_sleep if cfg.trial.number in cfg.slow_trials else cfg.sleep
    try:
        for step in range(1, cfg.stop.max_steps + 1):
            time.sleep(sleep)
            if (cfg.eval.every and step % cfg.eval.every == 0) or step == cfg.stop.max_steps:
                value = value_at(cfg, step)
                if tracker is not None:
                    tracker.log_metrics({cfg.objective: value}, step=step)
                if reporter is not None:
                    reporter.report(value, step)  # raises optuna.TrialPruned when pruned
    except BaseException as e:
        if tracker is not None:
            tracker.set_tags(
                {"rl8.trial_state": "PRUNED" if "Pruned" in type(e).__name__ else "FAILED"}
            )
            tracker.close("KILLED")
        raise
    finally:
        if reporter is not None:
            reporter.set_user_attr(f"steps_used/{reporter.seed_index}", step)
    if tracker is not None:
        tracker.close()
    _log_call(cfg, "end")
    if cfg.nan_below is not None and cfg.y < cfg.nan_below:
        return math.nan
    if cfg.multi_objective:
        return [value, cfg.x**2]
    return value


if __name__ == "__main__":
    main()
