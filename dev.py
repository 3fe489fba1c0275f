#!/usr/bin/env python3
"""Bootstrap and run: the README's two commands.

    python3 dev.py train [HYDRA OVERRIDES...]   # python -m rl8.train in .venv
    python3 dev.py test  [PYTEST ARGS...]       # the test suite
    python3 dev.py bench [ARGS...]              # scripts/bench.py
    python3 dev.py lint                         # ruff check + format check + mypy

On first use (and whenever pyproject.toml changes) it creates ``.venv`` and
installs torch first, pinned by ``RL8_TORCH_SPEC`` (default ``torch==2.13.0``,
the CPU wheel; an unpinned ``torch`` may pull a multi-GB CUDA build), then the
project with its ``dev``, ``gymnasium``, ``export``, ``postgres`` and ``submitit``
extras. Needs only Python >= 3.11.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("RL8_VENV", ROOT / ".venv"))
PY = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".rl8-installed"


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, cwd=ROOT)


def bootstrap() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may run under an older python3
        sys.exit(f"rl8 needs Python >= 3.11, this is {sys.version.split()[0]}.")
    if not PY.exists():
        print(f"creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pyproject = ROOT / "pyproject.toml"
    if STAMP.exists() and STAMP.stat().st_mtime >= pyproject.stat().st_mtime:
        return
    print("installing torch and rl8 into .venv (first run only) ...", flush=True)
    pip = [str(PY), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run(*pip, os.environ.get("RL8_TORCH_SPEC", "torch==2.13.0"))
    run(*pip, "-e", ".[dev,gymnasium,export,postgres,submitit]")
    STAMP.touch()


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in {"train", "test", "bench", "lint"}:
        print(__doc__)
        return 2
    bootstrap()
    cmd, args = sys.argv[1], sys.argv[2:]
    commands = {
        "train": [[str(PY), "-m", "rl8.train", *args]],
        "test": [[str(PY), "-m", "pytest", "-q", *args]],
        "bench": [[str(PY), "scripts/bench.py", *args]],
        "lint": [
            [str(PY), "-m", "ruff", "check", "."],
            [str(PY), "-m", "ruff", "format", "--check", "."],
            [str(PY), "-m", "mypy", "rl8", "hydra_plugins"],
        ],
    }[cmd]
    for c in commands:
        rc = subprocess.call(c, cwd=ROOT)
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
