"""Shared fixtures: composing the app's config in-process, and a throwaway MLflow store."""

from __future__ import annotations

import importlib.resources
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The configs as the installed package ships them (``rl8.conf``, the repository's ``conf/``).
CONF_DIR = Path(str(importlib.resources.files("rl8.conf")))

#: Overrides that make any job of ``python -m rl8.train`` take a fraction of a second.
TINY = [
    "trainer.num_envs=4",
    "trainer.horizon=8",
    "trainer.sgd_minibatch_size=16",
    "trainer.num_sgd_iters=1",
    "stop.max_env_steps=null",
    "stop.max_steps=2",
    "stop.metric=null",  # tiny runs take exactly their steps (no solved rule)
    "stop.threshold=null",
    "eval.every=1",
    "checkpoint.every=1",
    "progress.bar=false",
]


@pytest.fixture
def compose() -> Iterator[Callable[..., object]]:
    """``compose(*overrides)``: conf/train.yaml composed with Hydra's compose API."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import rl8.config  # noqa: F401  (registers the schema in the ConfigStore)

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield lambda *overrides: hydra_compose("train", overrides=list(overrides))


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite MLflow store shared by the session (created once: it takes seconds)."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    cwd = Path.cwd()
    os.chdir(root)  # the store (cached per process) puts artifacts in ./mlruns of this cwd
    try:
        MlflowClient(tracking_uri=uri).search_experiments()
    finally:
        os.chdir(cwd)
    return uri


def python(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python *args`` in ``cwd`` (e.g. ``"-m", "rl8.evaluate", ...``), as a user
    runs it: MLflow's store from the arguments, not from the environment."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
