"""Several sweepers ("workers") on one Optuna study, and parallel trials in one.

Workers are real processes running the tiny app ``tests/apps/quadratic/app.py``
with ``-m`` (see ``test_optuna_sweeper.py``), sharing one storage: they must never
run a sample twice, share trial numbers, overshoot ``n_trials`` by more than the
number of workers - 1, or lose a trial to a killed worker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import optuna
import pytest
from conftest import SEARCH_TINY, cartpole_search
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from rl8.optuna_sweeper.reporter import open_storage
from rl8.optuna_sweeper.sampling import TrialSeededSampler
from rl8.optuna_sweeper.study import ATTR_HEARTBEAT, ATTR_OWNER, SweepStudy

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "tests" / "apps" / "quadratic" / "app.py"

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: Two trials at a time, in joblib's worker processes.
JOBLIB_2 = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2"]


def worker_cmd(sweep_dir: Path, storage: str, *overrides: str) -> list[str]:
    return [
        sys.executable,
        str(APP),
        "-m",
        "+experiment=search",
        f"hydra.sweep.dir={sweep_dir}",
        f"hydra.sweeper.storage={storage}",
        *overrides,
    ]


def start_workers(
    tmp_path: Path, n: int, storage: str, *overrides: str
) -> list[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["HYDRA_FULL_ERROR"] = "1"
    procs = []
    for i in range(n):
        out = open(tmp_path / f"worker{i}.log", "w")  # noqa: SIM115 (closed with the process)
        procs.append(
            subprocess.Popen(
                worker_cmd(tmp_path / f"w{i}", storage, *overrides),
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    return procs


def wait_all(tmp_path: Path, procs: Sequence[subprocess.Popen[str]]) -> list[int]:
    codes = [p.wait(timeout=300) for p in procs]
    for i, code in enumerate(codes):
        if code not in (0, -signal.SIGKILL):
            pytest.fail((tmp_path / f"worker{i}.log").read_text()[-6000:])
    return codes


def job_lines(tmp_path: Path, name: str = "calls.log") -> list[list[str]]:
    return [
        line.split()
        for path in sorted(tmp_path.glob(f"w*/{name}"))
        for line in path.read_text().splitlines()
    ]


def check_study(study: optuna.Study, n_trials: int, workers: int) -> None:
    """Exactly n_trials finished (+ at most workers - 1), no sample twice."""
    counted = [
        t
        for t in study.trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and not t.user_attrs.get("interrupted"))
    ]
    assert n_trials <= len(counted) <= n_trials + workers - 1
    params = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(params)) == len(params)
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]


# --------------------------------------------------------------------------- sampling
def test_each_trial_samples_with_its_own_seed_whichever_worker_asks():
    dist = {"x": FloatDistribution(-1.0, 1.0)}

    def sampler() -> TrialSeededSampler:
        return TrialSeededSampler(lambda s: optuna.samplers.RandomSampler(seed=s), seed=7)

    storage = optuna.storages.InMemoryStorage()
    a = optuna.create_study(storage=storage, study_name="s", sampler=sampler())
    b = optuna.load_study(storage=storage, study_name="s", sampler=sampler())
    shared = [w.ask(dist).params["x"] for w in (a, b, a, b)]  # two workers, one study
    alone = optuna.create_study(sampler=sampler())
    assert [alone.ask(dist).params["x"] for _ in range(4)] == shared
    assert len(set(shared)) == 4
    # seeded once (what each worker did before), the two workers draw the same samples
    once = optuna.create_study(storage=optuna.storages.InMemoryStorage(), study_name="s")
    twin = optuna.load_study(storage=once._storage, study_name="s")
    once.sampler = optuna.samplers.RandomSampler(seed=7)
    twin.sampler = optuna.samplers.RandomSampler(seed=7)
    assert once.ask(dist).params == twin.ask(dist).params


def test_a_trial_without_heartbeat_for_the_grace_period_is_failed(tmp_path):
    storage = open_storage(str(tmp_path / "s.journal"))
    watcher = SweepStudy(str(tmp_path / "s.journal"), "s", ["minimize"], optuna.pruners.NopPruner())
    study = watcher.study
    silent, beating = study.ask(), study.ask()
    for t in (silent, beating):  # run by a worker on another host
        storage.set_trial_system_attr(t._trial_id, ATTR_OWNER, {"host": "elsewhere", "pid": 1})
        storage.set_trial_system_attr(t._trial_id, ATTR_HEARTBEAT, 0)
    assert watcher.fail_stale_trials(grace=0.5) == []  # first look: the clock starts
    stale = []
    for beat in range(1, 6):
        time.sleep(0.15)
        storage.set_trial_system_attr(beating._trial_id, ATTR_HEARTBEAT, beat)
        stale += watcher.fail_stale_trials(grace=0.5)
    assert stale == [{"host": "elsewhere", "pid": 1}]  # once, after 0.5 s
    trials = study.get_trials()
    assert trials[silent.number].state == TrialState.FAIL
    assert trials[silent.number].user_attrs["interrupted"] is True
    assert "no heartbeat" in trials[silent.number].user_attrs["fail_reason"]
    assert trials[beating.number].state == TrialState.RUNNING


# --------------------------------------------------------------------------- workers
@pytest.fixture(params=["journal", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh study storage: a journal file, or a database on a real PostgreSQL
    server (one per test, so every test starts from an empty schema)."""
    if request.param == "journal":
        return f"journal:{tmp_path / 'study.journal'}"
    import psycopg

    server = request.getfixturevalue("postgres_url")
    db = f"t{abs(hash(tmp_path)) % 10**9}"
    admin = server.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db}")
    return server.rsplit("/", 1)[0] + "/" + db


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_four_workers_share_one_study(tmp_path, storage, n_jobs):
    launcher = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"] if n_jobs > 1 else []
    procs = start_workers(
        tmp_path,
        4,
        storage,
        "hydra.sweeper.n_trials=12",
        f"hydra.sweeper.n_jobs={n_jobs}",
        "stop.max_steps=3",
        *launcher,
    )
    assert wait_all(tmp_path, procs) == [0, 0, 0, 0]
    study = optuna.load_study(study_name="quadratic", storage=open_storage(str(storage)))
    check_study(study, 12, 4 * n_jobs)
    numbers = [int(c[0]) for c in job_lines(tmp_path)]
    assert sorted(numbers) == [t.number for t in study.trials]  # each trial ran once
    # Hydra job numbers come from the study: trial N's job is job N, in any worker
    assert [t.system_attrs["rl8:job_nums"] for t in study.trials] == [
        [t.number] for t in study.trials
    ]
    owners = {t.system_attrs[ATTR_OWNER]["pid"] for t in study.trials}
    assert len(owners) > 1  # the work was shared


