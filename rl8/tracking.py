"""MLflow tracking: one run per tracker, metrics sent in batches.

Every :class:`MlflowTracker` owns its own MLflow run and talks to it through
an ``MlflowClient`` with an explicit run id, never through MLflow's global
"active run". Two trainers in one process therefore never share a run (the
original rl8 logged every trainer into one shared run, so building a second
trainer failed with "Changing param values is not allowed").

Metrics are buffered and sent with one ``log_batch`` call every
``flush_every`` logging calls (default 1: one call per training step) and on
:meth:`MlflowTracker.flush` / :meth:`MlflowTracker.close`. Metric batches are
written by a thread of the tracker's own, one batch in flight at a time: the
store write of step k overlaps step k + 1 instead of stalling the training
loop (a SQLite write costs ~10 ms, a few % of a CPU step and far more of a
GPU step). :meth:`MlflowTracker.close` waits for the last batch. (MLflow's
own asynchronous logging would do the same, but ending a run that used it
stalls for up to a second while its worker thread notices the shutdown.)

A run that is still open when the interpreter exits is ended then (see
:meth:`MlflowTracker.close`): ``FINISHED`` after a normal exit, ``KILLED``
after an uncaught ``KeyboardInterrupt`` and ``FAILED`` after any other
uncaught exception. A process killed by a signal cannot end its run.

Trainers take ``tracker=AUTO`` (the default, the string ``"auto"``): they
create a tracker of their own on MLflow's default store (see
:func:`resolve_tracker`). ``tracker=None`` never imports MLflow.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import math
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

__all__ = ["AUTO", "MlflowTracker", "TrackerArg", "flatten", "resolve_tracker", "unique_run_name"]

#: The ``tracker`` default of the trainers: a new run on MLflow's default store.
AUTO: Final = "auto"

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
        self.client = open_client(tracking_uri)
        self.flush_every = max(1, int(flush_every))
        self._pending: list[Any] = []
        self._calls = 0
        self._in_flight: list[concurrent.futures.Future[Any]] = []  # the last batch's writes
        self._writer: concurrent.futures.ThreadPoolExecutor | None = None
        if run_id is not None:
            run = self.client.get_run(run_id)
            self.run_id = run.info.run_id
            self.experiment_id = run.info.experiment_id
            self.client.update_run(self.run_id, status="RUNNING")
            self._register_exit()
            return
        if experiment_name:
            self.experiment_id = _experiment_id(self.client, experiment_name)
        else:
            self.experiment_id = "0"
        from .redact import redact

        all_tags = {str(k): redact(str(v)) for k, v in (tags or {}).items()}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=run_name)
        self.run_id = run.info.run_id
        self._register_exit()

    def _register_exit(self) -> None:
        _OPEN.add(self)
        _register_exit_hook()

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log (flattened) params in one request; long values are truncated,
        credentials in URLs masked (:mod:`rl8.redact`)."""
        from mlflow.entities import Param

        from .redact import redact

        flat = flatten(params)
        entries = [Param(k, redact(str(v))[:_MAX_PARAM_LEN]) for k, v in flat.items()]
        for i in range(0, len(entries), 100):
            self.client.log_batch(self.run_id, params=entries[i : i + 100], synchronous=True)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags in one request (credentials in URLs masked)."""
        from mlflow.entities import RunTag

        from .redact import redact

        if tags:
            self.client.log_batch(
                self.run_id, tags=[RunTag(str(k), redact(str(v))) for k, v in tags.items()]
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
        if self._writer is None:
            self._writer = concurrent.futures.ThreadPoolExecutor(1, "rl8-mlflow")
        self._in_flight = [
            self._writer.submit(
                self.client.log_batch,
                self.run_id,
                metrics=pending[i : i + _BATCH_LIMIT],
                synchronous=True,
            )
            for i in range(0, len(pending), _BATCH_LIMIT)
        ]

    def wait(self) -> None:
        """Block until the metrics sent so far are in the store.

        Raises:
            mlflow.exceptions.MlflowException: A batch failed to be written.
        """
        in_flight, self._in_flight = self._in_flight, []
        for op in in_flight:
            op.result()

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a local file or directory to the run's artifacts."""
        p = Path(path)
        if p.is_dir():
            self.client.log_artifacts(self.run_id, str(p), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(p), artifact_path)

    def close(self, status: str = "FINISHED") -> None:
        """Flush, wait for the store, and mark the run ``FINISHED``, ``FAILED``
        or ``KILLED``.

        A tracker that is not closed is closed when the interpreter exits,
        with ``FINISHED`` after a normal exit, ``KILLED`` after an uncaught
        ``KeyboardInterrupt`` and ``FAILED`` after another uncaught exception.
        """
        _OPEN.discard(self)
        self.flush()
        self.wait()
        self._stop_writer()
        self.client.set_terminated(self.run_id, status=status)

    def _stop_writer(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    def _close_at_exit(self) -> None:
        try:
            self.wait()
            pending, self._pending = self._pending, []
            for i in range(0, len(pending), _BATCH_LIMIT):
                self.client.log_batch(
                    self.run_id, metrics=pending[i : i + _BATCH_LIMIT], synchronous=True
                )
        finally:
            self.client.set_terminated(self.run_id, status=_exit_status())


def _experiment_id(client: Any, name: str) -> str:
    """The id of experiment ``name``, created when missing. Jobs started
    together may all find it missing: the ones whose creation loses the race
    (the store's unique name constraint) use the winner's."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    try:
        return str(client.create_experiment(name))
    except MlflowException:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


def open_client(tracking_uri: str | None) -> Any:
    """An ``MlflowClient`` of ``tracking_uri`` (``None``: MLflow's default). A new
    local SQLite store is created first, whole and at once (see
    :func:`_create_sqlite_store`): processes that open a store at the same time
    never run MLflow's schema migrations on the same file."""
    import mlflow
    from mlflow.tracking import MlflowClient

    tracking_uri = tracking_uri or mlflow.get_tracking_uri()
    _create_sqlite_store(tracking_uri)  # a new local store: its schema in <1 s, not ~6 s
    return MlflowClient(tracking_uri=tracking_uri)


def _create_sqlite_store(tracking_uri: str) -> bool:
    """Create a new local SQLite store (its schema) quickly; ``False`` when
    there is nothing to do: not a local ``sqlite:///`` file, or one that exists.

    MLflow creates a new store by running all its schema migrations, with a
    synced write for each statement: ~5 s of waiting for the disk. Here they
    run on a temporary file next to the store without syncing (as MLflow's
    own file-to-database migration does), which is then synced once and
    hard-linked into place only if the store still does not exist: the
    store appears complete or not at all, and another job creating it at
    the same time is never overwritten. MLflow then opens it like any
    existing store (and adds its default experiment). Where this cannot be
    done (an MLflow without that migration helper, a file system without
    hard links), MLflow creates the store itself, as before.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return False
    try:
        import sqlalchemy
        from mlflow.store.db.utils import _initialize_tables
    except ImportError:
        return False
    url = sqlalchemy.engine.make_url(tracking_uri)
    if not url.database or url.database == ":memory:" or url.query:
        return False
    path = Path(url.database)
    if path.exists() or not path.parent.is_dir():
        return False
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    engine = sqlalchemy.create_engine(url.set(database=str(tmp)))

    @sqlalchemy.event.listens_for(engine, "connect")
    def _no_sync(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("PRAGMA journal_mode=MEMORY")
        cursor.close()

    try:
        _initialize_tables(engine)
        engine.dispose()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)
        return True
    except OSError:  # FileExistsError: created meanwhile; else: no hard links here
        return False
    finally:
        engine.dispose()
        tmp.unlink(missing_ok=True)


#: Trackers not closed yet; closed when the interpreter exits.
_OPEN: set[MlflowTracker] = set()
_hook_registered = False


def _close_open_trackers() -> None:
    while _OPEN:
        tracker = _OPEN.pop()
        try:
            tracker._close_at_exit()
        except Exception as e:  # one failing store must not keep the others open
            print(f"rl8: could not end MLflow run {tracker.run_id}: {e}", file=sys.stderr)


def _register_exit_hook() -> None:
    """Close open trackers at exit, before ``concurrent.futures`` shuts its
    thread pools down (MLflow's asynchronous logging runs on them, so the
    last batch is still written): threading's exit hooks run before those of
    :mod:`atexit`. Falls back to :mod:`atexit` where that hook is missing."""
    global _hook_registered
    if _hook_registered:
        return
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is None:
            raise RuntimeError
        register(_close_open_trackers)
    except RuntimeError:
        atexit.register(_close_open_trackers)
    _hook_registered = True


#: What a trainer's ``tracker`` keyword accepts: a run, :data:`AUTO` or ``None``.
TrackerArg: TypeAlias = MlflowTracker | Literal["auto"] | None


def _exit_status() -> str:
    """The run status that matches how the interpreter is exiting: the
    uncaught exception (if any) is in ``sys.last_value`` by then."""
    exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if exc is None or (isinstance(exc, SystemExit) and exc.code in (None, 0)):
        return "FINISHED"
    return "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"


def unique_run_name(*parts: str) -> str:
    """``"-".join(parts)`` plus a random 6-hex-digit suffix, e.g.
    ``"CartPole-MLPModel-3fa9c1"``. The suffix comes from :mod:`secrets`, so
    seeding torch, numpy or :mod:`random` does not repeat it."""
    return "-".join([*[p for p in parts if p], secrets.token_hex(3)])


def resolve_tracker(
    tracker: TrackerArg, run_name: Callable[[], str]
) -> tuple[MlflowTracker | None, bool]:
    """Turn a trainer's ``tracker`` argument into a tracker.

    Args:
        tracker: :data:`AUTO` (a new run named ``run_name()`` on MLflow's
            default store: ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``
            in the working directory), ``None`` (no tracking, MLflow is not
            imported) or an :class:`MlflowTracker` (used as is).
        run_name: Called for the name of an :data:`AUTO` run.

    Returns:
        The tracker (or ``None``) and whether it was created here.

    Raises:
        TypeError: Any other value.
    """
    if tracker is None:
        return None, False
    if isinstance(tracker, str) and tracker == AUTO:
        return MlflowTracker(run_name=run_name()), True
    if isinstance(tracker, MlflowTracker):
        return tracker, False
    raise TypeError(
        f"tracker must be 'auto' (a new MLflow run, the default), None (no tracking) or an "
        f"rl8.tracking.MlflowTracker, got {tracker!r}."
    )
