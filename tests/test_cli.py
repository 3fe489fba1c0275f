"""``python -m rl8.train`` end to end, in subprocesses: a run, a multirun, resume
after ``kill -9``, Ctrl-C, and bad input failing fast with a short message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from conftest import TINY
from mlflow.tracking import MlflowClient

from rl8 import checkpoint

#: Never-ending tiny job (stopped by a signal, or by stop.max_steps on resume).
ENDLESS = [
    "env=dummy",
    *[o for o in TINY if not o.startswith("stop.max_steps")],
    "stop.max_steps=1000000",
    "eval.every=5",
]


def rl8_train(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rl8.train", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "MLFLOW_TRACKING_URI")
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _runs(uri: str, experiment: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc={proc.returncode}) before {path} appeared")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {path} after {timeout} s")
        time.sleep(0.05)


def _git_commit_in(path: Path) -> str:
    """Make ``path`` a git checkout with one commit (the user's project) and return it."""
    git = ["git", "-c", "user.name=rl8", "-c", "user.email=rl8@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], cwd=path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True)
    return head.stdout.strip()


def test_run_tracks_params_metrics_tags_and_artifacts(tmp_path, mlflow_uri) -> None:
    out = tmp_path / "run"
    commit = _git_commit_in(tmp_path)
    args = [
        "env=dummy",
        *TINY,
        f"mlflow.tracking_uri={mlflow_uri}",
        "mlflow.experiment_name=cli_run",
    ]
    proc = rl8_train(*args, f"hydra.run.dir={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (out / checkpoint.CHECKPOINT_NAME).is_file()
    [run] = _runs(mlflow_uri, "cli_run")
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer.num_envs"] == "4"
    assert run.data.params["env._target_"] == "rl8.env.DiscreteDummyEnv"
    assert "env=dummy" in run.data.tags["rl8.overrides"]
    assert run.data.tags["mlflow.source.git.commit"] == commit  # the launching checkout's
    assert {"returns/mean", "losses/total", "eval/returns/mean"} <= set(run.data.metrics)
    client = MlflowClient(tracking_uri=mlflow_uri)
    history = client.get_metric_history(run.info.run_id, "returns/mean")
    assert [m.step for m in history] == [32, 64]  # env steps after each of the 2 steps
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", checkpoint.CHECKPOINT_NAME} <= artifacts


def test_multirun_runs_four_jobs_with_four_grouped_mlflow_runs(tmp_path, mlflow_uri) -> None:
    sweep = tmp_path / "sweep"
    proc = rl8_train(
        "-m",
        "trainer.clip_param=0.1,0.2",
        "seed=0,1",
        "env=dummy",
        *TINY,
        f"mlflow.tracking_uri={mlflow_uri}",
        "mlflow.experiment_name=cli_multirun",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.parent.name for p in sweep.glob("*/checkpoint.pt")) == ["0", "1", "2", "3"]
    runs = _runs(mlflow_uri, "cli_multirun")
    assert len(runs) == 4
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["rl8.sweep_dir"] for r in runs} == {str(sweep.resolve())}
    combos = {(r.data.params["trainer.clip_param"], r.data.params["seed"]) for r in runs}
    assert combos == {("0.1", "0"), ("0.1", "1"), ("0.2", "0"), ("0.2", "1")}


def test_resume_after_kill_9_continues_counters_and_mlflow_run(tmp_path, mlflow_uri) -> None:
    out = tmp_path / "run"
    args = [*ENDLESS, f"mlflow.tracking_uri={mlflow_uri}", "mlflow.experiment_name=cli_resume"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "rl8.train", *args, f"hydra.run.dir={out}"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt_path = out / checkpoint.CHECKPOINT_NAME
    _wait_for(ckpt_path, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed = checkpoint.load(ckpt_path)
    steps = killed["trainer"]["trainer"]["algorithm/steps"]
    env_steps = killed["trainer"]["trainer"]["env/steps"]
    # The MLflow worker process outlives the killed one and ends its run KILLED.
    deadline = time.monotonic() + 60
    while (run := _runs(mlflow_uri, "cli_resume")[0]).info.status == "RUNNING":
        assert time.monotonic() < deadline, "the killed job's run was left RUNNING"
        time.sleep(0.2)
    assert run.info.status == "KILLED"
    assert killed["mlflow_run_id"] == run.info.run_id

    resumed = rl8_train(
        f"resume={out}",
        f"stop.max_steps={steps + 3}",
        f"hydra.run.dir={tmp_path / 'r'}",
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr
    final = checkpoint.load(ckpt_path)
    assert final["trainer"]["trainer"]["algorithm/steps"] == steps + 3
    assert final["trainer"]["trainer"]["env/steps"] == env_steps + 3 * 32
    assert final["mlflow_run_id"] == run.info.run_id
    [run] = _runs(mlflow_uri, "cli_resume")
    assert run.info.status == "FINISHED"
    history = MlflowClient(tracking_uri=mlflow_uri).get_metric_history(run.info.run_id, "env/steps")
    assert max(m.step for m in history) == env_steps + 3 * 32


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path, mlflow_uri) -> None:
    out = tmp_path / "run"
    args = [*ENDLESS, f"mlflow.tracking_uri={mlflow_uri}", "mlflow.experiment_name=cli_sigint"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "rl8.train", *args, f"hydra.run.dir={out}"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ckpt_path = out / checkpoint.CHECKPOINT_NAME
    _wait_for(ckpt_path, proc)
    first = checkpoint.load(ckpt_path)["trainer"]["trainer"]["algorithm/steps"]
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"resume={out}" in stdout + stderr  # the log says how to continue
    saved = checkpoint.load(ckpt_path)
    assert saved["trainer"]["trainer"]["algorithm/steps"] >= first
    [run] = _runs(mlflow_uri, "cli_sigint")
    assert run.info.status == "KILLED"


def test_cartpole_curriculum_advances_logs_and_checkpoints_its_stage(tmp_path, mlflow_uri) -> None:
    # CartPole's reward is 1 per step, so rewards/mean >= 0.5 holds at every
    # update and, with patience 2, the curriculum moves one stage every 2 updates.
    out = tmp_path / "run"
    proc = rl8_train(
        "env=cartpole",
        "schedule=cartpole_curriculum",
        *[o for o in TINY if not o.startswith(("stop.max_steps", "eval.every"))],
        "stop.max_steps=8",
        "trainer.horizons_per_env_reset=2",
        "eval.every=2",
        "schedule.curriculum.metric=rewards/mean",
        "schedule.curriculum.threshold=0.5",
        "schedule.curriculum.patience=2",
        f"mlflow.tracking_uri={mlflow_uri}",
        "mlflow.experiment_name=cli_schedule",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    [run] = _runs(mlflow_uri, "cli_schedule")
    client = MlflowClient(tracking_uri=mlflow_uri)
    stages = [m.value for m in client.get_metric_history(run.info.run_id, "schedule/stage")]
    assert stages == [0, 1, 1, 2, 2, 3, 3, 3]  # one value per step, batched with the stats
    low = client.get_metric_history(run.info.run_id, "schedule/length/low")
    assert low[0].value == 1.0 and low[-1].value == 0.5  # the last stage's widest range
    ckpt = checkpoint.load(out / checkpoint.CHECKPOINT_NAME)
    assert ckpt["schedule"]["curriculum"]["stage"] == 3


BAD_INPUT = {
    "unknown group option": (["env=nope"], "env/nope"),
    "unknown key": (["trainer.gama=0.9"], "trainer.gama"),
    "wrong type": (["trainer.num_envs=many"], "trainer.num_envs"),
    "out-of-range value": (["trainer.gamma=1.5"], "trainer.gamma"),
    "un-importable _target_": (["env._target_=rl8.envs.NoSuchEnv"], "env._target_"),
    "horizon not a multiple of seq_len": (["model=lstm", "trainer.seq_len=5"], "seq_len"),
    "empty minibatch": (["trainer.sgd_minibatch_size=0"], "trainer.sgd_minibatch_size"),
    "bad resume dir": (["resume=no/such/dir"], "resume"),
    "unknown env param": (["+env.config.gravty=3"], "gravty"),
    "out-of-bounds env param": (["env.config.length=-1"], "length"),
    "negative stop budget": (["stop.max_env_steps=-100"], "stop.max_env_steps"),
    "non-positive lr": (["optimizer.lr=-1"], "optimizer.lr"),
    "unknown optimizer argument": (["+optimizer.momentum=0.9"], "optimizer.momentum"),
    "unknown model argument": (["+model.config.width=8"], "model.config.width"),
    "seq_len without a recurrent model": (["trainer.seq_len=4"], "trainer.seq_len"),
}


@pytest.fixture(scope="module")
def bad_input_results(
    tmp_path_factory, mlflow_uri
) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Every bad-input job, run concurrently (each fails in seconds)."""
    root = tmp_path_factory.mktemp("bad_input")

    def one(i: int, overrides: list[str]) -> tuple[subprocess.CompletedProcess, Path]:
        out = root / f"run{i}"
        proc = rl8_train(
            *overrides,
            f"mlflow.tracking_uri={mlflow_uri}",
            "mlflow.experiment_name=cli_bad_input",
            f"hydra.run.dir={out}",
            cwd=root,
        )
        return proc, out

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            name: pool.submit(one, i, overrides)
            for i, (name, (overrides, _)) in enumerate(BAD_INPUT.items())
        }
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_fails_fast_with_a_short_message(case, bad_input_results, mlflow_uri) -> None:
    proc, out = bad_input_results[case]
    key = BAD_INPUT[case][1]
    assert proc.returncode in (1, 2), proc.stderr
    assert key in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) < 16, (
        proc.stderr
    )  # Hydra lists the options of a group
    assert not (out / checkpoint.CHECKPOINT_NAME).exists()
    assert not [r for r in _runs(mlflow_uri, "cli_bad_input") if r.info.status == "FINISHED"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_new_store_where_no_file_can_be_made_fails_before_training(tmp_path) -> None:
    # A new local store's run is created while training starts only where the
    # store's file can be made; here (even for root) the run is waited for.
    uri = "sqlite:////proc/mlflow.db"
    out = tmp_path / "run"
    proc = rl8_train(
        "env=dummy", *TINY, f"mlflow.tracking_uri={uri}", f"hydra.run.dir={out}", cwd=tmp_path
    )
    assert proc.returncode == 1
    assert f"cannot open an MLflow run at tracking_uri='{uri}'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "training Trainer" not in proc.stdout + proc.stderr  # the loop never started
    assert not (out / checkpoint.CHECKPOINT_NAME).exists()


def test_a_default_store_that_is_not_a_database_is_named_before_training(tmp_path) -> None:
    (tmp_path / "mlflow.db").write_text("not a database")
    proc = rl8_train("env=dummy", *TINY, cwd=tmp_path)
    assert proc.returncode == 1
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert (
        f"mlflow: cannot open an MLflow run at MLflow's default store '{store}' "
        "(mlflow.tracking_uri=null): (sqlite3.DatabaseError) file is not a database"
    ) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "training Trainer" not in proc.stdout + proc.stderr


def test_experiment_overlays_are_found_from_any_cwd(tmp_path) -> None:
    proc = rl8_train("+experiment=memory", "--cfg", "job", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "rl8.models.LSTMModel" in proc.stdout
    assert "rl8.envs.Memory" in proc.stdout


def test_own_env_and_model_from_a_config_dir_of_your_own(tmp_path) -> None:
    (tmp_path / "my_envs.py").write_text(
        "from rl8.env import DiscreteDummyEnv\n"
        "from rl8.models import MLPModel\n"
        "class Far(DiscreteDummyEnv):\n    pass\n"
        "class Wide(MLPModel):\n    pass\n"
    )
    for group, text in {
        "env/far.yaml": "_target_: my_envs.Far\n_partial_: true\nconfig: {bounds: 500.0}\n",
        "model/wide.yaml": "_target_: my_envs.Wide\n_partial_: true\nconfig: {hiddens: [8]}\n",
    }.items():
        path = tmp_path / "my_conf" / group
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    out = tmp_path / "run"
    args = ["-cd", "my_conf", "env=far", "model=wide", *TINY, "mlflow.enabled=false"]
    proc = rl8_train(*args, f"hydra.run.dir={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Trainer on Far" in proc.stdout
    ckpt = checkpoint.load(out / checkpoint.CHECKPOINT_NAME)
    assert ckpt["trainer"]["algorithm"]["model"]["policy_net.0.weight"].shape[0] == 8


@pytest.mark.slow
def test_default_run_is_a_quick_cartpole_training(tmp_path) -> None:
    t0 = time.monotonic()
    proc = rl8_train(cwd=tmp_path, timeout=300)
    wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "mlflow.db").is_file()  # MLflow's default store, in the cwd
    [ckpt_path] = (tmp_path / "outputs").glob("*/*/checkpoint.pt")
    ckpt = checkpoint.load(ckpt_path)
    # It stopped because CartPole was solved (the last 100 episodes average >= 475),
    # well within the 2M-step budget.
    assert "stop.metric episodes/return_mean=" in proc.stdout + proc.stderr
    assert 50_000 <= ckpt["trainer"]["trainer"]["env/steps"] < 2_000_000
    assert torch.isfinite(torch.tensor(ckpt["loop"]["last_eval"]["eval/returns/mean"]))
    # The new store's run was created while training started; the checkpoint names
    # the store by its absolute URI, and the run holds every step's metrics.
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert f"tracking_uri: {uri}\n" in ckpt["config"]
    [run] = _runs(uri, "rl8")
    assert run.info.run_id == ckpt["mlflow_run_id"] and run.info.status == "FINISHED"
    steps = MlflowClient(tracking_uri=uri).get_metric_history(run.info.run_id, "env/steps")
    assert len(steps) == ckpt["trainer"]["trainer"]["algorithm/steps"]
    print(f"default run: {wall:.1f} s wall")  # a figure, not an assertion


def test_help_and_cfg_import_neither_torch_nor_mlflow(tmp_path) -> None:
    # Composing a config needs neither; a job imports torch after starting its MLflow worker.
    code = (
        "import sys; import rl8.train; sys.argv = ['rl8-train', *sys.argv[1:]]\n"
        "try:\n    rl8.train.main()\nexcept SystemExit:\n    pass\n"
        "print('imported:', sorted(m for m in ('mlflow', 'torch') if m in sys.modules))"
    )
    for args in (["--cfg", "job"], ["--help"]):
        proc = subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert "imported: []" in proc.stdout, args
