"""Trainers track into MLflow by default: one run per trainer on MLflow's
default store, ended when the trainer is closed or the interpreter exits;
``tracker=None`` tracks nothing (and never imports MLflow)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rl8 import DiscreteDummyEnv, RecurrentTrainer, TrainConfig, Trainer
from rl8.errors import TrackingError
from rl8.tracking import AUTO, MlflowTracker, PreparedStore, prepare, prepared_store

SMALL = {"num_envs": 8, "horizon": 4}
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module (creating one takes seconds); tests
    tell their runs apart by run id."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).search_experiments()
    return uri


@pytest.fixture
def default_store(store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """MLflow's default store pointed at the module's SQLite file (and the cwd
    at ``tmp_path``, where a store would put artifacts); yields a client."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)
    monkeypatch.chdir(tmp_path)
    return MlflowClient(tracking_uri=store_uri)


def _runs(client, *run_ids: str) -> dict:
    """All runs of the store, or those of ``run_ids``, by run id."""
    runs = {r.info.run_id: r for r in client.search_runs(["0"])}
    return {k: v for k, v in runs.items() if k in run_ids} if run_ids else runs


def test_two_trainers_log_into_two_runs_of_their_own(default_store) -> None:
    a = Trainer(DiscreteDummyEnv, **SMALL)
    b = RecurrentTrainer(DiscreteDummyEnv, **SMALL, seq_len=4)
    a.step()
    b.step()
    a.close()
    with b:
        b.step()
    runs = _runs(default_store, a.tracker.run_id, b.tracker.run_id)
    assert len(runs) == 2
    names = [r.info.run_name for r in runs.values()]
    assert len(set(names)) == 2 and all(n.startswith("DiscreteDummyEnv-") for n in names)
    assert runs[a.tracker.run_id].info.run_name.startswith("DiscreteDummyEnv-MLPModel-")
    assert runs[b.tracker.run_id].info.run_name.startswith("DiscreteDummyEnv-LSTMModel-")
    assert all(r.info.status == "FINISHED" for r in runs.values())
    steps = default_store.get_metric_history(b.tracker.run_id, "env/steps")
    assert [m.value for m in steps] == [32.0, 64.0]
    assert runs[a.tracker.run_id].data.params["horizon"] == "4"


def test_run_names_do_not_repeat_under_a_fixed_seed(default_store) -> None:
    import torch

    names = []
    for _ in range(2):
        torch.manual_seed(0)
        with Trainer(DiscreteDummyEnv, **SMALL) as t:
            names.append(default_store.get_run(t.tracker.run_id).info.run_name)
    assert names[0] != names[1]


def test_trainconfig_build_passes_the_tracker_through(default_store) -> None:
    # Once TrainConfig.build's default is AUTO, .build() alone does this.
    before = set(_runs(default_store))
    trainer = TrainConfig(DiscreteDummyEnv, **SMALL).build(tracker=AUTO)
    trainer.close()
    assert set(_runs(default_store)) - before == {trainer.tracker.run_id}


def test_tracker_none_creates_no_run_and_a_given_tracker_is_not_closed(default_store) -> None:
    before = set(_runs(default_store))
    trainer = Trainer(DiscreteDummyEnv, **SMALL, tracker=None)
    trainer.step()
    trainer.close()
    assert trainer.tracker is None and set(_runs(default_store)) == before
    mine = MlflowTracker(run_name="mine")
    with Trainer(DiscreteDummyEnv, **SMALL, tracker=mine) as t:
        t.step()
    assert t.tracker is mine
    assert default_store.get_run(mine.run_id).info.status == "RUNNING"  # its owner closes it
    mine.close()


