"""``python -m rl8.evaluate``: a trained job's policy run again for whole
episodes, through the real command line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from conftest import TINY, python
from mlflow.tracking import MlflowClient

from rl8.evaluate import EvaluateConf, evaluate, parse
from rl8.runs import open_run

pytestmark = pytest.mark.slow


def rl8(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return python("-m", f"rl8.{module}", *args, cwd=cwd)


@pytest.fixture(scope="module")
def solved(tmp_path_factory: pytest.TempPathFactory, mlflow_uri: str) -> Path:
    """A CartPole job trained by the default command until its last 100 episodes
    all lasted 500 steps (the default rule, a mean >= 475, may stop a policy
    whose deterministic episodes still fall now and then)."""
    cwd = tmp_path_factory.mktemp("solved")
    proc = rl8(
        "train",
        "progress.bar=false",
        "stop.threshold=500",
        f"mlflow.tracking_uri={mlflow_uri}",
        "mlflow.experiment_name=evaluate",
        "hydra.run.dir=job",
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    return cwd / "job"


def test_a_solved_cartpole_lasts_its_500_steps_and_is_logged(solved, mlflow_uri, tmp_path):
    proc = rl8("evaluate", f"run={solved}", "episodes=8", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "8 episodes (deterministic)" in out
    # The table: every episode reaches the time limit.
    assert "return         500         0       500       500" in out
    trained = open_run(solved)
    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name(trained.cfg.mlflow.experiment_name)
    [child] = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{trained.mlflow_run_id}'",
    )
    assert child.data.metrics["evaluate/return_mean"] == 500.0
    assert child.data.metrics["evaluate/episodes"] == 8.0
    assert child.info.status == "FINISHED"


def test_same_seed_same_episodes_also_with_env_overrides(solved):
    conf = EvaluateConf(run=str(solved), episodes=6, mlflow=False, env={"config": {"length": 1.2}})
    first, again = evaluate(conf), evaluate(conf)
    assert torch.equal(first.returns, again.returns)
    assert torch.equal(first.lengths, again.lengths)
    # Generalization: a longer pole than trained on still runs (the shapes fit).
    assert first.returns.numel() == 6


def test_the_run_can_be_named_by_its_mlflow_run_id(solved, mlflow_uri):
    run_id = open_run(solved).mlflow_run_id
    assert run_id is not None
    results = evaluate(EvaluateConf(run=run_id, episodes=2, mlflow=False, tracking_uri=mlflow_uri))
    assert results.stats()["return_mean"] == 500.0


def test_a_policy_that_does_not_fit_the_env_fails_naming_it(tmp_path):
    # A policy for the 1-dimensional dummy env, evaluated on CartPole (4 observations).
    proc = rl8(
        "train", "env=dummy", *TINY, "mlflow.enabled=false", "hydra.run.dir=job", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    proc = rl8(
        "evaluate", "run=job", "env._target_=rl8.envs.CartPole", "mlflow=false", cwd=tmp_path
    )
    assert proc.returncode == 1
    assert "does not fit this environment" in proc.stderr
    assert "Traceback" not in proc.stderr
    # The dummy env itself has no episodes to evaluate.
    proc = rl8("evaluate", "run=job", "mlflow=false", cwd=tmp_path)
    assert proc.returncode == 1 and "reports no episode ends" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run=job", "epsiodes=3"], "did you mean 'episodes'"),
        (["run=job", "episodes=0"], "episodes=0 must be >= 1"),
        (["run=job", "episodes=many"], "episodes"),
        (["run=nowhere"], "neither a job output dir"),
        (["episodes=3"], "run is required"),
        (["job"], "is not key=value"),
    ],
)
def test_bad_arguments_fail_with_one_line(args, message, tmp_path):
    from rl8.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        conf = parse(args)
        evaluate(conf)


def test_record_writes_a_gif_of_the_policy_and_logs_it(solved, mlflow_uri, tmp_path):
    from PIL import Image

    gif = tmp_path / "watch.gif"
    results = evaluate(
        EvaluateConf(run=str(solved), episodes=2, record=True, output=str(gif), fps=50)
    )
    assert results.gif == gif
    with Image.open(gif) as im:
        assert im.size == (400, 300)  # CartPole's frame
        # Two 500-step episodes: ~1000 frames (Pillow merges identical neighbours).
        assert 500 < im.n_frames <= 1003
    client = MlflowClient(tracking_uri=mlflow_uri)
    run_id = open_run(solved).mlflow_run_id
    children = client.search_runs(
        [client.get_experiment_by_name("evaluate").experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}'",
    )
    logged = {a.path for c in children for a in client.list_artifacts(c.info.run_id)}
    assert "watch.gif" in logged


def test_training_records_its_policy_at_the_end_or_fails_before_starting(tmp_path):
    args = [*TINY, "mlflow.enabled=false", "record.at_end=true", "hydra.run.dir=job"]
    proc = rl8("train", "env=pendulum", "env.config.episode_steps=20", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "job" / "policy.gif").stat().st_size > 0
    proc = rl8("train", "env=dummy", *args, "hydra.run.dir=job2", cwd=tmp_path)
    assert proc.returncode == 1
    assert "record.at_end=true" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "job2" / "checkpoint.pt").exists()  # failed before training
