"""The sweep's MLflow parent run: the sweep's settings and search space as params,
trial counts and the best value as metrics after every trial, the best parameters,
``optimization_results.yaml`` and the plots at the end. Every job gets its id as
``mlflow.parent_run_id``. MLflow trouble only warns: the sweep goes on without it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from .study import count_states

if TYPE_CHECKING:
    import optuna

__all__ = [
    "RUN_IDS_ATTR",
    "close_dead_sweepers_runs",
    "close_left_running",
    "finish_parent_run",
    "log_progress",
    "start_parent_run",
]

log = logging.getLogger(__name__)

RUN_IDS_ATTR = "mlflow_parent_run_ids"  # study user attribute: the parent runs so far
WORKER_TAG = "rl8.optuna.worker"  # parent run tag: host:pid of its sweeper
_MAX_RUN_IDS = 50


def start_parent_run(
    node: Any,
    study: optuna.Study,
    settings: Mapping[str, Any],
    search_space: Mapping[str, str],
    tags: Mapping[str, Any],
) -> Any:
    """Start the parent run, or return None.

    Args:
        node: The app's ``mlflow`` config node; no run without one, or when it
            says ``enabled: false`` (the app logs nothing either).
        study: The study (its ``mlflow_parent_run_ids`` gets the run's id).
        settings: The sweeper's settings (``direction``, ``n_trials``, ...).
        search_space: Override key -> its grammar.
        tags: Run tags besides ``rl8.role: sweep``.

    Returns:
        An :class:`rl8.tracking.MlflowTracker`, or None.
    """
    if not isinstance(node, DictConfig) or node.get("enabled", True) is False:
        return None
    try:
        from rl8.tracking import MlflowTracker

        tracker = MlflowTracker(
            tracking_uri=node.get("tracking_uri"),
            experiment_name=node.get("experiment_name"),
            run_name=f"optuna:{study.study_name}",
            tags={**tags, "rl8.role": "sweep", WORKER_TAG: f"{socket.gethostname()}:{os.getpid()}"},
        )
        tracker.log_params(
            {
                "sweeper.direction": ",".join(settings["direction"]),
                **{
                    f"sweeper.{k}": settings[k]
                    for k in ("n_trials", "n_jobs", "seeds_per_trial", "aggregate")
                },
                "sweeper.sampler": (settings["sampler"] or {}).get("_target_"),
                "sweeper.pruner": (settings["pruner"] or {}).get("_target_"),
                **{f"space.{key}": text for key, text in search_space.items()},
            }
        )
        runs = list(study.user_attrs.get(RUN_IDS_ATTR, []))
        study.set_user_attr(RUN_IDS_ATTR, [*runs, tracker.run_id][-_MAX_RUN_IDS:])
        log.info(f"MLflow parent run {tracker.run_id}")
        return tracker
    except Exception as e:
        log.warning(f"No MLflow parent run ({type(e).__name__}: {e})")
        return None


def log_progress(tracker: Any, study: optuna.Study, directions: list[str]) -> None:
    """Trial counts (``trials/complete|pruned|fail``) and ``best_value``, at the
    number of finished trials."""
    trials = study.get_trials(deepcopy=False)
    counts = count_states(trials)
    metrics: dict[str, float] = {
        f"trials/{state.lower()}": counts[state] for state in ("COMPLETE", "PRUNED", "FAIL")
    }
    if len(directions) == 1 and metrics["trials/complete"]:
        metrics["best_value"] = study.best_value
    tracker.log_metrics(metrics, step=sum(t.state.is_finished() for t in trials))


def finish_parent_run(
    tracker: Any,
    study: optuna.Study,
    directions: list[str],
    results: Mapping[str, Any],
    files: list[Path],
    status: str,
) -> None:
    """Log the last progress, the best parameters and ``files``, then close the run
    with ``status`` (``FINISHED``, ``FAILED`` or ``KILLED``)."""
    try:
        log_progress(tracker, study, directions)
        if results.get("best_params"):
            tracker.log_params({f"best.{k}": v for k, v in results["best_params"].items()})
            tracker.set_tags({"rl8.optuna.best_trial": results.get("best_trial")})
        for p in files:
            if p.exists():
                tracker.log_artifact(p)
        tracker.close(status)
    except Exception as e:
        log.warning(f"MLflow parent run: {type(e).__name__}: {e}")


def close_left_running(node: Any, parent_run_id: str | None) -> int:
    """Close (as KILLED) what a dead worker left RUNNING: its parent run and that
    run's RUNNING child runs (its trials' jobs). Returns how many runs it closed.

    Args:
        node: This sweeper's ``mlflow`` config node (where the runs are tracked).
        parent_run_id: The dead worker's parent run (recorded on its trials).
    """
    if not parent_run_id or not isinstance(node, DictConfig) or node.get("enabled", True) is False:
        return 0
    try:
        from rl8.tracking import open_client

        client = open_client(node.get("tracking_uri"))
        parent = client.get_run(parent_run_id)
        children = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' "
            "and attributes.status = 'RUNNING'",
        )
        closed = 0
        for run in [*children, parent]:
            if run.info.status == "RUNNING":
                client.set_terminated(run.info.run_id, "KILLED")
                closed += 1
        if closed:
            log.info(f"Closed {closed} MLflow run(s) left RUNNING under parent run {parent_run_id}")
        return closed
    except Exception as e:
        log.warning(f"Could not close the MLflow runs of parent run {parent_run_id}: {e}")
        return 0


def close_dead_sweepers_runs(node: Any, study_name: str) -> int:
    """Close what sweepers of ``study_name`` killed on this host left RUNNING (their
    parent runs and RUNNING child runs), found by the parent runs' worker tag.
    Returns how many runs it closed."""
    if not isinstance(node, DictConfig) or node.get("enabled", True) is False:
        return 0
    from .study import pid_alive

    try:
        from rl8.tracking import open_client

        client = open_client(node.get("tracking_uri"))
        exp = client.get_experiment_by_name(str(node.get("experiment_name") or "Default"))
        if exp is None:
            return 0
        parents = client.search_runs(
            [exp.experiment_id],
            filter_string="tags.`rl8.role` = 'sweep' and attributes.status = 'RUNNING' "
            f"and tags.`rl8.optuna.study_name` = '{study_name}'",
        )
    except Exception as e:
        log.warning(f"Could not look for MLflow runs left RUNNING: {e}")
        return 0
    closed = 0
    for run in parents:
        host, _, pid = str(run.data.tags.get(WORKER_TAG, "")).rpartition(":")
        if host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid)):
            closed += close_left_running(node, run.info.run_id)
    return closed