def test_metrics_are_sent_once_flush_every_s_passed_and_by_wait(store_uri: str) -> None:
    hold = MlflowTracker(tracking_uri=store_uri, flush_every_s=3600.0)
    every = MlflowTracker(tracking_uri=store_uri, flush_every_s=0.0)
    for step in range(3):
        hold.log_metrics({"x": float(step)}, step=step)
        every.log_metrics({"x": float(step)}, step=step)
    every.wait()
    client = every.client
    assert [m.value for m in client.get_metric_history(every.run_id, "x")] == [0.0, 1.0, 2.0]
    assert client.get_metric_history(hold.run_id, "x") == []  # still buffered here
    hold.wait()  # sends what is buffered, then waits for the store
    assert [m.value for m in client.get_metric_history(hold.run_id, "x")] == [0.0, 1.0, 2.0]
    hold.close()
    every.close()


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "1"])
def test_a_bad_flush_every_s_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="flush_every_s="):
        MlflowTracker(flush_every_s=bad)  # type: ignore[arg-type]


def test_a_bad_tracker_value_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="tracker must be 'auto'"):
        Trainer(DiscreteDummyEnv, **SMALL, tracker="mlflow")


SCRIPT = """
import os
import signal
import sys
from rl8 import DiscreteDummyEnv, Trainer

untracked = Trainer(DiscreteDummyEnv, num_envs=4, horizon=4, tracker=None)
untracked.step()
print("mlflow imported:", "mlflow" in sys.modules, flush=True)
trainer = Trainer(DiscreteDummyEnv, num_envs=4, horizon=4)
trainer.step()
print("run:", trainer.tracker.run_id, flush=True)
print("mlflow imported here:", "mlflow" in sys.modules, flush=True)  # the worker imports it
if sys.argv[1] == "raise":
    raise RuntimeError("boom")
if sys.argv[1] == "kill":
    trainer.tracker.flush()  # metrics are sent about once a second: send them now
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_runs_left_open_end_with_the_interpreter_or_the_killed_process(
    store_uri: str, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    env = {**os.environ, "MLFLOW_TRACKING_URI": store_uri, "PYTHONPATH": str(REPO_ROOT)}
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(SCRIPT))
    client = MlflowClient(tracking_uri=store_uri)
    for mode, status, rc in (("ok", "FINISHED", 0), ("raise", "FAILED", 1), ("kill", "KILLED", -9)):
        # (run returns once stderr is closed: by the MLflow worker too, when it is done)
        proc = subprocess.run(
            [sys.executable, str(script), mode],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == rc, proc.stderr
        assert "mlflow imported: False" in proc.stdout
        assert "mlflow imported here: False" in proc.stdout
        run_id = proc.stdout.split("run: ")[1].split()[0]
        assert client.get_run(run_id).info.status == status
        # the last batch was written too (sent by close, or by flush before kill -9)
        assert len(client.get_metric_history(run_id, "env/steps")) == 1


def test_processes_started_together_on_a_fresh_store_all_track(tmp_path: Path) -> None:
    # They race to create the store and the experiment; every one must get a run.
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    go = tmp_path / "go"
    code = textwrap.dedent(
        f"""
        import pathlib, sys, time
        import mlflow.tracking
        from rl8.tracking import MlflowTracker
        pathlib.Path(sys.argv[1]).touch()  # imported: ready
        while not pathlib.Path({str(go)!r}).exists():
            time.sleep(0.001)
        MlflowTracker(tracking_uri={uri!r}, experiment_name="race").close()
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    ready = [tmp_path / f"ready-{i}" for i in range(6)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(r)], cwd=tmp_path, env=env, stderr=subprocess.PIPE,
            text=True,
        )
        for r in ready
    ]  # fmt: skip
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # all at once
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("race")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 6 and all(r.info.status == "FINISHED" for r in runs)


