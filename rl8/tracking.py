"""MLflow tracking: one run per tracker, written by a worker process.

Every :class:`MlflowTracker` owns its own MLflow run (two trainers in one
process never share a run; the original rl8 logged every trainer into one
shared run, so building a second trainer failed with "Changing param values
is not allowed").

**A worker process does the MLflow work** (:mod:`rl8._tracking_worker`).
Importing MLflow and opening a store takes ~2 s, as long as importing torch;
the worker does it on another core while the training process imports torch
and builds its model (``python -m rl8.train`` starts it before importing
torch), and then writes every request in order. The training process sends
requests down a pipe and waits only where it needs an answer: the run's id
(:attr:`MlflowTracker.run_id`, :meth:`MlflowTracker.ready`), :meth:`MlflowTracker.wait`
and :meth:`MlflowTracker.close`. One worker serves all the trackers of a
process. If the training process dies, even by ``kill -9``, the worker ends
its open runs ``KILLED``.

Metrics are buffered and sent with one request at most every
``flush_every_s`` seconds (default 1; checked when metrics are logged) and on
:meth:`MlflowTracker.flush`, :meth:`MlflowTracker.wait` and
:meth:`MlflowTracker.close`: a write costs the worker ~6 ms of CPU however
many steps it holds, and on a busy machine that CPU is taken from training.
A failed write is raised as :class:`~rl8.errors.TrackingError` by the next
flush, wait or close.

A run that is still open when the interpreter exits is ended then (see
:meth:`MlflowTracker.close`): ``FINISHED`` after a normal exit, ``KILLED``
after an uncaught ``KeyboardInterrupt`` and ``FAILED`` after any other
uncaught exception.

Trainers take ``tracker=AUTO`` (the default, the string ``"auto"``): they
create a tracker of their own on MLflow's default store (see
:func:`resolve_tracker`). ``tracker=None`` starts no worker.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import itertools
import json
import math
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, Final, Literal, NamedTuple, TypeAlias

from .errors import TrackingError

__all__ = [
    "AUTO",
    "MlflowTracker",
    "PreparedStore",
    "TrackerArg",
    "flatten",
    "prepare",
    "prepared_store",
    "resolve_tracker",
    "unique_run_name",
]

#: The ``tracker`` default of the trainers: a new run on MLflow's default store.
AUTO: Final = "auto"

_MAX_PARAM_LEN = 6000
#: Seconds to wait for the worker to end a run at exit before giving up on it.
_CLOSE_TIMEOUT_S = 60.0


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


class _WorkerProcess:
    """This process' MLflow worker (:mod:`rl8._tracking_worker`) and the
    thread reading its replies."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[1])  # the rl8 this process runs
        code = (
            f"import sys; sys.path.insert(0, {root!r}); "
            "from rl8._tracking_worker import main; main()"
        )
        self.pid = os.getpid()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self._stdin: IO[str] = self.proc.stdin  # type: ignore[assignment]
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[int, concurrent.futures.Future[dict[str, Any]]] = {}
        self._exited: str | None = None
        #: Failed writes, by run key: raised by that run's next flush, wait or close.
        self.errors: dict[int, str] = {}
        threading.Thread(target=self._read, name="rl8-mlflow-replies", daemon=True).start()

    def alive(self) -> bool:
        return self.pid == os.getpid() and self._exited is None and self.proc.poll() is None

    def send(self, msg: dict[str, Any]) -> None:
        line = json.dumps(msg) + "\n"
        with self._lock:
            try:
                self._stdin.write(line)
                self._stdin.flush()
            except (OSError, ValueError):  # a broken pipe: the worker is gone
                raise TrackingError(self._gone()) from None

    def request(self, msg: dict[str, Any]) -> concurrent.futures.Future[dict[str, Any]]:
        """Send ``msg``; the future holds the worker's reply."""
        fut: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        with self._lock:
            rid = next(self._ids)
            self._waiting[rid] = fut
            if self._exited is not None:
                fut.set_result({"error": self._exited})
                return fut
        try:
            self.send({**msg, "id": rid})
        except TrackingError as e:
            with self._lock:
                self._waiting.pop(rid, None)
            fut.set_result({"error": str(e)})
        return fut

    def _gone(self) -> str:
        return f"the MLflow worker process exited (status {self.proc.poll()})"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            msg = json.loads(line)
            if "id" in msg:
                with self._lock:
                    fut = self._waiting.pop(msg["id"], None)
                if fut is not None:
                    fut.set_result(msg)
            else:
                self.errors[msg["run"]] = msg["error"]
        self.proc.wait()
        with self._lock:
            self._exited = self._gone()
            waiting, self._waiting = self._waiting, {}
        for fut in waiting.values():
            fut.set_result({"error": self._exited})


