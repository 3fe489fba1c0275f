"""Passwords in URLs are masked wherever rl8 writes them down."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY, python
from mlflow.tracking import MlflowClient

from rl8 import checkpoint
from rl8.redact import is_redacted, redact

SECRET = "hunter2"
URL = f"postgresql+psycopg://optuna:{SECRET}@db.example:5432/studies"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (URL, "postgresql+psycopg://optuna:***@db.example:5432/studies"),
        ("https://u:p%40ss@mlflow.example/", "https://u:***@mlflow.example/"),
        ("mysql://db/x?user=a&password=s3cret&x=1", "mysql://db/x?user=a&password=***&x=1"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
        ("https://mlflow.example:5000/path", "https://mlflow.example:5000/path"),
    ],
)
def test_redact_masks_only_credentials(text, expected) -> None:
    assert redact(text) == expected
    assert redact({"a": [text, 1]}) == {"a": [expected, 1]}
    assert is_redacted(expected, text) is (expected != text)


def test_a_job_writes_no_password_and_resumes_with_it(tmp_path, mlflow_uri) -> None:
    args = [*TINY, f"trial.storage={URL}", f"mlflow.tracking_uri={mlflow_uri}"]
    args += ["mlflow.experiment_name=redact", "hydra.run.dir=job"]
    proc = python("-m", "rl8.train", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    job = tmp_path / "job"
    assert SECRET not in (job / "config.yaml").read_text()
    assert "optuna:***@db.example" in (job / "config.yaml").read_text()
    ckpt = torch.load(job / checkpoint.CHECKPOINT_NAME, weights_only=True)
    assert SECRET not in ckpt["config"]
    run = MlflowClient(tracking_uri=mlflow_uri).get_run(ckpt["mlflow_run_id"])
    assert run.data.params["trial.storage"] == redact(URL)
    assert not any(SECRET in v for v in (*run.data.params.values(), *run.data.tags.values()))
    assert SECRET not in proc.stdout + proc.stderr
    # Resuming with the same command line takes the full URL from it (not a change).
    proc = python("-m", "rl8.train", *args, f"resume={job}", "stop.max_steps=3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (
        checkpoint.load(job / checkpoint.CHECKPOINT_NAME)["trainer"]["trainer"]["algorithm/steps"]
        == 3
    )