def test_a_worker_killed_mid_trial_is_replaced_and_its_runs_closed(tmp_path, storage):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = [
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.mlflow=true",
        f"mlflow.tracking_uri={uri}",
        "hydra.sweeper.heartbeat_interval=0.5",
        "stop.max_steps=4",
        "sleep=0.1",
        "slow_trials=[0,1]",  # the first trials are long: one of them gets killed
        "slow_sleep=2.0",
    ]
    victim, survivor = start_workers(tmp_path, 2, storage, *common)
    study_storage = open_storage(str(storage))
    deadline = time.monotonic() + 120
    killed = None
    while killed is None and time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            study = optuna.load_study(study_name="quadratic", storage=study_storage)
        except KeyError:
            continue
        for t in study.get_trials(states=(TrialState.RUNNING,)):
            owner = t.system_attrs.get(ATTR_OWNER) or {}
            if owner.get("pid") == victim.pid and str(t.number) in {
                c[0] for c in job_lines(tmp_path)
            }:
                victim.kill()  # SIGKILL, mid-trial
                killed = t.number
    assert killed is not None, "the victim never started a trial"
    assert wait_all(tmp_path, [victim, survivor]) == [-signal.SIGKILL, 0]
    study = optuna.load_study(study_name="quadratic", storage=study_storage)
    check_study(study, 6, 2)
    dead = study.trials[killed]
    assert dead.state == TrialState.FAIL and dead.user_attrs["interrupted"] is True
    assert "died" in dead.user_attrs["fail_reason"]
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("quadratic").experiment_id])
    assert runs and all(r.info.status != "RUNNING" for r in runs)
    assert socket.gethostname() == dead.system_attrs[ATTR_OWNER]["host"]


def test_a_free_slot_starts_the_next_trial_without_waiting_for_the_others(tmp_path):
    storage = f"journal:{tmp_path / 'study.journal'}"
    (proc,) = start_workers(
        tmp_path,
        1,
        storage,
        *JOBLIB_2,
        "hydra.sweeper.n_trials=5",
        "stop.max_steps=4",
        "sleep=0.02",
        "slow_trials=[0]",
        "slow_sleep=1.5",
    )
    wait_all(tmp_path, [proc])
    starts = {int(c[0]): float(c[6]) for c in job_lines(tmp_path)}
    ends = {int(c[0]): float(c[6]) for c in job_lines(tmp_path, "ends.log")}
    assert sorted(starts) == sorted(ends) == [0, 1, 2, 3, 4]
    # while the slow trial 0 ran, the other slot went through more than one trial
    # (with a batch barrier it would have run exactly one: trial 1)
    inside = [n for n in starts if n != 0 and starts[0] <= starts[n] and ends[n] <= ends[0]]
    assert len(inside) >= 2, (starts, ends)