_worker_lock = threading.Lock()
_worker: _WorkerProcess | None = None
#: The worker's answers to :func:`prepare`, by (tracking URI argument, cwd).
_prepared: dict[tuple[str | None, str], concurrent.futures.Future[dict[str, Any]]] = {}
_run_keys = itertools.count(1)


def _forget_parent_trackers() -> None:
    """In a forked child: the parent's worker and runs are the parent's to end."""
    global _worker
    _worker = None
    _OPEN.clear()
    _prepared.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_parent_trackers)


def _process_worker() -> _WorkerProcess:
    """This process' worker, started on first use (again after a fork, or if it died)."""
    global _worker
    with _worker_lock:
        if _worker is None or not _worker.alive():
            _worker = _WorkerProcess()
        return _worker


def _context() -> dict[str, Any]:
    """What MLflow's defaults depend on: the cwd and the environment, as they are now."""
    return {"cwd": os.getcwd(), "env": dict(os.environ)}


def _uri(tracking_uri: str | None) -> str | None:
    """``tracking_uri``, or the one set with ``mlflow.set_tracking_uri`` in this
    process (if MLflow was imported here); ``None``: the worker resolves MLflow's default."""
    mlflow = sys.modules.get("mlflow")
    if tracking_uri is None and mlflow is not None and hasattr(mlflow, "get_tracking_uri"):
        return str(mlflow.get_tracking_uri())
    return tracking_uri


def prepare(tracking_uri: str | None = None) -> None:
    """Start this process' MLflow worker now and have it import MLflow and open
    the store at ``tracking_uri`` (``None``: MLflow's default), while this
    process goes on (``python -m rl8.train`` calls it before importing torch).
    Creates nothing: a new local store is created with the first run."""
    uri = _uri(tracking_uri)
    _prepared[(uri, os.getcwd())] = _process_worker().request(
        {"op": "prepare", "tracking_uri": uri, **_context()}
    )


class PreparedStore(NamedTuple):
    """The worker's answer to :func:`prepare`."""

    #: The store's URI, MLflow's default resolved (absolute for a local file).
    uri: str
    #: A new local SQLite store in a directory that takes new files (the
    #: worker created the file its schema is built in). No run can be refused
    #: there, short of a full disk: a caller creating a run there (not
    #: reopening one, not a child run) may go on without waiting for it (the
    #: schema takes ~1 s to build); a failure is then raised by the tracker's
    #: next logging call, flush, wait or close.
    new: bool


