"""MLflow tracking: one run per tracker, metrics sent in batches.

Every :class:`MlflowTracker` owns its own MLflow run and talks to it through
an ``MlflowClient`` with an explicit run id, never through MLflow's global
"active run". Two trainers in one process therefore never share a run (the
original rl8 logged every trainer into one shared run, so building a second
trainer failed with "Changing param values is not allowed").

Metrics are buffered and sent with one ``log_batch`` call every
``flush_every`` logging calls (default 1: one call per training step) and on
:meth:`MlflowTracker.flush` / :meth:`MlflowTracker.close`. Metric batches go
through MLflow's asynchronous logging, one batch in flight at a time: the
store write of step k overlaps step k + 1 instead of stalling the training
loop (a SQLite write costs ~10 ms, a few % of a CPU step and far more of a
GPU step). :meth:`MlflowTracker.close` waits for the last batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["MlflowTracker", "flatten"]

_MAX_PARAM_LEN = 6000
_BATCH_LIMIT = 1000  # MLflow accepts at most 1000 metrics per log_batch call


def flatten(d: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Flatten nested mappings into ``{"a.b.c": value}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{sep}{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten(v, key, sep))
        else:
            out[key] = v
    return out


class MlflowTracker:
    """One MLflow run.

    Args:
        tracking_uri: MLflow tracking URI. ``None`` uses MLflow's default
            (``MLFLOW_TRACKING_URI`` or a local ``sqlite:///mlflow.db``).
        experiment_name: Experiment to log into (created when missing);
            ``None`` for MLflow's default experiment.
        run_id: Continue this existing run instead of creating one (resume).
        run_name: Display name of a new run.
        tags: Tags of a new run.
        parent_run_id: Makes the new run a child of this run (sweeps).
        flush_every: Logging calls buffered before one ``log_batch`` request.
    """

    def __init__(
        self,
        *,
        tracking_uri: str | None = None,
        experiment_name: str | None = None,
        run_id: str | None = None,
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
        flush_every: int = 1,
    ) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.flush_every = max(1, int(flush_every))
        self._pending: list[Any] = []
        self._calls = 0
        self._in_flight: Any = None  # RunOperations of the last asynchronous batch
        if run_id is not None:
            run = self.client.get_run(run_id)
            self.run_id = run.info.run_id
            self.experiment_id = run.info.experiment_id
            self.client.update_run(self.run_id, status="RUNNING")
            return
        if experiment_name:
            exp = self.client.get_experiment_by_name(experiment_name)
            self.experiment_id = (
                exp.experiment_id if exp else self.client.create_experiment(experiment_name)
            )
        else:
            self.experiment_id = "0"
        all_tags = {str(k): str(v) for k, v in (tags or {}).items()}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=run_name)
        self.run_id = run.info.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log (flattened) params in one request; long values are truncated."""
        from mlflow.entities import Param

        flat = flatten(params)
        entries = [Param(k, str(v)[:_MAX_PARAM_LEN]) for k, v in flat.items()]
        for i in range(0, len(entries), 100):
            self.client.log_batch(self.run_id, params=entries[i : i + 100], synchronous=True)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags in one request."""
        from mlflow.entities import RunTag

        if tags:
            self.client.log_batch(
                self.run_id, tags=[RunTag(str(k), str(v)) for k, v in tags.items()]
            )

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """Buffer numeric metrics at ``step``; send every ``flush_every`` calls.

        Non-numeric and non-finite values are skipped.
        """
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        for k, v in metrics.items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                continue
            fv = float(v)
            if math.isfinite(fv):
                self._pending.append(Metric(k, fv, ts, int(step)))
        self._calls += 1
        if self._calls % self.flush_every == 0:
            self.flush()

    def flush(self) -> None:
        """Send buffered metrics now, asynchronously, after the previous batch
        has landed (so at most one batch is ever in flight)."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        self.wait()
        ops = [
            self.client.log_batch(
                self.run_id, metrics=pending[i : i + _BATCH_LIMIT], synchronous=False
            )
            for i in range(0, len(pending), _BATCH_LIMIT)
        ]
        self._in_flight = [op for op in ops if op is not None]

    def wait(self) -> None:
        """Block until the metrics sent so far are in the store.

        Raises:
            mlflow.exceptions.MlflowException: A batch failed to be written.
        """
        in_flight, self._in_flight = self._in_flight, None
        for op in in_flight or ():
            op.wait()

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a local file or directory to the run's artifacts."""
        p = Path(path)
        if p.is_dir():
            self.client.log_artifacts(self.run_id, str(p), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(p), artifact_path)

    def close(self, status: str = "FINISHED") -> None:
        """Flush, wait for the store, and mark the run ``FINISHED``, ``FAILED``
        or ``KILLED``."""
        self.flush()
        self.wait()
        self.client.set_terminated(self.run_id, status=status)
