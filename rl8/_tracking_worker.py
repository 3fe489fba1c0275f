"""The MLflow worker process behind :class:`rl8.tracking.MlflowTracker`.

A training process starts one worker (``python -c ... main()``) and sends it
JSON lines on its stdin; the worker imports MLflow, opens the stores and
writes the runs, so none of that (~2 s of imports and store set-up) happens
in the training process, and the writes overlap training on another core.

Requests (one JSON object per line; ``id`` only where a reply is wanted)::

    {"op": "prepare", "id": 1, "tracking_uri": ..., "cwd": ..., "env": {...}}   # warm up
    {"op": "start", "id": 1, "run": 7, "tracking_uri": ..., "experiment_name": ...,
     "run_id": ..., "run_name": ..., "tags": {...}, "parent_run_id": ..., "cwd": ..., "env": ...}
    {"op": "params", "run": 7, "params": [[key, value], ...]}
    {"op": "tags", "run": 7, "tags": {key: value}}
    {"op": "metrics", "run": 7, "metrics": [[key, value, timestamp_ms, step], ...]}
    {"op": "artifact", "run": 7, "path": ..., "artifact_path": ...}
    {"op": "sync", "id": 2, "run": 7}                  # reply once all before it are written
    {"op": "close", "id": 3, "run": 7, "status": "FINISHED"}

Replies: ``{"id": 1, "tracking_uri": ..., "new_local_store": ...}`` to "prepare" (sent
once MLflow is imported, before the store is opened), ``{"id": 1, "run_id": ...,
"experiment_id": ..., "tracking_uri": ...}`` to "start",
``{"id": 2}``, or ``{"id": N, "error": "..."}``; a failed write with no
request waiting is reported at once as ``{"run": 7, "error": "..."}``, and
the run's later writes are skipped. Requests are handled in order.

When stdin ends (the training process exited, or was killed) every run
still open is ended ``KILLED``: a process killed with ``kill -9`` leaves no
run ``RUNNING``. The worker ignores SIGINT and SIGTERM, which reach it with
the rest of its process group; the training process handles them and ends
its runs itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

_PARAM_CHUNK = 100  # params per log_batch call
_METRIC_CHUNK = 1000  # MLflow accepts at most 1000 metrics per log_batch call


@dataclass
class _Run:
    client: Any
    run_id: str
    error: str | None = None


class _OneRetryNotice(logging.Filter):
    """MLflow retries a database store that does not answer for ~100 s, with a
    multi-line warning per attempt: the first becomes one line, the rest go."""

    said = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith("SQLAlchemy engine could not be created"):
            return True
        if self.said:
            return False
        self.said = True
        error = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = "the MLflow store does not answer (%s); MLflow retries it for ~100 s"
        record.args = (_first_line(error) if isinstance(error, BaseException) else error,)
        return True


def _import_mlflow() -> Any:
    """MLflow, with its INFO messages (store creation, migrations) silenced:
    they would reach the user's terminal out of turn; its retries of a store
    that does not answer are announced once."""
    import mlflow

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    retries = logging.getLogger("mlflow.store.db.utils")
    if not any(isinstance(f, _OneRetryNotice) for f in retries.filters):
        retries.addFilter(_OneRetryNotice())
    return mlflow


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


class _Worker:
    def __init__(self, replies: IO[str]) -> None:
        self.replies = replies
        self.clients: dict[tuple[str, str], Any] = {}
        self.runs: dict[int, _Run] = {}
        #: Schemas of new local stores built by "prepare" (temporary files), by URI.
        self.schemas: dict[str, Path] = {}
        #: Stores "prepare" could not open (after MLflow's retries), by (cwd, URI):
        #: "start" fails with that error at once instead of retrying as long again.
        self.unopened: dict[tuple[str, str], Exception] = {}

    def reply(self, msg: dict[str, Any]) -> None:
        self.replies.write(json.dumps(msg) + "\n")
        self.replies.flush()

    def _context(self, msg: dict[str, Any]) -> None:
        """The training process' working directory and environment, as they are
        now (MLflow's default store is relative to the cwd, and read from
        ``MLFLOW_TRACKING_URI``)."""
        if "cwd" in msg:
            os.chdir(msg["cwd"])
        if "env" in msg:
            os.environ.clear()
            os.environ.update(msg["env"])

    def client(self, tracking_uri: str | None) -> tuple[Any, str]:
        mlflow = _import_mlflow()
        from rl8.tracking import open_client

        uri = tracking_uri or mlflow.get_tracking_uri()
        key = (os.getcwd(), uri)  # a relative sqlite:/// path depends on the cwd
        if key in self.unopened:
            raise self.unopened.pop(key)
        if key not in self.clients:
            self.clients[key] = open_client(uri, schema=self.schemas.pop(uri, None))
        return self.clients[key], uri

    def resolve(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Import MLflow and resolve the store "prepare" names: its URI, and
        whether it is a new local SQLite store in a directory that takes new
        files (no run can be refused there, short of a full disk). The file
        its schema is built in (by :meth:`prepare`) is that test."""
        self._context(msg)
        mlflow = _import_mlflow()
        from rl8.tracking import new_local_store, schema_file

        uri = msg.get("tracking_uri") or mlflow.get_tracking_uri()
        store = new_local_store(uri)
        if store is not None and uri not in self.schemas:
            # Recorded before it is created: a worker told to stop removes it.
            self.schemas[uri] = schema = schema_file(store)
            try:
                schema.touch(exist_ok=False)
            except OSError:
                del self.schemas[uri]
        return {"tracking_uri": uri, "new_local_store": store is not None and uri in self.schemas}

    def prepare(self, uri: str) -> None:
        """Open the store at ``uri``. A new local store is only built beside its
        place (in the file :meth:`resolve` created), and moved there when a run
        starts: a config error found meanwhile leaves no store behind."""
        from rl8.tracking import build_sqlite_store, new_local_store

        if new_local_store(uri) is None:
            try:
                client, _ = self.client(uri)
                client.search_experiments(max_results=1)
            except Exception as e:
                self.unopened[(os.getcwd(), uri)] = e
                raise
        elif uri in self.schemas and build_sqlite_store(uri, self.schemas[uri]) is None:
            self.schemas.pop(uri).unlink(missing_ok=True)

    def start(self, msg: dict[str, Any]) -> dict[str, Any]:
        from rl8.tracking import get_or_create_experiment

        self._context(msg)
        client, uri = self.client(msg.get("tracking_uri"))
        if msg.get("run_id"):
            info = client.get_run(msg["run_id"]).info
            client.update_run(info.run_id, status="RUNNING")
        else:
            name = msg.get("experiment_name")
            exp = get_or_create_experiment(client, name) if name else "0"
            tags = dict(msg.get("tags") or {})
            if msg.get("parent_run_id"):
                tags["mlflow.parentRunId"] = msg["parent_run_id"]
            info = client.create_run(exp, tags=tags, run_name=msg.get("run_name")).info
        self.runs[msg["run"]] = _Run(client, info.run_id)
        return {"run_id": info.run_id, "experiment_id": info.experiment_id, "tracking_uri": uri}

    def write(self, run: _Run, msg: dict[str, Any]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        op, client = msg["op"], run.client
        if op == "params":
            params = [Param(k, v) for k, v in msg["params"]]
            for i in range(0, len(params), _PARAM_CHUNK):
                client.log_batch(run.run_id, params=params[i : i + _PARAM_CHUNK], synchronous=True)
        elif op == "tags":
            tags = [RunTag(k, v) for k, v in msg["tags"].items()]
            client.log_batch(run.run_id, tags=tags, synchronous=True)
        elif op == "metrics":
            metrics = [Metric(k, v, ts, step) for k, v, ts, step in msg["metrics"]]
            for i in range(0, len(metrics), _METRIC_CHUNK):
                chunk = metrics[i : i + _METRIC_CHUNK]
                client.log_batch(run.run_id, metrics=chunk, synchronous=True)
        elif op == "artifact":
            if os.path.isdir(msg["path"]):
                client.log_artifacts(run.run_id, msg["path"], msg.get("artifact_path"))
            else:
                client.log_artifact(run.run_id, msg["path"], msg.get("artifact_path"))
        else:
            raise ValueError(f"unknown request {op!r}")

    def handle(self, msg: dict[str, Any]) -> None:
        op, key, rid = msg["op"], msg.get("run"), msg.get("id")
        if op == "prepare":
            try:
                info = self.resolve(msg)
            except Exception as e:
                info = {"error": _first_line(e)}
            if rid is not None:
                self.reply({"id": rid, **info})
            if "error" in info:
                return
            with contextlib.suppress(Exception):  # a warm-up only: "start" reports errors
                self.prepare(info["tracking_uri"])
            return
        if op == "start":
            try:
                self.reply({"id": rid, **self.start(msg)})
            except Exception as e:
                self.reply({"id": rid, "error": _first_line(e)})
            return
        run = self.runs.get(key) if key is not None else None
        if run is None:
            if rid is not None:
                self.reply({"id": rid, "error": f"no MLflow run was started ({op})"})
            return
        if op == "sync":
            self.reply({"id": rid, "error": run.error})
        elif op == "close":
            del self.runs[msg["run"]]
            try:
                run.client.set_terminated(run.run_id, status=msg["status"])
            except Exception as e:
                run.error = run.error or _first_line(e)
            self.reply({"id": rid, "error": run.error})
        elif run.error is None:  # after a failed write, the run's later writes are skipped
            try:
                self.write(run, msg)
            except Exception as e:
                run.error = f"MLflow run {run.run_id}: {_first_line(e)}"
                self.reply({"run": key, "error": run.error})

    def end_open_runs(self) -> None:
        """The training process is gone: its open runs end ``KILLED`` (and
        unused new-store schemas are removed)."""
        for run in self.runs.values():
            try:
                run.client.set_terminated(run.run_id, status="KILLED")
            except Exception as e:
                print(f"rl8: could not end MLflow run {run.run_id}: {e}", file=sys.stderr)
        self.runs.clear()
        self.remove_schemas()

    def remove_schemas(self) -> None:
        """Remove the new-store schemas "prepare" built that no run used."""
        for schema in list(self.schemas.values()):
            schema.unlink(missing_ok=True)


def main() -> None:
    """Serve requests from stdin until it ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Background work: the CPU goes to training first. Writing while torch's
    # threads use every core stalls them at their barriers (a 50 ms write cost
    # the job ~150 ms on 2 cores); niced, the writes run when a core is free
    # (waits for the store, evaluation, the end), and the ~1.5 % share CFS still
    # gives keeps up with one metrics batch a second.
    if hasattr(os, "nice"):
        os.nice(19)
    # Replies go to the original stdout; anything else printed (by MLflow, even
    # from C) goes to stderr, so it cannot corrupt them.
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    worker = _Worker(replies)
    # Requests are read here and handled on a thread of their own, so that the end
    # of stdin is seen at once: a training process that stopped before starting a
    # run (a config error) does not wait for MLflow to load only to be told so.
    requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
    handler = threading.Thread(target=_serve, args=(worker, requests), daemon=True)
    handler.start()
    started = False
    for line in sys.stdin:
        msg = json.loads(line)
        started = started or msg["op"] == "start"
        requests.put(msg)
    if not started:
        worker.remove_schemas()
        os._exit(0)  # the handler may be importing MLflow: nothing of it is needed
    requests.put(None)
    handler.join()
    # Every write was synchronous and every run is ended: skip the interpreter's
    # teardown (MLflow's modules), which whoever reads this process' stderr waits for.
    sys.stderr.flush()
    os._exit(0)


def _serve(worker: _Worker, requests: queue.Queue[dict[str, Any] | None]) -> None:
    try:
        while (msg := requests.get()) is not None:
            try:
                worker.handle(msg)
            except Exception as e:  # a malformed request: answer it, serve the next
                if msg.get("id") is not None:
                    worker.reply({"id": msg["id"], "error": _first_line(e)})
    finally:
        worker.end_open_runs()
