#!/usr/bin/env bash
# Create .venv (once) and install the project with its dev tools into it.
# torch is installed first and pinned, so that pip never pulls a CUDA build
# where a CPU wheel is meant (override with RL8_TORCH_SPEC, e.g. "torch" on a GPU box).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${RL8_VENV:-.venv}
STAMP="$VENV/.rl8-installed"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "${RL8_TORCH_SPEC:-torch==2.13.0}"
  "$VENV/bin/python" -m pip install -q -e ".[dev]"
  touch "$STAMP"
fi