# --------------------------------------------------------------------------- launchers
def test_submitit_local_launcher_runs_the_trials_as_separate_jobs(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    storage = f"journal:{tmp_path / 'study.journal'}"
    (proc,) = start_workers(
        tmp_path,
        1,
        storage,
        "hydra/launcher=submitit_local",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=4",
        "stop.max_steps=2",
    )
    assert wait_all(tmp_path, [proc]) == [0]
    study = optuna.load_study(study_name="quadratic", storage=open_storage(storage))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    assert all(sorted(t.intermediate_values) == [1, 2] for t in study.trials)
    sweeper_pid = study.trials[0].system_attrs[ATTR_OWNER]["pid"]
    job_pids = {int(c[5]) for c in job_lines(tmp_path)}
    assert len(job_pids) == 4 and sweeper_pid not in job_pids  # one process per job
    assert (tmp_path / "w0" / ".submitit").is_dir()


def test_submitit_slurm_launcher_composes_with_the_sweeper(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cmd = worker_cmd(
        tmp_path / "w0",
        f"journal:{tmp_path / 'study.journal'}",
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.array_parallelism=8",
        "--cfg",
        "hydra",
        "--package",
        "hydra.launcher",
    )
    cmd.remove("-m")  # --cfg shows the config instead of sweeping
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    assert "SlurmLauncher" in out and "partition: gpu" in out


# --------------------------------------------------------------------------- killed sweeps
def _mlflow_runs(uri: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    return client.search_runs([client.get_experiment_by_name("quadratic").experiment_id])


def _wait_for_running_trial(storage: str, pid: int) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            study = optuna.load_study(study_name="quadratic", storage=open_storage(storage))
        except KeyError:
            continue
        for t in study.get_trials(states=(TrialState.RUNNING,)):
            if (t.system_attrs.get(ATTR_OWNER) or {}).get("pid") == pid and t.intermediate_values:
                return t.number
    raise AssertionError("no trial started")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_killed_sweep_leaves_no_run_running(tmp_path, sig):
    """SIGTERM: the sweep closes its runs itself; SIGKILL: its MLflow worker ends the
    runs, and rerunning the command closes the trial."""
    storage = f"journal:{tmp_path / 'study.journal'}"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["hydra.sweeper.mlflow=true", f"mlflow.tracking_uri={uri}", "stop.max_steps=3"]
    (proc,) = start_workers(
        tmp_path, 1, storage, "hydra.sweeper.n_trials=2", "sleep=1.0", "slow_trials=[]", *args
    )
    killed = _wait_for_running_trial(storage, proc.pid)
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    assert code != 0
    study = optuna.load_study(study_name="quadratic", storage=open_storage(storage))
    running = [r for r in _mlflow_runs(uri) if r.info.status == "RUNNING"]
    if sig == signal.SIGTERM:
        assert study.trials[killed].state == TrialState.FAIL
        assert study.trials[killed].user_attrs["interrupted"] is True
        assert running == []
        assert {r.info.status for r in _mlflow_runs(uri)} == {"KILLED"}  # parent and job
        return
    assert study.trials[killed].state == TrialState.RUNNING
    # The killed process' MLflow worker ends its runs (the parent run and the job's) KILLED.
    deadline = time.monotonic() + 60
    while [r for r in _mlflow_runs(uri) if r.info.status == "RUNNING"]:
        assert time.monotonic() < deadline, "the killed sweeper's runs were left RUNNING"
        time.sleep(0.2)
    assert sorted(r.info.status for r in _mlflow_runs(uri)) == ["KILLED", "KILLED"]
    # the same command again: the dead sweeper's trial and runs are closed, the study done
    (again,) = start_workers(tmp_path, 1, storage, "hydra.sweeper.n_trials=2", *args)
    assert wait_all(tmp_path, [again]) == [0]
    study = optuna.load_study(study_name="quadratic", storage=open_storage(storage))
    assert study.trials[killed].state == TrialState.FAIL
    check_study(study, 2, 1)
    runs = _mlflow_runs(uri)
    assert [r for r in runs if r.info.status == "RUNNING"] == []
    assert sorted(r.info.status for r in runs).count("KILLED") == 2


# --------------------------------------------------------------------------- secrets
@pytest.mark.parametrize("storage", ["postgresql"], indirect=True)
def test_the_storage_password_is_in_nothing_a_sweep_writes(tmp_path, storage):
    """The real app, on a PostgreSQL study whose URL carries a password: not in the
    logs, the job dirs (overrides, config, checkpoints), MLflow or the study."""
    password = storage.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    sweep = tmp_path / "sweep"
    cmd = cartpole_search(
        *JOBLIB_2,
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.plots=false",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweep.dir={sweep}",
        *SEARCH_TINY,
        f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RL8_"))}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert password not in proc.stdout + proc.stderr
    assert "postgresql://rl8:***@" in proc.stdout  # the URL is shown, masked
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "overrides.yaml" for p in files)
    assert any(p.name == "checkpoint.pt" for p in files)
    for path in files:
        assert password.encode() not in path.read_bytes(), path
    study = optuna.load_study(study_name="cartpole_search", storage=open_storage(storage))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    attrs = [study.user_attrs, *(t.user_attrs for t in study.trials)]
    attrs += [t.system_attrs for t in study.trials]
    assert password not in repr(attrs)


def test_sqlite_with_several_writers_is_warned_about(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    (proc,) = start_workers(
        tmp_path,
        1,
        storage,
        *JOBLIB_2,
        "hydra.sweeper.n_trials=2",
        "stop.max_steps=2",
    )
    assert wait_all(tmp_path, [proc]) == [0]
    log = (tmp_path / "worker0.log").read_text()
    assert "We would never recommend SQLite3 for parallel optimization" in log
    assert "Use the default journal file or PostgreSQL" in log