def prepared_store(tracking_uri: str | None = None) -> PreparedStore | None:
    """What :func:`prepare` found for ``tracking_uri`` in this cwd; ``None`` when
    it was not called, or MLflow could not be imported. Waits for the worker to
    import MLflow (not to open the store)."""
    fut = _prepared.get((_uri(tracking_uri), os.getcwd()))
    if fut is None:
        return None
    reply = fut.result()
    if reply.get("error"):
        return None
    return PreparedStore(str(reply["tracking_uri"]), bool(reply.get("new_local_store")))


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
        flush_every_s: Seconds metrics are buffered at most before one write
            request is sent (checked when metrics are logged); 0 sends every
            :meth:`log_metrics` call. Default 1.

    The run is created by the worker process while the caller goes on; a
    store that cannot be opened is raised as :class:`~rl8.errors.TrackingError`
    by the first call that needs the run (:meth:`ready`, :attr:`run_id`,
    :meth:`wait`, :meth:`close`) or by any logging call or flush made after
    the failure was reported.
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
        flush_every_s: float = 1.0,
    ) -> None:
        from .redact import redact

        if not (isinstance(flush_every_s, int | float) and 0 <= flush_every_s < math.inf):
            raise ValueError(f"flush_every_s={flush_every_s!r}: must be a finite number >= 0")
        self.flush_every_s = float(flush_every_s)
        self._pending: list[list[Any]] = []
        self._sent_at = time.monotonic()
        self._client: Any = None
        self._closed = False
        self._key = next(_run_keys)
        self._worker = _process_worker()
        self._started = self._worker.request(
            {
                "op": "start",
                "run": self._key,
                "tracking_uri": _uri(tracking_uri),
                "experiment_name": experiment_name,
                "run_id": run_id,
                "run_name": run_name,
                "tags": {str(k): redact(str(v)) for k, v in (tags or {}).items()},
                "parent_run_id": parent_run_id,
                **_context(),
            }
        )
        _OPEN.add(self)
        _register_exit_hook()

    def _info(self, timeout: float | None = None) -> dict[str, Any]:
        """The worker's answer to creating (or reopening) the run; waits for it."""
        msg = self._started.result(timeout)
        if msg.get("error"):
            self._closed = True  # there is no run to end
            _OPEN.discard(self)
            raise TrackingError(msg["error"])
        return msg

    def ready(self) -> MlflowTracker:
        """Wait until the run exists.

        Raises:
            TrackingError: The store cannot be opened, or the run created or found.
        """
        self._info()
        return self

    @property
    def run_id(self) -> str:
        """The MLflow run id (waits until the run exists)."""
        return str(self._info()["run_id"])

    @property
    def experiment_id(self) -> str:
        """The run's experiment id (waits until the run exists)."""
        return str(self._info()["experiment_id"])

    @property
    def tracking_uri(self) -> str:
        """The store's URI, MLflow's default resolved (waits until the run exists)."""
        return str(self._info()["tracking_uri"])

    @property
    def client(self) -> Any:
        """An ``MlflowClient`` of the run's store in this process (imports MLflow
        here), for reading the run back or calls rl8 does not make."""
        if self._client is None:
            self._client = open_client(self.tracking_uri)
        return self._client

    def _send(self, op: str, **fields: Any) -> None:
        self._raise_failed_write()
        self._worker.send({"op": op, "run": self._key, **fields})

    def _raise_failed_write(self) -> None:
        if self._started.done():  # the worker answered: _info() raises a failed start
            try:
                self._info()
            except TrackingError as e:
                raise TrackingError(f"the MLflow run could not be created: {e}") from None
        error = self._worker.errors.get(self._key)
        if error is not None:
            raise TrackingError(error)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log (flattened) params; long values are truncated, credentials in
        URLs masked (:mod:`rl8.redact`)."""
        from .redact import redact

        flat = flatten(params)
        self._send("params", params=[[k, redact(str(v))[:_MAX_PARAM_LEN]] for k, v in flat.items()])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags (credentials in URLs masked)."""
        from .redact import redact

        if tags:
            self._send("tags", tags={str(k): redact(str(v)) for k, v in tags.items()})

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """Buffer numeric metrics at ``step``; send them once ``flush_every_s``
        seconds passed since the last send.

        Non-numeric and non-finite values are skipped.
        """
        ts = int(time.time() * 1000)
        for k, v in metrics.items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                continue
            fv = float(v)
            if math.isfinite(fv):
                self._pending.append([k, fv, ts, int(step)])
        if time.monotonic() - self._sent_at >= self.flush_every_s:
            self.flush()

    def flush(self) -> None:
        """Send buffered metrics to the worker (it writes them while training goes on).

        Raises:
            TrackingError: An earlier write of this run failed.
        """
        pending, self._pending = self._pending, []
        self._sent_at = time.monotonic()
        if pending:
            self._send("metrics", metrics=pending)
        else:
            self._raise_failed_write()

    def wait(self) -> None:
        """Send the buffered metrics and block until everything is in the store.

        Raises:
            TrackingError: A write failed.
        """
        self.flush()
        self._info()
        reply = self._worker.request({"op": "sync", "run": self._key}).result()
        if reply.get("error"):
            raise TrackingError(reply["error"])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a local file or directory to the run's artifacts (the worker
        reads it later: do not change it afterwards)."""
        self._send("artifact", path=str(Path(path).resolve()), artifact_path=artifact_path)

    def close(self, status: str = "FINISHED") -> None:
        """Flush, wait for the store, and mark the run ``FINISHED``, ``FAILED``
        or ``KILLED``.

        A tracker that is not closed is closed when the interpreter exits,
        with ``FINISHED`` after a normal exit, ``KILLED`` after an uncaught
        ``KeyboardInterrupt`` and ``FAILED`` after another uncaught exception.

        Raises:
            TrackingError: The run could not be created, or a write failed
                (the run is ended all the same where the store allows).
        """
        if self._closed:
            return
        self._closed = True
        _OPEN.discard(self)
        self._info(_CLOSE_TIMEOUT_S)
        pending, self._pending = self._pending, []
        if pending:
            self._worker.send({"op": "metrics", "run": self._key, "metrics": pending})
        reply = self._worker.request({"op": "close", "run": self._key, "status": status})
        error = reply.result(_CLOSE_TIMEOUT_S).get("error")
        if error:
            raise TrackingError(error)


def get_or_create_experiment(client: Any, name: str) -> str:
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


def open_client(tracking_uri: str | None, schema: Path | None = None) -> Any:
    """An ``MlflowClient`` of ``tracking_uri`` (``None``: MLflow's default). A new
    local SQLite store is created first, whole and at once (see
    :func:`build_sqlite_store`): processes that open a store at the same time
    never run MLflow's schema migrations on the same file. ``schema``: a file
    :func:`build_sqlite_store` made for this store earlier."""
    import mlflow
    from mlflow.tracking import MlflowClient

    tracking_uri = tracking_uri or mlflow.get_tracking_uri()
    path = new_local_store(tracking_uri)
    if path is not None:  # a new local store: its schema in <1 s, not ~6 s
        schema = schema if schema is not None and schema.exists() else None
        _link_store(schema or build_sqlite_store(tracking_uri), path)
    elif schema is not None:
        schema.unlink(missing_ok=True)
    return MlflowClient(tracking_uri=tracking_uri)


def new_local_store(tracking_uri: str) -> Path | None:
    """The file of a local ``sqlite:///`` store that does not exist yet (in an
    existing directory), else ``None``."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    import sqlalchemy

    url = sqlalchemy.engine.make_url(tracking_uri)
    if not url.database or url.database == ":memory:" or url.query:
        return None
    path = Path(url.database)
    return None if path.exists() or not path.parent.is_dir() else path


