"""A trained job's policy outside training: ``python -m rl8.export`` and
``rl8.load_policy``, from the command line as users run them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

import rl8
from rl8.export import PolicyModule
from rl8.runs import open_run

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow

from conftest import REPO_ROOT, TINY  # noqa: E402
from conftest import python as run  # noqa: E402


@pytest.fixture(scope="module", params=["mlp", "lstm"])
def job(request, tmp_path_factory, mlflow_uri) -> Path:
    """A short Pendulum job (continuous actions), with an MLP or an LSTM policy."""
    cwd = tmp_path_factory.mktemp(request.param)
    model = ["model=lstm", "trainer.seq_len=4"] if request.param == "lstm" else []
    proc = run(
        "-m",
        "rl8.train",
        "env=pendulum",
        *model,
        *TINY,
        f"mlflow.tracking_uri={mlflow_uri}",
        "mlflow.experiment_name=inference",
        "hydra.run.dir=job",
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    return cwd / "job"


def test_load_policy_from_a_checkpoint_acts_as_the_trained_policy(job) -> None:
    policy = rl8.load_policy(job)
    assert isinstance(policy, PolicyModule)
    trained = open_run(job).build_trainer(num_envs=5).algorithm.policy
    obs = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    if policy.recurrent:
        state = trained.model.init_state(5, torch.device("cpu"))
        expected, *_ = trained.sample(obs, state, deterministic=True)
        action, *_ = policy(obs, *policy.initial_state(5))
    else:
        expected, _ = trained.sample(obs, deterministic=True)
        action = policy(obs)
    assert torch.equal(action, expected)
    assert bool((action.abs() <= 2.0).all())  # Pendulum's torque bounds


def test_export_cli_writes_logs_and_runs_the_onnx_policy_without_rl8(job, mlflow_uri) -> None:
    proc = run("-m", "rl8.export", f"run={job}", cwd=job.parent)
    assert proc.returncode == 0, proc.stderr
    onnx_file = job / "policy.onnx"
    assert onnx_file.is_file()
    names = "obs h_in c_in -> action h_out c_out" if "lstm" in str(job) else "obs -> action"
    assert names in proc.stdout
    run_id = open_run(job).mlflow_run_id
    artifacts = MlflowClient(tracking_uri=mlflow_uri).list_artifacts(run_id, "export")
    assert [a.path for a in artifacts] == ["export/policy.onnx"]
    # The same actions in onnxruntime, in a process that imports neither rl8 nor torch.
    check = run(str(REPO_ROOT / "scripts" / "check_export.py"), str(job), cwd=job.parent)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "imported rl8/torch: neither" in check.stdout
    # load_policy runs the file too, with the same actions as the checkpoint's.
    onnx_policy, torch_policy = rl8.load_policy(onnx_file), rl8.load_policy(job)
    obs = torch.randn(7, 3, generator=torch.Generator().manual_seed(2))
    state = torch_policy.initial_state(7)
    got, want = onnx_policy(obs, *state), torch_policy(obs, *state)
    got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-5)


def test_pt2_loads_only_when_trusted(job) -> None:
    proc = run("-m", "rl8.export", f"run={job}", "format=pt2", "mlflow=false", cwd=job.parent)
    assert proc.returncode == 0, proc.stderr
    with pytest.raises(PermissionError, match="trusted=True"):
        rl8.load_policy(job / "policy.pt2")
    module = rl8.load_policy(job / "policy.pt2", trusted=True)
    reference = rl8.load_policy(job)
    obs = torch.randn(3, 3)
    state = reference.initial_state(3)
    torch.testing.assert_close(module(obs, *state), reference(obs, *state), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["format=tflite"], "format='tflite' is not one of: onnx, pt2"),
        (["fromat=onnx"], "did you mean 'format'"),
        ([], "run is required"),
    ],
)
def test_export_cli_errors_are_one_line(args, message, tmp_path) -> None:
    run_key = ["run=job"] if args else []  # the run is not opened before these checks
    proc = run("-m", "rl8.export", *run_key, *args, cwd=tmp_path)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
