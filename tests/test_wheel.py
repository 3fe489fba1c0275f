"""The wheel is the product: build it, ``pip install`` it into a fresh venv and run
the CLI from a directory that has nothing to do with the checkout.

The fresh venv gets the project's dependencies (torch, Hydra, MLflow, ...) from
the test's own environment through a ``.pth`` line (installing them again would
take minutes), but not rl8 itself: the checkout's editable install is not
visible there, so every config and module comes from the installed wheel.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from conftest import REPO_ROOT, TINY

pytestmark = pytest.mark.timeout(600)

_NOT_SOURCE = (".git", ".venv", "build", "dist", "*.egg-info", "outputs", "multirun", "mlruns")
_NOT_SOURCE += ("mlflow.db", "__pycache__", ".*_cache")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the built wheel installed; returns its ``bin`` dir."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    # Built from a copy: setuptools leaves a build/ folder behind in the source tree.
    src = root / "src"
    shutil.copytree(REPO_ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)],
        check=True,
        capture_output=True,
    )
    [wheel] = dist.glob("rl8-*.whl")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    bin_dir = env_dir / "bin"
    purelib = subprocess.run(
        [bin_dir / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The dependencies: this environment's site-packages, whose .pth files (the
    # checkout's editable install among them) are not processed from there.
    deps = [sysconfig.get_path("purelib"), *site.getsitepackages()]
    (Path(purelib) / "rl8_test_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    subprocess.run(
        [*pip, "--python", str(bin_dir / "python"), "install", "-q", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
    )
    return bin_dir


def _run(bin_dir: Path, cwd: Path, *cmd: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.run(
        [str(bin_dir / cmd[0]), *cmd[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_rl8_comes_from_the_wheel_not_the_checkout(installed, tmp_path) -> None:
    proc = _run(
        installed,
        tmp_path,
        "python",
        "-c",
        "import rl8, rl8.conf; print(rl8.__file__); print(rl8.conf.__file__)",
    )
    files = proc.stdout.split()
    assert len(files) == 2
    for f in files:
        assert str(installed.parent) in f, f
        assert str(REPO_ROOT) not in f, f


def test_every_module_of_the_checkout_is_in_the_wheel(installed, tmp_path) -> None:
    """``pyproject.toml`` lists the packages: a new sub-package must be added there."""
    modules = sorted(
        ".".join(p.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
        for top in ("rl8", "hydra_plugins")
        for p in (REPO_ROOT / top).rglob("*.py")
    )
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)"
    _run(installed, tmp_path, "python", "-c", code, *modules)
    assert len(modules) > 40


def test_help_and_cfg_job_list_the_shipped_configs(installed, tmp_path) -> None:
    helptext = _run(installed, tmp_path, "rl8-train", "--help").stdout
    assert "env: cartpole, continuous_dummy, dummy, gymnasium, memory, pendulum" in helptext
    assert "experiment: cartpole, cartpole_randomization, cartpole_search" in helptext
    job = _run(installed, tmp_path, "python", "-m", "rl8.train", "--cfg", "job").stdout
    assert "_target_: rl8.envs.CartPole" in job


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["env=dummy", "model=lstm", "trainer.seq_len=4"],
    ],
    ids=["defaults", "dummy-lstm"],
)
def test_train_runs_from_any_directory(installed, tmp_path, args) -> None:
    _run(installed, tmp_path, "python", "-m", "rl8.train", *args, *TINY)
    assert (tmp_path / "mlflow.db").is_file()  # MLflow's default store, in the cwd
    assert list(tmp_path.glob("outputs/*/*/checkpoint.pt"))


def test_experiment_search_runs_from_any_directory(installed, tmp_path) -> None:
    _run(
        installed,
        tmp_path,
        "rl8-train",
        "-m",
        "+experiment=cartpole_search",
        "hydra.sweeper.n_trials=2",
        *TINY,
        "trainer.horizons_per_env_reset=1",
        "stop.max_env_steps=null",
    )
    trials = sorted(p.parent.name for p in tmp_path.glob("multirun/*/trial_*/seed_0"))
    assert trials == ["trial_0", "trial_1"]


def test_evaluate_runs_from_any_directory(installed, tmp_path) -> None:
    _run(installed, tmp_path, "python", "-m", "rl8.train", *TINY, "hydra.run.dir=job")
    out = _run(installed, tmp_path, "rl8-evaluate", "run=job", "episodes=3").stdout
    assert "3 episodes (deterministic)" in out and "return" in out
    helptext = _run(installed, tmp_path, "rl8-evaluate", "--help").stdout
    assert "python -m rl8.evaluate run=<job>" in helptext
