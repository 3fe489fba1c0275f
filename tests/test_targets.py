"""A checkpoint cannot make rl8 run code: the callables its stored config
names are built only when the current command names them too."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY, python

from rl8 import checkpoint
from rl8.targets import installed_targets


@pytest.fixture
def job(tmp_path) -> Path:
    proc = python(
        "-m", "rl8.train", *TINY, "mlflow.enabled=false", "hydra.run.dir=job", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "job"


def _tamper(job: Path, key: str, node: object) -> None:
    """Rewrite the checkpoint's stored config: ``key`` (top-level) set to ``node``."""
    path = job / checkpoint.CHECKPOINT_NAME
    ckpt = torch.load(path, weights_only=True)
    cfg = yaml.safe_load(ckpt["config"])
    cfg[key] = node
    ckpt["config"] = yaml.safe_dump(cfg)
    torch.save(ckpt, path)


MALICIOUS = {
    # Would truncate a file (instantiated with its kwargs as env factory arguments).
    "env": {"_target_": "builtins.open", "_partial_": False, "file": "PWNED", "mode": "w"},
    # Would unpickle anything beside the checkpoint.
    "model": {"_target_": "torch.load", "config": {"f": "evil.pkl", "weights_only": False}},
}


@pytest.mark.parametrize("key", sorted(MALICIOUS))
@pytest.mark.parametrize("command", ["resume", "evaluate", "export"])
def test_a_tampered_checkpoint_is_refused_and_runs_nothing(job, key, command) -> None:
    _tamper(job, key, MALICIOUS[key])
    args = {
        "resume": ["-m", "rl8.train", f"resume={job}", "mlflow.enabled=false"],
        "evaluate": ["-m", "rl8.evaluate", f"run={job}", "mlflow=false"],
        "export": ["-m", "rl8.export", f"run={job}", "mlflow=false"],
    }[command]
    proc = python(*args, cwd=job.parent)
    assert proc.returncode == 1, proc.stderr
    target = MALICIOUS[key]["_target_"]
    assert f"names {target} ({key}._target_)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (job.parent / "PWNED").exists()


def test_a_target_named_on_the_command_line_is_allowed(job) -> None:
    # A stored config naming an env class outside rl8's configs (here one of rl8's
    # own, under another name) is accepted when the command names it too.
    _tamper(job, "env", {"_target_": "rl8.envs.cartpole.CartPole", "_partial_": True})
    proc = python("-m", "rl8.evaluate", f"run={job}", "mlflow=false", "episodes=2", cwd=job.parent)
    assert proc.returncode == 1 and "rl8.envs.cartpole.CartPole" in proc.stderr
    proc = python(
        "-m",
        "rl8.evaluate",
        f"run={job}",
        "mlflow=false",
        "episodes=2",
        "env._target_=rl8.envs.cartpole.CartPole",
        cwd=job.parent,
    )
    assert proc.returncode == 0, proc.stderr


def test_installed_targets_are_the_shipped_configs_own() -> None:
    targets = installed_targets()
    assert {"rl8.envs.CartPole", "rl8.models.LSTMModel", "torch.optim.Adam"} <= targets
    assert "rl8.conditions.HitsUpperBound" in targets
    assert not any(t.startswith(("builtins", "os.", "subprocess")) for t in targets)


def test_a_stored_config_outside_the_schema_is_one_line(job) -> None:
    _tamper(job, "model", {"_target_": "rl8.models.MLPModel", "surprise": 1})
    for args in (["-m", "rl8.evaluate", f"run={job}"], ["-m", "rl8.train", f"resume={job}"]):
        proc = python(
            *args, "mlflow.enabled=false" if "rl8.train" in args else "mlflow=false", cwd=job.parent
        )
        assert proc.returncode == 1
        assert "does not fit this rl8's config (model.surprise" in proc.stderr
        assert "Traceback" not in proc.stderr