def schema_file(store: Path) -> Path:
    """A new temporary file name beside the local SQLite store file ``store``
    (from :func:`new_local_store`)."""
    return store.with_name(f".{store.name}.{secrets.token_hex(4)}.tmp")


def build_sqlite_store(tracking_uri: str, tmp: Path | None = None) -> Path | None:
    """The schema of a new local SQLite store, built quickly on a temporary
    file beside it (``tmp``, default: a new :func:`schema_file`); ``None``
    where that cannot be done (not a new local store, an MLflow without the
    migration helper). :func:`open_client` moves it into place.

    MLflow creates a new store by running all its schema migrations, with a
    synced write for each statement: ~5 s of waiting for the disk. Here they
    run without syncing (as MLflow's own file-to-database migration does);
    the file is synced once when it is hard-linked into place, and only if
    the store still does not exist: the store appears complete or not at
    all, and another job creating it at the same time is never overwritten.
    MLflow then opens it like any existing store (and adds its default
    experiment). Where this cannot be done, MLflow creates the store itself.
    """
    path = new_local_store(tracking_uri)
    if path is None:
        return None
    try:
        import sqlalchemy
        from mlflow.store.db.utils import _initialize_tables
    except ImportError:
        return None
    url = sqlalchemy.engine.make_url(tracking_uri)
    tmp = tmp or schema_file(path)
    engine = sqlalchemy.create_engine(url.set(database=str(tmp)))

    @sqlalchemy.event.listens_for(engine, "connect")
    def _no_sync(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("PRAGMA journal_mode=MEMORY")
        cursor.close()

    try:
        _initialize_tables(engine)
        return tmp
    except Exception:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        engine.dispose()


def _link_store(schema: Path | None, path: Path) -> None:
    """Sync ``schema`` (from :func:`build_sqlite_store`) and hard-link it to
    ``path`` unless that exists by now; the temporary file is removed."""
    if schema is None:
        return
    try:
        fd = os.open(schema, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(schema, path)
    except OSError:  # FileExistsError: created meanwhile; else: no hard links here
        pass
    finally:
        schema.unlink(missing_ok=True)


#: Trackers not closed yet; closed when the interpreter exits.
_OPEN: set[MlflowTracker] = set()
_hook_registered = False


def _close_open_trackers() -> None:
    while _OPEN:
        tracker = _OPEN.pop()
        try:
            tracker.close(_exit_status())
        except Exception as e:  # one failing store must not keep the others open
            print(f"rl8: could not end an MLflow run: {e}", file=sys.stderr)


def _register_exit_hook() -> None:
    """Close open trackers at exit, first: threading's exit hooks run before
    those of :mod:`atexit` (other libraries' teardown). Falls back to
    :mod:`atexit` where that hook is missing."""
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