@pytest.mark.slow
def test_a_parallel_multirun_tracks_every_job(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(
        [
            sys.executable, "-m", "rl8.train", "-m", "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=4", "seed=range(0,8)", "stop.max_steps=2",
            "trainer.num_envs=4", "trainer.horizon=8", "progress.bar=false",
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("rl8").experiment_id])
    assert sorted(r.data.params["seed"] for r in runs) == [str(s) for s in range(8)]
    assert all(r.info.status == "FINISHED" for r in runs)


def test_a_failed_write_is_raised_by_the_next_wait_and_close(store_uri: str) -> None:
    tracker = MlflowTracker(tracking_uri=store_uri)
    tracker.log_metrics({"bad!name": 1.0}, step=0)  # MLflow refuses the name
    with pytest.raises(TrackingError, match="bad!name"):
        tracker.wait()
    with pytest.raises(TrackingError, match="bad!name"):
        tracker.close()


def test_a_store_that_cannot_be_opened_fails_where_the_run_is_needed() -> None:
    tracker = MlflowTracker(tracking_uri="nosuchscheme://nowhere")
    tracker.log_params({"a": 1})  # sent: the worker has not answered yet
    with pytest.raises(TrackingError, match="unsupported URI 'nosuchscheme://nowhere'"):
        tracker.ready()
    tracker.close()  # no run to end: nothing happens
    with pytest.raises(TrackingError, match="nosuchscheme"):
        MlflowTracker(tracking_uri="nosuchscheme://nowhere").close()


def test_prepare_tells_a_new_local_store_from_others(
    store_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The app creates a new run in a new local store without waiting for it.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    prepare()
    default = f"sqlite:///{tmp_path / 'mlflow.db'}"  # MLflow's default, made absolute
    assert prepared_store() == PreparedStore(default, new=True)
    prepare(store_uri)
    assert prepared_store(store_uri) == PreparedStore(store_uri, new=False)  # exists
    missing_dir = f"sqlite:///{tmp_path / 'no_dir' / 'mlflow.db'}"
    prepare(missing_dir)
    assert prepared_store(missing_dir) == PreparedStore(
        missing_dir, new=False
    )  # the run is waited for
    if Path("/proc/self").is_dir():  # Linux: a directory that takes no new files, even for root
        prepare("sqlite:////proc/mlflow.db")
        assert prepared_store("sqlite:////proc/mlflow.db") == ("sqlite:////proc/mlflow.db", False)
    assert prepared_store("sqlite:///never_prepared.db") is None


def test_a_run_that_cannot_be_created_fails_the_next_logging_call() -> None:
    tracker = MlflowTracker(tracking_uri="nosuchscheme://nowhere", flush_every_s=0)
    deadline = time.monotonic() + 120
    with pytest.raises(TrackingError, match=r"could not be created: .*nosuchscheme"):
        while time.monotonic() < deadline:  # until the worker has answered
            tracker.log_metrics({"a": 1.0}, step=0)
            time.sleep(0.05)
    tracker.close()  # no run to end: nothing happens


def test_a_config_error_leaves_no_mlflow_store_behind(tmp_path: Path) -> None:
    # The app starts its MLflow worker before validating; the worker builds a new
    # store's schema aside and removes it when the job ends without a run.
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(
        [sys.executable, "-m", "rl8.train", "trainer.gamma=2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert "trainer.gamma=2.0 is invalid" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs"]  # Hydra's, only


def test_mlflow_retries_of_a_store_that_does_not_answer_are_announced_once() -> None:
    # MLflow retries an unreachable database for ~100 s, logging a multi-line
    # warning per attempt; the worker shows the first as one line, drops the rest.
    import logging

    from rl8._tracking_worker import _OneRetryNotice

    def retry_record(seconds: float) -> logging.LogRecord:
        error = OSError("connection refused\n\tIs the server running?\n(Background ...)")
        return logging.LogRecord(
            "mlflow.store.db.utils",
            logging.WARNING,
            __file__,
            1,
            "SQLAlchemy engine could not be created. The following exception is caught.\n"
            "%s\nOperation will be retried in %.1f seconds",
            (error, seconds),
            None,
        )

    notice = _OneRetryNotice()
    first = retry_record(0.1)
    assert notice.filter(first)
    assert first.getMessage() == (
        "the MLflow store does not answer (connection refused); MLflow retries it for ~100 s"
    )
    assert not notice.filter(retry_record(0.3))
    other = logging.LogRecord("mlflow.store.db.utils", logging.WARNING, __file__, 1, "x", (), None)
    assert notice.filter(other) and other.getMessage() == "x"
