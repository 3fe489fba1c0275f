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

#: A tiny job of ``+experiment=cartpole_search``: 2 trainer steps of 4 envs x 32 steps
#: (random episodes end within them, so the objective, the mean episode return, is
#: defined), evaluated every step.
SEARCH_TINY = [
    "trainer.num_envs=4",
    "trainer.horizon=32",
    "trainer.sgd_minibatch_size=16",
    "trainer.num_sgd_iters=1",
    "trainer.horizons_per_env_reset=1",
    "stop.max_env_steps=null",
    "stop.max_steps=2",
    "eval.every=1",
    "progress.bar=false",
]


def cartpole_search(*overrides: str) -> list[str]:
    """The command line of an Optuna search with the real app (``-m +experiment=cartpole_search``)."""
    return [sys.executable, "-m", "rl8.train", "-m", "+experiment=cartpole_search", *overrides]


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


def _postgres_bin() -> Path | None:
    """The directory of Debian's PostgreSQL server binaries (``initdb``, ``pg_ctl``)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for the session, on loopback: a temporary data
    directory and a free port, a password-protected user, a database ``optuna``.

    Uses Debian's ``postgresql`` package (``.ci/run`` installs it). The server
    refuses to run as root, so as root it runs as the ``postgres`` user. Skipped
    where the package is missing, except in CI (``CI`` set), where that fails.
    """
    import pwd
    import shutil
    import socket
    import tempfile

    bindir = _postgres_bin()
    if bindir is None:
        msg = "PostgreSQL server binaries not found (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    run_as: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="rl8-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    password = "s3cret-pw"
    (root / "pw").write_text(password)
    if run_as:
        os.chown(root / "pw", user.pw_uid, user.pw_gid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "rl8", "-E", "UTF8"]
    subprocess.run(
        [*run_as, *initdb, "-A", "scram-sha-256", "--pwfile", str(root / "pw")],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
    pg_ctl = [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log")]
    subprocess.run([*pg_ctl, "-o", opts, "start"], check=True, capture_output=True)
    try:
        import psycopg

        with psycopg.connect(
            f"postgresql://rl8:{password}@127.0.0.1:{port}/postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE optuna")
        yield f"postgresql://rl8:{password}@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "stop"], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
